// Question 5 — what each part of the q5-cifar recipe contributes. The whole recipe and one
// variant per part (that part removed or changed, everything else equal, the same initial weights
// and data order where the shapes allow) train on all 50,000 images for the recipe's own epochs,
// tested on all 10,000; the recipe is also run on a second seed, so each difference can be read
// against seed-to-seed noise. Test-time augmentation costs no training: every variant is tested
// with and without it.
//   npx a2 run q5-ablations               8 runs of the recipe's 8 epochs, only the last one tested (~15 min each here)
//   npx a2 run q5-ablations --resume      skip the variants an interrupted run finished
import { isDeepStrictEqual } from 'node:util';
import { CIFAR_CLASSES, loadCifar } from '../src/data/index.js';
import { barChart, markdownTable } from '../src/plot/index.js';
import { figures, list, num, obj, str } from '../src/report/declare.js';
import { type Experiment, type RunContext, finishedParts } from '../src/run/index.js';
import { type EpochRecord, RECIPE, type Recipe, NO_TTA, evaluate, firstN, pct, train } from './cifar.js';

/** One run: the recipe with `change` applied, on the run's seed plus `seedOffset`. */
interface Variant {
  name: string;
  change: Partial<Recipe>;
  seedOffset?: number;
}

interface Config extends Recipe {
  trainImages: number; // 0 = all 50,000
  testImages: number; // 0 = all 10,000
  variants: Variant[];
}

const defaults: Config = {
  ...RECIPE,
  trainImages: 0,
  testImages: 0,
  variants: [
    { name: 'recipe', change: {} },
    { name: 'recipe, next seed', change: {}, seedOffset: 1 },
    { name: 'no whitening stem (learned 3×3 conv)', change: { whiten: false, widths: [32, ...RECIPE.widths.slice(1)] } },
    { name: 'no Lookahead', change: { lookahead: false } },
    { name: 'random flip, not alternating', change: { altFlip: false } },
    { name: 'BN scale learned, bias at the base lr', change: { bnScale: true, bnBiasLrScale: 1 } },
    { name: 'no identity init', change: { dirac: false } },
    { name: 'no label smoothing', change: { labelSmoothing: 0 } },
  ],
};

interface VariantResult {
  name: string;
  change: Partial<Recipe>;
  seed: number;
  testAcc: number;
  testAccNoTta: number;
  trainAcc: number;
  seconds: number;
  epochs: EpochRecord[];
}

async function run(config: Config, ctx: RunContext) {
  const trainSplit = firstN(loadCifar(ctx.dataDir, 'train', ctx.dataFiles), config.trainImages);
  const testSplit = firstN(loadCifar(ctx.dataDir, 'test', ctx.dataFiles), config.testImages);
  ctx.log(`${config.variants.length} variants, ${config.epochs} epochs each on ${trainSplit.count} images, tested on ${testSplit.count}`);
  const parts = finishedParts<VariantResult>(ctx.path('checkpoints'), ctx.options.resume ?? false);

  const results: VariantResult[] = [];
  for (const variant of config.variants) {
    const saved = parts.done(variant.name);
    if (saved) {
      ctx.log(`${variant.name}: done in the interrupted run, kept`);
      results.push(saved);
      continue;
    }
    const seed = ctx.seed + (variant.seedOffset ?? 0);
    const recipe: Recipe = { ...config, ...variant.change };
    // Only the last epoch is tested: the per-epoch curve is q5-cifar's, and evaluating costs time here.
    const { model, epochs } = await train(recipe, trainSplit, testSplit, ctx, { label: variant.name, seed, evalEveryEpoch: false });
    const last = epochs[epochs.length - 1];
    const result = {
      name: variant.name,
      change: variant.change,
      seed,
      testAcc: last.testAcc,
      testAccNoTta: evaluate(model, testSplit, NO_TTA).acc,
      trainAcc: last.trainAcc,
      seconds: epochs.reduce((s, e) => s + e.seconds, 0),
      epochs,
    };
    model.dispose();
    parts.record(variant.name, result);
    results.push(result);
  }

  const [recipe] = results;
  const noise = seedSpread(results);
  const rows = [
    ...results.map((r) => ({ label: r.name, value: r.testAcc })),
    { label: 'recipe, no test-time augmentation', value: recipe.testAccNoTta },
  ];
  // The variants differ by tenths of a point: the axis spans the results, whole points around them.
  const low = Math.max(0, Math.floor(100 * Math.min(...rows.map((r) => r.value))) - 1) / 100;
  const high = Math.min(100, Math.ceil(100 * Math.max(...rows.map((r) => r.value))) + 1) / 100;
  await ctx.writeFigure(
    'ablations',
    barChart({
      title: `Q5 ablations: test accuracy after ${config.epochs} epoch${config.epochs === 1 ? '' : 's'}`,
      rows,
      axis: `test accuracy (% of images; the axis starts at ${pct(low, 0)})`,
      domain: [low, high],
    }),
  );
  const table = markdownTable(
    ['variant', 'test acc', 'without test-time augmentation', 'train acc', 'vs recipe (points)', 'seconds', 'vs recipe (seconds)'],
    results.map((r) => [
      r.name,
      pct(r.testAcc, 2),
      pct(r.testAccNoTta, 2),
      pct(r.trainAcc, 2),
      signed(100 * (r.testAcc - recipe.testAcc), 2),
      r.seconds.toFixed(0),
      signed(r.seconds - recipe.seconds, 0),
    ]),
  );
  ctx.writeText('ablations.md', `# Q5 ablations (${config.epochs} epochs, ${trainSplit.count} training images)\n\n${table}`);

  // What makes these runs other than the recipe q5-cifar trains (a profile, a flag): said with every reading.
  const differsFromRecipe: string[] = (Object.keys(RECIPE) as (keyof Recipe)[]).filter(
    (key) => !isDeepStrictEqual(config[key], RECIPE[key]),
  );
  if (config.trainImages !== 0) differsFromRecipe.push('trainImages');
  ctx.writeText(
    'observations.md',
    observations({
      epochs: config.epochs,
      trainImages: trainSplit.count,
      testImages: testSplit.count,
      results,
      differsFromRecipe,
    }),
  );
  return {
    classes: CIFAR_CLASSES,
    epochs: config.epochs,
    trainImages: trainSplit.count,
    testImages: testSplit.count,
    seedToSeedPoints: noise.withTta,
    seedToSeedPointsNoTta: noise.withoutTta,
    variants: results,
  };
}

