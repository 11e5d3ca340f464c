// Every CSV the code reads goes through the data layer's parser (parseCsv) with NFC class names:
// grocery-store's classes.csv for the server's reference photos and for manifest datasets, and the
// manifest split files. Fixture: a quoted field holding a comma and a decomposed (NFD) class name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifestDataset } from '../src/data/index.js';
import { readReferencePhotos } from '../src/serve/server.js';

const nfd = 'Cafe\u0301 Cre\u0300me, 1 l'; // "Café Crème, 1 l" with combining accents
const nfc = nfd.normalize('NFC');

function fixture(): string {
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-csv-'));
  const d = join(dir, 'dataset');
  mkdirSync(join(d, 'img'), { recursive: true });
  writeFileSync(
    join(d, 'classes.csv'),
    [
      'Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int),Iconic Image Path (str)',
      `"${nfd}",0,Dairy,0,"/icons/cafe, creme.jpg"`,
      'Oat-Milk,1,Dairy,0,/icons/oat.jpg',
    ].join('\r\n') + '\r\n',
  );
  writeFileSync(join(d, 'train.txt'), '"img/cafe, 1.jpg", 0, 0\nimg/oat.jpg, 1, 0\n');
  return dir;
}

test('reference photos: a quoted field with a comma, an NFD class name read as NFC', () => {
  const dir = fixture();
  try {
    const refs = readReferencePhotos(dir);
    assert.deepEqual([...refs.keys()], [nfc, 'Oat-Milk']);
    assert.equal(refs.get(nfc), join(dir, 'dataset', 'icons', 'cafe, creme.jpg'));
    assert.equal(refs.has(nfd), false, 'the decomposed spelling is not a key');
    assert.notEqual(nfc, nfd);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('manifest datasets: quoted split-file paths with a comma; class names NFC, the same keys as the reference photos', () => {
  const dir = fixture();
  try {
    const ds = readManifestDataset(dir);
    assert.deepEqual(ds.classes, [nfc, 'Oat-Milk']);
    assert.deepEqual(
      ds.samples.map((s) => [s.path, ds.classes[s.label]]),
      [
        ['img/cafe, 1.jpg', nfc],
        ['img/oat.jpg', 'Oat-Milk'],
      ],
    );
    // The server looks reference photos up by the model's class names, which come from the dataset.
    const refs = readReferencePhotos(dir);
    assert.ok(ds.classes.every((c) => refs.has(c)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
