// The CIFAR-10 recipe shared by Question 5's three experiments (q5-cifar, q5-subsets,
// q5-ablations): data and augmentation, the network, the learning-rate schedule, one training
// loop and evaluation. It is airbench93's (Keller Jordan, arXiv 2404.00498) kept to what runs
// well on a CPU: a frozen 2×2 patch-whitening stem, three conv–pool–BN–ReLU–conv–BN–ReLU blocks
// (ReLU, not GELU: oneDNN fuses it into the BatchNorm) with identity-initialised convs, BatchNorm
// with γ fixed and a 64× learning rate on β, a 1/9 logit scale, label smoothing, SGD with Nesterov
// momentum on a warm-up/linear-decay schedule, Lookahead, alternating flip and translate
// augmentation, and flip + translate test-time augmentation. Each part is a switch of `Recipe`,
// so q5-ablations can turn it off. How it was chosen: tuning/README.md.
import path from 'node:path';
import type { CifarSplit } from '../src/data/index.js';
import { UsageError } from '../src/errors.js';
import {
  LossWatch,
  type RunContext,
  checkpointState,
  configDifferences,
  epochProgress,
  hasCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
} from '../src/run/index.js';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { BatchNorm, makeRng, permutation, seedEverything, tf } from '../src/tensor/index.js';

export interface Recipe {
  epochs: number;
  batchSize: number;
  lr: number; // peak learning rate (SGD, Nesterov momentum)
  momentum: number;
  weightDecay: number; // decoupled, per step, scaled by the current lr
  warmup: number; // share of the epochs spent in linear warm-up (then linear decay), so --epochs stretches the schedule
  decay: boolean; // false: hold the peak after warm-up (an ablation)
  labelSmoothing: number;
  widths: number[]; // channels of the stem and the three blocks
  flip: boolean; // random horizontal flip while training
  translate: number; // random translation, pixels each way (reflect padding)
  flipTta: boolean; // average logits of the image and its mirror at test time
  translateTta: boolean; // also average the views shifted one pixel up-left and down-right (with flipTta)
  whiten: boolean; // stem: a frozen 2×2 patch-whitening conv (widths[0] = 24 channels) instead of a learned 3×3 conv
  dirac: boolean; // each block conv starts as the identity on its first input-many channels
  bnScale: boolean; // false: BatchNorm γ fixed at 1, only β learns
  bnBiasLrScale: number; // β's learning rate as a multiple of the weights'
  logitScale: number; // the head's logits times this
  altFlip: boolean; // with flip: each image's random flip in epoch 1, then flipped the other way every other epoch
  lookahead: boolean; // every 5 steps after 30% of training, weights pulled to an EMA of themselves
  lrStart: number; // warm-up starts at this fraction of the peak
  lrEnd: number; // decay ends at this fraction of the peak
}

export const RECIPE: Recipe = {
  epochs: 8,
  batchSize: 512,
  lr: 0.75, // airbench's 11.5 per 1,024 images on a summed loss, as a rate on the batch mean
  momentum: 0.85,
  weightDecay: 0.009, // × lr per step: airbench's coupled decay through momentum, decoupled
  warmup: 0.23,
  decay: true,
  labelSmoothing: 0.2,
  widths: [24, 64, 128, 128],
  flip: true,
  translate: 2,
  flipTta: true,
  translateTta: true,
  whiten: true,
  dirac: true,
  bnScale: false,
  bnBiasLrScale: 64,
  logitScale: 1 / 9,
  altFlip: true,
  lookahead: true,
  lrStart: 0.2,
  lrEnd: 0.07,
};

const CHANNEL_MEAN = [0.4914, 0.4822, 0.4465];
const CHANNEL_STD = [0.247, 0.2435, 0.2616];
const SUBSET_SEED = 5242; // Q5.2's subsets and validation images are the same in every run, whatever --seed

// ---- data ------------------------------------------------------------------------------------

