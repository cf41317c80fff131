// The CIFAR-10 recipe shared by Question 5's three experiments (q5-cifar, q5-subsets,
// q5-ablations): data and augmentation, the network, the learning-rate schedule, one training
// loop and evaluation. It follows the fast public CIFAR-10 recipes, kept to what runs on a CPU:
// conv–BN–ReLU blocks with max-pooling, label smoothing, SGD with Nesterov momentum and a
// warm-up/linear-decay learning rate, flip + translate augmentation, flip test-time augmentation.
import path from 'node:path';
import type { CifarSplit } from '../src/data/index.js';
import { LossWatch, type RunContext, epochProgress, hasCheckpoint, loadCheckpoint, saveCheckpoint } from '../src/run/index.js';
import { BatchNorm, makeRng, permutation, seedEverything, tf } from '../src/tensor/index.js';

export interface Recipe {
  epochs: number;
  batchSize: number;
  lr: number; // peak learning rate (SGD, Nesterov momentum)
  momentum: number;
  weightDecay: number; // decoupled, per step, scaled by the current lr
  warmupEpochs: number; // linear warm-up, then linear decay to 0
  decay: boolean; // false: hold the peak after warm-up (an ablation)
  labelSmoothing: number;
  widths: number[]; // channels of the stem and the three blocks
  flip: boolean; // random horizontal flip while training
  translate: number; // random translation, pixels each way (reflect padding)
  flipTta: boolean; // average logits of the image and its mirror at test time
}

export const RECIPE: Recipe = {
  epochs: 12,
  batchSize: 256,
  lr: 0.2,
  momentum: 0.9,
  weightDecay: 5e-4,
  warmupEpochs: 2,
  decay: true,
  labelSmoothing: 0.2,
  widths: [32, 64, 128, 256],
  flip: true,
  translate: 2,
  flipTta: true,
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
}

/** A normalised batch; with `augment`, each image is randomly flipped and translated (reflect padding). */
function makeBatch(split: CifarSplit, indices: ArrayLike<number>, augment?: Augment): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const n = indices.length;
  const out = new Float32Array(n * 3072);
  const reflect = (v: number) => (v < 0 ? -v : v > 31 ? 62 - v : v);
  const shift = (t: number, rng: () => number) => Math.floor(rng() * (2 * t + 1)) - t;
  for (let k = 0; k < n; k++) {
    const src = indices[k] * 3072;
    const flip = augment?.flip ? augment.rng() < 0.5 : false;
    const dy = augment ? shift(augment.translate, augment.rng) : 0;
    const dx = augment ? shift(augment.translate, augment.rng) : 0;
    for (let r = 0; r < 32; r++) {
      const sr = reflect(r + dy);
      for (let c = 0; c < 32; c++) {
        const sc = reflect((flip ? 31 - c : c) + dx);
        const from = src + (sr * 32 + sc) * 3,
          to = k * 3072 + (r * 32 + c) * 3;
        for (let ch = 0; ch < 3; ch++) out[to + ch] = (split.images[from + ch] / 255 - CHANNEL_MEAN[ch]) / CHANNEL_STD[ch];
      }
    }
  }
  const labels = Int32Array.from({ length: n }, (_, k) => split.labels[indices[k]]);
  return { x: tf.tensor4d(out, [n, 32, 32, 3]), y: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat() as tf.Tensor2D) };
}

// ---- network ---------------------------------------------------------------------------------

/** Stem conv, then three blocks of conv–pool–BN–ReLU–conv–BN–ReLU, global max-pool, linear head. */
export function makeCifarNet(widths: number[]): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3] });
  const convBnRelu = (x: tf.SymbolicTensor, filters: number, pool: boolean): tf.SymbolicTensor => {
    let h = tf.layers
      .conv2d({ filters, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: 'heNormal' })
      .apply(x) as tf.SymbolicTensor;
    if (pool) h = tf.layers.maxPooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
    return new BatchNorm({ momentum: 0.9, epsilon: 1e-5, relu: true }).apply(h) as tf.SymbolicTensor;
  };
  let h = convBnRelu(input, widths[0], false);
  for (const width of widths.slice(1)) h = convBnRelu(convBnRelu(h, width, true), width, false);
  h = tf.layers.globalMaxPooling2d({}).apply(h) as tf.SymbolicTensor;
  // A small head init keeps the first logits near zero (loss ≈ ln 10) whatever the max-pooled feature scale.
  const logits = tf.layers
    .dense({ units: 10, useBias: false, kernelInitializer: tf.initializers.randomNormal({ stddev: 0.01 }) })
    .apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: 'cifar_net' });
}

