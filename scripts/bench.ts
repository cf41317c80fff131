// `npm run bench`: training throughput of the nets a2 trains (the q2 FC and conv autoencoders,
// the q5 CIFAR net of the previous recipe and the current one), one optimizer step at a time, on each tfjs
// backend that loads here, in each precision (fp32; bf16 with the oneDNN accelerator), and in
// PyTorch (Debian's python3-torch, when present) in each of its CPU configurations, in the same
// run; then one whole q5 epoch on the real data. Prints a table and writes
// outputs/bench/metrics.json: q5RatioVsTorch (a2's default precision vs PyTorch's best of the
// same precision) and q5RatioVsTorchBest (fastest vs fastest, any precision).
//   npm run bench                 all nets, all backends
//   npm run bench -- --profile    also: where the q5 recipe's step and evaluation spend their time, kernel by kernel
//   npm run bench -- --steps 10 --cpu   more timed steps; include the (slow) plain-JS cpu backend
//   npm run bench -- --no-epoch   skip the whole-epoch timing
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { makeConvAutoencoder } from '../experiments/q2-conv-ae.js';
import { makeFcAutoencoder } from '../experiments/q2-fc-ae.js';
import { RECIPE, makeCifarNet } from '../experiments/cifar.js';
import { writeJsonAtomic } from '../src/run/index.js';
import { PROJECT_ROOT, packageVersions } from '../src/run/manifest.js';
import { type Precision, forwardFlops, initBackend, seedEverything, tf } from '../src/tensor/index.js';

const options = new Command('bench')
  .option('--steps <n>', 'timed steps per net (median reported)', (v) => Number(v), 6)
  .option('--threads <n>', 'PyTorch threads', (v) => Number(v), 2)
  .option('--profile', "print a kernel-by-kernel profile of one training step and one evaluation pass of the q5 recipe's net")
  .option('--cpu', 'also time the plain-JS cpu backend (FC net only; its convolutions take minutes)')
  .option('--no-epoch', 'skip timing one whole q5 epoch on the real CIFAR-10 (about 3 minutes)')
  .option('--out <dir>', 'outputs folder', 'outputs')
  .parse()
  .opts<{ steps: number; threads: number; profile?: boolean; cpu?: boolean; epoch: boolean; out: string }>();

const Q5_WIDTHS = [32, 64, 128, 256];

interface Net {
  name: string;
  batch: number;
  input: number[];
  build(): tf.LayersModel;
  loss(y: tf.Tensor, x: tf.Tensor, labels: tf.Tensor): tf.Scalar;
  optimizer(): tf.Optimizer;
}

function sequentialAe(make: (l: number) => { encoder: tf.Sequential; decoder: tf.Sequential }): tf.LayersModel {
  const { encoder, decoder } = make(32);
  const input = tf.input({ shape: [28, 28, 1] });
  return tf.model({ inputs: input, outputs: decoder.apply(encoder.apply(input)) as tf.SymbolicTensor });
}

const l1 = (y: tf.Tensor, x: tf.Tensor) => tf.mean(tf.abs(tf.sub(y, x))) as tf.Scalar;
const NETS: Net[] = [
  {
    name: 'q2-fc-ae',
    batch: 256,
    input: [28, 28, 1],
    build: () => sequentialAe(makeFcAutoencoder),
    loss: l1,
    optimizer: () => tf.train.adam(1e-3),
  },
  {
    name: 'q2-conv-ae',
    batch: 128,
    input: [28, 28, 1],
    build: () => sequentialAe(makeConvAutoencoder),
    loss: l1,
    optimizer: () => tf.train.adam(1e-3),
  },
  {
    name: 'q5-cifar',
    batch: 128,
    input: [32, 32, 3],
    build: () => makeCifarNet(Q5_WIDTHS),
    loss: (y, _x, labels) => tf.losses.softmaxCrossEntropy(labels, y, undefined, 0.2) as tf.Scalar,
    optimizer: () => tf.train.momentum(0.1, 0.9, true),
  },
  {
    // The current recipe's net at its batch, with what its training keeps fixed kept fixed here
    // too: the whitening kernel (its bias learns) and, without bnScale, every BatchNorm's γ.
    name: 'q5-recipe',
    batch: RECIPE.batchSize,
    input: [32, 32, 3],
    build: () => {
      const model = makeCifarNet(RECIPE.widths, RECIPE);
      for (const w of model.trainableWeights)
        if (w.originalName.startsWith('whiten/kernel') || (!RECIPE.bnScale && w.originalName.endsWith('/gamma'))) w.trainable = false;
      return model;
    },
    loss: (y, _x, labels) => tf.losses.softmaxCrossEntropy(labels, y, undefined, RECIPE.labelSmoothing) as tf.Scalar,
    optimizer: () => tf.train.momentum(0.1, RECIPE.momentum, true),
  },
];

