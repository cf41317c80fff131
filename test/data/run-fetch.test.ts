// `a2 run` on a data folder without MNIST: it fetches MNIST (from a loopback server serving the
// real files, put first by A2_MNIST_MIRROR), checks the md5s and carries on; unreachable or
// told not to, it fails as before, naming the folder to fill and `a2 data fetch`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { verifyDataset } from '../../src/data/fetch.js';
import { DATA_DIR, a2, tempDir } from '../helpers.js';

const requested: string[] = [];
const server = createServer((req, res) => {
  requested.push(req.url ?? '');
  const file = path.join(DATA_DIR, 'mnist', path.basename(req.url ?? ''));
  if (!existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  const bytes = readFileSync(file);
  res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

test('a missing MNIST is fetched, md5-checked, and the run goes on to land its outputs', async () => {
  process.env.A2_MNIST_MIRROR = mirror;
  // CI turns fetching off for its runs; this test is about fetching.
  delete process.env.A2_NO_FETCH;
  const data = tempDir();
  const out = tempDir();
  const { code, lines } = await a2('run', 'q2-fc-ae', '--profile', 'smoke', '--data-dir', data, '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  const said = lines.join('\n');
  assert.match(said, /\[q2-fc-ae\] mnist is missing from .*; fetching it from the official mirrors/);
  // Off a terminal the progress is plain lines, one at each quarter of each file.
  assert.match(said, /downloading train-images-idx3-ubyte\.gz \(9\.9 MB\) from http:\/\/127\.0\.0\.1/);
  assert.match(said, /train-images-idx3-ubyte\.gz: 75%/);
  assert.ok(verifyDataset(data, 'mnist').every((c) => c.status === 'ok'));
  assert.ok(existsSync(path.join(out, 'q2-fc-ae', 'metrics.json')));
});

test('with --no-fetch or A2_NO_FETCH=1 nothing is downloaded and the run fails naming the file and a2 data fetch', async () => {
  process.env.A2_MNIST_MIRROR = mirror;
  for (const [args, env] of [
    [['--no-fetch'], undefined],
    [[], '1'],
  ] as const) {
    requested.length = 0;
    if (env) process.env.A2_NO_FETCH = env;
    const data = tempDir();
    const out = tempDir();
    try {
      const { code, lines } = await a2('run', 'q2-fc-ae', '--profile', 'smoke', '--data-dir', data, '--out', out, ...args);
      assert.equal(code, 1);
      assert.deepEqual(requested, []);
      assert.match(
        lines.join('\n'),
        /FAILED: .*mnist\/train-images-idx3-ubyte.*run `a2 data fetch mnist` or pass --data-dir.*found no such file/,
      );
      assert.equal(existsSync(path.join(out, 'q2-fc-ae')), false);
    } finally {
      delete process.env.A2_NO_FETCH;
    }
  }
});

test('offline (no mirror answers) the run fails as before, naming the folder to fill', async () => {
  server.close();
  process.env.A2_MNIST_MIRROR = mirror; // now refused: nothing listens there
  const data = tempDir();
  const out = tempDir();
  const { code, lines } = await a2('run', 'q2-fc-ae', '--profile', 'smoke', '--data-dir', data, '--out', out);
  const said = lines.join('\n');
  assert.equal(code, 1);
  assert.match(said, /mnist: mnist\/train-images-idx3-ubyte\.gz could not be downloaded \(http:\/\/127\.0\.0\.1:\d+\/train-images/);
  assert.match(said, new RegExp(`Place the official files by hand in ${path.join(data, 'mnist')}/`));
  assert.match(said, new RegExp(`or, once online: a2 data fetch mnist --data-dir ${data}`));
  assert.match(said, /FAILED: .*found no such file/);
  assert.ok(
    verifyDataset(data, 'mnist').every((c) => c.status === 'missing'),
    'nothing half-downloaded is left',
  );
  assert.equal(existsSync(path.join(out, 'q2-fc-ae')), false);
});
