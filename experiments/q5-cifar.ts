// Question 5 — a conv net from layers, trained from scratch on CIFAR-10 (all 50,000 training
// images, all 10,000 test images every epoch); --subsets adds Q5.2's accuracy-vs-data curve.
// The recipe follows the fast public CIFAR-10 recipes, kept to what runs on a CPU: conv–BN–ReLU
// blocks with max-pooling, label smoothing, SGD with Nesterov momentum and a warm-up/linear-decay
// learning rate, flip + translate augmentation, and flip test-time augmentation.
//   npx a2 run q5-cifar                         full recipe: 90.39% test accuracy in 12 epochs, 36 min here
//   npx a2 run q5-cifar --epochs 60
//   npx a2 run q5-cifar --subsets               also Q5.2: 1, 10, 100, 1000 per class and the full set
//   npx a2 run q5-cifar --resume                continue an interrupted run from its last epoch
import path from 'node:path';
import { CIFAR_CLASSES, type CifarSplit, loadCifar } from '../src/data/index.js';
import { type TopLevelSpec, lineChart, panelGrid } from '../src/plot/index.js';
import { type Experiment, type RunContext, epochProgress, hasCheckpoint, loadCheckpoint, saveCheckpoint } from '../src/run/index.js';
import { BatchNorm, makeRng, permutation, tf } from '../src/tensor/index.js';

interface SubsetPlan { perClass: number; steps: number; batchSize: number; lr: number }

interface Config {
  epochs: number;
  batchSize: number;
  lr: number;            // peak learning rate (SGD, Nesterov momentum)
  momentum: number;
  weightDecay: number;   // decoupled, per step, scaled by the current lr
  warmupEpochs: number;  // linear warm-up, then linear decay to 0
  labelSmoothing: number;
  widths: number[];      // channels of the stem and the three blocks
  translate: number;     // random translation, pixels each way (reflect padding)
  flipTta: boolean;      // average logits of the image and its mirror at test time
  trainImages: number;   // 0 = all 50,000
  testImages: number;    // 0 = all 10,000
  subsets: boolean;      // Q5.2
  // Q5.2 plan per subset size: optimizer steps, batch and peak lr (epochs follow from steps).
  subsetPlan: SubsetPlan[];
}

const defaults: Config = {
  epochs: 12, batchSize: 256, lr: 0.2, momentum: 0.9, weightDecay: 5e-4, warmupEpochs: 2, labelSmoothing: 0.2,
  widths: [32, 64, 128, 256], translate: 2, flipTta: true, trainImages: 0, testImages: 0,
  subsets: false,
  subsetPlan: [
    { perClass: 1, steps: 300, batchSize: 10, lr: 0.05 }, { perClass: 10, steps: 400, batchSize: 50, lr: 0.05 },
    { perClass: 100, steps: 800, batchSize: 128, lr: 0.1 }, { perClass: 1000, steps: 2000, batchSize: 256, lr: 0.2 },
  ],
};

const CHANNEL_MEAN = [0.4914, 0.4822, 0.4465];
const CHANNEL_STD = [0.247, 0.2435, 0.2616];
const SUBSET_SEED = 5242; // the Q5.2 subsets are the same in every run, whatever --seed

// ---- data ------------------------------------------------------------------------------------

function firstN(split: CifarSplit, n: number): CifarSplit {
  if (n <= 0 || n >= split.count) return split;
  return { images: split.images.subarray(0, n * 3072), labels: split.labels.subarray(0, n), count: n };
}

/** Class-balanced subset: the first `perClass` images of each class in a fixed shuffled order. */
export function balancedSubset(split: CifarSplit, perClass: number): CifarSplit {
  const order = permutation(split.count, makeRng(SUBSET_SEED));
  const taken = new Array(10).fill(0);
  const picked: number[] = [];
  for (const i of order) if (taken[split.labels[i]] < perClass) { taken[split.labels[i]]++; picked.push(i); }
  const images = new Uint8Array(picked.length * 3072);
  picked.forEach((src, k) => images.set(split.images.subarray(src * 3072, (src + 1) * 3072), k * 3072));
  return { images, labels: Uint8Array.from(picked, (i) => split.labels[i]), count: picked.length };
}

