// Question 5.1 — a conv net from layers, trained from scratch on all 50,000 CIFAR-10 training
// images and tested on all 10,000 test images every epoch (one view each, for the curves), and its
// final weights with the recipe's test-time views. The recipe is in cifar.ts; what each of its
// parts contributes is measured by q5-ablations, accuracy against training-set size by q5-subsets.
//   npx a2 run q5-cifar                 the recipe: 8 epochs, 1.30e14 training FLOPs (results: outputs/q5-cifar)
//   npx a2 run q5-cifar --epochs 60
//   npx a2 run q5-cifar --resume        continue an interrupted run from its last completed epoch
import { CIFAR_CLASSES, loadCifar } from '../src/data/index.js';
import { type TopLevelSpec, lineChart, panelGrid } from '../src/plot/index.js';
import { figures, list, num, obj } from '../src/report/declare.js';
import type { Experiment, RunContext } from '../src/run/index.js';
import { forwardFlops } from '../src/tensor/index.js';
import { type EpochRecord, NO_TTA, RECIPE, type Recipe, balancedSubset, evaluate, firstN, pct, train, ttaViews } from './cifar.js';

interface Config extends Recipe {
  trainImages: number; // 0 = all 50,000
  testImages: number; // 0 = all 10,000
  /**
   * > 0: hold this many training images out (a tenth of them per class) and evaluate on them
   * instead of the test set, which then plays no part: how the recipe was tuned.
   */
  validationImages: number;
}

const defaults: Config = { ...RECIPE, trainImages: 0, testImages: 0, validationImages: 0 };

/** Test accuracies whose first crossing is reported (time to accuracy); 94% is airbench94's mark. */
export const ACCURACY_TARGETS = [0.9, 0.93, 0.94];

/** When test accuracy first reached `target`: epoch, and the wall seconds and training FLOPs spent until then. */
export interface Milestone {
  target: number;
  epoch: number | null;
  seconds: number | null;
  flops: number | null;
}

/**
 * First epoch whose test accuracy is at least each target (null when never), with the training
 * FLOPs and the wall seconds a run stopping there would take: every epoch's training, and that
 * epoch's evaluation (the earlier evaluations only drew the curve).
 */
export function timeToAccuracy(
  epochs: Pick<EpochRecord, 'epoch' | 'testAcc' | 'seconds' | 'evalSeconds'>[],
  flopsPerEpoch: number,
  targets = ACCURACY_TARGETS,
): Milestone[] {
  return targets.map((target) => {
    const at = epochs.findIndex((e) => e.testAcc >= target);
    if (at < 0) return { target, epoch: null, seconds: null, flops: null };
    const training = epochs.slice(0, at + 1).reduce((sum, e) => sum + e.seconds - (e.evalSeconds ?? 0), 0);
    return { target, epoch: epochs[at].epoch, seconds: training + (epochs[at].evalSeconds ?? 0), flops: flopsPerEpoch * (at + 1) };
  });
}

/**
 * The epochs as time to accuracy reads them: the last one with the final weights' result over
 * every test-time view, and that pass (not its one-view pass) as its evaluation, since a run
 * stopping there would run only it.
 */
export function asTested(epochs: EpochRecord[], finalTest: FinalTest | undefined): EpochRecord[] {
  if (!finalTest) return epochs;
  const last = epochs[epochs.length - 1];
  const training = last.seconds - last.evalSeconds;
  return [
    ...epochs.slice(0, -1),
    { ...last, testAcc: finalTest.acc, testLoss: finalTest.loss, seconds: training + finalTest.seconds, evalSeconds: finalTest.seconds },
  ];
}

/**
 * The least label-smoothed cross-entropy any prediction can reach: the entropy of the smoothed
 * target (1 − ε + ε/K on the true class, ε/K on each other one). The training loss cannot fall
 * below it, while the test loss (no smoothing) can approach 0.
 */
