// `npm run bench`: training throughput of the nets a2 trains (the q2 FC and conv autoencoders,
// the q5 CIFAR net of the previous recipe and the current one), one optimizer step at a time, in
// each precision a2 has here (fp32; bf16 with the oneDNN accelerator), and in PyTorch (Debian's
// python3-torch, when present) in each of its CPU configurations, in the same run; then one whole
// q5 epoch on the real data. Every net is timed a2 step, PyTorch step, in turn (a shared host's
// cores change speed by 2x within seconds, so two engines timed one after the other can be
// compared at different speeds); a short bf16 matrix-product probe before each round tells the
// host's fast and slow phases apart, and the ratios are also given per phase. Prints a table and
// writes outputs/bench/metrics.json: q5RatioVsTorch (a2's default precision vs PyTorch's best of
// the same precision) and q5RatioVsTorchBest (fastest vs fastest, any precision).
//   npm run bench                 all nets
//   npm run bench -- --profile    also: where the q5 recipe's step and evaluation spend their time, kernel by kernel
//   npm run bench -- --rounds 20  more alternating rounds (median reported)
//   npm run bench -- --cpu        also the (slow) plain-JS cpu backend, FC net only
//   npm run bench -- --no-epoch   skip the whole-epoch timing
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { makeConvAutoencoder } from '../experiments/q2-conv-ae.js';
import { makeFcAutoencoder } from '../experiments/q2-fc-ae.js';
import { RECIPE, makeBatch, makeCifarNet } from '../experiments/cifar.js';
import { loadCifar, resolveDataDir } from '../src/data/index.js';
import { writeJsonAtomic } from '../src/run/index.js';
import { type PhaseRatios, type PhaseSplit, type Probe, median, splitByPhase } from './bench-phases.js';
import { PROJECT_ROOT, packageVersions } from '../src/run/manifest.js';
import { type Precision, forwardFlops, initBackend, makeRng, seedEverything, tf } from '../src/tensor/index.js';

const options = new Command('bench')
  .option('--steps <n>', 'timed steps of the --cpu row (median reported)', (v) => Number(v), 6)
  .option(
    '--rounds <n>',
    'alternating a2/PyTorch rounds on each net, one step per engine and precision each (median reported)',
    (v) => Number(v),
    10,
  )
  .option('--threads <n>', 'PyTorch threads', (v) => Number(v), 2)
  .option('--profile', "print a kernel-by-kernel profile of one training step and one evaluation pass of the q5 recipe's net")
  .option('--cpu', 'also time the plain-JS cpu backend (FC net only; its convolutions take minutes)')
  .option('--no-epoch', 'skip timing one whole q5 epoch on the real CIFAR-10 (about 2 minutes)')
  .option('--out <dir>', 'outputs folder', 'outputs')
  .parse()
  .opts<{ steps: number; rounds: number; threads: number; profile?: boolean; cpu?: boolean; epoch: boolean; out: string }>();
for (const flag of ['steps', 'rounds', 'threads'] as const)
  if (!Number.isInteger(options[flag]) || options[flag] < 1) {
    console.error(`bench: --${flag} expects a whole number ≥ 1, found ${options[flag]}`);
    process.exit(2);
  }

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
const CIFAR_TRAIN_IMAGES = 50000;

/** A net built for timing: one training step (or evaluation forward pass) per call, seconds returned. */
interface Stepper {
  step(): number;
  evaluate(): number;
  /** Training FLOPs per image: 3 × forward (multiply-adds × 2 in the conv, transposed-conv and dense layers). */
  flopsPerImage: number;
  dispose(): void;
}

function stepperFor(net: Net): Stepper {
  seedEverything(0);
  const model = net.build();
  const optimizer = net.optimizer();
  const x = tf.randomUniform([net.batch, ...net.input]);
  const labels = tf.oneHot(tf.randomUniform([net.batch], 0, 10, 'int32') as tf.Tensor1D, 10).toFloat();
  const timed = (fn: () => void) => {
    const t = performance.now();
    fn();
    return (performance.now() - t) / 1000;
  };
  const stepper: Stepper = {
    step: () =>
      timed(() =>
        tf.tidy(() => optimizer.minimize(() => net.loss(model.apply(x, { training: true }) as tf.Tensor, x, labels), true)!.dataSync()),
      ),
    evaluate: () => timed(() => tf.tidy(() => (model.apply(x, { training: false }) as tf.Tensor).dataSync())),
    flopsPerImage: 3 * forwardFlops(model),
    dispose: () => {
      tf.dispose([x, labels]);
      model.dispose();
      optimizer.dispose();
    },
  };
  for (let i = 0; i < 2; i++) stepper.step();
  return stepper;
}

