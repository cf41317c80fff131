// Question 3 — common features. The q2-conv-ae models encode all 60,000 training images;
// the mean latent μ = (1/60000)·Σ z_i is decoded for λ = 2 and 32. Beyond the question:
// the ten per-class mean latents decoded, and the λ = 2 latents of the test set in 2-D.
//   npx a2 run q3-mean-latent        uses outputs/q2-conv-ae (trains it first if missing or stale)
import { existsSync } from 'node:fs';
import path from 'node:path';
import { experiment as convAutoencoder } from './q2-conv-ae.js';
import { type AutoencoderConfig, imageOf } from './autoencoder.js';
import { type MnistSplit, loadMnist } from '../src/data/index.js';
import { type Panel, type TopLevelSpec, panelGrid } from '../src/plot/index.js';
import { figures, list, num, obj } from '../src/report/declare.js';
import { type Experiment, type RunContext, loadModel } from '../src/run/index.js';
import { tf } from '../src/tensor/index.js';

interface Config {
  batch: number; // images encoded at once
  trainImages: number; // training images averaged into μ (0 = all 60,000, as the question asks)
  scatterImages: number; // test images in the 2-D latent map (0 = all)
}

const defaults: Config = { batch: 2000, trainImages: 0, scatterImages: 0 };

/** Latents of every image of a split, n × λ. */
function encodeAll(encoder: tf.LayersModel, data: MnistSplit, batch: number): Float32Array[] {
  const latents: Float32Array[] = [];
  for (let start = 0; start < data.count; start += batch) {
    const n = Math.min(batch, data.count - start);
    const z = tf.tidy(
      () => encoder.predict(tf.tensor4d(data.images.subarray(start * 784, (start + n) * 784), [n, 28, 28, 1])) as tf.Tensor2D,
    );
    const values = z.dataSync() as Float32Array;
    const width = z.shape[1];
    z.dispose();
    for (let i = 0; i < n; i++) latents.push(values.slice(i * width, (i + 1) * width));
  }
  return latents;
}

function mean(vectors: Float32Array[]): number[] {
  const sum = new Float64Array(vectors[0].length);
  for (const v of vectors)
    v.forEach((x, i) => {
      sum[i] += x;
    });
  return Array.from(sum, (s) => s / vectors.length);
}

/** mean(decoder(z)) over every latent, decoded a batch at a time. */
function meanDecoded(decoder: tf.LayersModel, latents: Float32Array[], batch: number): number[] {
  const sum = new Float64Array(784);
  for (let start = 0; start < latents.length; start += batch) {
    const images = decode(
      decoder,
      latents.slice(start, start + batch).map((v) => Array.from(v)),
    );
    for (const image of images) for (let i = 0; i < 784; i++) sum[i] += image[i];
  }
  return Array.from(sum, (s) => s / latents.length);
}

function decode(decoder: tf.LayersModel, latents: number[][]): Float32Array[] {
  const out = tf.tidy(() => decoder.predict(tf.tensor2d(latents)) as tf.Tensor);
  const pixels = out.dataSync() as Float32Array;
  out.dispose();
  return latents.map((_, i) => pixels.slice(i * 784, (i + 1) * 784));
}

/** outputs/q2-conv-ae, trained first unless it holds models with the settings this profile implies. */
async function ensureConvModels(ctx: RunContext): Promise<{ dir: string; lambdas: number[] }> {
  const encoder = (dir: string, l: number) => path.join(dir, 'models', `lambda-${l}`, 'encoder', 'model.json');
  const { dir, run } = await ctx.outputsBuiltOn(convAutoencoder, (landed) =>
    (landed.config as AutoencoderConfig).lambdas.every((l) => existsSync(encoder(ctx.outputsOf(convAutoencoder.name), l))),
  );
  return { dir, lambdas: (run.config as AutoencoderConfig).lambdas };
}

interface LambdaResult {
  mu: number[];
  classMeans: number[][];
  deadUnits: number;
  muVsPixelMeanL1: number;
  /** Mean |decoder(μ) − mean(decoder(z))| per pixel: what the decoder's non-linearity alone moves. */
  muVsMeanDecodedL1: number;
  nearestClassMeanAccuracy: number;
}

/** How well the latent space separates digits: test images labelled by the nearest training class mean. */
function nearestMeanAccuracy(latents: Float32Array[], labels: Uint8Array, classMeans: number[][]): number {
  let right = 0;
  latents.forEach((z, i) => {
    let best = -1,
      bestDistance = Infinity;
    classMeans.forEach((m, d) => {
      const distance = m.reduce((s, v, k) => s + (v - z[k]) ** 2, 0);
      if (distance < bestDistance) {
        bestDistance = distance;
        best = d;
      }
    });
    if (best === labels[i]) right++;
  });
  return right / latents.length;
}

