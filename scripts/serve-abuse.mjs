#!/usr/bin/env node
// Server under abuse while serving (issue 13, item 6). Starts `goodsrec serve` on loopback with a
// stand-in resnet18 export, runs a legitimate load (autocannon, real photos) alone and then again
// while attackers send: slow-header (slowloris) connections, bodies over the limit (Content-Length,
// chunked and multipart), malformed multipart, pixel bombs (PNG/JPEG headers claiming huge sizes)
// and non-image payloads. Reports crashes, the legitimate requests' error rate and p50/p99 latency
// with and without abuse, the answers the attackers got, and the server's peak RSS (VmHWM).
//
//   node scripts/serve-abuse.mjs [--seconds 60] [--connections 64] [--slowloris 300] [--json]
//
// Needs a build (dist/, including dist/test for the stand-in model). Exit 0 when every check held.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { deflateSync } from 'node:zlib';
import autocannon from 'autocannon';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const MAX_BODY = 2 * 1024 * 1024;
/** An over-limit upload counts as refused early when the socket took at most this much of its 100 MB. */
const READ_BOUND = 8 * MAX_BODY;

function photos() {
  const dir = join(root, 'examples', 'grocery-sample', 'test');
  return readdirSync(dir)
    .sort()
    .flatMap((c) =>
      readdirSync(join(dir, c))
        .sort()
        .map((f) => readFileSync(join(dir, c, f))),
    );
}

// --- hostile payloads -------------------------------------------------------------------------
function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
function pngChunk(type, data) {
  const t = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(t));
  return Buffer.concat([len, t, crc]);
}
/** A valid PNG header claiming w x h RGB pixels, with a little compressed data of zeros. */
export function pngBomb(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1 << 20))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
/** A real photo with its SOF0 frame header rewritten to claim w x h. */
export function jpegBomb(jpeg, w, h) {
  const b = Buffer.from(jpeg);
  for (let i = 2; i + 9 < b.length; ) {
    if (b[i] !== 0xff) break;
    const m = b[i + 1];
    const len = b.readUInt16BE(i + 2);
    if (m >= 0xc0 && m <= 0xc2) {
      b.writeUInt16BE(h, i + 5);
      b.writeUInt16BE(w, i + 7);
      return b;
    }
    i += 2 + len;
  }
  throw new Error('no SOF marker');
}
function multipart(parts, boundary = 'abuse0boundary') {
  const chunks = parts.map((p) =>
    Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${p.name}"\r\n` +
          `Content-Type: image/jpeg\r\n\r\n`,
      ),
      p.bytes,
      Buffer.from('\r\n'),
    ]),
  );
  return {
    body: Buffer.concat([...chunks, Buffer.from(`--${boundary}--\r\n`)]),
    type: `multipart/form-data; boundary=${boundary}`,
  };
}

/** The small hostile requests: [name, content-type, body, expected status]. */
function hostileRequests(jpeg) {
  const random = Buffer.alloc(50_000);
  for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 24;
  const good = multipart([{ name: 'a.jpg', bytes: jpeg }]);
  return [
    ['png-bomb 100000x100000', 'image/png', pngBomb(100_000, 100_000), 413],
    ['png-bomb 30000x30000', 'image/png', pngBomb(30_000, 30_000), 413],
    ['jpeg-bomb 65500x65500', 'image/jpeg', jpegBomb(jpeg, 65_500, 65_500), 413],
    ['random bytes as image/jpeg', 'image/jpeg', random, 422],
    ['text as image/png', 'image/png', Buffer.from('hello, not a picture\n'.repeat(100)), 422],
    ['pdf as image/jpeg', 'image/jpeg', Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n'), 422],
    ['truncated jpeg', 'image/jpeg', jpeg.subarray(0, Math.floor(jpeg.length / 3)), 422],
    ['json body', 'application/json', Buffer.from('{"image": "x"}'), 415],
    ['multipart without boundary', 'multipart/form-data', good.body, 400],
    ['multipart with the wrong boundary', 'multipart/form-data; boundary=other', good.body, 400],
    ['multipart cut in the middle', good.type, good.body.subarray(0, 200), 400],
    ['multipart garbage', good.type, random, 400],
    [
      'multipart without a file part',
      'multipart/form-data; boundary=b',
      Buffer.from('--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nhi\r\n--b--\r\n'),
      400,
    ],
  ];
}

// --- raw-socket attackers ---------------------------------------------------------------------
/** Opens `n` connections that send request headers one line every `everyMs` and never finish them. */
function slowloris(port, n, everyMs, stats) {
  const socks = [];
  for (let i = 0; i < n; i++) {
    const t0 = Date.now();
    let timer;
    // The request line first; then one more header line every everyMs, never the blank line that ends them.
    const s = connect(port, '127.0.0.1', () => {
      s.write('POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\n');
      timer = setInterval(() => {
        if (!s.destroyed) s.write(`X-Slow-${i}: ${'a'.repeat(10)}\r\n`);
      }, everyMs);
    });
    stats.opened++;
    let answered = false;
    s.on('data', (d) => {
      if (!answered) {
        answered = true;
        const m = /^HTTP\/1\.1 (\d+)/.exec(String(d));
        stats.status[m?.[1] ?? '?'] = (stats.status[m?.[1] ?? '?'] ?? 0) + 1;
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(timer);
      if (!stats.stopped) {
        stats.closedByServer++;
        stats.lifetimesMs.push(Date.now() - t0);
      }
    });
    socks.push({ s, timer: () => timer });
  }
  return () => {
    stats.stopped = true;
    for (const { s, timer } of socks) {
      clearInterval(timer());
      s.destroy();
    }
  };
}

/**
 * Streams `total` bytes after the headers as fast as the socket takes them; resolves with the
 * status line's code, the bytes the socket accepted before the answer, and the time to the answer.
 */
export function oversized(port, headers, total, chunk = 64 * 1024) {
  return new Promise((res) => {
    const t0 = performance.now();
    let sent = 0;
    let status = null;
    let sentAtAnswer = null;
    let ms = null;
    const s = connect(port, '127.0.0.1');
    const piece = Buffer.alloc(chunk, 0x41);
    const pump = () => {
      while (status === null && sent < total && !s.destroyed) {
        const n = Math.min(chunk, total - sent);
        const body = headers.chunked
          ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), piece.subarray(0, n), Buffer.from('\r\n')])
          : piece.subarray(0, n);
        sent += n;
        if (!s.write(body)) {
          s.once('drain', pump);
          return;
        }
      }
    };
    s.on('connect', () => {
      s.write(headers.head);
      pump();
    });
    s.on('data', (d) => {
      if (status !== null) return;
      const m = /^HTTP\/1\.1 (\d+)/.exec(String(d));
      status = m ? Number(m[1]) : -1;
      sentAtAnswer = sent;
      ms = performance.now() - t0;
    });
    s.on('error', () => {});
    const done = () => res({ status, sentAtAnswer: sentAtAnswer ?? sent, ms: ms ?? performance.now() - t0, sent });
    s.on('close', done);
    // A server that keeps reading would keep us here; stop after 20 s (counted as "read whole").
    const giveUp = setTimeout(() => s.destroy(), 20_000);
    giveUp.unref();
    s.on('close', () => clearTimeout(giveUp));
  });
}

