// What Q2.1, Q2.2 and Q3 share: the MNIST autoencoder protocol. Both nets are trained the
// same way (λ = 2 and 32, L1 loss, Adam, identical hyper-parameters), measured the same way
// (train and test L1 each epoch) and drawn the same way; only the architecture differs.
import { type MnistSplit, loadMnist } from '../src/data/index.js';
import { type Panel, lineChart, panelGrid } from '../src/plot/index.js';
import { type Artefact, figures, num, numbers, obj } from '../src/report/declare.js';
import { type Experiment, LossWatch, type RunContext, epochProgress, modelSummary, saveModel } from '../src/run/index.js';
import { makeRng, permutation, tf } from '../src/tensor/index.js';

export interface AutoencoderConfig {
  lambdas: number[]; // latent sizes compared
  epochs: number;
  batchSize: number;
  lr: number; // Adam step size
  trainImages: number; // 0 = all 60,000
  testImages: number; // 0 = all 10,000
  restarts: number; // fresh (seeded) inits allowed when the latent layer dies entirely in epoch 1
}

export interface Autoencoder {
  encoder: tf.Sequential;
  decoder: tf.Sequential;
}

export interface LambdaResult {
  trainLoss: number[];
  testLoss: number[];
  finalTestL1: number;
  epochSeconds: number[];
  activeLatents: number;
  restarts: number;
}

/**
 * PyTorch's default init for Linear and Conv layers: weights and biases ~ U(±1/√fan_in).
 * The assignment is written for PyTorch; its non-zero biases also keep the ReLU after every
 * layer (including the latent and the output) from starting dead, which tfjs's default
 * (Glorot weights, zero biases) often does at λ = 2.
 */
export function torchInit(fanIn: number) {
  const bound = 1 / Math.sqrt(fanIn);
  return {
    kernelInitializer: tf.initializers.randomUniform({ minval: -bound, maxval: bound }),
    biasInitializer: tf.initializers.randomUniform({ minval: -bound, maxval: bound }),
  };
}

export function loadAutoencoderData(config: AutoencoderConfig, ctx: RunContext): { train: MnistSplit; test: MnistSplit } {
  return {
    train: loadMnist(ctx.dataDir, 'train', ctx.dataFiles, config.trainImages || undefined),
    test: loadMnist(ctx.dataDir, 'test', ctx.dataFiles, config.testImages || undefined),
  };
}

function batchTensor(data: MnistSplit, indices: ArrayLike<number>): tf.Tensor4D {
  const n = indices.length;
  const buffer = new Float32Array(n * 784);
  for (let i = 0; i < n; i++) buffer.set(data.images.subarray(indices[i] * 784, (indices[i] + 1) * 784), i * 784);
  return tf.tensor4d(buffer, [n, 28, 28, 1]);
}

const l1 = (a: tf.Tensor, b: tf.Tensor) => tf.mean(tf.abs(tf.sub(a, b))) as tf.Scalar;

export function reconstruct(ae: Autoencoder, x: tf.Tensor): tf.Tensor {
  return ae.decoder.apply(ae.encoder.apply(x)) as tf.Tensor;
}

/** Mean L1 over a split, and which latent units are ever non-zero. */
export function evaluate(ae: Autoencoder, data: MnistSplit, batch = 1000): { l1: number; activeLatents: number } {
  let total = 0;
  let active: Float32Array | undefined;
  for (let start = 0; start < data.count; start += batch) {
    const idx = Array.from({ length: Math.min(batch, data.count - start) }, (_, i) => start + i);
    tf.tidy(() => {
      const x = batchTensor(data, idx);
      const z = ae.encoder.apply(x) as tf.Tensor2D;
      total += tf.sum(tf.abs(tf.sub(ae.decoder.apply(z) as tf.Tensor, x))).dataSync()[0];
      const zMax = tf.max(z, 0).dataSync() as Float32Array;
      active = active ? active.map((v, i) => Math.max(v, zMax[i])) : Float32Array.from(zMax);
    });
  }
  return { l1: total / (data.count * 784), activeLatents: active ? active.filter((v) => v > 0).length : 0 };
}