export function firstN(split: CifarSplit, n: number): CifarSplit {
  if (n <= 0 || n >= split.count) return split;
  return { images: split.images.subarray(0, n * 3072), labels: split.labels.subarray(0, n), count: n };
}

/**
 * Class-balanced subset: images `skipPerClass` … `skipPerClass + perClass − 1` of each class in
 * one fixed shuffled order. Subsets with skip 0 are nested (10 per class holds the 1 per class);
 * a slice past the largest subset (skip 1000) is validation data no subset ever trains on.
 */
export function balancedSubset(split: CifarSplit, perClass: number, skipPerClass = 0): CifarSplit {
  const order = permutation(split.count, makeRng(SUBSET_SEED));
  const seen = new Array(10).fill(0);
  const picked: number[] = [];
  for (const i of order) {
    const rank = seen[split.labels[i]]++;
    if (rank >= skipPerClass && rank < skipPerClass + perClass) picked.push(i);
  }
  const images = new Uint8Array(picked.length * 3072);
  for (const [k, src] of picked.entries()) images.set(split.images.subarray(src * 3072, (src + 1) * 3072), k * 3072);
  return { images, labels: Uint8Array.from(picked, (i) => split.labels[i]), count: picked.length };
}

interface Augment {
  flip: boolean;
  translate: number;
  rng: () => number;
  /** With flip: whether image `i` (its index in the split) is flipped, instead of a coin toss. */
  flipped?: (i: number) => boolean;
}

/** A fixed test-time view: mirrored or not, shifted by (dy, dx) pixels with reflect padding. */
interface View {
  mirror: boolean;
  dy: number;
  dx: number;
}

/**
 * airbench's alternating flip: each image's coin toss is drawn once; odd epochs use it, even
 * epochs its opposite, so every two epochs see each image both ways.
 */
export function alternatingFlip(count: number, seed: number): (epoch: number) => (i: number) => boolean {
  const rng = makeRng(seed * 100003);
  const first = Uint8Array.from({ length: count }, () => (rng() < 0.5 ? 1 : 0));
  return (epoch) => (i) => first[i] === epoch % 2;
}

// Each byte's normalised value, per channel: a table lookup per pixel, not a division.
const normalised = (ch: number) => Float32Array.from({ length: 256 }, (_, v) => (v / 255 - CHANNEL_MEAN[ch]) / CHANNEL_STD[ch]);
const NORMALISED = [normalised(0), normalised(1), normalised(2)] as const;

/** A normalised batch; with `augment`, each image is randomly flipped and translated (reflect padding). */
export function makeBatch(
  split: CifarSplit,
  indices: ArrayLike<number>,
  augment?: Augment,
  view?: View,
): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const n = indices.length;
  const out = new Float32Array(n * 3072);
  const [red, green, blue] = NORMALISED;
  const pixels = split.images;
  const reflect = (v: number) => (v < 0 ? -v : v > 31 ? 62 - v : v);
  const shift = (t: number, rng: () => number) => Math.floor(rng() * (2 * t + 1)) - t;
  const sourceColumn = new Int32Array(32); // byte offset, in a source row, of each output column
  for (let k = 0; k < n; k++) {
    const src = indices[k] * 3072;
    let flip = view?.mirror ?? false;
    if (augment?.flip) flip = augment.flipped ? augment.flipped(indices[k]) : augment.rng() < 0.5;
    const dy = augment ? shift(augment.translate, augment.rng) : (view?.dy ?? 0);
    const dx = augment ? shift(augment.translate, augment.rng) : (view?.dx ?? 0);
    for (let c = 0; c < 32; c++) sourceColumn[c] = reflect((flip ? 31 - c : c) + dx) * 3;
    let to = k * 3072;
    for (let r = 0; r < 32; r++) {
      const row = src + reflect(r + dy) * 96;
      for (let c = 0; c < 32; c++, to += 3) {
        const from = row + sourceColumn[c];
        out[to] = red[pixels[from]];
        out[to + 1] = green[pixels[from + 1]];
        out[to + 2] = blue[pixels[from + 2]];
      }
    }
  }
  const labels = Int32Array.from({ length: n }, (_, k) => split.labels[indices[k]]);
  return { x: tf.tensor4d(out, [n, 32, 32, 3]), y: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat() as tf.Tensor2D) };
}