async function request(url, type, body) {
  try {
    const r = await fetch(`${url}/v1/predict`, { method: 'POST', headers: type ? { 'content-type': type } : {}, body });
    const j = await r.json().catch(() => null);
    return { status: r.status, code: j?.error?.code ?? null };
  } catch (e) {
    return { status: -1, code: `client error: ${e.cause?.code ?? e.message}` };
  }
}

// --- the server -------------------------------------------------------------------------------
async function startServer(exportDir, threads) {
  const child = spawn(
    process.execPath,
    [
      cli,
      'serve',
      exportDir,
      '--port',
      '0',
      '--threads',
      String(threads),
      '--max-body',
      String(MAX_BODY),
      '--max-pixels',
      '40000000',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } },
  );
  let log = '';
  child.stderr.on('data', (d) => {
    log += d;
  });
  const url = await new Promise((res, rej) => {
    child.stdout.on('data', (d) => {
      log += d;
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) res(m[1]);
    });
    child.on('exit', (code) => rej(new Error(`goodsrec serve exited (${code}) before listening: ${log}`)));
  });
  const exit = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  return { child, url, port: Number(new URL(url).port), exit, log: () => log };
}

function peakRssMB(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function legitLoad(url, bodies, connections, seconds) {
  let i = 0;
  const r = await autocannon({
    url: `${url}/v1/predict`,
    connections,
    duration: seconds,
    timeout: 30,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'image/jpeg' },
        setupRequest: (req) => ({ ...req, body: bodies[i++ % bodies.length] }),
      },
    ],
  });
  const total = r.requests.total + r.errors;
  return {
    requests: r.requests.total,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    errorRate: total ? (r.non2xx + r.errors) / total : 0,
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    rps: r.requests.average,
  };
}

