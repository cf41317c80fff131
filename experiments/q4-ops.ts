// Question 4 — six PyTorch ops on the assignment's 32×1 input and 3×1 filter, computed
// twice: with tfjs (in the role of the assignment's torch_xxx_out) and by hand in plain
// loops (my_xxx_out), with PyTorch's semantics, then compared. Every output is saved as a
// .pt that torch.load reads, so the result can be re-checked in PyTorch.
// Inputs are (N, C, L) as PyTorch's 1-D ops take them: pools and Sigmoid act on each of the
// N·C rows, conv1d sums over C_in, BatchNorm1d(C) normalises each channel over N and L,
// Linear maps the last axis.
//   npx a2 run q4-ops                                   the assignment's files
//   npx a2 run q4-ops --input X.pt --filter Y.pt        any (N,C,L) input and (C_out,C,k) filter
import path from 'node:path';
import { ASSIGNMENT_DIRS, type PtTensor, encodePt, locateAssignmentFile, readPt } from '../src/data/index.js';
import { InputError, UsageError } from '../src/errors.js';
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

/** An (N, C, L) input's dimensions; element (n, c, l) is at (n·C + c)·L + l. */
interface Dims {
  N: number;
  C: number;
  L: number;
}
/** conv1d's weight as used: (C_out, C_in, k), row-major. */
interface Kernel {
  shape: [number, number, number];
  data: Float32Array;
}

// ---- by hand: PyTorch semantics, no tensor library --------------------------------------

/** A window op over each of the N·C rows, kernel k, stride s, no padding (MaxPool1d, AvgPool1d). */
function myPool1d(x: Float32Array, { N, C, L }: Dims, reduce: (window: number[]) => number, k = 2, s = 1): Float32Array {
  const outL = Math.floor((L - k) / s) + 1;
  const out = new Float32Array(N * C * outL);
  for (let row = 0; row < N * C; row++)
    for (let i = 0; i < outL; i++) out[row * outL + i] = reduce(Array.from({ length: k }, (_, j) => x[row * L + i * s + j]));
  return out;
}
const myMaxPool1d = (x: Float32Array, dims: Dims) => myPool1d(x, dims, (w) => w.reduce((m, v) => Math.max(m, v), -Infinity));
const myAvgPool1d = (x: Float32Array, dims: Dims) => myPool1d(x, dims, (w) => w.reduce((a, v) => a + v, 0) / w.length);

/** Cross-correlation, as torch.nn.functional.conv1d (no kernel flip), stride 1, no padding: (N, C_out, L − k + 1). */
function myConv1d(x: Float32Array, { N, C, L }: Dims, w: Kernel): Float32Array {
  const [cOut, , k] = w.shape;
  const outL = L - k + 1;
  const out = new Float32Array(N * cOut * outL);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < cOut; o++)
      for (let i = 0; i < outL; i++) {
        let sum = 0;
        for (let c = 0; c < C; c++) for (let j = 0; j < k; j++) sum += x[(n * C + c) * L + i + j] * w.data[(o * C + c) * k + j];
        out[(n * cOut + o) * outL + i] = sum;
      }
  return out;
}

function mySigmoid(x: Float32Array): Float32Array {
  return f32(Array.from(x, (v) => 1 / (1 + Math.exp(-v))));
}

/**
 * BatchNorm1d(C) in training mode: each channel's N·L values are normalised with their mean and
 * biased variance (gamma 1, beta 0 at init); running stats start at 0 and 1 and take one
 * momentum step with the unbiased variance; evalOutput normalises with those running stats.
 */
function myBatchNorm1d(x: Float32Array, { N, C, L }: Dims, eps: number, momentum: number) {
  const count = N * L;
  const output = new Float32Array(x.length);
  const evalOutput = new Float32Array(x.length);
  const runningMean = new Float32Array(C);
  const runningVar = new Float32Array(C);
  const at = (n: number, c: number, l: number) => (n * C + c) * L + l;
  for (let c = 0; c < C; c++) {
    let total = 0;
    for (let n = 0; n < N; n++) for (let l = 0; l < L; l++) total += x[at(n, c, l)];
    const mean = total / count;
    let sq = 0;
    for (let n = 0; n < N; n++) for (let l = 0; l < L; l++) sq += (x[at(n, c, l)] - mean) ** 2;
    const biasedVar = sq / count;
    const unbiasedVar = sq / (count - 1);
    const rMean = (1 - momentum) * 0 + momentum * mean;
    const rVar = (1 - momentum) * 1 + momentum * unbiasedVar;
    runningMean[c] = rMean;
    runningVar[c] = rVar;
    for (let n = 0; n < N; n++)
      for (let l = 0; l < L; l++) {
        const v = x[at(n, c, l)];
        output[at(n, c, l)] = (v - mean) / Math.sqrt(biasedVar + eps);
        evalOutput[at(n, c, l)] = (v - rMean) / Math.sqrt(rVar + eps);
      }
  }
  return { output, runningMean, runningVar, evalOutput };
}