/** Learning rate at a (fractional) epoch: linear warm-up to the peak, then linear decay to 0 (or held). */
export function learningRateAt(
  epoch: number,
  recipe: Pick<Recipe, 'lr' | 'epochs' | 'warmupEpochs'> & Partial<Pick<Recipe, 'decay'>>,
): number {
  const warm = Math.min(recipe.warmupEpochs, recipe.epochs / 2);
  if (epoch < warm) return (recipe.lr * epoch) / warm;
  if (recipe.decay === false) return recipe.lr;
  return recipe.lr * Math.max(0, (recipe.epochs - epoch) / (recipe.epochs - warm));
}

// ---- training --------------------------------------------------------------------------------

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAcc: number;
  testLoss: number;
  testAcc: number;
  seconds: number;
  lr: number;
}

export function evaluate(model: tf.LayersModel, split: CifarSplit, flipTta: boolean, batch = 500): { loss: number; acc: number } {
  let loss = 0,
    right = 0;
  for (let start = 0; start < split.count; start += batch) {
    const idx = Array.from({ length: Math.min(batch, split.count - start) }, (_, i) => start + i);
    tf.tidy(() => {
      const { x, y } = makeBatch(split, idx);
      let logits = model.apply(x, { training: false }) as tf.Tensor2D;
      if (flipTta) logits = tf.div(tf.add(logits, model.apply(tf.reverse(x, 2), { training: false }) as tf.Tensor2D), 2);
      loss += tf.losses.softmaxCrossEntropy(y, logits, undefined, 0, tf.Reduction.SUM).dataSync()[0];
      right += tf.sum(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1))).dataSync()[0];
    });
  }
  return { loss: loss / split.count, acc: right / split.count };
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
  seedEverything(seed);
  const model = makeCifarNet(recipe.widths);
  const optimizer = tf.train.momentum(recipe.lr, recipe.momentum, true);
  const weights = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const decayed = model.trainableWeights.filter((w) => w.shape.length > 1).map((w) => w.read() as tf.Variable);
  let epochs: EpochRecord[] = [];
  if (checkpointDir && ctx.options.resume && hasCheckpoint(checkpointDir)) {
    ({ epochs } = await loadCheckpoint<{ epochs: EpochRecord[] }>(checkpointDir, model, optimizer));
    ctx.log(`${label}: resumed after epoch ${epochs.length} from ${path.relative(process.cwd(), checkpointDir)}`);
  }
  const steps = Math.ceil(trainSplit.count / recipe.batchSize);
  const watch = new LossWatch(label, recipe.lr, ctx.options.overrides.lr !== undefined);
  for (let epoch = epochs.length + 1; epoch <= recipe.epochs; epoch++) {
    // Each epoch's shuffle and augmentation come from (seed, epoch) alone, so a resumed run repeats them.
    const rng = makeRng(seed * 100003 + epoch);
    const order = permutation(trainSplit.count, rng);
    const progress = epochProgress(`${label} epoch ${epoch}/${recipe.epochs}`, trainSplit.count, (l) => ctx.log(l));
    const started = performance.now();
    let lossSum = 0,
      right = 0,
      lr = 0;
    for (let s = 0; s < steps; s++) {
      await ctx.yieldOrStop();
      const idx = order.subarray(s * recipe.batchSize, Math.min((s + 1) * recipe.batchSize, trainSplit.count));
      lr = learningRateAt(epoch - 1 + s / steps, recipe);
      (optimizer as unknown as { setLearningRate(lr: number): void }).setLearningRate(lr);
      let correct: tf.Scalar | undefined;
      const loss = tf.tidy(() => {
        const { x, y } = makeBatch(trainSplit, idx, { flip: recipe.flip, translate: recipe.translate, rng });
        const l = optimizer.minimize(
          () => {
            const logits = model.apply(x, { training: true }) as tf.Tensor2D;
            correct = tf.keep(tf.sum(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1))) as tf.Scalar);
            return tf.losses.softmaxCrossEntropy(y, logits, undefined, recipe.labelSmoothing) as tf.Scalar;
          },
          true,
          weights,
        )!;
        for (const w of decayed) w.assign(tf.mul(w, 1 - lr * recipe.weightDecay));
        return l;
      });
      const value = (await loss.data())[0];
      right += (await correct!.data())[0];
      tf.dispose([loss, correct!]);
      if (!Number.isFinite(value)) progress.stop();
      watch.check(value, epoch, s + 1);
      lossSum += value * idx.length;
      progress.tick(idx.length, value);
    }
    const measured = evalEveryEpoch || epoch === recipe.epochs ? evaluate(model, evalSplit, recipe.flipTta) : { loss: NaN, acc: NaN };
    const record = {
      epoch,
      trainLoss: lossSum / trainSplit.count,
      trainAcc: right / trainSplit.count,
      testLoss: measured.loss,
      testAcc: measured.acc,
      seconds: (performance.now() - started) / 1000,
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
  return { model, epochs };
}

// ---- words ---------------------------------------------------------------------------------------

export const pct = (v: number, digits = 1) => `${(100 * v).toFixed(digits)}%`;
