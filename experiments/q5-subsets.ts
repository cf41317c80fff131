// Question 5.2 — test accuracy against the number of training images: 1, 10, 100 and 1000 images
// per class (class-balanced, the same images in every run) and the full set, always tested on all
// 10,000 test images. Each size gets its own small search over learning rate and weight decay,
// chosen on validation images drawn from the training set outside every subset (the test set
// picks nothing); every trial is recorded. The full-set point is q5-cifar's run (run first if missing).
//   npx a2 run q5-subsets                  the last run's duration: outputs/q5-subsets/run.json
//   npx a2 run q5-subsets --resume         skip the sizes an interrupted run finished
import path from 'node:path';
import { loadCifar } from '../src/data/index.js';
import { lineChart, markdownTable } from '../src/plot/index.js';
import { figures, list, num, obj } from '../src/report/declare.js';
import { type Experiment, type RunContext, finishedParts, readJson } from '../src/run/index.js';
import { NO_TTA, RECIPE, type Recipe, balancedSubset, evaluate, firstN, pct, train } from './cifar.js';
import { experiment as fullRun } from './q5-cifar.js';

/** One subset size and what is tried on it: every lr × weight decay, for `steps` optimizer steps. */
interface SizePlan {
  perClass: number;
  steps: number;
  batchSize: number;
  lrs: number[];
  weightDecays: number[];
}

interface Config extends Recipe {
  validationPerClass: number; // validation images per class, taken after the largest subset in the fixed order
  testImages: number; // 0 = all 10,000
  sizes: SizePlan[];
}

const defaults: Config = {
  ...RECIPE,
  validationPerClass: 500,
  testImages: 0,
  // Steps grow with the data (the smaller sets are memorised long before). Learning rates centre on
  // the recipe's rate per image (lr / batchSize) times each size's batch; weight decay widens to 10×
  // the recipe's where data is scarce.
  sizes: [
    { perClass: 1, steps: 300, batchSize: 10, lrs: [0.015, 0.05], weightDecays: [0.009, 0.09] },
    { perClass: 10, steps: 400, batchSize: 50, lrs: [0.04, 0.08], weightDecays: [0.009, 0.09] },
    { perClass: 100, steps: 600, batchSize: 128, lrs: [0.1, 0.2], weightDecays: [0.009, 0.09] },
    { perClass: 1000, steps: 800, batchSize: 256, lrs: [0.2, 0.4], weightDecays: [0.009] },
  ],
};

interface Trial {
  lr: number;
  weightDecay: number;
  validationAcc: number;
  seconds: number;
}
interface SizeResult {
  perClass: number;
  images: number;
  trainAcc: number;
  testAcc: number;
  validationAcc: number;
  hyper: {
    epochs: number;
    batchSize: number;
    steps: number;
    lr: number;
    weightDecay: number;
    warmup: number;
    labelSmoothing: number;
  };
  tried: Trial[];
}

interface FullRunMetrics {
  trainImages?: number;
  finalTestAcc: number; // with the recipe's test-time views, as the subsets are tested
  epochs: { trainAcc: number; testAcc: number }[];
}

