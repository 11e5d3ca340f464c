// The server under abuse while serving, short version of scripts/serve-abuse.mjs (the c=64, 60 s
// run is `node scripts/serve-abuse.mjs`): slow-header connections, over-limit bodies, malformed
// multipart, pixel bombs and non-image payloads while a legitimate load runs. Negative control: the
// over-limit probe tells a server that drains a 100 MB body from one that refuses it early.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(import.meta.dirname, '..', '..');
const script = join(root, 'scripts', 'serve-abuse.mjs');

interface Probe {
  status: number | null;
  sent: number;
  sentAtAnswer: number;
}
interface Abuse {
  crashed: unknown;
  healthAfter: number;
  peakRssMB: number;
  unexpected: string[];
  unexpectedCount: number;
  baseline: { requests: number; errorRate: number };
  underAbuse: { requests: number; errorRate: number };
  slowloris: { opened: number };
  oversized: Record<string, { n: number; status413: number; resetBefore413: number; maxSentMB: number }>;
  hostile: Record<string, { sent: number; status: Record<string, number> }>;
}

test('goodsrec serve under abuse: no crash, 413 without reading the body, 400/413/415/422 for bad input, legit requests answered', {
  timeout: 240_000,
}, () => {
  const r = spawnSync(
    process.execPath,
    [script, '--seconds', '3', '--connections', '8', '--slowloris', '50', '--attackers', '2', '--json'],
    { encoding: 'utf8', timeout: 230_000 },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  assert.ok(line.startsWith('{'), `no summary (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  const s = JSON.parse(line) as Abuse;
  assert.equal(s.crashed, null);
  assert.equal(s.healthAfter, 200);
  assert.deepEqual(s.unexpected, []);
  assert.equal(s.slowloris.opened, 50);
  assert.ok(s.baseline.requests > 0 && s.underAbuse.requests > 0);
  assert.equal(s.baseline.errorRate, 0);
  assert.equal(s.underAbuse.errorRate, 0);
  for (const [name, o] of Object.entries(s.oversized)) {
    assert.ok(o.n >= 1 && o.status413 + o.resetBefore413 === o.n, `${name}: ${JSON.stringify(o)}`);
    assert.ok(o.maxSentMB <= 16, `${name}: the server took ${o.maxSentMB} MB of a 100 MB body`);
  }
  assert.equal(Object.keys(s.oversized).length, 3);
  // Every kind was sent (the script's own check names any unexpected answer above).
  assert.equal(Object.keys(s.hostile).length, 13);
  for (const bomb of ['png-bomb 100000x100000', 'jpeg-bomb 65500x65500'])
    assert.deepEqual(Object.keys(s.hostile[bomb]!.status), ['413'], bomb);
  assert.deepEqual(Object.keys(s.hostile['random bytes as image/jpeg']!.status), ['422']);
  assert.deepEqual(Object.keys(s.hostile['multipart without boundary']!.status), ['400']);
  assert.equal(r.status, 0);
});

test('negative control: the over-limit probe sees a server that reads the whole body', async () => {
  const { oversized } = (await import(pathToFileURL(script).href)) as {
    oversized: (port: number, h: { head: string; chunked?: boolean }, total: number) => Promise<Probe>;
  };
  const total = 64 * 2 ** 20;
  const head = `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: ${total}\r\n\r\n`;
  // Drains everything, then answers 200 and closes.
  const drains = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { connection: 'close' }).end('ok'));
  });
  // Refuses at once and closes.
  const refuses = createServer((_req, res) => {
    res.writeHead(413, { connection: 'close' }).end();
  });
  try {
    for (const s of [drains, refuses]) await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
    const a = await oversized((drains.address() as AddressInfo).port, { head }, total);
    assert.equal(a.status, 200);
    assert.equal(a.sent, total);
    const b = await oversized((refuses.address() as AddressInfo).port, { head }, total);
    assert.ok(b.sent <= 16 * 2 ** 20, `${b.sent} bytes`);
    assert.ok(b.status === 413 || b.status === null);
  } finally {
    drains.close();
    refuses.close();
  }
});