/**
 * A net is dead when its latent is zero for every image or its output is the same for every
 * image: with ReLU after every layer (as the question has it), including the latent and the
 * output, either can happen at init or early in training, and then no gradient reaches the
 * encoder again. a2 re-draws such a net (from the same seeded stream) up to `config.restarts`
 * times, at init and after epoch 1, and reports how often it did.
 */
function isDead(ae: Autoencoder, x: tf.Tensor4D): boolean {
  return tf.tidy(() => {
    const z = ae.encoder.apply(x) as tf.Tensor;
    const y = ae.decoder.apply(z) as tf.Tensor;
    const spread = tf.sub(tf.max(y, 0), tf.min(y, 0)).max().dataSync()[0];
    return tf.max(z).dataSync()[0] <= 0 || spread <= 0;
  });
}

export async function trainAutoencoder(
  build: () => Autoencoder,
  data: { train: MnistSplit; test: MnistSplit },
  config: AutoencoderConfig,
  ctx: RunContext,
  label: string,
  rng: () => number,
): Promise<{ ae: Autoencoder; result: LambdaResult }> {
  const result: LambdaResult = { trainLoss: [], testLoss: [], finalTestL1: NaN, epochSeconds: [], activeLatents: 0, restarts: 0 };
  const probe = batchTensor(
    data.train,
    Array.from({ length: Math.min(256, data.train.count) }, (_, i) => i),
  );
  const rebuild = (why: string, old?: Autoencoder) => {
    result.restarts++;
    ctx.log(`${label}: ${why}; drawing a fresh net (restart ${result.restarts} of ${config.restarts})`);
    old?.encoder.dispose();
    old?.decoder.dispose();
    return build();
  };
  let ae = build();
  while (isDead(ae, probe) && result.restarts < config.restarts) ae = rebuild('the new net is dead (constant latent or output)', ae);
  let optimizer = tf.train.adam(config.lr);
  const watch = new LossWatch(label, config.lr, ctx.options.overrides.lr !== undefined);
  for (let epoch = 1; epoch <= config.epochs; epoch++) {
    const weights = [...ae.encoder.trainableWeights, ...ae.decoder.trainableWeights].map((w) => w.read() as tf.Variable);
    const started = performance.now();
    const order = permutation(data.train.count, rng);
    const progress = epochProgress(`${label} epoch ${epoch}/${config.epochs}`, data.train.count, (l) => ctx.log(l));
    let sum = 0;
    for (let start = 0; start < data.train.count; start += config.batchSize) {
      await ctx.yieldOrStop();
      const idx = order.subarray(start, Math.min(start + config.batchSize, data.train.count));
      const loss = tf.tidy(() => {
        const x = batchTensor(data.train, idx);
        return optimizer.minimize(() => l1(reconstruct(ae, x), x), true, weights) as tf.Scalar;
      });
      const value = (await loss.data())[0];
      loss.dispose();
      if (!Number.isFinite(value)) progress.stop();
      watch.check(value, epoch, start / config.batchSize + 1);
      sum += value * idx.length;
      progress.tick(idx.length, value);
    }
    const trainLoss = sum / data.train.count;
    const test = evaluate(ae, data.test);
    progress.stop(`train L1 ${trainLoss.toFixed(4)} test L1 ${test.l1.toFixed(4)} active latents ${test.activeLatents}`);
    if (epoch === 1 && result.restarts < config.restarts && isDead(ae, probe)) {
      ae = rebuild('the net died in epoch 1 (constant latent or output)', ae);
      while (isDead(ae, probe) && result.restarts < config.restarts) ae = rebuild('the new net is dead (constant latent or output)', ae);
      optimizer.dispose();
      optimizer = tf.train.adam(config.lr);
      epoch = 0;
      continue;
    }
    result.trainLoss.push(trainLoss);
    result.testLoss.push(test.l1);
    result.activeLatents = test.activeLatents;
    result.epochSeconds.push((performance.now() - started) / 1000);
  }
  optimizer.dispose();
  probe.dispose();
  result.finalTestL1 = result.testLoss[result.testLoss.length - 1];
  return { ae, result };
}

