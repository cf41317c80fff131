import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { balancedSubset, learningRateAt, makeCifarNet } from '../../experiments/cifar.js';
import { loadCifar } from '../../src/data/index.js';
import { forwardFlops, initBackend } from '../../src/tensor/index.js';
import { a2, DATA_DIR, ROOT, tempDir } from '../helpers.js';

await initBackend('wasm');

test('the learning rate warms up linearly, peaks, and decays linearly to zero', () => {
  const c = { lr: 0.2, epochs: 10, warmup: 0.2 };
  assert.equal(learningRateAt(0, c), 0);
  assert.ok(Math.abs(learningRateAt(1, c) - 0.1) < 1e-12);
  assert.ok(Math.abs(learningRateAt(2, c) - 0.2) < 1e-12);
  assert.ok(Math.abs(learningRateAt(6, c) - 0.1) < 1e-12);
  assert.equal(learningRateAt(10, c), 0);
});

test('Q5.2 validation images, taken past the largest subset, are in no subset', () => {
  // A synthetic split whose pixels name the image, so images can be traced back to their index.
  const count = 400;
  const images = new Uint8Array(count * 3072);
  for (let i = 0; i < count; i++) {
    images[i * 3072] = i >> 8;
    images[i * 3072 + 1] = i & 255;
  }
  const split = { images, labels: Uint8Array.from({ length: count }, (_, i) => i % 10), count };
  const ids = (s: { images: Uint8Array; count: number }) =>
    Array.from({ length: s.count }, (_, k) => s.images[k * 3072] * 256 + s.images[k * 3072 + 1]);
  const largest = new Set(ids(balancedSubset(split, 20)));
  const validation = ids(balancedSubset(split, 15, 20));
  assert.equal(largest.size, 200);
  assert.equal(validation.length, 150);
  assert.deepEqual(
    validation.filter((i) => largest.has(i)),
    [],
  );
  assert.ok(
    ids(balancedSubset(split, 5)).every((i) => largest.has(i)),
    'the subsets are nested',
  );
});

