// The downloader against a server on loopback that serves the real MNIST files (and, on
// request, corrupt ones): it must keep only files whose md5 matches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { DATA_DIR, tempDir } from '../helpers.js';

let corrupt = false;
const server = createServer((req, res) => {
  const file = path.join(DATA_DIR, 'mnist', path.basename(req.url ?? ''));
  if (!existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  const bytes = readFileSync(file);
  if (corrupt) bytes[bytes.length - 1] ^= 0xff;
  res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
process.env.A2_MNIST_MIRROR = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
const { fetchDataset, verifyDataset } = await import('../../src/data/fetch.js');

test('fetch downloads every MNIST file and keeps it when its md5 matches', async () => {
  const dir = tempDir();
  const problems = await fetchDataset(dir, 'mnist', () => {});
  assert.deepEqual(problems, []);
  assert.ok(verifyDataset(dir, 'mnist').every((c) => c.status === 'ok'));
});

test('a download with the wrong md5 is deleted and reported, and the user is told where to put the files', async () => {
  corrupt = true;
  const dir = tempDir();
  const said: string[] = [];
  // The official hosts are unreachable here, so only the loopback mirror answers.
  const problems = await fetchDataset(dir, 'mnist', (l) => said.push(l));
  corrupt = false;
  server.close();
  assert.equal(problems.length, 4);
  assert.match(
    problems[0],
    /train-images-idx3-ubyte\.gz could not be downloaded \(http:\/\/127\.0\.0\.1:\d+\/train-images-idx3-ubyte\.gz: md5 [0-9a-f]{32}, expected f68b3c2dcbeaaa9fbdd348bbdeb94873/,
  );
  assert.ok(
    verifyDataset(dir, 'mnist').every((c) => c.status === 'missing'),
    'nothing corrupt is left behind',
  );
  assert.match(said.join('\n'), /Place the official files by hand in .*mnist/);
});