/** Seconds of `steps` training steps back to back (after the stepper's warm-up). */
function timeBlock(net: Net, steps: number): number {
  const stepper = stepperFor(net);
  let seconds = 0;
  for (let i = 0; i < steps; i++) seconds += stepper.step();
  stepper.dispose();
  return seconds;
}

function timeSteps(net: Net, steps: number): { imagesPerSecond: number; gflops: number } {
  const stepper = stepperFor(net);
  const seconds = median(Array.from({ length: steps }, () => stepper.step()));
  stepper.dispose();
  return { imagesPerSecond: net.batch / seconds, gflops: (stepper.flopsPerImage * net.batch) / seconds / 1e9 };
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
  const stepper = stepperFor(net);
  for (const [what, fn] of [
    ['training step', stepper.step],
    ['evaluation forward pass', stepper.evaluate],
  ] as const) {
    fn();
    const ms = (1000 * (fn() + fn() + fn())) / 3;
    await printProfile(`q5 recipe net, one ${what} of ${net.batch} images on ${tf.getBackend()} (${ms.toFixed(0)} ms wall, mean of 3)`, fn);
  }
  stepper.dispose();
}

const TORCH_SCRIPT = path.join(PROJECT_ROOT, 'scripts/bench_torch.py');

interface TorchServer {
  version: string;
  threads: number;
  nets: Record<string, { config: string; precision: Precision }[]>;
  step(net: string, config: string): Promise<{ seconds?: number; batch?: number; error?: string }>;
  /** The cores' compute speed and memory bandwidth now, or why the probe failed. */
  probe(): Promise<Probe | { error: string }>;
  close(): void;
}

/** PyTorch timing one training step per request (`bench_torch.py`), or undefined (and why, printed) if it does not start. */
async function startTorchServer(): Promise<TorchServer | undefined> {
  const child = spawn('/usr/bin/python3', [TORCH_SCRIPT, ...torchArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let stopped = false;
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('error', (e) => (stderr += e.message));
  child.on('exit', () => (stopped = true));
  // A write to a server that has stopped fails with EPIPE: the reply then reports it.
  child.stdin.on('error', (e) => (stderr += e.message));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const why = () => `PyTorch stopped: ${stderr.trim().split('\n').pop() ?? 'no message'}`;
  // The next JSON line (anything else on stdout, such as a library's verbose log, is skipped), or
  // undefined when the server stops or takes longer than any step can (10 minutes).
  const next = async (): Promise<Record<string, unknown> | undefined> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        stderr += 'no answer in 600 s';
        child.kill();
        resolve(undefined);
      }, 600_000);
    });
    try {
      for (;;) {
        const line = await Promise.race([lines.next(), timeout]);
        if (line === undefined || line.done) return undefined;
        try {
          return JSON.parse(line.value) as Record<string, unknown>;
        } catch {}
      }
    } finally {
      clearTimeout(timer);
    }
  };
  const header = await next();
  if (header === undefined) {
    torchNotRun(stderr);
    return undefined;
  }
  const { torch: version, threads, nets } = header as { torch: string; threads: number; nets: TorchServer['nets'] };
  return {
    version,
    threads,
    nets,
    step: async (net, config) => {
      if (stopped) return { error: why() };
      child.stdin.write(`${JSON.stringify({ net, config })}\n`);
      const reply = await next();
      if (reply === undefined) return { error: why() };
      if (reply.net !== net || reply.config !== config) return { error: `PyTorch answered for ${reply.net} ${reply.config}` };
      return reply;
    },
    probe: async () => {
      if (stopped) return { error: why() };
      child.stdin.write(`${JSON.stringify({ probe: true })}\n`);
      const reply = await next();
      if (reply === undefined) return { error: why() };
      return typeof reply.probeGflops === 'number' && typeof reply.probeCopyGBs === 'number'
        ? { gflops: reply.probeGflops, copyGBs: reply.probeCopyGBs }
        : { error: String(reply.error ?? 'the probe gave no numbers') };
    },
    close: () => child.stdin.end(),
  };
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
  /** Timed in alternation with the other engine's steps, not in a block of its own. */
  alternating?: true;
}
const rows: Row[] = [];
if (options.cpu) {
  // The plain-JS cpu backend, FC net only, in a block: minutes a step on the conv nets, and no rival at that speed.
  await tf.setBackend('cpu');
  const fc = NETS.find((n) => n.name === 'q2-fc-ae')!;
  rows.push({ net: fc.name, engine: 'a2 tfjs cpu', precision: 'fp32', batch: fc.batch, ...timeSteps(fc, options.steps) });
  await tf.setBackend(info.tfjsBackend);
}