/**
 * The 2×2 patch-whitening stem's kernel (airbench's): the eigenvectors of the covariance of
 * normalised 2×2×3 patches from `images` training images, each scaled by 1/√(λ + ε), with their
 * negatives, so a ReLU after it loses nothing. Shape [2, 2, 3, 24].
 */
export function whiteningKernel(split: CifarSplit, images = 5000, epsilon = 5e-4): tf.Tensor4D {
  const n = Math.min(images, split.count);
  const dims = 12;
  const sum = new Float64Array(dims * dims);
  const patch = new Float64Array(dims);
  const { x } = makeBatch(
    split,
    Array.from({ length: n }, (_, i) => i),
  );
  const pixels = x.dataSync();
  x.dispose();
  let count = 0;
  for (let i = 0; i < n; i++)
    for (let r = 0; r < 31; r++)
      for (let c = 0; c < 31; c++) {
        // Patch element (dy, dx, channel) sits at (dy·2 + dx)·3 + channel: the kernel's own order.
        for (let dy = 0; dy < 2; dy++)
          for (let dx = 0; dx < 2; dx++)
            for (let ch = 0; ch < 3; ch++) patch[(dy * 2 + dx) * 3 + ch] = pixels[i * 3072 + ((r + dy) * 32 + c + dx) * 3 + ch];
        for (let a = 0; a < dims; a++) for (let b = a; b < dims; b++) sum[a * dims + b] += patch[a] * patch[b];
        count++;
      }
  const covariance = Matrix.zeros(dims, dims);
  for (let a = 0; a < dims; a++)
    for (let b = a; b < dims; b++) covariance.set(a, b, sum[a * dims + b] / count).set(b, a, sum[a * dims + b] / count);
  const eigen = new EigenvalueDecomposition(covariance, { assumeSymmetric: true });
  const kernel = new Float32Array(dims * 2 * dims);
  eigen.realEigenvalues.forEach((lambda, k) => {
    const scale = 1 / Math.sqrt(Math.max(lambda, 0) + epsilon);
    for (let p = 0; p < dims; p++) {
      const v = eigen.eigenvectorMatrix.get(p, k) * scale;
      kernel[p * 2 * dims + k] = v;
      kernel[p * 2 * dims + dims + k] = -v;
    }
  });
  return tf.tensor4d(kernel, [2, 2, 3, 2 * dims]);
}

// ---- network ---------------------------------------------------------------------------------

/** Multiplies its input by a constant: the head's logit scale. */
class Scale extends tf.layers.Layer {
  static className = 'A2Scale';
  private readonly factor: number;
  // tfjs rebuilds a saved layer as new Scale(getConfig()), so the factor rides in the config.
  constructor(args: { factor: number; name?: string }) {
    super(args);
    this.factor = args.factor;
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.mul(Array.isArray(inputs) ? inputs[0] : inputs, this.factor);
  }
  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), factor: this.factor };
  }
}
tf.serialization.registerClass(Scale);

export type NetOptions = Pick<Recipe, 'whiten' | 'dirac' | 'logitScale'>;
const PLAIN_NET: NetOptions = { whiten: false, dirac: false, logitScale: 1 };

/**
 * Stem (a 3×3 conv–BN–ReLU, or a frozen 2×2 whitening conv and ReLU), then three blocks of
 * conv–pool–BN–ReLU–conv–BN–ReLU, global max-pool, linear head.
 */