const RECIPE_NET = NETS.find((n) => n.name === 'q5-recipe')!;

/** Forward FLOPs per image (multiply-adds × 2) of the conv, transposed-conv and dense layers. */
function timeSteps(net: Net, steps: number): { imagesPerSecond: number; gflops: number } {
  seedEverything(0);
  const model = net.build();
  const optimizer = net.optimizer();
  const x = tf.randomUniform([net.batch, ...net.input]);
  const labels = tf.oneHot(tf.randomUniform([net.batch], 0, 10, 'int32') as tf.Tensor1D, 10).toFloat();
  const step = () =>
    tf.tidy(() => optimizer.minimize(() => net.loss(model.apply(x, { training: true }) as tf.Tensor, x, labels), true)!.dataSync());
  for (let i = 0; i < 2; i++) step();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    step();
    times.push((performance.now() - t) / 1000);
  }
  const median = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
  const flops = 3 * forwardFlops(model);
  tf.dispose([x, labels]);
  model.dispose();
  optimizer.dispose();
  return { imagesPerSecond: net.batch / median, gflops: (flops * net.batch) / median / 1e9 };
}

/** Kernel time by kernel name, most first, of one run of fn under tf.profile. */
async function printProfile(title: string, fn: () => void): Promise<void> {
  const profile = await tf.profile(fn);
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of profile.kernels) {
    const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += k.kernelTimeMs as number;
    e.calls++;
    byKernel.set(k.name, e);
  }
  // Op scopes (fusedConv2d__op …) contain their kernels: their times overlap, so no share is given.
  console.log(`\n${title}, kernel by kernel (times of nested op scopes overlap their kernels'):`);
  for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25))
    console.log(`  ${name.padEnd(26)} ${e.ms.toFixed(1).padStart(8)} ms  ${e.calls} calls`);
}

/** Where the current recipe's training step and its evaluation forward pass spend their time. */
async function profileQ5(): Promise<void> {
  const net = RECIPE_NET;
  const model = net.build();
  const optimizer = net.optimizer();
  const x = tf.randomUniform([net.batch, ...net.input]);
  const labels = tf.oneHot(tf.randomUniform([net.batch], 0, 10, 'int32') as tf.Tensor1D, 10).toFloat();
  const step = () =>
    tf.tidy(() => optimizer.minimize(() => net.loss(model.apply(x, { training: true }) as tf.Tensor, x, labels), true)!.dataSync());
  const evaluate = () => tf.tidy(() => (model.apply(x, { training: false }) as tf.Tensor).dataSync());
  for (const [what, fn] of [
    ['training step', step],
    ['evaluation forward pass', evaluate],
  ] as const) {
    fn();
    const started = performance.now();
    for (let i = 0; i < 3; i++) fn();
    const ms = (performance.now() - started) / 3;
    await printProfile(`q5 recipe net, one ${what} of ${net.batch} images on ${tf.getBackend()} (${ms.toFixed(0)} ms wall, mean of 3)`, fn);
  }
  tf.dispose([x, labels]);
  model.dispose();
  optimizer.dispose();
}