/** Runs the abuse until `stop()` is called; returns what the attackers saw. */
function abuse(srv, jpeg, o) {
  const stats = {
    slowloris: { opened: 0, closedByServer: 0, lifetimesMs: [], status: {}, stopped: false },
    hostile: {},
    unexpected: [],
    oversized: [],
  };
  const stopSlow = slowloris(srv.port, o.slowloris, 2000, stats.slowloris);
  let running = true;
  const hostile = hostileRequests(jpeg);
  const big = MAX_BODY * 50;
  const bomb = (head, chunked = false) => ({ head, chunked });
  const oversize = [
    [
      'content-length over the limit',
      bomb(`POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: ${big}\r\n\r\n`),
    ],
    [
      'chunked over the limit',
      bomb(
        'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n',
        true,
      ),
    ],
    [
      'multipart file over the limit',
      bomb(
        `POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: ${big + 200}\r\n\r\n` +
          '--zz\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n',
      ),
    ],
  ];
  const workers = [];
  // Small hostile requests, `o.attackers` at a time.
  for (let w = 0; w < o.attackers; w++) {
    workers.push(
      (async () => {
        // The attackers share the list; each kind is sent at least once however short the run.
        for (let i = w; running || i < hostile.length; i += o.attackers) {
          const [name, type, body, want] = hostile[i % hostile.length];
          const r = await request(srv.url, type, body);
          const h = (stats.hostile[name] ??= { sent: 0, status: {} });
          h.sent++;
          h.status[r.status] = (h.status[r.status] ?? 0) + 1;
          if (r.status !== want || r.status >= 500 || r.status < 0)
            stats.unexpected.push(`${name}: ${r.status} ${r.code} (expected ${want})`);
        }
      })(),
    );
  }
  // Oversized uploads, one of each kind at a time.
  for (const [name, spec] of oversize) {
    workers.push(
      (async () => {
        do {
          const r = await oversized(srv.port, spec, big);
          stats.oversized.push({ name, ...r });
          // The server answers 413 and closes; a client still writing may get a reset before it reads the answer.
          const early = r.status === null && r.sent <= READ_BOUND;
          if (r.status !== 413 && !early)
            stats.unexpected.push(
              `${name}: status ${r.status} after ${r.sentAtAnswer} of ${r.sent} bytes (expected 413)`,
            );
        } while (running);
      })(),
    );
  }
  return async () => {
    running = false;
    stopSlow();
    await Promise.all(workers);
    return stats;
  };
}

function summarizeOversized(list) {
  const by = {};
  for (const r of list) {
    const b = (by[r.name] ??= {
      n: 0,
      status413: 0,
      resetBefore413: 0,
      maxBytesBeforeAnswerMB: 0,
      maxMs: 0,
      maxSentMB: 0,
    });
    b.n++;
    if (r.status === 413) b.status413++;
    else if (r.status === null && r.sent <= READ_BOUND) b.resetBefore413++;
    b.maxBytesBeforeAnswerMB = Math.max(b.maxBytesBeforeAnswerMB, +(r.sentAtAnswer / 2 ** 20).toFixed(1));
    b.maxSentMB = Math.max(b.maxSentMB, +(r.sent / 2 ** 20).toFixed(1));
    b.maxMs = Math.max(b.maxMs, Math.round(r.ms));
  }
  return by;
}

export async function main(argv = process.argv.slice(2)) {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '60' },
      connections: { type: 'string', default: '64' },
      slowloris: { type: 'string', default: '300' },
      attackers: { type: 'string', default: '4' },
      threads: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
  const o = {
    seconds: Number(values.seconds),
    connections: Number(values.connections),
    slowloris: Number(values.slowloris),
    attackers: Number(values.attackers),
    threads: Number(values.threads),
  };
  const log = values.json ? () => {} : (m) => console.log(m);
  const work = mkdtempSync(join(tmpdir(), 'goodsrec-abuse-'));
  const { standInRecognizer } = await import(join(root, 'dist', 'test', 'serve-helpers.js'));
  const { exportDir } = await standInRecognizer(work);
  const bodies = photos();
  const srv = await startServer(exportDir, o.threads);
  let crashed = null;
  void srv.exit.then((e) => {
    crashed = e;
  });
  try {
    log(
      `server ${srv.url} (pid ${srv.child.pid}); legitimate load: ${o.connections} connections, ${o.seconds} s, ${bodies.length} photos`,
    );
    const baseline = await legitLoad(srv.url, bodies, o.connections, o.seconds);
    log(`without abuse: ${JSON.stringify(baseline)}`);
    const stop = abuse(srv, bodies[0], o);
    const underAbuse = await legitLoad(srv.url, bodies, o.connections, o.seconds);
    const attack = await stop();
    log(`under abuse:   ${JSON.stringify(underAbuse)}`);
    for (const [status, n] of Object.entries(attack.slowloris.status))
      if (status !== '408') attack.unexpected.push(`slowloris: ${n} answered ${status} (expected 408)`);
    const health = await fetch(`${srv.url}/healthz`).then(
      (r) => r.status,
      () => -1,
    );
    const summary = {
      crashed,
      healthAfter: health,
      peakRssMB: peakRssMB(srv.child.pid),
      baseline,
      underAbuse,
      slowloris: {
        opened: attack.slowloris.opened,
        closedByServer: attack.slowloris.closedByServer,
        openAtEnd: attack.slowloris.opened - attack.slowloris.closedByServer,
        maxLifetimeS: Math.round(Math.max(0, ...attack.slowloris.lifetimesMs) / 1000),
        answers: attack.slowloris.status,
      },
      oversized: summarizeOversized(attack.oversized),
      hostile: attack.hostile,
      unexpected: [...new Set(attack.unexpected)].slice(0, 20),
      unexpectedCount: attack.unexpected.length,
    };
    if (values.json) console.log(JSON.stringify(summary));
    else console.log(JSON.stringify(summary, null, 2));
    return crashed || health !== 200 || summary.unexpectedCount ? 1 : 0;
  } finally {
    srv.child.kill('SIGTERM');
    await Promise.race([srv.exit, new Promise((r) => setTimeout(r, 5000))]);
    srv.child.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main();