async function run(config: Config, ctx: RunContext) {
  // The full set: q5-cifar's run, its last epoch's training accuracy (the running one over augmented
  // batches) and its final weights' test accuracy with the test-time views, as each subset is tested.
  const { dir, run: full } = await ctx.outputsBuiltOn(fullRun);
  const fullMetrics = readJson<FullRunMetrics>(path.join(dir, 'metrics.json'));
  const last = fullMetrics.epochs[fullMetrics.epochs.length - 1];
  const fullConfig = full.config as Recipe & { trainImages: number };
  // Runs before trainImages was in metrics.json have it only as config (0 = all 50,000).
  const fullImages = fullMetrics.trainImages ?? (fullConfig.trainImages || 50000);
  const fullTrain = loadCifar(ctx.dataDir, 'train', ctx.dataFiles);
  const testSplit = firstN(loadCifar(ctx.dataDir, 'test', ctx.dataFiles), config.testImages);
  const largest = Math.max(...config.sizes.map((s) => s.perClass));
  const validation = balancedSubset(fullTrain, config.validationPerClass, largest);
  ctx.log(`validation: ${validation.count} training images outside every subset; test: ${testSplit.count} images`);
  const parts = finishedParts<SizeResult>(ctx.path('checkpoints'), ctx.options.resume ?? false);

  const results: SizeResult[] = [];
  for (const plan of config.sizes) {
    const key = `${plan.perClass}`;
    const saved = parts.done(key);
    if (saved) {
      ctx.log(`${plan.perClass}/class: done in the interrupted run, kept`);
      results.push(saved);
      continue;
    }
    const subset = balancedSubset(fullTrain, plan.perClass);
    const batchSize = Math.min(plan.batchSize, subset.count);
    const epochs = Math.max(1, Math.ceil((plan.steps * batchSize) / subset.count));
    const tried: Trial[] = [];
    let best: { model: Awaited<ReturnType<typeof train>>['model']; trial: Trial } | undefined;
    for (const lr of plan.lrs) {
      for (const weightDecay of plan.weightDecays) {
        const started = performance.now();
        const recipe = { ...config, epochs, batchSize, lr, weightDecay };
        const { model, epochs: records } = await train(recipe, subset, validation, ctx, {
          label: `${plan.perClass}/class lr ${lr} wd ${weightDecay}`,
          evalEveryEpoch: false,
        });
        const trial = {
          lr,
          weightDecay,
          validationAcc: records[records.length - 1].testAcc,
          seconds: (performance.now() - started) / 1000,
        };
        tried.push(trial);
        ctx.log(`${plan.perClass}/class lr ${lr} wd ${weightDecay}: validation ${pct(trial.validationAcc)}`);
        if (!best || trial.validationAcc > best.trial.validationAcc) {
          best?.model.dispose();
          best = { model, trial };
        } else model.dispose();
      }
    }
    const chosen = best!;
    const result: SizeResult = {
      perClass: plan.perClass,
      images: subset.count,
      trainAcc: evaluate(chosen.model, subset, NO_TTA).acc,
      testAcc: evaluate(chosen.model, testSplit, config).acc,
      validationAcc: chosen.trial.validationAcc,
      hyper: {
        epochs,
        batchSize,
        steps: plan.steps,
        lr: chosen.trial.lr,
        weightDecay: chosen.trial.weightDecay,
        warmup: config.warmup,
        labelSmoothing: config.labelSmoothing,
      },
      tried,
    };
    chosen.model.dispose();
    ctx.log(
      `${plan.perClass}/class: chose lr ${result.hyper.lr}, wd ${result.hyper.weightDecay} → train ${pct(result.trainAcc)}, test ${pct(result.testAcc)}`,
    );
    parts.record(key, result);
    results.push(result);
  }

  const subsets = [
    ...results,
    {
      perClass: fullImages / 10,
      images: fullImages,
      trainAcc: last.trainAcc,
      testAcc: fullMetrics.finalTestAcc,
      hyper: {
        epochs: fullConfig.epochs,
        batchSize: fullConfig.batchSize,
        lr: fullConfig.lr,
        weightDecay: fullConfig.weightDecay,
        source: `q5-cifar run of ${full.startedAt}`,
      },
    },
  ];

  const rows = subsets.flatMap((s) => [
    { images: s.images, accuracy: s.trainAcc, split: 'training' },
    { images: s.images, accuracy: s.testAcc, split: 'testing' },
  ]);
  await ctx.writeFigure(
    'subsets',
    lineChart({
      title: 'Q5.2 accuracy vs number of training images',
      x: 'images',
      y: 'accuracy',
      xTitle: 'training images (log scale)',
      yTitle: 'accuracy (% of images)',
      yFormat: '%',
      series: 'split',
      rows,
      logX: true,
      points: true,
    }),
  );
  const tuning = markdownTable(
    ['per class', 'lr', 'weight decay', 'validation acc', 'seconds', 'chosen'],
    results.flatMap((r) =>
      r.tried.map((t) => [
        String(r.perClass),
        String(t.lr),
        String(t.weightDecay),
        pct(t.validationAcc),
        t.seconds.toFixed(0),
        t.lr === r.hyper.lr && t.weightDecay === r.hyper.weightDecay ? '✓' : '',
      ]),
    ),
  );
  ctx.writeText('tuning.md', `# Q5.2 tuning: every trial, chosen on ${validation.count} validation images\n\n${tuning}\n`);
  ctx.writeText('observations.md', `${observations(subsets, results, validation.count)}\n`);
  return { validationImages: validation.count, testImages: testSplit.count, subsets };
}

/** Where a choice sits on the edge of what was tried, so the best value may lie beyond it. */
function gridEdges(r: SizeResult): string {
  const edges = (['lr', 'weightDecay'] as const).flatMap((key) => {
    const values = [...new Set(r.tried.map((t) => t[key]))].sort((a, b) => a - b);
    if (values.length < 2) return [];
    const name = key === 'lr' ? 'lr' : 'weight decay';
    if (r.hyper[key] === values[0]) return [`${name} at the low edge of its grid`];
    if (r.hyper[key] === values[values.length - 1]) return [`${name} at the high edge of its grid`];
    return [];
  });
  return edges.length ? `; ${edges.join(', ')}` : '';
}

/**
 * What the numbers show, said only where they show it. `subsets` ends with the full set, whose
 * training accuracy is q5-cifar's running accuracy on augmented images; the subsets' is the clean
 * accuracy of their final weights, so train/test gaps are compared among the subsets only.
 */