function latentScatter(latents: Float32Array[], labels: Uint8Array, limit: number): TopLevelSpec {
  const n = limit > 0 ? Math.min(limit, latents.length) : latents.length;
  // A latent unit the ReLU switched off is the same value for every image: its axis would have one
  // tick repeated. Such an axis gets a unit-wide domain around the value and the title says why.
  const constant = [0, 1].map((k) => {
    const values = latents.slice(0, n).map((z) => z[k]);
    return Math.min(...values) === Math.max(...values) ? values[0] : undefined;
  });
  const axis = (k: number) =>
    constant[k] === undefined
      ? { field: `z${k + 1}`, type: 'quantitative' as const }
      : { field: `z${k + 1}`, type: 'quantitative' as const, scale: { domain: [constant[k]! - 1, constant[k]! + 1] } };
  const dead = constant.flatMap((v, k) => (v === undefined ? [] : [`z${k + 1} = ${v} for every image (a dead latent unit)`]));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: `Q3: λ = 2 latents of ${n} test images, coloured by digit`,
      ...(dead.length ? { subtitle: `${dead.join('; ')}: the codes lie on a line` } : {}),
    },
    width: 460,
    height: 400,
    data: { values: Array.from({ length: n }, (_, i) => ({ z1: latents[i][0], z2: latents[i][1], digit: String(labels[i]) })) },
    mark: { type: 'circle', size: 8, opacity: 0.5 },
    encoding: {
      x: axis(0),
      y: axis(1),
      color: { field: 'digit', type: 'nominal', scale: { scheme: 'category10' } },
    },
  } as TopLevelSpec;
}

async function run(config: Config, ctx: RunContext) {
  const { dir, lambdas } = await ensureConvModels(ctx);
  const train = loadMnist(ctx.dataDir, 'train', ctx.dataFiles, config.trainImages || undefined);
  const test = loadMnist(ctx.dataDir, 'test', ctx.dataFiles);
  const pixelMean = mean(Array.from({ length: train.count }, (_, i) => train.images.subarray(i * 784, (i + 1) * 784)));
  const results: Record<string, LambdaResult> = {};
  const decodedMu: Panel[] = [];
  const classRows: Panel[][] = [];
  for (const lambda of lambdas) {
    const encoder = await loadModel(path.join(dir, 'models', `lambda-${lambda}`, 'encoder'));
    const decoder = await loadModel(path.join(dir, 'models', `lambda-${lambda}`, 'decoder'));
    const z = encodeAll(encoder, train, config.batch);
    const mu = mean(z);
    const classMeans = Array.from({ length: 10 }, (_, d) => mean(z.filter((_, i) => train.labels[i] === d)));
    const [muImage, ...classImages] = decode(decoder, [mu, ...classMeans]);
    const testZ = encodeAll(encoder, test, config.batch);
    results[lambda] = {
      mu,
      classMeans,
      deadUnits: mu.filter((m) => m === 0).length,
      muVsPixelMeanL1: muImage.reduce((s, v, i) => s + Math.abs(v - pixelMean[i]), 0) / 784,
      muVsMeanDecodedL1: ((decodedMean) => muImage.reduce((s, v, i) => s + Math.abs(v - decodedMean[i]), 0) / 784)(
        meanDecoded(decoder, z, config.batch),
      ),
      nearestClassMeanAccuracy: nearestMeanAccuracy(testZ, test.labels, classMeans),
    };
    decodedMu.push({ title: `decoder(μ), λ = ${lambda}`, image: imageOf(muImage) });
    classRows.push(classImages.map((img, d) => ({ title: `${d}`, image: imageOf(img) })));
    ctx.log(
      `λ = ${lambda}: μ over ${z.length} images = [${mu
        .slice(0, 4)
        .map((m) => m.toFixed(3))
        .join(', ')}${mu.length > 4 ? ', …' : ''}]`,
    );
    if (lambda === 2) await ctx.writeFigure('latent-2d', latentScatter(testZ, test.labels, config.scatterImages));
    encoder.dispose();
    decoder.dispose();
  }
  ctx.writeBytes(
    'mean-latent.png',
    await panelGrid([decodedMu], { title: `Q3: the mean latent μ of ${train.count} training images, decoded`, cell: 200 }),
  );
  ctx.writeBytes(
    'class-means.png',
    await panelGrid(classRows, { title: 'Per-class mean latents, decoded', cell: 72, rowLabels: lambdas.map((l) => `λ = ${l}`) }),
  );
  ctx.writeText('observations.md', observations(results, lambdas, train.count));
  return { images: train.count, lambdas: results };
}

/** Mean |Δ| per pixel (pixels in [0, 1]) above which decoder(μ) is said to differ from the pixel mean. */
const DIFFERS_PER_PIXEL = 0.01;