/** Linear over the last axis: each of the N·C rows of length L → out_features. */
function myLinear(x: Float32Array, { N, C, L }: Dims, weight: PtTensor, bias: PtTensor): Float32Array {
  const out = weight.shape[0];
  const y = new Float32Array(N * C * out);
  for (let row = 0; row < N * C; row++)
    for (let o = 0; o < out; o++) {
      let sum = bias.data[o];
      for (let i = 0; i < L; i++) sum += weight.data[o * L + i] * x[row * L + i];
      y[row * out + o] = sum;
    }
  return y;
}

// ---- tfjs ------------------------------------------------------------------------------

function tfjsOps(x: Float32Array, { N, C, L }: Dims, w: Kernel, weight: PtTensor, bias: PtTensor, eps: number, momentum: number) {
  return tf.tidy(() => {
    const input = tf.tensor3d(x, [N, C, L]);
    const rows = tf.tensor4d(x, [N * C, 1, L, 1]); // NHWC with H = 1: tfjs has no 1-D pooling
    const pool = (t: tf.Tensor) => t.reshape([N, C, L - 1]);
    const nlc = input.transpose([0, 2, 1]); // tfjs's channels-last layout
    const { mean, variance } = tf.moments(nlc, [0, 1]); // per channel, over N and L
    const count = N * L;
    const unbiased = variance.mul(count / (count - 1));
    const runningMean = mean.mul(momentum);
    const runningVar = unbiased.mul(momentum).add(1 - momentum);
    const all = {
      maxpool1d: pool(tf.maxPool(rows, [1, 2], 1, 'valid')),
      avgpool1d: pool(tf.avgPool(rows, [1, 2], 1, 'valid')),
      conv1d: tf
        .conv1d(nlc as tf.Tensor3D, tf.tensor3d(w.data, w.shape).transpose([2, 1, 0]) as tf.Tensor3D, 1, 'valid')
        .transpose([0, 2, 1]),
      sigmoid: tf.sigmoid(input),
      batchnorm1d: tf.batchNorm(nlc, mean, variance, undefined, undefined, eps).transpose([0, 2, 1]),
      runningMean,
      runningVar,
      evalOutput: tf.batchNorm(nlc, runningMean, runningVar, undefined, undefined, eps).transpose([0, 2, 1]),
      linear: tf
        .matMul(input.reshape([N * C, L]), tf.tensor2d(weight.data, weight.shape as [number, number]), false, true)
        .add(tf.tensor1d(bias.data)),
    };
    return Object.fromEntries(Object.entries(all).map(([k, t]) => [k, f32(t.dataSync())])) as Record<keyof typeof all, Float32Array>;
  });
}

// ---- inputs ------------------------------------------------------------------------------

/**
 * The assignment's file from the data folder (<data>/assignment-q4/ or <data>/q4/). They came
 * with the assignment and no mirror has them, so a missing one stops the run: results from
 * made-up inputs would pass for Q4's answers.
 */
function locateDefault(ctx: RunContext, name: string, flag: string): string {
  const found = locateAssignmentFile(ctx.dataDir, name);
  if (found) return found;
  const places = ASSIGNMENT_DIRS.map((dir) => path.join(ctx.dataDir, dir, name));
  throw new InputError(
    places[0],
    `the assignment's ${name} (there or in ${path.dirname(places[1])}/; the data folder from --data-dir, else $A2_DATA_DIR, else data/; or give ${flag} FILE)`,
    'no such file',
  );
}