export function smoothedLossFloor(smoothing: number, classes = 10): number {
  const onTrue = 1 - smoothing + smoothing / classes,
    onOther = smoothing / classes;
  const term = (p: number) => (p > 0 ? -p * Math.log(p) : 0);
  return term(onTrue) + (classes - 1) * term(onOther);
}

const CURVES = [
  ['trainLoss', 'training loss'],
  ['trainAcc', 'training accuracy'],
  ['testLoss', 'testing loss'],
  ['testAcc', 'testing accuracy'],
] as const;

/** Why a curve reads as it does, under its title: what the training numbers include. */
function curveNote(key: (typeof CURVES)[number][0], smoothing: number): string | undefined {
  if (key === 'trainLoss' && smoothing > 0) {
    const floor = smoothedLossFloor(smoothing).toFixed(2);
    return `label-smoothed (ε = ${smoothing}): cannot fall below ${floor}; the testing loss has no smoothing`;
  }
  if (key === 'trainAcc') return 'on augmented images, while the weights move (running over each epoch)';
  return undefined;
}

/** The final weights tested with the recipe's test-time views (absent when it has none). */
export interface FinalTest {
  views: number;
  acc: number;
  loss: number;
  seconds: number;
}

const viewsLabel = (views: number) => `final weights, ${views} test-time views`;

export function curve(
  epochs: EpochRecord[],
  key: (typeof CURVES)[number][0],
  title: string,
  smoothing: number,
  finalTest?: FinalTest,
): TopLevelSpec {
  const smoothed = key === 'trainLoss' && smoothing > 0;
  const axis = smoothed ? `training loss (label-smoothed ${smoothing})` : title;
  const isAccuracy = key.endsWith('Acc');
  const tested = key === 'testAcc' || key === 'testLoss';
  const series = tested ? 'each epoch, one view' : title;
  const last = epochs[epochs.length - 1];
  const finalPoint =
    tested && finalTest && last
      ? [{ epoch: last.epoch, [title]: key === 'testAcc' ? finalTest.acc : finalTest.loss, curve: viewsLabel(finalTest.views) }]
      : [];
  return lineChart({
    title: `Q5.1 ${title} vs epoch`,
    subtitle:
      curveNote(key, smoothing) ??
      (tested && finalTest ? `each epoch on one view of each image; the final weights also on ${finalTest.views}` : undefined),
    x: 'epoch',
    y: title,
    yTitle: isAccuracy ? `${title} (% of images)` : `${axis} (cross-entropy, nats)`,
    yFormat: isAccuracy ? '%' : undefined,
    series: 'curve',
    points: true,
    width: 380,
    height: 240,
    rows: [...epochs.map((e) => ({ epoch: e.epoch, [title]: e[key], curve: series })), ...finalPoint],
  });
}

/** Test accuracy against cumulative wall-clock seconds (training and each epoch's evaluation). */
export function accuracyVsSeconds(epochs: EpochRecord[], finalTest?: FinalTest): TopLevelSpec {
  let elapsed = 0;
  const rows = epochs.map((e) => {
    elapsed += e.seconds;
    return { seconds: elapsed, 'testing accuracy': e.testAcc, curve: 'each epoch, one view' };
  });
  if (finalTest) rows.push({ seconds: elapsed + finalTest.seconds, 'testing accuracy': finalTest.acc, curve: viewsLabel(finalTest.views) });
  return lineChart({
    title: 'Q5.1 testing accuracy vs wall-clock time',
    subtitle: `one point per epoch; seconds include each epoch’s test pass${finalTest ? ' (and the final one with every view)' : ''}`,
    x: 'seconds',
    y: 'testing accuracy',
    xTitle: 'wall-clock seconds since the start of training',
    yTitle: 'testing accuracy (% of images)',
    yFormat: '%',
    series: 'curve',
    points: true,
    width: 380,
    height: 240,
    rows,
  });
}