export function makeCifarNet(widths: number[], options: NetOptions = PLAIN_NET): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3] });
  const convBnRelu = (x: tf.SymbolicTensor, filters: number, pool: boolean): tf.SymbolicTensor => {
    let h = tf.layers
      .conv2d({ filters, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: 'heNormal' })
      .apply(x) as tf.SymbolicTensor;
    if (pool) h = tf.layers.maxPooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
    return new BatchNorm({ momentum: 0.9, epsilon: 1e-5, relu: true }).apply(h) as tf.SymbolicTensor;
  };
  // The whitening stem has 24 channels whatever widths[0] says: 2×2 patches × 3 colours, and their negatives.
  const stem = options.whiten
    ? tf.layers.conv2d({ filters: 24, kernelSize: 2, padding: 'valid', activation: 'relu', name: 'whiten' })
    : tf.layers.conv2d({ filters: widths[0], kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: 'heNormal' });
  let h = stem.apply(input) as tf.SymbolicTensor;
  if (!options.whiten) h = new BatchNorm({ momentum: 0.9, epsilon: 1e-5, relu: true }).apply(h) as tf.SymbolicTensor;
  for (const width of widths.slice(1)) h = convBnRelu(convBnRelu(h, width, true), width, false);
  h = tf.layers.globalMaxPooling2d({}).apply(h) as tf.SymbolicTensor;
  // A small head init keeps the first logits near zero (loss ≈ ln 10) whatever the max-pooled feature scale.
  let logits = tf.layers
    .dense({ units: 10, useBias: false, kernelInitializer: tf.initializers.randomNormal({ stddev: 0.01 }) })
    .apply(h) as tf.SymbolicTensor;
  if (options.logitScale !== 1) logits = new Scale({ factor: options.logitScale }).apply(logits) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: logits, name: 'cifar_net' });
  if (options.dirac)
    for (const layer of model.layers) {
      if (layer.getClassName() !== 'Conv2D' || layer === stem) continue;
      // Identity on the first min(in, out) channels: a block starts as (nearly) a pass-through, an implicit residual.
      const [kernel] = layer.getWeights();
      const [kh, kw, cin, cout] = kernel.shape;
      const values = kernel.dataSync().slice();
      for (let o = 0; o < Math.min(cin, cout); o++) {
        for (let i = 0; i < kh * kw * cin; i++) values[i * cout + o] = 0;
        values[((((kh - 1) / 2) * kw + (kw - 1) / 2) * cin + o) * cout + o] = 1;
      }
      // getWeights hands out the variable itself: only the new tensor is ours to dispose.
      const identity = tf.tensor4d(values, [kh, kw, cin, cout]);
      layer.setWeights([identity]);
      identity.dispose();
    }
  return model;
}

/**
 * Learning rate at a (fractional) epoch: linear warm-up from lrStart·peak to the peak, then
 * linear decay to lrEnd·peak at the last epoch (or held at the peak).
 */
export function learningRateAt(
  epoch: number,
  recipe: Pick<Recipe, 'lr' | 'epochs' | 'warmup'> & Partial<Pick<Recipe, 'decay' | 'lrStart' | 'lrEnd'>>,
): number {
  const start = recipe.lrStart ?? 0,
    end = recipe.lrEnd ?? 0;
  const warm = Math.min(recipe.warmup, 0.5) * recipe.epochs;
  if (epoch < warm) return recipe.lr * (start + ((1 - start) * epoch) / warm);
  if (recipe.decay === false) return recipe.lr;
  return recipe.lr * (end + (1 - end) * Math.max(0, (recipe.epochs - epoch) / (recipe.epochs - warm)));
}

// ---- training --------------------------------------------------------------------------------

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAcc: number;
  testLoss: number;
  testAcc: number;
  seconds: number; // training and evaluation
  evalSeconds: number; // of which evaluation
  // Of `seconds`, the training steps: forward, backward (with the on-tape accuracy), update and weight
  // decay, up to reading the loss. The rest of seconds − evalSeconds is batch assembly, Lookahead and
  // the loop's bookkeeping. NaN: not measured (an epoch resumed from a checkpoint written before it was).
  stepSeconds: number;
  lr: number;
}