/** The first test image of each digit 0–9. */
export function onePerClass(data: MnistSplit): number[] {
  return Array.from({ length: 10 }, (_, d) => data.labels.indexOf(d)).filter((i) => i >= 0);
}

export function imageOf(pixels: Float32Array | Uint8Array, index = 0) {
  return { pixels: pixels.subarray(index * 784, (index + 1) * 784), width: 28, height: 28, channels: 1 as const };
}

const L1_AXIS = 'L1: mean |output − input| per pixel';

/** Trains every λ, saves models and summaries, and writes loss.png, figure.png, reconstructions.png. */
export async function runAutoencoderExperiment(
  config: AutoencoderConfig,
  ctx: RunContext,
  title: string,
  build: (lambda: number) => Autoencoder,
) {
  const data = loadAutoencoderData(config, ctx);
  const rng = makeRng(ctx.seed);
  const results: Record<string, LambdaResult> = {};
  const models: Record<number, Autoencoder> = {};
  for (const lambda of config.lambdas) {
    const { ae, result } = await trainAutoencoder(() => build(lambda), data, config, ctx, `λ=${lambda}`, rng);
    results[lambda] = result;
    ctx.writeText(`models/lambda-${lambda}/summary.txt`, `encoder\n${modelSummary(ae.encoder)}\ndecoder\n${modelSummary(ae.decoder)}`);
    await saveModel(ae.encoder, ctx.path(`models/lambda-${lambda}/encoder`));
    await saveModel(ae.decoder, ctx.path(`models/lambda-${lambda}/decoder`));
    models[lambda] = ae;
  }

  const lossRows = config.lambdas.flatMap((lambda) =>
    results[lambda].trainLoss.flatMap((train, i) => [
      { epoch: i + 1, curve: `λ = ${lambda} train`, l1: train },
      { epoch: i + 1, curve: `λ = ${lambda} test`, l1: results[lambda].testLoss[i] },
    ]),
  );
  await ctx.writeFigure(
    'loss',
    lineChart({
      title: `${title}: L1 loss per epoch`,
      x: 'epoch',
      y: 'l1',
      yTitle: L1_AXIS,
      series: 'curve',
      rows: lossRows,
      points: true,
    }),
  );

  const samples = onePerClass(data.test);
  const inputs = batchTensor(data.test, samples);
  const outputs = Object.fromEntries(
    config.lambdas.map((lambda) => [lambda, tf.tidy(() => reconstruct(models[lambda], inputs)).dataSync() as Float32Array]),
  );
  const inputPixels = inputs.dataSync() as Float32Array;
  inputs.dispose();

  const sixPanels: Panel[][] = [];
  for (const lambda of config.lambdas) {
    const curve = await ctx.writeFigure(
      `loss-lambda-${lambda}`,
      lineChart({
        title: `λ = ${lambda}: L1 per epoch`,
        x: 'epoch',
        y: 'l1',
        yTitle: L1_AXIS,
        series: 'curve',
        points: true,
        width: 300,
        height: 220,
        rows: lossRows.filter((r) => r.curve.startsWith(`λ = ${lambda} `)),
      }),
    );
    sixPanels.push([
      { title: `λ = ${lambda}: L1 loss, train and test`, image: curve },
      { title: 'sample input', image: imageOf(inputPixels, 0) },
      { title: `reconstruction, λ = ${lambda}`, image: imageOf(outputs[lambda], 0) },
    ]);
  }
  ctx.writeBytes('figure.png', await panelGrid(sixPanels, { title, cell: 220 }));
  const rows: Panel[][] = [
    samples.map((_, i) => ({ title: `digit ${data.test.labels[samples[i]]}`, image: imageOf(inputPixels, i) })),
    ...config.lambdas.map((lambda) => samples.map((_, i) => ({ image: imageOf(outputs[lambda], i) }))),
  ];
  ctx.writeBytes(
    'reconstructions.png',
    await panelGrid(rows, {
      title: `${title}: ten test digits and their reconstructions`,
      cell: 84,
      rowLabels: ['input', ...config.lambdas.map((l) => `λ = ${l}`)],
    }),
  );

  ctx.manifestExtras.epochSeconds = Object.fromEntries(config.lambdas.map((l) => [l, results[l].epochSeconds]));
  ctx.manifestExtras.imagesPerSecond = Object.fromEntries(
    config.lambdas.map((l) => [l, results[l].epochSeconds.map((s) => Math.round(data.train.count / s))]),
  );
  ctx.writeText('observations.md', observations({ title, config, results, trainCount: data.train.count }));
  return {
    epochs: config.epochs,
    batchSize: config.batchSize,
    lr: config.lr,
    trainImages: data.train.count,
    testImages: data.test.count,
    lambdas: Object.fromEntries(
      config.lambdas.map((l) => [
        l,
        {
          trainLoss: results[l].trainLoss,
          testLoss: results[l].testLoss,
          finalTestL1: results[l].finalTestL1,
          activeLatents: results[l].activeLatents,
          restarts: results[l].restarts,
        },
      ]),
    ),
  };
}

