// Question 4 — six PyTorch ops on the assignment's 32×1 input and 3×1 filter, computed
// twice: with tfjs (in the role of the assignment's torch_xxx_out) and by hand in plain
// loops (my_xxx_out), with PyTorch's semantics, then compared. Every output is saved as a
// .pt that torch.load reads, so the result can be re-checked in PyTorch.
//   npx a2 run q4-ops                                   the assignment's files
//   npx a2 run q4-ops --input X.pt --filter Y.pt        any (1,1,L) input and 3-value filter
import { existsSync } from 'node:fs';
import path from 'node:path';
import { type PtTensor, encodePt, readPt } from '../src/data/index.js';
import { InputError } from '../src/errors.js';
import { type Artefact, list, num, numbers, obj } from '../src/report/declare.js';
import type { Experiment, RunContext } from '../src/run/index.js';
import { makeRng, tf } from '../src/tensor/index.js';

interface Config {
  input: string; // '' = the assignment's pixel_input.pt from the data folder
  filter: string; // '' = the assignment's filter.pt
  linearWeight: string; // '' = seeded PyTorch-style init, out × in
  linearBias: string;
  linearOut: number; // out_features when the Linear layer is generated
  bnEps: number;
  bnMomentum: number;
}

const defaults: Config = { input: '', filter: '', linearWeight: '', linearBias: '', linearOut: 16, bnEps: 1e-5, bnMomentum: 0.1 };

const f32 = (values: ArrayLike<number>) => Float32Array.from(values);

// ---- by hand: PyTorch semantics, no tensor library --------------------------------------

function myMaxPool1d(x: Float32Array, k = 2, s = 1): Float32Array {
  const out = new Float32Array(Math.floor((x.length - k) / s) + 1);
  for (let i = 0; i < out.length; i++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, x[i * s + j]);
    out[i] = m;
  }
  return out;
}

function myAvgPool1d(x: Float32Array, k = 2, s = 1): Float32Array {
  const out = new Float32Array(Math.floor((x.length - k) / s) + 1);
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (let j = 0; j < k; j++) sum += x[i * s + j];
    out[i] = sum / k;
  }
  return out;
}

/** Cross-correlation, as torch.nn.functional.conv1d (no kernel flip), stride 1, no padding. */
function myConv1d(x: Float32Array, w: Float32Array): Float32Array {
  const out = new Float32Array(x.length - w.length + 1);
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (let j = 0; j < w.length; j++) sum += x[i + j] * w[j];
    out[i] = sum;
  }
  return out;
}

function mySigmoid(x: Float32Array): Float32Array {
  return f32(Array.from(x, (v) => 1 / (1 + Math.exp(-v))));
}

/** BatchNorm1d(1) in training mode on one channel: biased variance normalises, unbiased goes into running_var. */
function myBatchNorm1d(x: Float32Array, eps: number, momentum: number) {
  const n = x.length;
  const mean = x.reduce((a, b) => a + b, 0) / n;
  const sq = x.reduce((a, b) => a + (b - mean) ** 2, 0);
  const biasedVar = sq / n,
    unbiasedVar = sq / (n - 1);
  const output = f32(Array.from(x, (v) => (v - mean) / Math.sqrt(biasedVar + eps))); // gamma 1, beta 0 at init
  const runningMean = (1 - momentum) * 0 + momentum * mean;
  const runningVar = (1 - momentum) * 1 + momentum * unbiasedVar;
  const evalOutput = f32(Array.from(x, (v) => (v - runningMean) / Math.sqrt(runningVar + eps)));
  return { output, runningMean: f32([runningMean]), runningVar: f32([runningVar]), evalOutput };
}

function myLinear(x: Float32Array, weight: PtTensor, bias: PtTensor): Float32Array {
  const [out, inF] = weight.shape;
  const y = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let sum = bias.data[o];
    for (let i = 0; i < inF; i++) sum += weight.data[o * inF + i] * x[i];
    y[o] = sum;
  }
  return y;
}

// ---- tfjs ------------------------------------------------------------------------------

