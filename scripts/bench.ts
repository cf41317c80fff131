// `npm run bench`: training throughput of the three nets a2 trains (the q2 FC autoencoder,
// the q2 conv autoencoder and the q5 CIFAR net), one optimizer step at a time, on each tfjs
// backend that loads here and in PyTorch (Debian's python3-torch, when present) in the same
// run. Prints a table and writes outputs/bench/metrics.json (with q5RatioVsTorch).
//   npm run bench                 all nets, all backends
//   npm run bench -- --profile    also: where one q5 step's time goes, kernel by kernel (wasm)
//   npm run bench -- --steps 10 --cpu   more timed steps; include the (slow) plain-JS cpu backend
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Command } from 'commander';
import { makeConvAutoencoder } from '../experiments/q2-conv-ae.js';
import { makeFcAutoencoder } from '../experiments/q2-fc-ae.js';
import { makeCifarNet } from '../experiments/cifar.js';
import { writeJsonAtomic } from '../src/run/index.js';
import { PROJECT_ROOT, packageVersions } from '../src/run/manifest.js';
import { forwardFlops, initBackend, seedEverything, tf } from '../src/tensor/index.js';

const options = new Command('bench')
  .option('--steps <n>', 'timed steps per net (median reported)', (v) => Number(v), 6)
  .option('--threads <n>', 'PyTorch threads', (v) => Number(v), 2)
  .option('--profile', 'print a kernel-by-kernel profile of one q5 training step')
  .option('--cpu', 'also time the plain-JS cpu backend (FC net only; its convolutions take minutes)')
  .option('--out <dir>', 'outputs folder', 'outputs')
  .parse()
  .opts<{ steps: number; threads: number; profile?: boolean; cpu?: boolean; out: string }>();

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
];

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

async function profileQ5(): Promise<void> {
  const net = NETS[2];
  const model = net.build();
  const optimizer = net.optimizer();
  const x = tf.randomUniform([net.batch, ...net.input]);
  const labels = tf.oneHot(tf.randomUniform([net.batch], 0, 10, 'int32') as tf.Tensor1D, 10).toFloat();
  const step = () =>
    tf.tidy(() => optimizer.minimize(() => net.loss(model.apply(x, { training: true }) as tf.Tensor, x, labels), true)!.dataSync());
  step();
  const info = await tf.profile(() => {
    step();
  });
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += k.kernelTimeMs as number;
    e.calls++;
    byKernel.set(k.name, e);
  }
  const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
  console.log(`\nq5 training step (batch ${net.batch}) on ${tf.getBackend()}, kernel by kernel (${total.toFixed(0)} ms of kernel time):`);
  for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) {
    console.log(
      `  ${name.padEnd(24)} ${e.ms.toFixed(1).padStart(8)} ms  ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  ${e.calls} calls`,
    );
  }
  tf.dispose([x, labels]);
  model.dispose();
  optimizer.dispose();
}

const info = await initBackend('auto');
const backends = [info.tfjsBackend, ...(options.cpu ? ['cpu'] : [])];
const rows: { net: string; engine: string; batch: number; imagesPerSecond: number; gflops?: number }[] = [];
for (const backend of backends) {
  await tf.setBackend(backend);
  for (const net of NETS) {
    if (backend === 'cpu' && net.name !== 'q2-fc-ae') continue;
    const r = timeSteps(net, options.steps);
    rows.push({ net: net.name, engine: `tfjs ${backend === info.tfjsBackend ? info.name : backend}`, batch: net.batch, ...r });
    console.error(`  ${net.name} on ${backend}: ${r.imagesPerSecond.toFixed(0)} img/s`);
  }
}
await tf.setBackend(info.tfjsBackend);

let torchVersion: string | undefined;
const torch = spawnSync(
  '/usr/bin/python3',
  [path.join(PROJECT_ROOT, 'scripts/bench_torch.py'), String(options.threads), String(options.steps), Q5_WIDTHS.join(',')],
  { encoding: 'utf8' },
);
if (torch.status === 0) {
  const parsed = JSON.parse(torch.stdout) as {
    torch: string;
    threads: number;
    nets: Record<string, { batch: number; imagesPerSecond: number }>;
  };
  torchVersion = parsed.torch;
  for (const [name, r] of Object.entries(parsed.nets))
    rows.push({
      net: name,
      engine: `PyTorch ${parsed.torch} (${parsed.threads} threads)`,
      batch: r.batch,
      imagesPerSecond: r.imagesPerSecond,
    });
} else {
  console.error(
    `PyTorch reference not run: ${(torch.stderr || torch.error?.message || '').split('\n').filter(Boolean).pop() ?? 'python3 with torch not found'}`,
  );
}

console.log('\nnet          engine                              batch    images/s   GFLOP/s');
for (const r of rows)
  console.log(
    `${r.net.padEnd(13)}${r.engine.padEnd(36)}${String(r.batch).padStart(5)}${r.imagesPerSecond.toFixed(0).padStart(12)}${r.gflops ? r.gflops.toFixed(1).padStart(10) : ''}`,
  );
const ours = rows.find((r) => r.net === 'q5-cifar' && r.engine.startsWith('tfjs'));
const theirs = rows.find((r) => r.net === 'q5-cifar' && r.engine.startsWith('PyTorch'));
const q5RatioVsTorch = ours && theirs ? ours.imagesPerSecond / theirs.imagesPerSecond : null;
if (q5RatioVsTorch !== null) console.log(`\nq5 net: tfjs ${info.name} runs at ${q5RatioVsTorch.toFixed(3)}× PyTorch's images/s`);
writeJsonAtomic(path.resolve(options.out, 'bench', 'metrics.json'), {
  date: new Date().toISOString(),
  steps: options.steps,
  backend: info.name,
  kernels: info.kernels,
  torch: torchVersion ?? null,
  packages: packageVersions(),
  rows,
  q5RatioVsTorch,
});
if (options.profile) await profileQ5();
