import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { balancedSubset, learningRateAt, makeCifarNet } from '../../experiments/cifar.js';
import { loadCifar } from '../../src/data/index.js';
import { initBackend } from '../../src/tensor/index.js';
import { a2, DATA_DIR, ROOT, tempDir } from '../helpers.js';

await initBackend('wasm');

test('the learning rate warms up linearly, peaks, and decays linearly to zero', () => {
  const c = { lr: 0.2, epochs: 10, warmupEpochs: 2 };
  assert.equal(learningRateAt(0, c), 0);
  assert.ok(Math.abs(learningRateAt(1, c) - 0.1) < 1e-12);
  assert.ok(Math.abs(learningRateAt(2, c) - 0.2) < 1e-12);
  assert.ok(Math.abs(learningRateAt(6, c) - 0.1) < 1e-12);
  assert.equal(learningRateAt(10, c), 0);
});

test('Q5.2 subsets are class-balanced and the same whatever the run seed', () => {
  const train = loadCifar(DATA_DIR, 'train', []);
  for (const perClass of [1, 10, 100]) {
    const a = balancedSubset(train, perClass), b = balancedSubset(train, perClass);
    assert.equal(a.count, 10 * perClass);
    const counts = new Array(10).fill(0);
    for (const l of a.labels) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(perClass));
    assert.deepEqual(a.images, b.images);
  }
});

test('the net is convolutions and a linear head, 32×32×3 → 10 logits', () => {
  const net = makeCifarNet([8, 16, 16, 32]);
  assert.deepEqual(net.outputs[0].shape, [null, 10]);
  assert.ok(net.layers.some((l) => l.getClassName() === 'Conv2D'));
  assert.ok(net.layers.some((l) => l.getClassName() === 'Dense'));
});

interface Q5Metrics { epochs: { epoch: number; trainLoss: number; testAcc: number }[]; finalTestAcc: number; subsets: { images: number }[] }
const metricsOf = (out: string) => JSON.parse(readFileSync(path.join(out, 'q5-cifar/metrics.json'), 'utf8')) as Q5Metrics;

test('smoke run writes the four curves, the combined figure and the subset curve', async () => {
  const out = tempDir();
  const { code, lines } = await a2('run', 'q5-cifar', '--profile', 'smoke', '--subsets', '--data-dir', DATA_DIR, '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  for (const f of ['train-loss', 'train-acc', 'test-loss', 'test-acc', 'curves', 'subsets']) assert.ok(existsSync(path.join(out, 'q5-cifar', `${f}.png`)), f);
  const m = metricsOf(out);
  assert.equal(m.epochs.length, 2);
  assert.deepEqual(m.subsets.map((s) => s.images), [10, 100, 300]);
  assert.equal(existsSync(path.join(out, 'q5-cifar/checkpoints')), false, 'checkpoints are dropped once the run lands');
});

test('a run killed with SIGKILL resumes from its last epoch and ends with the same numbers', async () => {
  const args = ['run', 'q5-cifar', '--profile', 'smoke', '--epochs', '4', '--seed', '3', '--data-dir', DATA_DIR];
  const reference = tempDir();
  assert.equal((await a2(...args, '--out', reference)).code, 0);

  const out = tempDir();
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/a2.js'), ...args, '--out', out], { stdio: 'ignore', env: { ...process.env, CI: '1' } });
  const checkpoint = path.join(out, '.partial/q5-cifar/checkpoints/state.json');
  const epochsIn = () => (existsSync(checkpoint) ? (JSON.parse(readFileSync(checkpoint, 'utf8')) as { epochs: unknown[] }).epochs.length : 0);
  while (epochsIn() < 2) {
    if (child.exitCode !== null) assert.fail('the run ended before it could be killed');
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(existsSync(path.join(out, 'q5-cifar/metrics.json')), false, 'a killed run lands nothing');

  const { code, lines } = await a2(...args, '--out', out, '--resume');
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(lines.some((l) => /resumed after epoch [23]/.test(l)));
  const [a, b] = [metricsOf(reference), metricsOf(out)];
  assert.deepEqual(b.epochs.map((e) => e.epoch), [1, 2, 3, 4]);
  assert.deepEqual(b.epochs.map((e) => [e.trainLoss, e.testAcc]), a.epochs.map((e) => [e.trainLoss, e.testAcc]));
});