function tfjsOps(x: Float32Array, w: Float32Array, weight: PtTensor, bias: PtTensor, eps: number, momentum: number) {
  return tf.tidy(() => {
    const L = x.length;
    const row = tf.tensor4d(x, [1, 1, L, 1]); // NHWC with H = 1: tfjs has no 1-D pooling
    const mean = tf.mean(tf.tensor1d(x));
    const sample = tf.tensor1d(x);
    const { variance } = tf.moments(sample);
    const unbiased = variance.mul(L / (L - 1));
    const runningMean = mean.mul(momentum);
    const runningVar = unbiased.mul(momentum).add(1 - momentum);
    const all = {
      maxpool1d: tf.maxPool(row, [1, 2], 1, 'valid'),
      avgpool1d: tf.avgPool(row, [1, 2], 1, 'valid'),
      conv1d: tf.conv1d(tf.tensor3d(x, [1, L, 1]), tf.tensor3d(w, [w.length, 1, 1]), 1, 'valid'),
      sigmoid: tf.sigmoid(sample),
      batchnorm1d: tf.batchNorm(sample, mean, variance, undefined, undefined, eps),
      runningMean,
      runningVar,
      evalOutput: tf.batchNorm(sample, runningMean, runningVar, undefined, undefined, eps),
      linear: tf
        .matMul(tf.tensor2d(x, [1, L]), tf.tensor2d(weight.data, weight.shape as [number, number]), false, true)
        .add(tf.tensor1d(bias.data)),
    };
    return Object.fromEntries(Object.entries(all).map(([k, t]) => [k, f32(t.dataSync())])) as Record<keyof typeof all, Float32Array>;
  });
}

// ---- inputs ------------------------------------------------------------------------------

function locateDefault(ctx: RunContext, name: string): string | undefined {
  return [path.join(ctx.dataDir, 'q4', name), path.join(ctx.dataDir, 'assignment-q4', name)].find(existsSync);
}