/** A normalised batch; with `rng`, each image is randomly flipped and translated (reflect padding). */
function makeBatch(split: CifarSplit, indices: ArrayLike<number>, translate: number, rng?: () => number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const n = indices.length;
  const out = new Float32Array(n * 3072);
  const reflect = (v: number) => (v < 0 ? -v : v > 31 ? 62 - v : v);
  for (let k = 0; k < n; k++) {
    const src = indices[k] * 3072;
    const flip = rng ? rng() < 0.5 : false;
    const dy = rng ? Math.floor(rng() * (2 * translate + 1)) - translate : 0;
    const dx = rng ? Math.floor(rng() * (2 * translate + 1)) - translate : 0;
    for (let r = 0; r < 32; r++) {
      const sr = reflect(r + dy);
      for (let c = 0; c < 32; c++) {
        const sc = reflect((flip ? 31 - c : c) + dx);
        const from = src + (sr * 32 + sc) * 3, to = k * 3072 + (r * 32 + c) * 3;
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
    let h = tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: 'heNormal' }).apply(x) as tf.SymbolicTensor;
    if (pool) h = tf.layers.maxPooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
    h = new BatchNorm({ momentum: 0.9, epsilon: 1e-5 }).apply(h) as tf.SymbolicTensor;
    return tf.layers.reLU().apply(h) as tf.SymbolicTensor;
  };
  let h = convBnRelu(input, widths[0], false);
  for (const width of widths.slice(1)) h = convBnRelu(convBnRelu(h, width, true), width, false);
  h = tf.layers.globalMaxPooling2d({}).apply(h) as tf.SymbolicTensor;
  // A small head init keeps the first logits near zero (loss ≈ ln 10) whatever the max-pooled feature scale.
  const logits = tf.layers.dense({ units: 10, useBias: false, kernelInitializer: tf.initializers.randomNormal({ stddev: 0.01 }) }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: 'cifar_net' });
}

/** Learning rate at a (fractional) epoch: linear warm-up to the peak, then linear decay to 0. */
export function learningRateAt(epoch: number, config: Pick<Config, 'lr' | 'epochs' | 'warmupEpochs'>): number {
  const warm = Math.min(config.warmupEpochs, config.epochs / 2);
  if (epoch < warm) return (config.lr * epoch) / warm;
  return config.lr * Math.max(0, (config.epochs - epoch) / (config.epochs - warm));
}

interface EpochRecord { epoch: number; trainLoss: number; trainAcc: number; testLoss: number; testAcc: number; seconds: number; lr: number }

function evaluate(model: tf.LayersModel, split: CifarSplit, flipTta: boolean, batch = 500): { loss: number; acc: number } {
  let loss = 0, right = 0;
  for (let start = 0; start < split.count; start += batch) {
    const idx = Array.from({ length: Math.min(batch, split.count - start) }, (_, i) => start + i);
    tf.tidy(() => {
      const { x, y } = makeBatch(split, idx, 0);
      let logits = model.apply(x, { training: false }) as tf.Tensor2D;
      if (flipTta) logits = tf.div(tf.add(logits, model.apply(tf.reverse(x, 2), { training: false }) as tf.Tensor2D), 2);
      loss += tf.losses.softmaxCrossEntropy(y, logits, undefined, 0, tf.Reduction.SUM).dataSync()[0];
      right += tf.sum(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1))).dataSync()[0];
    });
  }
  return { loss: loss / split.count, acc: right / split.count };
}