/** The numbers an autoencoder experiment's observations are written from. */
export interface AutoencoderFacts {
  title: string;
  config: Pick<AutoencoderConfig, 'lambdas' | 'epochs' | 'batchSize' | 'lr'>;
  results: Record<string, Pick<LambdaResult, 'trainLoss' | 'testLoss' | 'finalTestL1' | 'activeLatents' | 'restarts'>>;
  trainCount: number;
}

function lambdaLine(lambda: number, r: AutoencoderFacts['results'][string]): string {
  const last = r.testLoss.length - 1;
  const trend =
    last > 0
      ? r.testLoss[last] < r.testLoss[last - 1]
        ? 'still falling at the last epoch'
        : 'no longer falling at the last epoch'
      : 'measured after one epoch';
  const latents =
    r.activeLatents < lambda
      ? `only ${r.activeLatents} of ${lambda} latent units are non-zero for any test image (the ReLU on the latent layer switched the others off)`
      : `all ${lambda} latent units are non-zero for some test image`;
  const restarts = r.restarts
    ? `; the net was re-drawn ${r.restarts} time(s) because it was dead (constant latent or output) at init or after epoch 1`
    : '';
  return (
    `- λ = ${lambda}: test L1 ${r.testLoss[0].toFixed(4)} after epoch 1 → ${r.finalTestL1.toFixed(4)} after epoch ${last + 1} ` +
    `(${trend}); train L1 ${r.trainLoss[last].toFixed(4)}; ${latents}${restarts}.`
  );
}

