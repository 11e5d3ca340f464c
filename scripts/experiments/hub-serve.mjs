#!/usr/bin/env node
// Serves timm-format repo folders on the loopback fake Hub of the tests (test/hub-fake.ts, compiled to
// dist/test/hub-fake.js) until killed; prints `HF_ENDPOINT=...` and writes it to ENDPOINT_FILE.
//   node scripts/experiments/hub-serve.mjs ENDPOINT_FILE org/name=FOLDER [org/name=FOLDER ...]
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FakeHub } from '../../dist/test/hub-fake.js';

const [endpointFile, ...repos] = process.argv.slice(2);
if (!endpointFile || !repos.length) {
  console.error('usage: hub-serve.mjs ENDPOINT_FILE org/name=FOLDER ...');
  process.exit(2);
}
const hub = new FakeHub();
await hub.start();
for (const spec of repos) {
  const [id, dir] = spec.split('=');
  const files = Object.fromEntries(readdirSync(resolve(dir)).map((f) => [f, readFileSync(join(resolve(dir), f))]));
  hub.addRepo(id, files);
  console.log(`serving ${id} (${Object.keys(files).join(', ')})`);
}
writeFileSync(endpointFile, `${hub.endpoint}\n`);
console.log(`HF_ENDPOINT=${hub.endpoint}`);
const stop = async () => {
  await hub.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