/** PyTorch's Linear init: weight and bias ~ U(−1/√in, 1/√in), here from the run's seed. */
function seededLinear(inF: number, outF: number, seed: number): { weight: PtTensor; bias: PtTensor } {
  const rng = makeRng(seed);
  const bound = 1 / Math.sqrt(inF);
  const draw = (n: number) => f32(Array.from({ length: n }, () => (rng() * 2 - 1) * bound));
  return { weight: { shape: [outF, inF], data: draw(outF * inF) }, bias: { shape: [outF], data: draw(outF) } };
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

const shapeText = (shape: number[]) => `(${shape.join(', ')})`;

/**
 * The conv1d weight a filter file gives: (C_out, C_in, k) as PyTorch takes it, except the
 * assignment's "3×1 filters" shape (k, 1, 1), k > 1, which a2 reads as one length-k kernel
 * (1, 1, k) for a one-channel input; the other reading, k filters of width 1, is reported beside it.
 */
function convKernel(filter: PtTensor, C: number, L: number, file: string): { kernel: Kernel; singleKernel: boolean } {
  const [a, b, c] = filter.shape;
  const expected = `a (C_out, ${C}, k) conv1d filter with 1 ≤ k ≤ ${L}${C === 1 ? ', or a (k, 1, 1) one-kernel filter' : ''}`;
  if (filter.shape.length !== 3 || a < 1) throw new InputError(file, expected, `shape ${shapeText(filter.shape)}`);
  if (b === 1 && c === 1 && a > 1) {
    if (C !== 1 || a > L) throw new InputError(file, expected, `shape ${shapeText(filter.shape)}`);
    return { kernel: { shape: [1, 1, a], data: filter.data }, singleKernel: true };
  }
  if (b !== C || c < 1 || c > L) throw new InputError(file, expected, `shape ${shapeText(filter.shape)}`);
  return { kernel: { shape: [a, b, c], data: filter.data }, singleKernel: false };
}

async function run(config: Config, ctx: RunContext) {
  // Checked before any file is read or written: a bias alone would otherwise be dropped silently.
  if (config.linearBias && !config.linearWeight)
    throw new UsageError(
      `--linear-bias needs --linear-weight (the generated Linear layer comes with its own seeded bias); give both, or neither`,
    );
  const notes: string[] = [];
  /** Reads a .pt; a float64 or float16 one is converted to float32 (what every op here computes in), with a note. */
  const read = (file: string): PtTensor => {
    const tensor = readPt(file);
    if (tensor.dtype !== undefined && tensor.dtype !== 'float32')
      notes.push(`${file} holds ${tensor.dtype} values: converted to float32 (as PyTorch's .float()), the type every op here computes in`);
    return tensor;
  };
  // Each file read as soon as it is found: the first problem is the one reported.
  const inputFile = config.input || locateDefault(ctx, 'pixel_input.pt', '--input');
  const input = read(inputFile);
  const filterFile = config.filter || locateDefault(ctx, 'filter.pt', '--filter');
  const filter = read(filterFile);
  const [N, C, L] = input.shape;
  // L ≥ 2 for the pools' windows of 2; N·L ≥ 2 because BatchNorm1d in training needs more than one value per channel.
  if (input.shape.length !== 3 || N < 1 || C < 1 || L < 2) {
    throw new InputError(inputFile, 'an (N, C, L) tensor with N, C ≥ 1 and L ≥ 2', `shape ${shapeText(input.shape)}`);
  }
  const dims: Dims = { N, C, L };
  const x = input.data;
  const { kernel, singleKernel } = convKernel(filter, C, L, filterFile);

  let weight: PtTensor, bias: PtTensor;
  if (config.linearWeight) {
    weight = read(config.linearWeight);
    if (weight.shape.length !== 2 || weight.shape[0] < 1 || weight.shape[1] !== L)
      throw new InputError(config.linearWeight, `an (out, ${L}) weight with out ≥ 1`, `shape ${shapeText(weight.shape)}`);
    bias = config.linearBias ? read(config.linearBias) : { shape: [weight.shape[0]], data: new Float32Array(weight.shape[0]) };
    if (bias.shape.length !== 1 || bias.shape[0] !== weight.shape[0])
      throw new InputError(config.linearBias, `a (${weight.shape[0]}) bias`, `shape ${shapeText(bias.shape)}`);
  } else {
    ({ weight, bias } = seededLinear(L, config.linearOut, ctx.seed));
  }
  for (const n of notes) ctx.log(n);

  const t = tfjsOps(x, dims, kernel, weight, bias, config.bnEps, config.bnMomentum);
  const bn = myBatchNorm1d(x, dims, config.bnEps, config.bnMomentum);
  const mine = {
    maxpool1d: myMaxPool1d(x, dims),
    avgpool1d: myAvgPool1d(x, dims),
    conv1d: myConv1d(x, dims, kernel),
    sigmoid: mySigmoid(x),
    batchnorm1d: bn.output,
    linear: myLinear(x, dims, weight, bias),
  };
  const [cOut, , k] = kernel.shape;
  const shapes: Record<keyof typeof mine, number[]> = {
    maxpool1d: [N, C, L - 1],
    avgpool1d: [N, C, L - 1],
    conv1d: [N, cOut, L - k + 1],
    sigmoid: [N, C, L],
    batchnorm1d: [N, C, L],
    linear: [N, C, weight.shape[0]],
  };

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
  const filterName = path.basename(filterFile);
  Object.assign(
    ops.conv1d,
    { weightShape: kernel.shape },
    singleKernel
      ? {
          filterReading: `${filterName} (${filter.shape.join(',')}) read as one length-${k} kernel (out 1, in 1, width ${k})`,
          // The other reading of "k×1 filters", PyTorch's own for a (k, 1, 1) weight: k filters of width 1 → (N, k, L).
          threeFiltersReading: {
            shape: [N, filter.shape[0], L],
            mine: Array.from({ length: N * filter.shape[0] * L }, (_, i) => {
              const n = Math.floor(i / (filter.shape[0] * L));
              return Math.fround(x[n * L + (i % L)] * filter.data[Math.floor(i / L) % filter.shape[0]]);
            }),
          },
        }
      : { filterReading: `${filterName} ${shapeText(filter.shape)} used as conv1d's weight (out ${cOut}, in ${C}, width ${k})` },
  );
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
      input: inputFile,
      filter: filterFile,
      linear: config.linearWeight || `seeded U(±1/√${L}), ${weight.shape[0]}×${L}`,
    },
    inputShape: [N, C, L],
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