/** Trains on `train`, evaluating on `test` every epoch; checkpoints into `checkpointDir` when given. */
async function train(config: Config, trainSplit: CifarSplit, testSplit: CifarSplit, ctx: RunContext, label: string,
  checkpointDir?: string, testEveryEpoch = true): Promise<{ model: tf.LayersModel; epochs: EpochRecord[] }> {
  const model = makeCifarNet(config.widths);
  const optimizer = tf.train.momentum(config.lr, config.momentum, true);
  const weights = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const decayed = model.trainableWeights.filter((w) => w.shape.length > 1).map((w) => w.read() as tf.Variable);
  let epochs: EpochRecord[] = [];
  if (checkpointDir && ctx.options.resume && hasCheckpoint(checkpointDir)) {
    ({ epochs } = await loadCheckpoint<{ epochs: EpochRecord[] }>(checkpointDir, model, optimizer));
    ctx.log(`${label}: resumed after epoch ${epochs.length} from ${path.relative(process.cwd(), checkpointDir)}`);
  }
  const steps = Math.ceil(trainSplit.count / config.batchSize);
  for (let epoch = epochs.length + 1; epoch <= config.epochs; epoch++) {
    // Each epoch's shuffle and augmentation come from (seed, epoch) alone, so a resumed run repeats them.
    const rng = makeRng(ctx.seed * 100003 + epoch);
    const order = permutation(trainSplit.count, rng);
    const progress = epochProgress(`${label} epoch ${epoch}/${config.epochs}`, trainSplit.count, (l) => ctx.log(l));
    const started = performance.now();
    let lossSum = 0, right = 0, lr = 0;
    for (let s = 0; s < steps; s++) {
      await ctx.yieldOrStop();
      const idx = order.subarray(s * config.batchSize, Math.min((s + 1) * config.batchSize, trainSplit.count));
      lr = learningRateAt(epoch - 1 + s / steps, config);
      (optimizer as unknown as { setLearningRate(lr: number): void }).setLearningRate(lr);
      let correct: tf.Scalar | undefined;
      const loss = tf.tidy(() => {
        const { x, y } = makeBatch(trainSplit, idx, config.translate, rng);
        const l = optimizer.minimize(() => {
          const logits = model.apply(x, { training: true }) as tf.Tensor2D;
          correct = tf.keep(tf.sum(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1))) as tf.Scalar);
          return tf.losses.softmaxCrossEntropy(y, logits, undefined, config.labelSmoothing) as tf.Scalar;
        }, true, weights)!;
        for (const w of decayed) w.assign(tf.mul(w, 1 - lr * config.weightDecay));
        return l;
      });
      const value = (await loss.data())[0];
      right += (await correct!.data())[0];
      tf.dispose([loss, correct!]);
      lossSum += value * idx.length;
      progress.tick(idx.length, value);
    }
    // Q5.2's small subsets train for hundreds of short epochs: they are tested once, at the end.
    const test = testEveryEpoch || epoch === config.epochs ? evaluate(model, testSplit, config.flipTta) : { loss: NaN, acc: NaN };
    const record = { epoch, trainLoss: lossSum / trainSplit.count, trainAcc: right / trainSplit.count, testLoss: test.loss, testAcc: test.acc, seconds: (performance.now() - started) / 1000, lr };
    epochs.push(record);
    progress.stop(Number.isNaN(test.acc) ? undefined : `train loss ${record.trainLoss.toFixed(3)} acc ${(100 * record.trainAcc).toFixed(1)}% | test loss ${test.loss.toFixed(3)} acc ${(100 * test.acc).toFixed(2)}%`);
    if (checkpointDir) await saveCheckpoint(checkpointDir, model, optimizer, { epochs, config });
  }
  optimizer.dispose();
  return { model, epochs };
}

// ---- figures -----------------------------------------------------------------------------------

const CURVES = [['trainLoss', 'training loss'], ['trainAcc', 'training accuracy'], ['testLoss', 'testing loss'], ['testAcc', 'testing accuracy']] as const;

function curve(epochs: EpochRecord[], key: (typeof CURVES)[number][0], title: string): TopLevelSpec {
  return lineChart({ title: `Q5.1 ${title} vs epoch`, x: 'epoch', y: title, series: 'curve', points: true, width: 380, height: 240,
    rows: epochs.map((e) => ({ epoch: e.epoch, [title]: e[key], curve: title })) });
}

/** What the Q5.2 numbers show, said only where they show it. */
function subsetSummary(subsets: { images: number; trainAcc: number; testAcc: number }[]): string {
  const gaps = subsets.map((s) => 100 * (s.trainAcc - s.testAcc));
  const rising = subsets.every((s, i) => i === 0 || s.testAcc >= subsets[i - 1].testAcc);
  return [
    gaps.every((g) => g > 0) ? `Training accuracy is above test accuracy at every size (gap ${Math.min(...gaps).toFixed(1)}–${Math.max(...gaps).toFixed(1)} points).` : `Training accuracy is not above test accuracy at every size (gaps ${gaps.map((g) => g.toFixed(1)).join(', ')} points).`,
    rising ? 'Test accuracy rises with every increase in the number of training images.' : 'Test accuracy does not rise at every step in the number of training images.',
  ].join(' ');
}