/** The numbers the ablation observations are written from. */
export interface AblationFacts {
  epochs: number;
  trainImages: number;
  testImages: number;
  results: Pick<VariantResult, 'name' | 'change' | 'testAcc' | 'testAccNoTta' | 'seconds'>[]; // the recipe first
  differsFromRecipe: string[]; // the settings in which these runs are not q5-cifar's recipe (none at the full profile)
}

/** "+0.20", "-0.39", "0.00": a difference with its sign, never "-0". */
function signed(value: number, digits: number): string {
  const rounded = Number(value.toFixed(digits));
  return rounded > 0 ? `+${rounded.toFixed(digits)}` : rounded < 0 ? rounded.toFixed(digits) : (0).toFixed(digits);
}

/**
 * How far the unchanged recipe's test accuracy spread over its seeds, in points, with the
 * test-time views and on one view (the recipe first in `results`, its reruns unchanged).
 */
function seedSpread(results: Pick<VariantResult, 'change' | 'testAcc' | 'testAccNoTta'>[]): { withTta: number; withoutTta: number } {
  const seeds = results.filter((r) => JSON.stringify(r.change) === '{}');
  const spread = (accs: number[]) => 100 * (Math.max(...accs) - Math.min(...accs));
  return { withTta: spread(seeds.map((r) => r.testAcc)), withoutTta: spread(seeds.map((r) => r.testAccNoTta)) };
}