const torchArgs = [
  String(options.threads),
  Q5_WIDTHS.join(','),
  JSON.stringify({
    widths: RECIPE.widths,
    batch: RECIPE.batchSize,
    labelSmoothing: RECIPE.labelSmoothing,
    momentum: RECIPE.momentum,
    logitScale: RECIPE.logitScale,
    bnScale: RECIPE.bnScale,
  }),
];
const torchEngine = (version: string, config: string, threads: number) => `PyTorch ${version} ${config} (${threads} thr)`;
const torchErrors: string[] = [];
const torchNotRun = (stderr: string) =>
  console.error(`PyTorch reference not run: ${stderr.split('\n').filter(Boolean).pop() ?? 'python3 with torch not found'}`);
// Each net: one a2 step in each precision, then one PyTorch step in each configuration, round after round.
const torchServer = await startTorchServer();
const phases: Record<string, PhaseSplit> = {};
for (const net of NETS) {
  const ours: { precision: Precision; stepper: Stepper; seconds: number[] }[] = [];
  for (const precision of precisions) {
    // Built and warmed up in its own precision, so that the timed steps find their primitives built.
    await initBackend('auto', { precision });
    ours.push({ precision, stepper: stepperFor(net), seconds: [] });
  }
  const theirs = (torchServer?.nets[net.name] ?? []).map((c) => ({
    ...c,
    seconds: [] as number[],
    error: undefined as string | undefined,
  }));
  // PyTorch builds and warms each configuration up on its first request: done here, before the
  // timed rounds, so that round 0 is timed as tightly as the others.
  for (const t of theirs) {
    const reply = await torchServer!.step(net.name, t.config);
    if (reply.seconds === undefined) t.error = reply.error ?? 'no reply';
  }
  const probes: { before: Probe; after: Probe }[] = [];
  let probeError: string | undefined;
  const probe = async () => {
    const p = torchServer ? await torchServer.probe() : { error: 'no PyTorch' };
    if (!('error' in p)) return p;
    probeError ??= p.error;
    return undefined;
  };
  for (let round = 0; round < options.rounds; round++) {
    const before = await probe();
    for (const o of ours) {
      await initBackend('auto', { precision: o.precision });
      o.seconds.push(o.stepper.step());
    }
    for (const t of theirs.filter((t) => t.error === undefined)) {
      const reply = await torchServer!.step(net.name, t.config);
      if (reply.seconds === undefined) t.error = reply.error ?? 'no reply';
      else if (reply.batch !== net.batch) t.error = `PyTorch timed batch ${reply.batch}, a2 ${net.batch}`;
      else t.seconds.push(reply.seconds);
    }
    const after = await probe();
    if (before && after) probes.push({ before, after });
  }
  const ran = theirs.filter((t) => t.error === undefined);
  if (torchServer && ran.length > 0 && probeError !== undefined)
    console.log(`${net.name}: no phase split (the probe failed: ${probeError})`);
  else {
    const split = splitByPhase(probes, ours, ran, net.batch);
    if (split) phases[net.name] = split;
  }
  for (const o of ours) {
    const seconds = median(o.seconds);
    rows.push({
      net: net.name,
      engine: `a2 tfjs ${info.name}`,
      precision: o.precision,
      batch: net.batch,
      imagesPerSecond: net.batch / seconds,
      gflops: (o.stepper.flopsPerImage * net.batch) / seconds / 1e9,
      alternating: true,
    });
    o.stepper.dispose();
  }
  for (const t of theirs) {
    const engine = torchEngine(torchServer!.version, t.config, torchServer!.threads);
    if (t.error !== undefined) torchErrors.push(`${net.name} ${engine}: did not run (${t.error})`);
    else
      rows.push({
        net: net.name,
        engine,
        precision: t.precision,
        batch: net.batch,
        imagesPerSecond: net.batch / median(t.seconds),
        alternating: true,
      });
  }
}
torchServer?.close();
await initBackend('auto', { precision: defaultPrecision });

