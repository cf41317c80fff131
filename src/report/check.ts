// Checks what a run of every experiment must leave in outputs/: the expected files, PNGs that
// decode, and metrics.json / run.json that match their schemas. Used by CI and the tests.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type JSONSchemaType } from 'ajv';
import { loadImage } from 'canvas';

type Schema = Record<string, unknown>;
const num = { type: 'number' },
  numbers = { type: 'array', items: num };
const obj = (required: Record<string, unknown>, extra: Schema = {}) => ({
  type: 'object',
  required: Object.keys(required),
  properties: required,
  ...extra,
});
const adamRecords = { type: 'array', minItems: 1, items: obj({ t: num, g: num, m: num, v: num, mHat: num, vHat: num, x: num }) };
const autoencoderMetrics = obj({
  epochs: num,
  batchSize: num,
  lr: num,
  lambdas: obj({
    2: obj({ trainLoss: numbers, testLoss: numbers, finalTestL1: num }),
    32: obj({ trainLoss: numbers, testLoss: numbers, finalTestL1: num }),
  }),
});

/** Per experiment: the files a run must write and the shape of its metrics.json. */
export const EXPECTED: Record<string, { files: string[]; metrics: Schema }> = {
  'q1-adam': {
    files: [
      'q11-gd-trajectory.png',
      'q11-gd-curve.png',
      'q12-threshold.png',
      'q13-moments.png',
      'q14-relu.png',
      'q14-sigmoid.png',
      'q14-abs.png',
      'observations.md',
    ],
    metrics: obj({
      gd: obj({ h: num, lr: num, x: numbers, outcome: { enum: ['cycle', 'escaped', 'converged'] }, cycle: numbers }),
      adamMaxH: obj({ rounded: num, exact: num, escapesAt: num, failsAt: num }),
      q13: obj({ h: num, trace: adamRecords }),
      q14: obj({ relu: adamRecords, sigmoid: adamRecords, abs: adamRecords }),
    }),
  },
  'q2-fc-ae': {
    files: [
      'loss.png',
      'figure.png',
      'reconstructions.png',
      'observations.md',
      'models/lambda-2/encoder/model.json',
      'models/lambda-32/decoder/weights.bin',
    ],
    metrics: autoencoderMetrics,
  },
  'q2-conv-ae': {
    files: [
      'loss.png',
      'figure.png',
      'reconstructions.png',
      'observations.md',
      'models/lambda-2/summary.txt',
      'models/lambda-32/encoder/model.json',
    ],
    metrics: autoencoderMetrics,
  },
  'q3-mean-latent': {
    files: ['mean-latent.png', 'class-means.png', 'latent-2d.png', 'observations.md'],
    metrics: obj({
      lambdas: obj({
        2: obj({ mu: { ...numbers, minItems: 2, maxItems: 2 } }),
        32: obj({ mu: { ...numbers, minItems: 32, maxItems: 32 } }),
      }),
    }),
  },
  'q4-ops': {
    files: ['tfjs_conv1d_out.pt', 'my_conv1d_out.pt', 'linear_weight.pt', 'linear_bias.pt'],
    metrics: obj({
      ops: obj(
        Object.fromEntries(
          ['maxpool1d', 'avgpool1d', 'conv1d', 'sigmoid', 'batchnorm1d', 'linear'].map((op) => [
            op,
            obj({ shape: numbers, tfjs: numbers, mine: numbers, maxAbsDiff: num }),
          ]),
        ),
      ),
    }),
  },
  'q5-cifar': {
    files: ['train-loss.png', 'train-acc.png', 'test-loss.png', 'test-acc.png', 'curves.png', 'observations.md'],
    metrics: obj({
      epochs: {
        type: 'array',
        minItems: 1,
        items: obj({ epoch: num, trainLoss: num, trainAcc: num, testLoss: num, testAcc: num, seconds: num }),
      },
      finalTestAcc: num,
      bestTestAcc: num,
      wallSeconds: num,
    }),
  },
  'q5-subsets': {
    files: ['subsets.png', 'tuning.md', 'observations.md'],
    metrics: obj({
      validationImages: num,
      subsets: {
        type: 'array',
        minItems: 2,
        items: obj({ perClass: num, images: num, trainAcc: num, testAcc: num, hyper: obj({ lr: num, weightDecay: num, epochs: num }) }),
      },
    }),
  },
  'q5-ablations': {
    files: ['ablations.png', 'ablations.md', 'observations.md'],
    metrics: obj({
      epochs: num,
      seedToSeedPoints: num,
      variants: {
        type: 'array',
        minItems: 2,
        items: obj({
          name: { type: 'string' },
          change: { type: 'object' },
          seed: num,
          testAcc: num,
          testAccNoFlipTta: num,
          trainAcc: num,
          seconds: num,
        }),
      },
    }),
  },
  'q6-rf': {
    files: ['table.md', 'table.png'],
    metrics: obj({
      rows: {
        type: 'array',
        minItems: 1,
        items: obj({
          row: num,
          layers: { type: 'array', items: { type: 'string' } },
          receptiveField: num,
          perLayer: { type: 'array' },
          jump: num,
          empirical: num,
        }),
      },
    }),
  },
};

const RUN_SCHEMA = obj({
  experiment: { type: 'string' },
  profile: { type: 'string' },
  seed: num,
  config: { type: 'object' },
  backend: obj({ name: { type: 'string' } }),
  packages: { type: 'object' },
  dataFiles: { type: 'array' },
  startedAt: { type: 'string' },
  durationSeconds: num,
});

/** Problems found in outputs/<experiment>; empty when everything is there and valid. */
export async function checkOutputs(outRoot: string, experiments: string[]): Promise<string[]> {
  const ajv = new Ajv({ allErrors: true });
  const problems: string[] = [];
  for (const name of experiments) {
    const dir = path.join(outRoot, name);
    const expected = EXPECTED[name];
    for (const [file, schema] of [
      ['metrics.json', expected.metrics],
      ['run.json', RUN_SCHEMA],
    ] as const) {
      const full = path.join(dir, file);
      if (!existsSync(full)) {
        problems.push(`${full}: missing`);
        continue;
      }
      const validate = ajv.compile(schema as unknown as JSONSchemaType<unknown>);
      if (!validate(JSON.parse(readFileSync(full, 'utf8')))) problems.push(`${full}: ${ajv.errorsText(validate.errors)}`);
    }
    const { files } = expected;
    for (const file of files) if (!existsSync(path.join(dir, file))) problems.push(`${path.join(dir, file)}: missing`);
    const pngs = files.filter((f) => f.endsWith('.png'));
    for (const png of pngs) {
      const full = path.join(dir, png);
      if (!existsSync(full)) continue;
      try {
        const img = await loadImage(readFileSync(full));
        if (img.width < 10 || img.height < 10) problems.push(`${full}: decodes to ${img.width}×${img.height}`);
      } catch (err) {
        problems.push(`${full}: not a PNG that decodes (${(err as Error).message})`);
      }
    }
  }
  return problems;
}