/** observations.md of the ablations: every sentence from the measured numbers, each claim only where they show it. */
export function observations({ epochs, trainImages, testImages, results, differsFromRecipe }: AblationFacts): string {
  const [recipe, ...others] = results;
  const reruns = others.filter((r) => JSON.stringify(r.change) === '{}');
  // A few seeds measure the noise thinly: a difference counts only beyond the wider of the two spreads.
  const spread = seedSpread(results);
  const noise = Math.max(spread.withTta, spread.withoutTta);
  const verdict = (delta: number) =>
    Math.abs(delta) <= noise
      ? "within the seeds' spread: not shown at one run each"
      : delta < 0
        ? 'lower by more than the seeds differ: the part helps at this budget'
        : 'higher by more than the seeds differ: at this budget the part costs accuracy';
  const tta = results.map((r) => 100 * (r.testAcc - r.testAccNoTta));
  const lines = [
    '# Q5 ablations: observations',
    '',
    `*Written from the measured numbers of this run: ${epochs} epochs on ${trainImages} training images, tested on ${testImages}; ` +
      "every variant starts from the recipe's initial weights and data order, except where its change makes that impossible " +
      '(another seed; other widths, whose weights have other shapes).*',
    '',
    reruns.length > 0
      ? `- The recipe reached ${pct(recipe.testAcc, 2)}; on other seeds ${reruns.map((r) => pct(r.testAcc, 2)).join(', ')}: ` +
        `seed-to-seed difference ${spread.withTta.toFixed(2)} points (${spread.withoutTta.toFixed(2)} without test-time augmentation). ` +
        `${reruns.length + 1} seeds measure the noise thinly, so below a difference counts as the part's effect only beyond the wider ` +
        `spread, ${noise.toFixed(2)} points. The same work took ${recipe.seconds.toFixed(0)} s and ` +
        `${reruns.map((r) => `${r.seconds.toFixed(0)} s`).join(', ')}: a variant's seconds that differ from the recipe's by no more ` +
        "than that reflect the machine's load, not the change."
      : `- The recipe reached ${pct(recipe.testAcc, 2)}; it ran on one seed only, so no difference below is read against seed noise.`,
    ...others
      .filter((r) => JSON.stringify(r.change) !== '{}')
      .map((r) => {
        const delta = 100 * (r.testAcc - recipe.testAcc);
        const reading = reruns.length > 0 ? `, ${verdict(delta)}` : '';
        return (
          `- ${r.name}: ${pct(r.testAcc, 2)} (${signed(delta, 2)} points${reading}); ` +
          `${r.seconds.toFixed(0)} s vs the recipe's ${recipe.seconds.toFixed(0)} s.`
        );
      }),
    `- Test-time augmentation (the mirror${RECIPE.translateTta ? ' and one-pixel shifts' : ''}) changed test accuracy by ` +
      `${Math.min(...tta).toFixed(2)} to ${Math.max(...tta).toFixed(2)} points across the ${results.length} runs ` +
      `(recipe: ${pct(recipe.testAccNoTta, 2)} without it).`,
  ];
  if (differsFromRecipe.length > 0)
    lines.push(
      '',
      `These runs differ from q5-cifar's recipe in ${differsFromRecipe.join(', ')} (${epochs} epochs here); the recipe itself ` +
        'was not ablated, so a part that does not help here is not thereby shown useless there.',
    );
  return `${lines.join('\n')}\n`;
}

// ---- What this experiment declares: its metrics, artefacts, report section and sources.

type Metrics = Awaited<ReturnType<typeof run>>;

export const experiment: Experiment<Config, Metrics> = {
  name: 'q5-ablations',
  defaults,
  profiles: {
    quick: {
      epochs: 2,
      batchSize: 256,
      lr: 0.375,
      trainImages: 10000,
      testImages: 2000,
      widths: [24, 32, 64, 64],
      variants: defaults.variants.map((v) => (v.change.widths ? { ...v, change: { ...v.change, widths: [16, 32, 64, 64] } } : v)),
    },
    smoke: {
      epochs: 1,
      batchSize: 64,
      lr: 0.1,
      trainImages: 300,
      testImages: 200,
      widths: [24, 8, 16, 16],
      warmup: 0.5,
      variants: defaults.variants.map((v) => (v.change.widths ? { ...v, change: { ...v.change, widths: [8, 8, 16, 16] } } : v)),
    },
  },
  run,
  headline: ({ variants, seedToSeedPoints, seedToSeedPointsNoTta }) => {
    const [recipe, ...others] = variants;
    const worst = others.reduce((a, b) => (b.testAcc < a.testAcc ? b : a));
    const drop = 100 * (worst.testAcc - recipe.testAcc);
    return `recipe ${pct(recipe.testAcc, 2)} (seeds differ ${seedToSeedPoints.toFixed(2)}, ${seedToSeedPointsNoTta.toFixed(2)} on one view); ${drop < 0 ? `biggest drop: ${worst.name} ${drop.toFixed(2)} points` : 'no variant below the recipe'}`;
  },
  sources: ['experiments/q5-ablations.ts', 'experiments/cifar.ts'],
  artefacts: [...figures('ablations'), { file: 'ablations.md', kind: 'md' }, { file: 'observations.md', kind: 'md' }],
  metricsSchema: obj({
    epochs: num,
    seedToSeedPoints: num,
    seedToSeedPointsNoTta: num,
    variants: list(
      obj({
        name: str,
        change: { type: 'object' },
        seed: num,
        testAcc: num,
        testAccNoTta: num,
        trainAcc: num,
        seconds: num,
      }),
      2,
    ),
  }),
  report: {
    title: 'Q5 — What each part of the recipe contributes (ablations)',
    figures: ['ablations'],
    answer: (_m, files) => files.markdown('ablations.md'),
  },
};