/** observations.md of Q2.1/Q2.2: every sentence from the measured numbers, each claim only where they show it. */
export function observations({ title, config, results, trainCount }: AutoencoderFacts): string {
  const [small, large] = [Math.min(...config.lambdas), Math.max(...config.lambdas)];
  const a = results[small],
    b = results[large];
  const lines = [
    `# ${title}: observations`,
    '',
    `*Written from the measured numbers: ${config.epochs} epochs over ${trainCount} training images, ` +
      `batch ${config.batchSize}, Adam lr ${config.lr}, L1 loss.*`,
    '',
    ...config.lambdas.map((lambda) => lambdaLine(lambda, results[lambda])),
    '',
  ];
  if (a && b && small !== large) {
    const ratio = a.finalTestL1 / b.finalTestL1;
    lines.push(
      `With λ = ${large} the final test L1 is ${ratio.toFixed(2)}× ${ratio > 1 ? 'lower' : 'higher'} than with λ = ${small} ` +
        `(${b.finalTestL1.toFixed(4)} vs ${a.finalTestL1.toFixed(4)}).`,
    );
    if (ratio > 1) {
      // Overfitting shows as test L1 above train L1; the λ difference is capacity only if those gaps are small next to it.
      const gapSmall = a.testLoss.at(-1)! - a.trainLoss.at(-1)!,
        gapLarge = b.testLoss.at(-1)! - b.trainLoss.at(-1)!;
      const difference = a.finalTestL1 - b.finalTestL1;
      const gaps = `test − train L1 is ${gapSmall.toFixed(4)} at λ = ${small} and ${gapLarge.toFixed(4)} at λ = ${large}`;
      lines.push(
        Math.max(gapSmall, gapLarge) < difference / 4
          ? `${small} numbers per image carry less than ${large} (reconstructions.png shows the same ten test digits through both nets). ` +
              `The ${gaps}, each under a quarter of the ${difference.toFixed(4)} between the two λ, ` +
              'so the difference in loss is one of capacity, not of overfitting.'
          : `The ${gaps}, not small next to the ${difference.toFixed(4)} between the two λ: ` +
              'these numbers do not tell capacity from overfitting.',
      );
    } else lines.push('Here the larger bottleneck did not help; see the loss curves for whether training had converged.');
  }
  return `${lines.join('\n')}\n`;
}

// ---- What both q2 experiments declare: metrics, artefacts, report answer and headline.

export type AutoencoderMetrics = Awaited<ReturnType<typeof runAutoencoderExperiment>>;
export type AutoencoderExperiment = Experiment<AutoencoderConfig, AutoencoderMetrics>;

const lambdaSchema = obj({ trainLoss: numbers, testLoss: numbers, finalTestL1: num });
const modelFiles = (lambda: number): Artefact[] => [
  { file: `models/lambda-${lambda}/summary.txt`, kind: 'text' },
  ...['encoder', 'decoder'].flatMap((part): Artefact[] => [
    { file: `models/lambda-${lambda}/${part}/model.json`, kind: 'json', schema: obj({ modelTopology: { type: 'object' } }) },
    { file: `models/lambda-${lambda}/${part}/weights.bin`, kind: 'bytes' },
  ]),
];

/** The declarations of a q2 experiment, under its report heading. */
export function autoencoderOutputs(title: string): Pick<AutoencoderExperiment, 'headline' | 'artefacts' | 'metricsSchema' | 'report'> {
  return {
    headline: (m) =>
      Object.entries(m.lambdas)
        .map(([l, r]) => `test L1 λ=${l} ${r.finalTestL1.toFixed(4)}`)
        .join(', '),
    artefacts: [
      ...figures('loss'),
      { file: 'figure.png', kind: 'png' },
      { file: 'reconstructions.png', kind: 'png' },
      { file: 'observations.md', kind: 'md' },
      ...modelFiles(2),
      ...modelFiles(32),
    ],
    metricsSchema: obj({ epochs: num, batchSize: num, lr: num, lambdas: obj({ 2: lambdaSchema, 32: lambdaSchema }) }),
    report: {
      title,
      figures: ['figure', 'loss', 'reconstructions'],
      answer: (m) =>
        `${m.epochs} epochs, batch ${m.batchSize}, Adam lr ${m.lr}, ${m.trainImages} training images.\n\n| λ | final test L1 | active latent units |\n| --- | --- | --- |\n` +
        Object.entries(m.lambdas)
          .map(([l, r]) => `| ${l} | ${r.finalTestL1.toFixed(4)} | ${r.activeLatents} |`)
          .join('\n'),
    },
  };
}