export function observations(
  subsets: { images: number; trainAcc: number; testAcc: number }[],
  tuned: SizeResult[],
  validationImages: number,
): string {
  const measuredAlike = subsets.slice(0, -1);
  const gaps = measuredAlike.map((s) => 100 * (s.trainAcc - s.testAcc));
  const rising = subsets.every((s, i) => i === 0 || s.testAcc >= subsets[i - 1].testAcc);
  const perTenfold = subsets
    .slice(1)
    .map((s, i) => `${subsets[i].images} → ${s.images}: ${(100 * (s.testAcc - subsets[i].testAcc)).toFixed(1)} points`);
  return [
    '# Question 5.2: observations',
    '',
    '*Written from the measured numbers of this run.*',
    '',
    ...subsets.map((s) => `- ${s.images} training images: train ${pct(s.trainAcc)}, test ${pct(s.testAcc)}`),
    '',
    gaps.every((g) => g > 0)
      ? `Training accuracy (clean, final weights) is above test accuracy at every subset size (gap ${Math.min(...gaps).toFixed(1)}–` +
        `${Math.max(...gaps).toFixed(1)} points), widest at ${measuredAlike[gaps.indexOf(Math.max(...gaps))].images} images; the full ` +
        "set's training accuracy is q5-cifar's running accuracy on augmented images, measured otherwise, so it is left out here."
      : `Training accuracy (clean, final weights) is not above test accuracy at every subset size (gaps ${gaps.map((g) => g.toFixed(1)).join(', ')} points).`,
    rising
      ? 'Test accuracy rises with every increase in the number of training images.'
      : 'Test accuracy does not rise at every step in the number of training images.',
    `Test accuracy gained per step: ${perTenfold.join('; ')}.`,
    '',
    `Tuning (${validationImages} validation images, every trial in tuning.md): ` +
      tuned
        .map((r) => {
          const accs = r.tried.map((t) => t.validationAcc);
          return `${r.perClass}/class chose lr ${r.hyper.lr}, weight decay ${r.hyper.weightDecay} (validation ${pct(Math.min(...accs))}–${pct(Math.max(...accs))} over ${accs.length} trial${accs.length === 1 ? '' : 's'}${gridEdges(r)})`;
        })
        .join('; ') +
      '.',
  ].join('\n');
}

// ---- What this experiment declares: its metrics, artefacts, report section and sources.

type Metrics = Awaited<ReturnType<typeof run>>;

export const experiment: Experiment<Config, Metrics> = {
  name: 'q5-subsets',
  defaults,
  // Each subset size trains for its own steps with its own batch size and lr grid (`sizes`).
  notSetByFlags: {
    epochs: 'each subset size sets its own number of epochs from its step budget (sizes in experiments/q5-subsets.ts)',
    batchSize: 'each subset size sets its own batch size (sizes in experiments/q5-subsets.ts)',
    lr: 'each subset size sets its own learning rates, tuned on validation images (sizes in experiments/q5-subsets.ts)',
  },
  profiles: {
    quick: {
      widths: [24, 32, 64, 64],
      validationPerClass: 100,
      testImages: 2000,
      sizes: [
        { perClass: 1, steps: 150, batchSize: 10, lrs: [0.015, 0.05], weightDecays: [0.009] },
        { perClass: 10, steps: 200, batchSize: 50, lrs: [0.04, 0.08], weightDecays: [0.009] },
        { perClass: 100, steps: 300, batchSize: 128, lrs: [0.2], weightDecays: [0.009] },
      ],
    },
    smoke: {
      widths: [24, 8, 16, 16],
      validationPerClass: 10,
      testImages: 200,
      sizes: [
        { perClass: 1, steps: 4, batchSize: 10, lrs: [0.05], weightDecays: [0.009, 0.09] },
        { perClass: 10, steps: 4, batchSize: 50, lrs: [0.05], weightDecays: [0.009] },
      ],
    },
  },
  run,
  headline: (m) => m.subsets.map((s) => `${s.images}: ${pct(s.testAcc)}`).join(', '),
  // Its last point is q5-cifar's run, trained by q5-cifar.ts with the shared recipe.
  sources: ['experiments/q5-subsets.ts', 'experiments/q5-cifar.ts', 'experiments/cifar.ts'],
  artefacts: [...figures('subsets'), { file: 'tuning.md', kind: 'md' }, { file: 'observations.md', kind: 'md' }],
  metricsSchema: obj({
    validationImages: num,
    subsets: list(
      obj({ perClass: num, images: num, trainAcc: num, testAcc: num, hyper: obj({ lr: num, weightDecay: num, epochs: num }) }),
      2,
    ),
  }),
  report: {
    title: 'Q5.2 — Accuracy against the number of training images',
    figures: ['subsets'],
    answer: (m) =>
      `| per class | images | train acc | test acc | lr | weight decay | epochs |\n| --- | --- | --- | --- | --- | --- | --- |\n` +
      m.subsets
        .map(
          (s) =>
            `| ${s.perClass} | ${s.images} | ${pct(s.trainAcc, 2)} | ${pct(s.testAcc, 2)} | ${s.hyper.lr} | ${s.hyper.weightDecay} | ${s.hyper.epochs} |`,
        )
        .join('\n') +
      `\n\nEach size's lr and weight decay were chosen on ${m.validationImages} validation images outside every subset (every trial: \`q5-subsets/tuning.md\`); the last row is q5-cifar's run.`,
  },
};