const info = await initBackend('auto');
// Every precision a2 can run here: fp32 always, bf16 where the oneDNN accelerator is loaded.
const precisions: Precision[] = info.kernels.some((k) => k.startsWith('oneDNN')) ? ['fp32', 'bf16'] : ['fp32'];
const defaultPrecision = info.precision;
interface Row {
  net: string;
  engine: string;
  precision: Precision;
  batch: number;
  imagesPerSecond: number;
  gflops?: number;
}
const rows: Row[] = [];
const backends = [info.tfjsBackend, ...(options.cpu ? ['cpu'] : [])];
for (const backend of backends) {
  await tf.setBackend(backend);
  for (const precision of backend === info.tfjsBackend ? precisions : (['fp32'] as const)) {
    await initBackend('auto', { precision });
    for (const net of NETS) {
      if (backend === 'cpu' && net.name !== 'q2-fc-ae') continue;
      const r = timeSteps(net, options.steps);
      rows.push({
        net: net.name,
        engine: `a2 tfjs ${backend === info.tfjsBackend ? info.name : backend}`,
        precision,
        batch: net.batch,
        ...r,
      });
      console.error(`  ${net.name} on ${backend} ${precision}: ${r.imagesPerSecond.toFixed(0)} img/s`);
    }
  }
}
await tf.setBackend(info.tfjsBackend);
await initBackend('auto', { precision: defaultPrecision });

let torchVersion: string | undefined;
const torch = spawnSync(
  '/usr/bin/python3',
  [
    path.join(PROJECT_ROOT, 'scripts/bench_torch.py'),
    String(options.threads),
    String(options.steps),
    Q5_WIDTHS.join(','),
    JSON.stringify({
      widths: RECIPE.widths,
      batch: RECIPE.batchSize,
      labelSmoothing: RECIPE.labelSmoothing,
      momentum: RECIPE.momentum,
      logitScale: RECIPE.logitScale,
      bnScale: RECIPE.bnScale,
    }),
  ],
  { encoding: 'utf8' },
);
const torchErrors: string[] = [];
if (torch.status === 0) {
  const parsed = JSON.parse(torch.stdout) as {
    torch: string;
    threads: number;
    rows: { net: string; config: string; precision: Precision; batch: number; imagesPerSecond?: number; error?: string }[];
  };
  torchVersion = parsed.torch;
  for (const r of parsed.rows) {
    const engine = `PyTorch ${parsed.torch} ${r.config} (${parsed.threads} thr)`;
    if (r.imagesPerSecond === undefined) torchErrors.push(`${r.net} ${engine}: did not run (${r.error})`);
    else rows.push({ net: r.net, engine, precision: r.precision, batch: r.batch, imagesPerSecond: r.imagesPerSecond });
  }
} else {
  console.error(
    `PyTorch reference not run: ${(torch.stderr || torch.error?.message || '').split('\n').filter(Boolean).pop() ?? 'python3 with torch not found'}`,
  );
}

console.log(`\n${'net'.padEnd(12)}${'engine'.padEnd(50)}${'precision'.padEnd(10)}batch    images/s   GFLOP/s`);
for (const r of rows)
  console.log(
    `${r.net.padEnd(12)}${r.engine.padEnd(50)}${r.precision.padEnd(10)}${String(r.batch).padStart(5)}${r.imagesPerSecond.toFixed(0).padStart(12)}${r.gflops ? r.gflops.toFixed(1).padStart(10) : ''}`,
  );
for (const e of torchErrors) console.log(e);