/** Test-time augmentation: which views' logits are averaged. */
export type Tta = Pick<Recipe, 'flipTta' | 'translateTta'>;
export const NO_TTA: Tta = { flipTta: false, translateTta: false };

/** The views and their weights: the image (and its mirror); with translateTta, half the weight on its ±1-pixel shifts (and theirs). */
export function ttaViews(tta: Tta): { view: View; weight: number }[] {
  const at = (dy: number, dx: number) => (tta.flipTta ? [false, true] : [false]).map((mirror) => ({ mirror, dy, dx }));
  const centre = at(0, 0);
  if (!tta.translateTta) return centre.map((view) => ({ view, weight: 1 / centre.length }));
  const shifted = [...at(-1, -1), ...at(1, 1)];
  return [
    ...centre.map((view) => ({ view, weight: 1 / 2 / centre.length })),
    ...shifted.map((view) => ({ view, weight: 1 / 2 / shifted.length })),
  ];
}

export function evaluate(model: tf.LayersModel, split: CifarSplit, tta: Tta, batch = 500): { loss: number; acc: number } {
  let loss = 0,
    right = 0;
  const views = ttaViews(tta);
  for (let start = 0; start < split.count; start += batch) {
    const idx = Array.from({ length: Math.min(batch, split.count - start) }, (_, i) => start + i);
    tf.tidy(() => {
      let logits: tf.Tensor2D | undefined;
      let labels: tf.Tensor2D | undefined;
      for (const { view, weight } of views) {
        const { x, y } = makeBatch(split, idx, undefined, view);
        labels = y as tf.Tensor2D;
        const weighted = tf.mul(model.apply(x, { training: false }) as tf.Tensor2D, weight) as tf.Tensor2D;
        logits = logits ? (tf.add(logits, weighted) as tf.Tensor2D) : weighted;
      }
      loss += tf.losses.softmaxCrossEntropy(labels!, logits!, undefined, 0, tf.Reduction.SUM).dataSync()[0];
      right += tf.sum(tf.equal(tf.argMax(logits!, 1), tf.argMax(labels!, 1))).dataSync()[0];
    });
  }
  return { loss: loss / split.count, acc: right / split.count };
}

/**
 * airbench's Lookahead: from 30% of training on, every 5 steps the average is moved toward the
 * weights (keeping a share ρ = 0.95⁵·(step/total)³ of itself, so it averages harder near the end)
 * and the weights are set to it.
 */
class Lookahead {
  private average: tf.Variable[] | undefined;
  constructor(
    private readonly model: tf.LayersModel,
    private readonly totalSteps: number,
  ) {}

  step(step: number): void {
    if (step < 0.3 * this.totalSteps || step % 5 !== 0) return;
    const weights = this.model.weights.map((w) => w.read() as tf.Variable);
    if (!this.average) {
      this.start();
      return;
    }
    const keep = 0.95 ** 5 * (step / this.totalSteps) ** 3;
    tf.tidy(() => {
      for (const [i, avg] of this.average!.entries()) {
        avg.assign(tf.add(tf.mul(avg, keep), tf.mul(weights[i], 1 - keep)));
        weights[i].assign(avg);
      }
    });
  }

  private start(): void {
    this.average = this.model.weights.map((w) => tf.variable(w.read(), false));
  }

  /** After a resume at `step`: the checkpointed net is the average (settle() ran before the save). */
  resume(step: number): void {
    if (step >= 0.3 * this.totalSteps && !this.average) this.start();
  }

  /** Sets the weights to the average (at the end of each epoch, before evaluating). */
  settle(): void {
    if (!this.average) return;
    const weights = this.model.weights.map((w) => w.read() as tf.Variable);
    for (const [i, avg] of this.average.entries()) weights[i].assign(avg);
  }

  dispose(): void {
    tf.dispose(this.average ?? []);
  }
}