/** observations.md of Q3: every sentence from the measured numbers, each claim only where they show it. */
export function observations(
  results: Record<string, Pick<LambdaResult, 'mu' | 'deadUnits' | 'muVsPixelMeanL1' | 'muVsMeanDecodedL1' | 'nearestClassMeanAccuracy'>>,
  lambdas: number[],
  images: number,
): string {
  const lines = [
    '# Question 3: observations',
    '',
    `*Written from the measured numbers: μ is the mean latent of ${images} training images under the q2-conv-ae encoders.*`,
    '',
  ];
  for (const l of lambdas) {
    const r = results[l];
    lines.push(
      `- λ = ${l}: μ has ${r.mu.length - r.deadUnits} non-zero of ${r.mu.length} components (largest ${Math.max(...r.mu).toFixed(3)}); ` +
        `decoder(μ) differs from the pixel-mean image of the data by a mean |Δ| of ${r.muVsPixelMeanL1.toFixed(4)} per pixel ` +
        `and from the mean of the decoded images, mean(decoder(z)), by ${r.muVsMeanDecodedL1.toFixed(4)}; ` +
        `labelling test images by the nearest class-mean latent is right ${(100 * r.nearestClassMeanAccuracy).toFixed(1)}% of the time.`,
    );
  }
  const differs = lambdas.filter((l) => results[l].muVsPixelMeanL1 > DIFFERS_PER_PIXEL);
  lines.push(
    '',
    'Decoding μ gives one image, the same for every instance: what the weights and biases hold in common across the data set (mean-latent.png). ' +
      (differs.length === lambdas.length
        ? `It is not the pixel average of the data (mean |Δ| above ${DIFFERS_PER_PIXEL} per pixel for every λ).`
        : `At λ = ${lambdas.filter((l) => !differs.includes(l)).join(', ')} it is within ${DIFFERS_PER_PIXEL} per pixel of the pixel average of the data.`),
  );
  // The pixel average also holds each image's reconstruction error; mean(decoder(z)) does not, so only
  // a difference from it shows the decoder's non-linearity at work.
  const nonLinear = lambdas.filter((l) => results[l].muVsMeanDecodedL1 > DIFFERS_PER_PIXEL);
  lines.push(
    nonLinear.length > 0
      ? `At λ = ${nonLinear.join(', ')} decoder(μ) also differs from mean(decoder(z)) by more than ${DIFFERS_PER_PIXEL} per pixel: ` +
          'the decoder is non-linear, so decoding the mean code is not averaging the decoded images.'
      : `At every λ decoder(μ) is within ${DIFFERS_PER_PIXEL} per pixel of mean(decoder(z)): here the decoder acts on the mean code almost linearly.`,
  );
  const [small, large] = [results[Math.min(...lambdas)], results[Math.max(...lambdas)]];
  if (small && large && small !== large) {
    const better = large.nearestClassMeanAccuracy > small.nearestClassMeanAccuracy;
    lines.push(
      `The per-class mean latents (class-means.png) separate the digits ${better ? 'better' : 'no better'} ` +
        `at λ = ${Math.max(...lambdas)} than at λ = ${Math.min(...lambdas)} (nearest-class-mean accuracy ` +
        `${(100 * large.nearestClassMeanAccuracy).toFixed(1)}% vs ${(100 * small.nearestClassMeanAccuracy).toFixed(1)}%); ` +
        'latent-2d.png shows the λ = 2 codes of the ten digits.',
    );
  }
  return `${lines.join('\n')}\n`;
}

// ---- What this experiment declares: its metrics, artefacts, report section and sources.

type Metrics = Awaited<ReturnType<typeof run>>;

const muOf = (size: number) => obj({ mu: { ...list(num, size), maxItems: size } });

export const experiment: Experiment<Config, Metrics> = {
  name: 'q3-mean-latent',
  defaults,
  profiles: { quick: { trainImages: 20000 }, smoke: { trainImages: 2000, scatterImages: 1000 } },
  run,
  headline: (m) =>
    Object.entries(m.lambdas)
      .map(([l, r]) => `λ=${l}: class means separate ${(100 * r.nearestClassMeanAccuracy).toFixed(0)}%`)
      .join(', '),
  // It reads q2-conv-ae's models: that net's code is part of what its result depends on.
  sources: ['experiments/q3-mean-latent.ts', 'experiments/q2-conv-ae.ts', 'experiments/autoencoder.ts'],
  artefacts: [
    { file: 'mean-latent.png', kind: 'png' },
    { file: 'class-means.png', kind: 'png' },
    ...figures('latent-2d'),
    { file: 'observations.md', kind: 'md' },
  ],
  metricsSchema: obj({ lambdas: obj({ 2: muOf(2), 32: muOf(32) }) }),
  report: {
    title: 'Q3 — Common features: the mean latent decoded',
    figures: ['mean-latent', 'class-means', 'latent-2d'],
    answer: (m) =>
      Object.entries(m.lambdas)
        .map(
          ([l, r]) =>
            `- λ = ${l}: μ = [${r.mu
              .slice(0, 8)
              .map((v) => v.toFixed(3))
              .join(', ')}${r.mu.length > 8 ? ', …' : ''}]`,
        )
        .join('\n'),
  },
};