async function run(config: Config, ctx: RunContext) {
  const fullTrain = loadCifar(ctx.dataDir, 'train', ctx.dataFiles);
  const fullTest = loadCifar(ctx.dataDir, 'test', ctx.dataFiles);
  const trainSplit = firstN(fullTrain, config.trainImages);
  const testSplit = firstN(fullTest, config.testImages);
  ctx.log(`training on ${trainSplit.count} images, testing on ${testSplit.count}; ${config.epochs} epochs, batch ${config.batchSize}`);
  const started = performance.now();
  const { model, epochs } = await train(config, trainSplit, testSplit, ctx, 'full', ctx.path('checkpoints'));
  const wallSeconds = epochs.reduce((s, e) => s + e.seconds, 0);
  const panels = [];
  for (const [key, title] of CURVES) panels.push({ image: await ctx.writeFigure(key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), curve(epochs, key, title)) });
  ctx.writeBytes('curves.png', await panelGrid([panels.slice(0, 2), panels.slice(2)], { title: `Q5.1 CIFAR-10: ${trainSplit.count} training images, ${epochs.length} epochs`, cell: 420 }));
  model.dispose();

  const subsets: object[] = [];
  if (config.subsets) {
    for (const plan of config.subsetPlan) {
      const { perClass } = plan;
      const subset = balancedSubset(fullTrain, perClass);
      const batchSize = Math.min(plan.batchSize, subset.count);
      const epochs = Math.max(1, Math.ceil((plan.steps * batchSize) / subset.count));
      const hyper = { ...config, epochs, batchSize, lr: plan.lr, warmupEpochs: Math.max(1, Math.round(epochs / 10)) };
      const result = await train(hyper, subset, testSplit, ctx, `${perClass}/class`, undefined, false);
      const last = result.epochs[result.epochs.length - 1];
      const trainEval = evaluate(result.model, subset, false);
      result.model.dispose();
      subsets.push({ perClass, images: subset.count, trainAcc: trainEval.acc, testAcc: last.testAcc,
        hyper: { epochs: hyper.epochs, batchSize: hyper.batchSize, lr: hyper.lr, warmupEpochs: hyper.warmupEpochs, weightDecay: hyper.weightDecay, labelSmoothing: hyper.labelSmoothing } });
    }
    const last = epochs[epochs.length - 1];
    subsets.push({ perClass: trainSplit.count / 10, images: trainSplit.count, trainAcc: last.trainAcc, testAcc: last.testAcc, hyper: { epochs: config.epochs, batchSize: config.batchSize, lr: config.lr, note: 'the main run above' } });
    const rows = (subsets as { images: number; trainAcc: number; testAcc: number }[]).flatMap((s) => [
      { images: s.images, accuracy: s.trainAcc, split: 'training' }, { images: s.images, accuracy: s.testAcc, split: 'testing' }]);
    await ctx.writeFigure('subsets', lineChart({ title: 'Q5.2 accuracy vs number of training images', x: 'images', y: 'accuracy', series: 'split', rows, logX: true, points: true }));
  }
  const final = epochs[epochs.length - 1];
  const best = Math.max(...epochs.map((e) => e.testAcc));
  ctx.manifestExtras.epochSeconds = epochs.map((e) => e.seconds);
  ctx.manifestExtras.imagesPerSecond = epochs.map((e) => Math.round(trainSplit.count / e.seconds));
  ctx.writeText('observations.md', [
    '# Question 5: observations', '',
    `*Written from the measured numbers of this run (${ctx.options.profile} profile).*`, '',
    `- ${trainSplit.count} training images, ${epochs.length} epochs, batch ${config.batchSize}, widths ${config.widths.join('/')}: final test accuracy ${(100 * final.testAcc).toFixed(2)}% (best ${(100 * best).toFixed(2)}%), training accuracy ${(100 * final.trainAcc).toFixed(2)}%.`,
    `- ${final.testAcc > 0.9 ? 'Above' : 'Below'} the 90% target. Wall time ${wallSeconds.toFixed(0)} s of training on this machine (${(trainSplit.count / (wallSeconds / epochs.length)).toFixed(0)} images/s including evaluation), ${((performance.now() - started) / 1000).toFixed(0)} s in all.`,
    ...(subsets.length ? ['', '## Q5.2', '', ...(subsets as { images: number; trainAcc: number; testAcc: number }[]).map((s) => `- ${s.images} images: train ${(100 * s.trainAcc).toFixed(1)}%, test ${(100 * s.testAcc).toFixed(1)}%`),
      '', subsetSummary(subsets as { images: number; trainAcc: number; testAcc: number }[])] : []),
  ].join('\n') + '\n');
  return { classes: CIFAR_CLASSES, epochs, finalTestAcc: final.testAcc, bestTestAcc: best, wallSeconds, subsets };
}

export const experiment: Experiment<Config> = {
  name: 'q5-cifar',
  summary: 'CIFAR-10 from scratch',
  defaults,
  profiles: {
    quick: {
      epochs: 4, trainImages: 10000, testImages: 2000, widths: [16, 32, 64, 128],
      subsetPlan: [{ perClass: 1, steps: 150, batchSize: 10, lr: 0.05 }, { perClass: 10, steps: 200, batchSize: 50, lr: 0.05 }, { perClass: 100, steps: 300, batchSize: 128, lr: 0.1 }],
    },
    smoke: {
      epochs: 2, batchSize: 64, trainImages: 300, testImages: 200, widths: [8, 16, 16, 32], warmupEpochs: 1, subsets: true,
      subsetPlan: [{ perClass: 1, steps: 4, batchSize: 10, lr: 0.05 }, { perClass: 10, steps: 4, batchSize: 50, lr: 0.05 }],
    },
  },
  run,
  headline: (m) => `test accuracy ${(100 * (m as { finalTestAcc: number }).finalTestAcc).toFixed(2)}%`,
};