/**
 * RunContext has checked the run's config against the checkpoint's; this catches a change in how
 * the run derives its training recipe from that config (q5-cifar's one-view test each epoch), which
 * the config does not show, before any work is spent.
 */
function refuseOtherRecipe(checkpointDir: string, recipe: Recipe): void {
  const saved = checkpointState<{ epochs: EpochRecord[]; recipe?: Recipe }>(checkpointDir)?.recipe;
  const changed = saved ? configDifferences(saved, recipe, ['checkpoint', 'this a2']) : ['the checkpoint records no recipe'];
  if (changed.length > 0)
    throw new UsageError(
      `--resume: the checkpoint in ${path.resolve(checkpointDir)} was written by an a2 that trained this configuration with another recipe ` +
        `(${changed.join('; ')}); resume with the a2 that made it, or run without --resume to start over`,
    );
}

export interface TrainOptions {
  label: string; // names the run in progress lines
  checkpointDir?: string; // checkpoint after every epoch, resume from it under --resume
  evalEveryEpoch?: boolean; // false: evaluate once, after the last epoch (short epochs of small subsets)
  seed?: number; // initial weights, shuffles and augmentation; the run's --seed unless given
}

/**
 * Trains a fresh net on `trainSplit`, evaluating on `evalSplit`. Every call with the same seed
 * starts from the same weights, so runs that differ in one setting differ only by that setting.
 */