console.log(`\n${'net'.padEnd(12)}${'engine'.padEnd(58)}${'precision'.padEnd(10)}batch    images/s   GFLOP/s`);
for (const r of rows)
  console.log(
    `${r.net.padEnd(12)}${(r.engine + (r.alternating ? ' *' : '')).padEnd(58)}${r.precision.padEnd(10)}${String(r.batch).padStart(5)}${r.imagesPerSecond.toFixed(0).padStart(12)}${r.gflops ? r.gflops.toFixed(1).padStart(10) : ''}`,
  );
if (rows.some((r) => r.alternating))
  console.log(`* median of ${options.rounds} steps timed in turn with the other engine's, one step each per round`);
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
for (const [net, p] of Object.entries(phases)) {
  const range = (xs: number[], unit: string) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)} ${unit}`;
  const all = p.probes.flatMap((r) => [r.before, r.after]);
  const [gflops, copyGBs] = [all.map((q) => q.gflops), all.map((q) => q.copyGBs)];
  const spread = `${range(gflops, 'GFLOP/s')}, copy ${range(copyGBs, 'GB/s')}`;
  const say = (name: string, r: PhaseRatios | null) =>
    r
      ? `${r.rounds} ${name ? `${name} ` : ''}round${r.rounds === 1 ? '' : 's'}: fastest vs fastest ${r.ratioVsTorchBest.toFixed(3)}×` +
        (r.fp32RatioVsTorch === null ? '' : `, fp32 ${r.fp32RatioVsTorch.toFixed(3)}×`)
      : `no ${name} rounds`;
  console.log(
    p.threshold === null
      ? `${net}, the cores probed before and after each round at ${spread} (one phase): ${say('', p.slow)}`
      : `${net} by the cores' speed before and after each round (${spread}; fast from ${p.threshold.toFixed(0)} GFLOP/s on both sides): ` +
          `${say('slow', p.slow)}; ${say('fast', p.fast)}; ${p.unclassified} round${p.unclassified === 1 ? '' : 's'} changed phase`,
  );
}

const epoch = options.epoch ? wholeEpoch(defaultPrecision) : null;
writeJsonAtomic(path.resolve(options.out, 'bench', 'metrics.json'), {
  date: new Date().toISOString(),
  steps: options.steps,
  rounds: options.rounds,
  backend: info.name,
  defaultPrecision,
  kernels: info.kernels,
  torch: torchServer?.version ?? null,
  packages: packageVersions(),
  rows,
  torchErrors,
  nets: perNet,
  phases,
  q5RatioVsTorch: perNet['q5-cifar'].ratioVsTorch,
  q5RatioVsTorchBest: perNet['q5-cifar'].ratioVsTorchBest,
  q5WholeEpoch: epoch,
});
if (options.profile) await profileQ5();

/**
 * One whole q5 epoch on the real CIFAR-10 (batch assembly, augmentation, the training steps and
 * the epoch's test pass), run as `a2 run q5-cifar --epochs 1`, against the step rate two ways: the
 * pure step of the recipe's net at its batch, timed here beside the run, and the run's own steps
 * (forward, backward and update, as the run times them: `stepSeconds`). The first sees the host's speed in other
 * seconds than the epoch did (it swings by more than the gap on this machine); the second in the
 * same seconds, so the gap to it is what the input pipeline, bookkeeping and evaluation cost. The
 * run's final test with every test-time view comes once per run, after the last epoch, and is shown apart.
 */