/** a2 against PyTorch on one net: its default precision vs PyTorch's best of that precision, and fastest vs fastest. */
function ratios(net: string): { ratioVsTorch: number | null; ratioVsTorchBest: number | null } {
  const fastest = (rs: Row[]) => rs.reduce<Row | undefined>((b, r) => (b && b.imagesPerSecond >= r.imagesPerSecond ? b : r), undefined);
  const ours = rows.filter((r) => r.net === net && r.engine.startsWith(`a2 tfjs ${info.name}`));
  const theirs = rows.filter((r) => r.net === net && r.engine.startsWith('PyTorch'));
  const oursDefault = ours.find((r) => r.precision === defaultPrecision);
  const theirsSame = fastest(theirs.filter((r) => r.precision === defaultPrecision));
  const [oursBest, theirsBest] = [fastest(ours), fastest(theirs)];
  return {
    ratioVsTorch: oursDefault && theirsSame ? oursDefault.imagesPerSecond / theirsSame.imagesPerSecond : null,
    ratioVsTorchBest: oursBest && theirsBest ? oursBest.imagesPerSecond / theirsBest.imagesPerSecond : null,
  };
}
const perNet = Object.fromEntries(NETS.map((n) => [n.name, ratios(n.name)]));
for (const [net, r] of Object.entries(perNet))
  if (r.ratioVsTorch !== null)
    console.log(
      `${net}: a2 (${defaultPrecision}) at ${r.ratioVsTorch.toFixed(3)}× PyTorch's best ${defaultPrecision}; fastest vs fastest ${r.ratioVsTorchBest?.toFixed(3)}×`,
    );

const epoch = options.epoch ? wholeEpoch(defaultPrecision) : null;
writeJsonAtomic(path.resolve(options.out, 'bench', 'metrics.json'), {
  date: new Date().toISOString(),
  steps: options.steps,
  backend: info.name,
  defaultPrecision,
  kernels: info.kernels,
  torch: torchVersion ?? null,
  packages: packageVersions(),
  rows,
  torchErrors,
  nets: perNet,
  q5RatioVsTorch: perNet['q5-cifar'].ratioVsTorch,
  q5RatioVsTorchBest: perNet['q5-cifar'].ratioVsTorchBest,
  q5WholeEpoch: epoch,
});
if (options.profile) await profileQ5();

/**
 * One whole q5 epoch on the real CIFAR-10 (batch assembly, augmentation, the training steps and
 * the test pass with the recipe's test-time views), run as `a2 run q5-cifar --epochs 1`, against
 * the pure step rate of the recipe's net at its batch: the gap is what the input pipeline and evaluation cost.
 */
function wholeEpoch(precision: Precision) {
  const out = mkdtempSync(path.join(tmpdir(), 'a2-bench-epoch-'));
  const run = spawnSync(
    process.execPath,
    [path.join(PROJECT_ROOT, 'bin/a2.js'), 'run', 'q5-cifar', '--epochs', '1', '--out', out, '--precision', precision],
    {
      encoding: 'utf8',
    },
  );
  if (run.status !== 0) {
    console.log(`whole q5 epoch not timed: ${(run.stderr || run.stdout).trim().split('\n').pop()}`);
    return null;
  }
  const manifest = JSON.parse(readFileSync(path.join(out, 'q5-cifar', 'run.json'), 'utf8')) as { config: { batchSize: number } };
  const metrics = JSON.parse(readFileSync(path.join(out, 'q5-cifar', 'metrics.json'), 'utf8')) as {
    trainImages: number;
    testImages: number;
    epochs: { seconds: number }[];
  };
  rmSync(out, { recursive: true, force: true });
  const batch = manifest.config.batchSize;
  // The recipe's own net (the q5 row above keeps the previous recipe's, to compare across sessions).
  const step = timeSteps({ ...RECIPE_NET, batch }, options.steps).imagesPerSecond;
  const seconds = metrics.epochs[0].seconds;
  const epochImagesPerSecond = metrics.trainImages / seconds;
  console.log(
    `whole q5 epoch (${precision}, batch ${batch}, ${metrics.trainImages} training + ${metrics.testImages} test images, the recipe's test-time views): ${seconds.toFixed(1)} s = ${epochImagesPerSecond.toFixed(0)} training images/s vs ${step.toFixed(0)} for the pure step (${((100 * epochImagesPerSecond) / step).toFixed(0)}%)`,
  );
  return {
    precision,
    batch,
    seconds,
    trainImages: metrics.trainImages,
    epochImagesPerSecond,
    stepImagesPerSecond: step,
    ratio: epochImagesPerSecond / step,
  };
}
