import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { type DataFileRecord, loadCifar, loadMnist, verifyDataset } from '../../src/data/index.js';
import { InputError } from '../../src/errors.js';
import { DATA_DIR, tempDir } from '../helpers.js';

test('MNIST train and test load from the official .gz files with the published class counts', () => {
  const read: DataFileRecord[] = [];
  const train = loadMnist(DATA_DIR, 'train', read);
  const testSplit = loadMnist(DATA_DIR, 'test', read);
  assert.equal(train.count, 60000);
  assert.equal(testSplit.count, 10000);
  const counts = new Array(10).fill(0);
  for (const l of train.labels) counts[l]++;
  assert.deepEqual(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
  const mean = train.images.reduce((a, b) => a + b, 0) / train.images.length;
  assert.ok(Math.abs(mean - 0.1307) < 1e-4, `pixel mean ${mean}`);
  assert.equal(read.length, 4);
  assert.equal(read[0].md5, 'f68b3c2dcbeaaa9fbdd348bbdeb94873');
});

test('CIFAR-10 loads 50k/10k images, channels last, with the official first labels', () => {
  const read: DataFileRecord[] = [];
  const train = loadCifar(DATA_DIR, 'train', read);
  const testSplit = loadCifar(DATA_DIR, 'test', read);
  assert.equal(train.count, 50000);
  assert.equal(testSplit.count, 10000);
  assert.deepEqual(Array.from(train.labels.slice(0, 10)), [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
  assert.deepEqual(Array.from(testSplit.labels.slice(0, 10)), [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
  // Channel means over the training set, as published: (0.4914, 0.4822, 0.4465).
  const sums = [0, 0, 0];
  for (let i = 0; i < train.images.length; i++) sums[i % 3] += train.images[i];
  const means = sums.map((s) => s / (train.images.length / 3) / 255);
  for (const [c, m] of [0.4914, 0.4822, 0.4465].entries()) assert.ok(Math.abs(means[c] - m) < 1e-4, `channel ${c}: ${means[c]}`);
});

test('a truncated MNIST file is refused with its name, what was expected and what was found', () => {
  const dir = tempDir();
  mkdirSync(path.join(dir, 'mnist'));
  const raw = Buffer.from(readFileSync(path.join(DATA_DIR, 'mnist/t10k-labels-idx1-ubyte.gz')));
  copyFileSync(path.join(DATA_DIR, 'mnist/t10k-labels-idx1-ubyte.gz'), path.join(dir, 'mnist/t10k-labels-idx1-ubyte.gz'));
  const images = Buffer.alloc(16 + 100 * 784);
  images.writeUInt32BE(2051, 0);
  images.writeUInt32BE(10000, 4);
  images.writeUInt32BE(28, 8);
  images.writeUInt32BE(28, 12);
  writeFileSync(path.join(dir, 'mnist/t10k-images-idx3-ubyte.gz'), gzipSync(images));
  assert.throws(
    () => loadMnist(dir, 'test', []),
    (err: Error) =>
      err instanceof InputError &&
      err.message.includes('t10k-images-idx3-ubyte.gz') &&
      err.message.includes('expected 7840016 bytes') &&
      err.message.includes('found 78416 bytes'),
  );
  // Wrong magic number, raw (not gzipped) file.
  images.writeUInt32BE(1234, 0);
  writeFileSync(path.join(dir, 'mnist/t10k-images-idx3-ubyte.gz'), images);
  assert.throws(() => loadMnist(dir, 'test', []), /magic 2051, found 1234/);
  // A damaged gzip stream.
  writeFileSync(path.join(dir, 'mnist/t10k-images-idx3-ubyte.gz'), raw.subarray(0, raw.length - 100));
  assert.throws(() => loadMnist(dir, 'test', []), /complete gzip stream/);
});

test('a missing dataset file names the file and how to get it', () => {
  assert.throws(() => loadCifar(tempDir(), 'test', []), /test_batch\.bin: expected .*a2 data fetch cifar10.*found no such file/);
});

test('verify reports every official file present and matching', () => {
  for (const dataset of ['mnist', 'cifar10'] as const) {
    const checks = verifyDataset(DATA_DIR, dataset);
    assert.ok(checks.length >= 4);
    assert.deepEqual(
      checks.filter((c) => c.status !== 'ok'),
      [],
    );
  }
  assert.ok(verifyDataset(tempDir(), 'mnist').every((c) => c.status === 'missing'));
});

test("a2 data verify lists the assignment's Q4 files too: present with their md5, or missing (exit 1)", async () => {
  const { a2 } = await import('../helpers.js');
  const whole = await a2('data', 'verify', '--data-dir', DATA_DIR);
  assert.equal(whole.code, 0, whole.lines.join('\n'));
  for (const name of ['pixel_input.pt', 'filter.pt'])
    assert.ok(
      whole.lines.some((l) => /^present {2}.*assignment-q4\//.test(l) && l.includes(`${name} (md5 `)),
      whole.lines.join('\n'),
    );
  const empty = tempDir();
  const bare = await a2('data', 'verify', '--data-dir', empty);
  assert.equal(bare.code, 1);
  assert.ok(
    bare.lines.includes(
      `missing  ${path.join(empty, 'assignment-q4', 'filter.pt')} (or in q4/; q4-ops needs it, and only the assignment has it)`,
    ),
  );
});