/** The numbers observations.md is written from. */
export interface Q5Facts {
  profile: string;
  trainImages: number;
  batchSize: number;
  widths: number[];
  labelSmoothing: number;
  epochs: EpochRecord[]; // each tested on one view
  finalTest: FinalTest | undefined; // the final weights with the recipe's test-time views
  forwardFlopsPerImage: number;
  trainingFlops: number;
  wallSeconds: number; // training, each epoch's test pass and the final one
  totalSeconds: number; // the whole run, data loading and figures included
  milestones: Milestone[];
}

const epochCount = (n: number) => `${n} epoch${n === 1 ? '' : 's'}`;
const points = (delta: number) => `${delta >= 0 ? '+' : ''}${(100 * delta).toFixed(2)} points`;

function milestoneLine(m: Milestone, facts: Q5Facts, best: string): string {
  const target = pct(m.target, 0);
  if (m.epoch === null || m.seconds === null || m.flops === null)
    return `- ${target}: not reached in ${facts.epochs.length} epochs (${best}).`;
  return `- ${target}: first reached at epoch ${m.epoch} of ${facts.epochs.length}, after ${m.flops.toExponential(2)} training FLOPs and ${m.seconds.toFixed(0)} s (training to that epoch and its test pass).`;
}

/** Why 90% is hard, in this run's numbers: how late it is crossed and how far train runs ahead of test. */
function whyNinetyIsHard(epochs: EpochRecord[], finalTest: FinalTest | undefined): string[] {
  const crossed = epochs.find((e) => e.testAcc >= 0.9);
  const last = epochs[epochs.length - 1];
  const half = epochs[Math.max(0, Math.ceil(epochs.length / 2) - 1)];
  const gap = last.trainAcc - last.testAcc;
  // What the final weights did with every view, after what one view did.
  const withViews = (oneViewReached: boolean) => {
    if (!finalTest) return '';
    const reached = finalTest.acc >= 0.9;
    const verdict = oneViewReached ? (reached ? 'reached it too' : 'fell below it') : reached ? 'reached it' : 'did not either';
    return `; with ${finalTest.views} test-time views the final weights ${verdict} (${pct(finalTest.acc, 2)})`;
  };
  const lines = [
    crossed
      ? `- One-view test accuracy first reached 90% at epoch ${crossed.epoch} of ${epochs.length}${withViews(true)}.`
      : `- One-view test accuracy never reached 90% in ${epochs.length} epochs (best ${pct(Math.max(...epochs.map((e) => e.testAcc)), 2)})${withViews(false)}.`,
  ];
  // Training accuracy is measured on augmented images while the weights move, so it understates
  // how well the final weights fit the training set: the misses it counts are an upper bound on
  // the final weights' misses there, and the gap to test accuracy a lower bound.
  const measured = 'Measured that way it understates how well the final weights fit their training images';
  if (gap > 0.01) {
    const [missed, unfit] = [1 - last.testAcc, 1 - last.trainAcc];
    const amount = (share: number) => `${(100 * share).toFixed(2)} points`;
    lines.push(
      `- Training accuracy (on augmented images, while the weights move) ended ${points(gap)} above one-view test accuracy. ` +
        `${measured}, so of the ${amount(missed)} one view misses, at most ${amount(unfit)} are missed on training images too ` +
        `and at least ${amount(gap)} are lost only on unseen ones` +
        (gap > unfit
          ? ': most of the missing points are lost in generalising.'
          : '; these numbers do not say which part is the larger (clean training images scored with the final weights would).'),
    );
  } else
    lines.push(
      `- Training accuracy (on augmented images, while the weights move) ended ${points(gap)} from one-view test accuracy. ` +
        `${measured}, so this does not show whether fitting or generalising limits the accuracy.`,
    );
  if (half !== last)
    lines.push(
      `- The first ${epochCount(half.epoch)} reached ${pct(half.testAcc, 2)} one-view test accuracy; ` +
        `the remaining ${epochCount(last.epoch - half.epoch)}, the learning rate going from ${half.lr.toExponential(1)} to ${last.lr.toExponential(1)}, ` +
        `changed it by ${points(last.testAcc - half.testAcc)}.`,
    );
  return lines;
}