/** PyTorch's Linear init: weight and bias ~ U(−1/√in, 1/√in), here from the run's seed. */
function seededLinear(inF: number, outF: number, seed: number): { weight: PtTensor; bias: PtTensor } {
  const rng = makeRng(seed);
  const bound = 1 / Math.sqrt(inF);
  const draw = (n: number) => f32(Array.from({ length: n }, () => (rng() * 2 - 1) * bound));
  return { weight: { shape: [outF, inF], data: draw(outF * inF) }, bias: { shape: [outF], data: draw(outF) } };
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

async function run(config: Config, ctx: RunContext) {
  const notes: string[] = [];
  let input: PtTensor, filter: PtTensor;
  const inputFile = config.input || locateDefault(ctx, 'pixel_input.pt');
  const filterFile = config.filter || locateDefault(ctx, 'filter.pt');
  if (inputFile) input = readPt(inputFile);
  else {
    const rng = makeRng(ctx.seed);
    input = { shape: [1, 1, 32], data: f32(Array.from({ length: 32 }, () => rng())) };
    notes.push('pixel_input.pt not found in the data folder: used a seeded random (1,1,32) input, saved as pixel_input.pt');
  }
  if (filterFile) filter = readPt(filterFile);
  else {
    const rng = makeRng(ctx.seed + 1);
    filter = { shape: [3, 1, 1], data: f32(Array.from({ length: 3 }, () => rng() * 2 - 1)) };
    notes.push('filter.pt not found in the data folder: used a seeded random (3,1,1) filter, saved as filter.pt');
  }
  for (const n of notes) ctx.log(n);
  if (input.shape.length !== 3 || input.shape[0] !== 1 || input.shape[1] !== 1 || input.shape[2] < 3) {
    throw new InputError(inputFile ?? 'pixel_input.pt', 'a (1, 1, L) tensor with L ≥ 3', `shape (${input.shape.join(', ')})`);
  }
  if (filter.data.length !== 3)
    throw new InputError(filterFile ?? 'filter.pt', 'a filter of 3 values, e.g. (3, 1, 1)', `shape (${filter.shape.join(', ')})`);
  const x = input.data,
    w = filter.data;
  const L = x.length;

  let weight: PtTensor, bias: PtTensor;
  if (config.linearWeight) {
    weight = readPt(config.linearWeight);
    if (weight.shape.length !== 2 || weight.shape[1] !== L)
      throw new InputError(config.linearWeight, `a (out, ${L}) weight`, `shape (${weight.shape.join(', ')})`);
    bias = config.linearBias ? readPt(config.linearBias) : { shape: [weight.shape[0]], data: new Float32Array(weight.shape[0]) };
    if (bias.data.length !== weight.shape[0])
      throw new InputError(config.linearBias, `${weight.shape[0]} bias values`, `${bias.data.length}`);
  } else {
    ({ weight, bias } = seededLinear(L, config.linearOut, ctx.seed));
  }

  const t = tfjsOps(x, w, weight, bias, config.bnEps, config.bnMomentum);
  const bn = myBatchNorm1d(x, config.bnEps, config.bnMomentum);
  const mine = {
    maxpool1d: myMaxPool1d(x),
    avgpool1d: myAvgPool1d(x),
    conv1d: myConv1d(x, w),
    sigmoid: mySigmoid(x),
    batchnorm1d: bn.output,
    linear: myLinear(x, weight, bias),
  };
  const shapes: Record<keyof typeof mine, number[]> = {
    maxpool1d: [1, 1, L - 1],
    avgpool1d: [1, 1, L - 1],
    conv1d: [1, 1, L - 2],
    sigmoid: [1, 1, L],
    batchnorm1d: [1, 1, L],
    linear: [1, 1, weight.shape[0]],
  };
  // The other reading of "3×1 filters": three 1-wide filters → (1, 3, L) outputs.
  const threeFilters = f32(Array.from({ length: 3 * L }, (_, i) => x[i % L] * w[Math.floor(i / L)]));

  const savePt = (stem: string, tensor: PtTensor) => ctx.writeBytes(`${stem}.pt`, encodePt(tensor, stem));
  const ops: Record<string, object> = {};
  for (const op of Object.keys(mine) as (keyof typeof mine)[]) {
    const diff = maxAbsDiff(t[op], mine[op]);
    ops[op] = { shape: shapes[op], tfjs: Array.from(t[op]), mine: Array.from(mine[op]), maxAbsDiff: diff };
    savePt(`tfjs_${op}_out`, { shape: shapes[op], data: t[op] });
    savePt(`my_${op}_out`, { shape: shapes[op], data: mine[op] });
    ctx.log(`${op.padEnd(12)} shape (${shapes[op].join(', ')}) max |tfjs − mine| = ${diff.toExponential(2)}`);
  }
  Object.assign(ops.batchnorm1d, {
    runningMean: Array.from(bn.runningMean),
    runningVar: Array.from(bn.runningVar),
    evalOutput: Array.from(bn.evalOutput),
    tfjsRunningMean: Array.from(t.runningMean),
    tfjsRunningVar: Array.from(t.runningVar),
    tfjsEvalOutput: Array.from(t.evalOutput),
    evalMaxAbsDiff: maxAbsDiff(t.evalOutput, bn.evalOutput),
  });
  Object.assign(ops.conv1d, {
    filterReading: 'filter.pt (3,1,1) read as one length-3 kernel (out 1, in 1, width 3)',
    threeFiltersReading: { shape: [1, 3, L], mine: Array.from(threeFilters) },
  });
  for (const [name, tensor] of [
    ['linear_weight', weight],
    ['linear_bias', bias],
    ['pixel_input', input],
    ['filter', filter],
  ] as const) {
    savePt(name, tensor);
  }
  const worst = Math.max(...Object.values(ops).map((o) => (o as { maxAbsDiff: number }).maxAbsDiff));
  return {
    inputs: {
      input: inputFile ?? 'generated',
      filter: filterFile ?? 'generated',
      linear: config.linearWeight || `seeded U(±1/√${L}), ${weight.shape[0]}×${L}`,
    },
    notes,
    ops,
    worstMaxAbsDiff: worst,
  };
}

// ---- What this experiment declares: its metrics, artefacts, report section and sources.

type Metrics = Awaited<ReturnType<typeof run>>;
const OPS = ['maxpool1d', 'avgpool1d', 'conv1d', 'sigmoid', 'batchnorm1d', 'linear'];

export const experiment: Experiment<Config, Metrics> = {
  name: 'q4-ops',
  defaults,
  profiles: {},
  run,
  headline: (m) => `worst |tfjs − mine| ${m.worstMaxAbsDiff.toExponential(1)}`,
  sources: ['experiments/q4-ops.ts'],
  artefacts: [
    ...OPS.flatMap((op): Artefact[] => [
      { file: `tfjs_${op}_out.pt`, kind: 'pt' },
      { file: `my_${op}_out.pt`, kind: 'pt' },
    ]),
    ...['linear_weight', 'linear_bias', 'pixel_input', 'filter'].map((stem): Artefact => ({ file: `${stem}.pt`, kind: 'pt' })),
  ],
  metricsSchema: obj({
    ops: obj(Object.fromEntries(OPS.map((op) => [op, obj({ shape: list(num), tfjs: numbers, mine: numbers, maxAbsDiff: num })]))),
    worstMaxAbsDiff: num,
  }),
  report: {
    title: 'Q4 — Understanding PyTorch: six ops by library and by hand',
    answer: (m) => {
      // run() keeps ops loosely typed; metricsSchema has checked every op's shape and maxAbsDiff.
      const ops = m.ops as Record<string, { shape: number[]; maxAbsDiff: number }>;
      return (
        `Inputs: ${JSON.stringify(m.inputs)}.\n\n| op | output shape | max \\|tfjs − by hand\\| |\n| --- | --- | --- |\n` +
        Object.entries(ops)
          .map(([op, r]) => `| ${op} | (${r.shape.join(', ')}) | ${r.maxAbsDiff.toExponential(2)} |`)
          .join('\n') +
        '\n\nEvery output is saved as `tfjs_<op>_out.pt` and `my_<op>_out.pt` in the run folder.'
      );
    },
  },
};