export async function train(
  recipe: Recipe,
  trainSplit: CifarSplit,
  evalSplit: CifarSplit,
  ctx: RunContext,
  options: TrainOptions,
): Promise<{ model: tf.LayersModel; epochs: EpochRecord[] }> {
  const { label, checkpointDir, evalEveryEpoch = true, seed = ctx.seed } = options;
  if (checkpointDir && ctx.options.resume && hasCheckpoint(checkpointDir)) refuseOtherRecipe(checkpointDir, recipe);
  seedEverything(seed);
  const model = makeCifarNet(recipe.widths, recipe);
  if (recipe.whiten) {
    const kernel = whiteningKernel(trainSplit);
    const stem = model.getLayer('whiten');
    stem.setWeights([kernel, stem.getWeights()[1]]);
    kernel.dispose();
  }
  const optimizer = tf.train.momentum(recipe.lr, recipe.momentum, true);
  // The whitening kernel stays as computed (its bias learns); without bnScale, γ stays 1.
  const learned = model.trainableWeights.filter(
    (w) => !(recipe.whiten && w.originalName.startsWith('whiten/kernel')) && (recipe.bnScale || !w.originalName.endsWith('/gamma')),
  );
  const weights = learned.map((w) => w.read() as tf.Variable);
  const decayed = learned.filter((w) => w.shape.length > 1).map((w) => w.read() as tf.Variable);
  // For SGD with momentum, scaling a gradient by k is scaling its learning rate by k.
  const gradientScale = new Map(
    learned.filter((w) => w.originalName.endsWith('/beta')).map((w) => [(w.read() as tf.Variable).name, recipe.bnBiasLrScale]),
  );
  let epochs: EpochRecord[] = [];
  if (checkpointDir && ctx.options.resume && hasCheckpoint(checkpointDir)) {
    const saved = await loadCheckpoint<{ epochs: EpochRecord[] }>(checkpointDir, model, optimizer);
    epochs = saved.epochs.map((e) => ({ ...e, stepSeconds: e.stepSeconds ?? Number.NaN }));
    ctx.log(`${label}: resumed after epoch ${epochs.length} from ${path.relative(process.cwd(), checkpointDir)}`);
  }
  const steps = Math.ceil(trainSplit.count / recipe.batchSize);
  const alternating = recipe.altFlip ? alternatingFlip(trainSplit.count, seed) : undefined;
  // Lookahead keeps an average of every weight (moving BN statistics too) and pulls the net to it.
  // At each epoch's end the net is the average, so a checkpoint of the net holds the whole state.
  const lookahead = recipe.lookahead ? new Lookahead(model, steps * recipe.epochs) : undefined;
  lookahead?.resume(epochs.length * steps);
  const watch = new LossWatch(label, recipe.lr, ctx.options.overrides.lr !== undefined);
  for (let epoch = epochs.length + 1; epoch <= recipe.epochs; epoch++) {
    // Each epoch's shuffle and augmentation come from (seed, epoch) alone, so a resumed run repeats them.
    const rng = makeRng(seed * 100003 + epoch);
    const order = permutation(trainSplit.count, rng);
    const flipped = alternating?.(epoch);
    const progress = epochProgress(`${label} epoch ${epoch}/${recipe.epochs}`, trainSplit.count, (l) => ctx.log(l));
    const started = performance.now();
    let lossSum = 0,
      right = 0,
      lr = 0,
      stepMs = 0;
    for (let s = 0; s < steps; s++) {
      await ctx.yieldOrStop();
      const idx = order.subarray(s * recipe.batchSize, Math.min((s + 1) * recipe.batchSize, trainSplit.count));
      lr = learningRateAt(epoch - 1 + s / steps, recipe);
      (optimizer as unknown as { setLearningRate(lr: number): void }).setLearningRate(lr);
      let correct: tf.Scalar | undefined;
      let stepStarted = 0;
      const loss = tf.tidy(() => {
        const { x, y } = makeBatch(trainSplit, idx, { flip: recipe.flip, translate: recipe.translate, rng, flipped });
        stepStarted = performance.now();
        const { value, grads } = tf.variableGrads(() => {
          const logits = model.apply(x, { training: true }) as tf.Tensor2D;
          correct = tf.keep(tf.sum(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1))) as tf.Scalar);
          return tf.losses.softmaxCrossEntropy(y, logits, undefined, recipe.labelSmoothing) as tf.Scalar;
        }, weights);
        for (const [name, k] of gradientScale) if (k !== 1) grads[name] = tf.mul(grads[name], k);
        // applyGradients' declared type asks for variables; it reads the gradient tensors by name.
        optimizer.applyGradients(grads as unknown as Parameters<typeof optimizer.applyGradients>[0]);
        for (const w of decayed) w.assign(tf.mul(w, 1 - lr * recipe.weightDecay));
        return value;
      });
      const value = (await loss.data())[0];
      right += (await correct!.data())[0];
      stepMs += performance.now() - stepStarted;
      tf.dispose([loss, correct!]);
      lookahead?.step((epoch - 1) * steps + s + 1);
      if (!Number.isFinite(value)) progress.stop();
      watch.check(value, epoch, s + 1);
      lossSum += value * idx.length;
      progress.tick(idx.length, value);
    }
    lookahead?.settle();
    const evalStarted = performance.now();
    const measured = evalEveryEpoch || epoch === recipe.epochs ? evaluate(model, evalSplit, recipe) : { loss: NaN, acc: NaN };
    const evalSeconds = (performance.now() - evalStarted) / 1000;
    const record = {
      epoch,
      trainLoss: lossSum / trainSplit.count,
      trainAcc: right / trainSplit.count,
      testLoss: measured.loss,
      testAcc: measured.acc,
      seconds: (performance.now() - started) / 1000,
      evalSeconds,
      stepSeconds: stepMs / 1000,
      lr,
    };
    epochs.push(record);
    progress.stop(
      Number.isNaN(measured.acc)
        ? undefined
        : `train loss ${record.trainLoss.toFixed(3)} acc ${(100 * record.trainAcc).toFixed(1)}% | eval loss ${measured.loss.toFixed(3)} acc ${(100 * measured.acc).toFixed(2)}%`,
    );
    if (checkpointDir) await saveCheckpoint(checkpointDir, model, optimizer, { epochs, recipe });
  }
  optimizer.dispose();
  lookahead?.dispose();
  return { model, epochs };
}

// ---- words ---------------------------------------------------------------------------------------

export const pct = (v: number, digits = 1) => `${(100 * v).toFixed(digits)}%`;