function wholeEpoch(precision: Precision) {
  // The pure step: the recipe's own net at its batch (the q5 row above keeps the previous recipe's,
  // to compare across sessions), as many steps as the epoch has, half of them timed right before it
  // and half right after, back to back: over a minute, as the epoch, so that it averages over the
  // host's phases (a few steps' median catches one); it still cannot see the epoch's own seconds.
  const epochSteps = Math.ceil(CIFAR_TRAIN_IMAGES / RECIPE_NET.batch);
  const before = timeBlock(RECIPE_NET, Math.floor(epochSteps / 2));
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
    epochs: { seconds: number; evalSeconds: number; stepSeconds: number }[];
    testViews: number;
    finalTestSeconds: number;
  };
  rmSync(out, { recursive: true, force: true });
  const batch = manifest.config.batchSize;
  if (batch !== RECIPE_NET.batch) throw new Error(`bench: the epoch ran at batch ${batch}, the pure step at ${RECIPE_NET.batch}`);
  const after = timeBlock(RECIPE_NET, epochSteps - Math.floor(epochSteps / 2));
  const assemblyMs = batchAssemblyMs(batch);
  const step = (epochSteps * RECIPE_NET.batch) / (before + after);
  const { seconds, evalSeconds, stepSeconds } = metrics.epochs[0];
  if (!Number.isFinite(stepSeconds))
    throw new Error(`bench: the epoch's q5-cifar/metrics.json has no finite epochs[0].stepSeconds (found ${JSON.stringify(stepSeconds)})`);
  const { testViews, finalTestSeconds } = metrics;
  const epochImagesPerSecond = metrics.trainImages / seconds;
  // Training alone (batch assembly, augmentation, the steps, Lookahead) against the step: what the input pipeline costs.
  const trainingImagesPerSecond = metrics.trainImages / (seconds - evalSeconds);
  const ownStep = metrics.trainImages / stepSeconds;
  const pct = (a: number, of = step) => `${((100 * a) / of).toFixed(0)}%`;
  console.log(
    `whole q5 epoch (${precision}, batch ${batch}, ${metrics.trainImages} training + ${metrics.testImages} test images): ${seconds.toFixed(1)} s = ${epochImagesPerSecond.toFixed(0)} training images/s, ${pct(epochImagesPerSecond)} of the pure step's ${step.toFixed(0)}; of it, training ${(seconds - evalSeconds).toFixed(1)} s = ${trainingImagesPerSecond.toFixed(0)} images/s (${pct(trainingImagesPerSecond)} of the step), the one-view test pass ${evalSeconds.toFixed(1)} s` +
      (testViews > 1
        ? `; once per run, after the last epoch, the final test with ${testViews} views took ${finalTestSeconds.toFixed(1)} s`
        : ''),
  );
  console.log(
    `  against the run's own steps (${stepSeconds.toFixed(1)} s = ${ownStep.toFixed(0)} images/s, the same seconds of the host): the whole epoch ${pct(epochImagesPerSecond, ownStep)}, training ${pct(trainingImagesPerSecond, ownStep)}; ` +
      `outside the steps: ${(seconds - evalSeconds - stepSeconds).toFixed(1)} s of batch assembly, Lookahead and bookkeeping, ${evalSeconds.toFixed(1)} s of testing`,
  );
  console.log(
    `  assembling one augmented batch of ${batch} real images (flip, translate, normalise): ${assemblyMs.toFixed(1)} ms, median of 20`,
  );
  return {
    precision,
    batch,
    seconds,
    evalSeconds,
    testViews,
    finalTestSeconds,
    trainImages: metrics.trainImages,
    epochImagesPerSecond,
    trainingImagesPerSecond,
    stepImagesPerSecond: step,
    ratio: epochImagesPerSecond / step,
    trainingRatio: trainingImagesPerSecond / step,
    stepSeconds,
    ownStepImagesPerSecond: ownStep,
    ratioToOwnSteps: epochImagesPerSecond / ownStep,
    trainingRatioToOwnSteps: trainingImagesPerSecond / ownStep,
    batchAssemblyMs: assemblyMs,
  };
}

/** Milliseconds to assemble one augmented training batch from the real CIFAR-10, as the run does (median of 20, after 2). */
function batchAssemblyMs(batch: number): number {
  const split = loadCifar(resolveDataDir(), 'train', []);
  const rng = makeRng(0);
  const times = Array.from({ length: 22 }, (_, i) => {
    const indices = Array.from({ length: batch }, (_, k) => (i * batch + k) % split.count);
    const started = performance.now();
    const { x, y } = makeBatch(split, indices, { flip: true, translate: RECIPE.translate, rng });
    const ms = performance.now() - started;
    tf.dispose([x, y]);
    return ms;
  });
  return median(times.slice(2));
}