test('Q5.2 subsets are class-balanced and the same whatever the run seed', () => {
  const train = loadCifar(DATA_DIR, 'train', []);
  for (const perClass of [1, 10, 100]) {
    const a = balancedSubset(train, perClass),
      b = balancedSubset(train, perClass);
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

/** 2 × multiply-adds of a 3×3 'same' conv at side × side: the count worked by hand. */
const conv3x3 = (side: number, cin: number, cout: number) => 2 * side * side * 9 * cin * cout;
// widths 8/16/16/32: stem at 32², each block's first conv before its pool, its second after; then the 32 → 10 head.
const SMOKE_NET_FLOPS =
  conv3x3(32, 3, 8) +
  conv3x3(32, 8, 16) +
  conv3x3(16, 16, 16) +
  conv3x3(16, 16, 16) +
  conv3x3(8, 16, 16) +
  conv3x3(8, 16, 32) +
  conv3x3(4, 32, 32) +
  2 * 32 * 10;

/** 2 × multiply-adds of a k×k conv producing side × side outputs. */
const conv = (k: number, side: number, cin: number, cout: number) => 2 * side * side * k * k * cin * cout;
// The smoke profile's net: the 2×2 whitening stem (3 → 24, 31² outputs, no padding), blocks of
// 8/16/16 at 31², 15², 7² and 3² (pools floor odd sides), then the 16 → 10 head.
const WHITENED_SMOKE_NET_FLOPS =
  conv(2, 31, 3, 24) +
  conv(3, 31, 24, 8) +
  conv(3, 15, 8, 8) +
  conv(3, 15, 8, 16) +
  conv(3, 7, 16, 16) +
  conv(3, 7, 16, 16) +
  conv(3, 3, 16, 16) +
  2 * 16 * 10;

test('forward FLOPs count every conv and the head of the net', () => {
  assert.equal(forwardFlops(makeCifarNet([8, 16, 16, 32])), SMOKE_NET_FLOPS);
  assert.equal(forwardFlops(makeCifarNet([24, 8, 16, 16], { whiten: true, dirac: true, logitScale: 1 / 9 })), WHITENED_SMOKE_NET_FLOPS);
});

interface Q5Metrics {
  epochs: { epoch: number; trainLoss: number; trainAcc: number; testAcc: number }[];
  finalTestAcc: number;
  finalOneViewTestAcc: number;
  testViews: number;
  forwardFlopsPerImage: number;
  trainingFlops: number;
  timeToAccuracy: { target: number; epoch: number | null }[];
}
const metricsOf = (out: string) => JSON.parse(readFileSync(path.join(out, 'q5-cifar/metrics.json'), 'utf8')) as Q5Metrics;

test('smoke run writes the four curves and the combined figure', async () => {
  const out = tempDir();
  const { code, lines } = await a2('run', 'q5-cifar', '--profile', 'smoke', '--data-dir', DATA_DIR, '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  for (const f of ['train-loss', 'train-acc', 'test-loss', 'test-acc', 'curves', 'test-acc-vs-seconds'])
    assert.ok(existsSync(path.join(out, 'q5-cifar', `${f}.png`)), f);
  const metrics = metricsOf(out);
  assert.equal(metrics.epochs.length, 2);
  // The smoke net on 300 images: 3 × forward FLOPs × 300 images × 2 epochs.
  assert.equal(metrics.forwardFlopsPerImage, WHITENED_SMOKE_NET_FLOPS);
  assert.equal(metrics.trainingFlops, 3 * WHITENED_SMOKE_NET_FLOPS * 300 * 2);
  // Each epoch is tested on one view; the final weights once more with the recipe's six, drawn as their own point.
  assert.equal(metrics.testViews, 6);
  assert.equal(metrics.finalOneViewTestAcc, metrics.epochs.at(-1)!.testAcc);
  const accuracyChart = readFileSync(path.join(out, 'q5-cifar/test-acc.vl.json'), 'utf8');
  assert.ok(accuracyChart.includes('final weights, 6 test-time views') && accuracyChart.includes('each epoch, one view'));
  assert.deepEqual(
    metrics.timeToAccuracy.map((t) => t.target),
    [0.9, 0.93, 0.94],
  );
  assert.equal(existsSync(path.join(out, 'q5-cifar/checkpoints')), false, 'checkpoints are dropped once the run lands');
});

interface Trial {
  lr: number;
  weightDecay: number;
  validationAcc: number;
}
interface SubsetsMetrics {
  subsets: {
    perClass: number;
    images: number;
    trainAcc: number;
    testAcc: number;
    hyper: { lr: number; weightDecay: number };
    tried?: Trial[];
  }[];
}

test('q5-subsets runs q5-cifar first when it is missing, tunes each size on validation, and ends with the full set', async () => {
  const out = tempDir();
  const { code, lines } = await a2('run', 'q5-subsets', '--profile', 'smoke', '--data-dir', DATA_DIR, '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('outputs/q5-cifar is missing; running q5-cifar first')));
  const { subsets } = JSON.parse(readFileSync(path.join(out, 'q5-subsets/metrics.json'), 'utf8')) as SubsetsMetrics;
  assert.deepEqual(
    subsets.map((s) => s.images),
    [10, 100, 300],
  );
  const [one] = subsets;
  assert.equal(one.tried!.length, 2, 'the smoke plan tries two weight decays at 1 per class');
  const best = one.tried!.reduce((a, b) => (b.validationAcc > a.validationAcc ? b : a));
  assert.deepEqual([one.hyper.lr, one.hyper.weightDecay], [best.lr, best.weightDecay]);
  const fullRun = metricsOf(out);
  assert.deepEqual([subsets[2].trainAcc, subsets[2].testAcc], [fullRun.epochs.at(-1)!.trainAcc, fullRun.finalTestAcc]);
  for (const f of ['subsets.png', 'tuning.md', 'observations.md']) assert.ok(existsSync(path.join(out, 'q5-subsets', f)), f);

  const again = await a2('run', 'q5-subsets', '--profile', 'smoke', '--data-dir', DATA_DIR, '--out', out);
  assert.ok(!again.lines.some((l) => l.includes('running q5-cifar first')), 'a matching q5-cifar run is reused');
});

interface AblationMetrics {
  variants: { name: string; seed: number; testAcc: number; testAccNoTta: number; epochs: { trainLoss: number }[] }[];
}

test('q5-ablations killed between variants resumes, keeping the finished ones, with the numbers of an unbroken run', async () => {
  const args = ['run', 'q5-ablations', '--profile', 'smoke', '--epochs', '4', '--data-dir', DATA_DIR];
  const reference = tempDir();
  assert.equal((await a2(...args, '--out', reference)).code, 0);
  const ablationsOf = (out: string) => JSON.parse(readFileSync(path.join(out, 'q5-ablations/metrics.json'), 'utf8')) as AblationMetrics;
  const ref = ablationsOf(reference);
  assert.deepEqual(
    ref.variants.map((v) => v.seed),
    [0, 1, 0, 0, 0, 0, 0, 0],
  );
  assert.notDeepEqual(ref.variants[0].epochs, ref.variants[2].epochs, 'a changed part changes the run');

  const out = tempDir();
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/a2.js'), ...args, '--out', out], {
    stdio: 'ignore',
    env: { ...process.env, CI: '1' },
  });
  const parts = path.join(out, '.partial/q5-ablations/checkpoints/parts.json');
  const finished = () => (existsSync(parts) ? Object.keys(JSON.parse(readFileSync(parts, 'utf8')) as object).length : 0);
  while (finished() < 1) {
    if (child.exitCode !== null) assert.fail('the run ended before it could be killed');
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const kept = finished();
  assert.ok(kept < ref.variants.length, 'killed before the last variant');

  const { code, lines } = await a2(...args, '--out', out, '--resume');
  assert.equal(code, 0, lines.join('\n'));
  assert.equal(lines.filter((l) => l.includes('done in the interrupted run, kept')).length, kept);
  assert.deepEqual(
    ablationsOf(out).variants.map((v) => [v.name, v.testAcc, v.testAccNoTta]),
    ref.variants.map((v) => [v.name, v.testAcc, v.testAccNoTta]),
  );
  // run.json's duration is the resuming process's alone: it names what it took over.
  const manifestOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'q5-ablations/run.json'), 'utf8')) as { resumedWith?: string };
  assert.match(manifestOf(out).resumedWith ?? '', /^finished parts recipe/);
  assert.equal(manifestOf(reference).resumedWith, undefined);
});

test('a run killed with SIGKILL resumes from its last epoch and ends with the same numbers', async () => {
  const args = ['run', 'q5-cifar', '--profile', 'smoke', '--epochs', '4', '--seed', '3', '--data-dir', DATA_DIR];
  const reference = tempDir();
  assert.equal((await a2(...args, '--out', reference)).code, 0);

  const out = tempDir();
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/a2.js'), ...args, '--out', out], {
    stdio: 'ignore',
    env: { ...process.env, CI: '1' },
  });
  const checkpoint = path.join(out, '.partial/q5-cifar/checkpoints/latest/state.json');
  const epochsIn = () =>
    existsSync(checkpoint) ? (JSON.parse(readFileSync(checkpoint, 'utf8')) as { epochs: unknown[] }).epochs.length : 0;
  while (epochsIn() < 2) {
    if (child.exitCode !== null) assert.fail('the run ended before it could be killed');
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(existsSync(path.join(out, 'q5-cifar/metrics.json')), false, 'a killed run lands nothing');

  const changed = await a2(...args, '--lr', '0.05', '--batch-size', '32', '--out', out, '--resume');
  assert.equal(changed.code, 2, 'a resume with other flags is refused');
  assert.match(changed.errors.join('\n'), /--resume: .*lr: checkpoint 0\.1 vs requested 0\.05/);
  assert.match(changed.errors.join('\n'), /batchSize: checkpoint 64 vs requested 32/);
  assert.ok(existsSync(checkpoint), 'the refused resume keeps the checkpoint');

  // A checkpoint of another recipe than the code's (here: one tested with every view each epoch) is refused too.
  const state = readFileSync(checkpoint, 'utf8');
  const older = JSON.parse(state) as { recipe: Record<string, unknown> };
  writeFileSync(checkpoint, JSON.stringify({ ...older, recipe: { ...older.recipe, flipTta: true } }));
  const otherRecipe = await a2(...args, '--out', out, '--resume');
  assert.equal(otherRecipe.code, 2, 'a resume from a checkpoint of another recipe is refused');
  assert.match(otherRecipe.errors.join('\n'), /--resume: .*another recipe \(flipTta: checkpoint true vs this a2 false\)/);
  writeFileSync(checkpoint, state);

  // A checkpoint whose weights were cut short after it was written: named, with the way out, and kept.
  const weights = path.join(path.dirname(checkpoint), 'model', 'weights.bin');
  const whole = readFileSync(weights);
  writeFileSync(weights, whole.subarray(0, whole.length - 40));
  const cut = await a2(...args, '--out', out, '--resume');
  assert.equal(cut.code, 1, cut.lines.join('\n'));
  assert.ok(
    cut.lines.some(
      (l) =>
        l.includes(`${path.join(path.dirname(checkpoint), 'model')}: the checkpoint does not load (`) &&
        l.endsWith('run without --resume to start over'),
    ),
    cut.lines.join('\n'),
  );
  writeFileSync(weights, whole);

  const { code, lines } = await a2(...args, '--out', out, '--resume');
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(lines.some((l) => /resumed after epoch [23]/.test(l)));
  const [a, b] = [metricsOf(reference), metricsOf(out)];
  assert.deepEqual(
    b.epochs.map((e) => e.epoch),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    b.epochs.map((e) => [e.trainLoss, e.testAcc]),
    a.epochs.map((e) => [e.trainLoss, e.testAcc]),
  );
});