/** Where the epochs' seconds went: the training steps, the rest of the training loop, the test passes. */
function timeSplit(epochs: EpochRecord[], finalTest: FinalTest | undefined): string[] {
  if (!epochs.every((e) => Number.isFinite(e.stepSeconds))) return [];
  const sum = (f: (e: EpochRecord) => number) => epochs.reduce((s, e) => s + f(e), 0);
  const [all, steps, tests] = [sum((e) => e.seconds), sum((e) => e.stepSeconds), sum((e) => e.evalSeconds)];
  const s = (seconds: number) => `${seconds.toFixed(1)} s`;
  return [
    `- Of the epochs' ${s(all)}${finalTest ? ` (the final ${finalTest.views}-view test apart)` : ''}, the training steps ` +
      `(forward, backward and update) took ${s(steps)} (${pct(steps / all)}), batch assembly, augmentation, Lookahead and the loop's ` +
      `bookkeeping ${s(all - steps - tests)}, the one-view test passes ${s(tests)}.`,
  ];
}

/** observations.md: every sentence from the run's numbers, each claim only where they show it. */
export function observations(facts: Q5Facts): string {
  const { epochs, finalTest } = facts;
  const last = epochs[epochs.length - 1];
  const best = Math.max(...epochs.map((e) => e.testAcc));
  const result = finalTest?.acc ?? last.testAcc;
  const floor = smoothedLossFloor(facts.labelSmoothing);
  const lossNote =
    facts.labelSmoothing > 0
      ? `- The training loss is label-smoothed (ε = ${facts.labelSmoothing}), so it cannot fall below ${floor.toFixed(3)}; ` +
        `the testing loss has no smoothing. Final training loss ${last.trainLoss.toFixed(3)}, one-view testing loss ${last.testLoss.toFixed(3)}` +
        (last.trainLoss > last.testLoss && last.trainLoss - floor < last.testLoss
          ? `: the training loss is the higher of the two, but only ${(last.trainLoss - floor).toFixed(3)} above its floor, ` +
            'less than the testing loss: the smoothing, not a worse fit, puts it higher.'
          : '.')
      : `- Final training loss ${last.trainLoss.toFixed(3)}, one-view testing loss ${last.testLoss.toFixed(3)} (no label smoothing).`;
  return `${[
    '# Question 5.1: observations',
    '',
    `*Written from the measured numbers of this run (${facts.profile} profile). ` +
      'What each part of the recipe contributes: q5-ablations; accuracy against training-set size: q5-subsets.*',
    '',
    `- ${facts.trainImages} training images, ${epochs.length} epochs, batch ${facts.batchSize}, widths ${facts.widths.join('/')}: ` +
      `final test accuracy ${pct(result, 2)}` +
      (finalTest ? ` with ${finalTest.views} test-time views (one view ${pct(last.testAcc, 2)})` : '') +
      `, best epoch on one view ${pct(best, 2)}, training accuracy ${pct(last.trainAcc, 2)}.`,
    ...(finalTest
      ? [
          `- The ${finalTest.views} views changed the final weights' test accuracy by ${points(finalTest.acc - last.testAcc)} over one view, ` +
            `for ${finalTest.seconds.toFixed(1)} s of testing; each epoch's one-view test pass took ${(epochs.reduce((s, e) => s + e.evalSeconds, 0) / epochs.length).toFixed(1)} s on average.`,
        ]
      : []),
    `- ${result >= 0.9 ? 'At or above' : 'Below'} the 90% target. ` +
      `Wall time ${facts.wallSeconds.toFixed(0)} s of training and evaluation on this machine ` +
      `(${(facts.trainImages / (facts.wallSeconds / epochs.length)).toFixed(0)} training images/s including evaluation), ` +
      `${facts.totalSeconds.toFixed(0)} s in all.`,
    ...timeSplit(epochs, finalTest),
    lossNote,
    '',
    '## Time to accuracy',
    '',
    `Training FLOPs: ${facts.trainingFlops.toExponential(2)} ` +
      `(3 × ${(facts.forwardFlopsPerImage / 1e9).toPrecision(3)} GFLOP forward per image, convolutions and the linear head, ` +
      `× ${facts.trainImages} images × ${epochs.length} epochs).`,
    ...(finalTest ? ['', `Epochs before the last count with their one-view accuracy, the last with its ${finalTest.views} views.`] : []),
    '',
    ...facts.milestones.map((m) =>
      milestoneLine(
        m,
        facts,
        finalTest
          ? `final ${pct(finalTest.acc, 2)} with ${finalTest.views} views, best epoch on one view ${pct(best, 2)}`
          : `best ${pct(best, 2)}`,
      ),
    ),
    '',
    '## Why 90% is hard',
    '',
    ...whyNinetyIsHard(epochs, finalTest),
  ].join('\n')}\n`;
}

async function run(config: Config, ctx: RunContext) {
  const allTraining = loadCifar(ctx.dataDir, 'train', ctx.dataFiles);
  const heldOutPerClass = Math.round(config.validationImages / 10);
  const trainSplit = firstN(heldOutPerClass > 0 ? balancedSubset(allTraining, 5000 - heldOutPerClass) : allTraining, config.trainImages);
  const testSplit =
    heldOutPerClass > 0
      ? balancedSubset(allTraining, heldOutPerClass, 5000 - heldOutPerClass)
      : firstN(loadCifar(ctx.dataDir, 'test', ctx.dataFiles), config.testImages);
  ctx.log(
    `training on ${trainSplit.count} images, ${heldOutPerClass > 0 ? 'validating on held-out training images' : 'testing on'} ${testSplit.count}; ` +
      `${config.epochs} epochs, batch ${config.batchSize}`,
  );
  const started = performance.now();
  // The curves need every epoch tested, but one view of each image draws them: the recipe's
  // test-time views (six passes over the test set, as long as 40% of an epoch's training) are spent
  // once, on the final weights, as airbench does.
  const { model, epochs } = await train({ ...config, ...NO_TTA }, trainSplit, testSplit, ctx, {
    label: 'q5',
    checkpointDir: ctx.path('checkpoints'),
  });
  const views = ttaViews(config).length;
  let finalTest: FinalTest | undefined;
  if (views > 1) {
    const testStarted = performance.now();
    const { loss, acc } = evaluate(model, testSplit, config);
    finalTest = { views, loss, acc, seconds: (performance.now() - testStarted) / 1000 };
    ctx.log(
      `q5: final weights with ${views} test-time views: loss ${loss.toFixed(3)} acc ${pct(acc, 2)} (${finalTest.seconds.toFixed(1)} s)`,
    );
  }
  const forwardFlopsPerImage = forwardFlops(model);
  model.dispose();
  const wallSeconds = epochs.reduce((s, e) => s + e.seconds, 0) + (finalTest?.seconds ?? 0);
  // Forward, and backward to inputs and weights: about 3× the forward work for every image seen.
  const flopsPerEpoch = 3 * forwardFlopsPerImage * trainSplit.count;
  const trainingFlops = flopsPerEpoch * epochs.length;
  const milestones = timeToAccuracy(asTested(epochs, finalTest), flopsPerEpoch);

  const panels = [];
  for (const [key, title] of CURVES) {
    const name = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    panels.push({ image: await ctx.writeFigure(name, curve(epochs, key, title, config.labelSmoothing, finalTest)) });
  }
  await ctx.writeFigure('test-acc-vs-seconds', accuracyVsSeconds(epochs, finalTest));
  ctx.writeBytes(
    'curves.png',
    await panelGrid([panels.slice(0, 2), panels.slice(2)], {
      title: `Q5.1 CIFAR-10: ${trainSplit.count} training images, ${epochs.length} epochs`,
      cell: 420,
    }),
  );

  const last = epochs[epochs.length - 1];
  ctx.manifestExtras.epochSeconds = epochs.map((e) => e.seconds);
  ctx.manifestExtras.imagesPerSecond = epochs.map((e) => Math.round(trainSplit.count / e.seconds));
  ctx.writeText(
    'observations.md',
    observations({
      profile: ctx.options.profile,
      trainImages: trainSplit.count,
      batchSize: config.batchSize,
      widths: config.widths,
      labelSmoothing: config.labelSmoothing,
      epochs,
      finalTest,
      forwardFlopsPerImage,
      trainingFlops,
      wallSeconds,
      totalSeconds: (performance.now() - started) / 1000,
      milestones,
    }),
  );
  return {
    classes: CIFAR_CLASSES,
    trainImages: trainSplit.count,
    testImages: testSplit.count,
    epochs, // each tested on one view
    testViews: views,
    finalTestAcc: finalTest?.acc ?? last.testAcc, // the final weights with every test-time view
    finalTestLoss: finalTest?.loss ?? last.testLoss,
    finalOneViewTestAcc: last.testAcc,
    finalTestSeconds: finalTest?.seconds ?? 0, // the pass with every view, after the last epoch
    bestOneViewTestAcc: Math.max(...epochs.map((e) => e.testAcc)),
    wallSeconds,
    forwardFlopsPerImage,
    trainingFlops,
    timeToAccuracy: milestones,
  };
}

// ---- What this experiment declares: its metrics, artefacts, report section and sources.

type Metrics = Awaited<ReturnType<typeof run>>;

export const experiment: Experiment<Config, Metrics> = {
  name: 'q5-cifar',
  defaults,
  profiles: {
    quick: { epochs: 4, batchSize: 256, lr: 0.375, trainImages: 10000, testImages: 2000, widths: [24, 32, 64, 64] },
    smoke: { epochs: 2, batchSize: 64, lr: 0.1, trainImages: 300, testImages: 200, widths: [24, 8, 16, 16], warmup: 0.5 },
  },
  run,
  headline: (m) => `test accuracy ${pct(m.finalTestAcc, 2)}`,
  sources: ['experiments/q5-cifar.ts', 'experiments/cifar.ts'],
  artefacts: [
    ...figures('train-loss', 'train-acc', 'test-loss', 'test-acc', 'test-acc-vs-seconds'),
    { file: 'curves.png', kind: 'png' },
    { file: 'observations.md', kind: 'md' },
  ],
  metricsSchema: obj({
    epochs: list(obj({ epoch: num, trainLoss: num, trainAcc: num, testLoss: num, testAcc: num, seconds: num })),
    testViews: num,
    finalTestAcc: num,
    finalTestLoss: num,
    finalOneViewTestAcc: num,
    finalTestSeconds: num,
    bestOneViewTestAcc: num,
    wallSeconds: num,
    trainingFlops: num,
    timeToAccuracy: list(obj({ target: num })),
  }),
  report: {
    title: 'Q5.1 — CIFAR-10 from scratch',
    figures: ['curves', 'test-acc-vs-seconds', 'train-loss', 'train-acc', 'test-loss', 'test-acc'],
    answer: (m) => {
      const reached = m.timeToAccuracy
        .map((t) =>
          t.epoch === null
            ? `${pct(t.target, 2)} not reached`
            : `${pct(t.target, 2)} at epoch ${t.epoch} (${(t.seconds ?? 0).toFixed(0)} s, ${(t.flops ?? 0).toExponential(2)} FLOPs)`,
        )
        .join('; ');
      return (
        `- final test accuracy **${pct(m.finalTestAcc, 2)}**` +
        (m.testViews > 1 ? ` with ${m.testViews} test-time views (one view ${pct(m.finalOneViewTestAcc, 2)})` : '') +
        `, best epoch on one view ${pct(m.bestOneViewTestAcc, 2)}, ${m.epochs.length} epochs on ` +
        `${m.trainImages} training images, wall time ${m.wallSeconds.toFixed(0)} s, ${m.trainingFlops.toExponential(2)} training FLOPs.` +
        (reached
          ? `\n- time to accuracy: ${reached}${m.testViews > 1 ? ` (epochs before the last tested on one view, the last with ${m.testViews})` : ''}.`
          : '')
      );
    },
  },
};
