// Question 1 — optimisation on the 1-D loss of Figure 1: gradient descent gets stuck at
// the bump; Adam's normalised steps carry it over bumps up to a height found here by
// bisection (Q1.2); the moment plots of Q1.3 and Q1.4 show why.
//   npx a2 run q1-adam                     seconds; no data
//   npx a2 run q1-adam --far-slope -0.1    the answers do not depend on the far slope
import { UsageError } from '../src/errors.js';
import { type TopLevelSpec, lineChart } from '../src/plot/index.js';
import { type Artefact, figures, num, numbers, obj } from '../src/report/declare.js';
import type { Experiment, RunContext } from '../src/run/index.js';

export interface Config {
  start: number; // O = (0, 1)
  lr: number; // η for gradient descent and α for Adam (the question uses 0.3 for both)
  gdH: number; // bump height of Q1.1
  farSlope: number; // slope past the bump; Figure 1 gives no number (reads as about −0.25)
  beta1: number;
  beta2: number;
  q12Epsilon: number; // Q1.2 asks for ε = 0
  epsilon: number; // Algorithm 1's default, for Q1.4
  horizon: number; // Adam steps simulated before deciding escaped / trapped
  bisectTol: number; // bisection stops when the bracket on h is this narrow
  q13H: number; // bump height for the Q1.3 moment plot (Q1.1's h)
  q13Steps: number;
  q14Start: number;
  q14Steps: number;
  farSlopeChecks: number[]; // other far slopes on which Q1.2's answer is recomputed
}

const defaults: Config = {
  start: 0,
  lr: 0.3,
  gdH: 0.5,
  farSlope: -0.25,
  beta1: 0.9,
  beta2: 0.999,
  q12Epsilon: 0,
  epsilon: 1e-8,
  horizon: 2000,
  bisectTol: 1e-6,
  q13H: 0.5,
  q13Steps: 40,
  q14Start: 2,
  q14Steps: 30,
  farSlopeChecks: [-0.05, -0.25, -1, -3],
};

// ---- the loss of Figure 1 -------------------------------------------------------------------
// Pieces: slope −1 down to the local minimum at x = 1; the bump rises (+1) on [1, 1+h) and
// falls (−1) on [1+h, 1+2h); then slope farSlope. Gradient convention, used everywhere: the
// one-sided slope of the piece x lies in, pieces closed on the left, so x = 1 belongs to the bump.
export interface BumpCurve {
  h: number;
  farSlope: number;
}

export function bumpLoss(x: number, { h, farSlope }: BumpCurve): number {
  if (x < 1) return 1 - x;
  if (x < 1 + h) return x - 1;
  if (x < 1 + 2 * h) return 1 + 2 * h - x;
  return farSlope * (x - 1 - 2 * h);
}

export function bumpGrad(x: number, { h, farSlope }: BumpCurve): number {
  if (x < 1) return -1;
  if (x < 1 + h) return 1;
  if (x < 1 + 2 * h) return -1;
  return farSlope;
}

// ---- optimisers -----------------------------------------------------------------------------

export interface AdamRecord {
  t: number;
  g: number;
  m: number;
  v: number;
  mHat: number;
  vHat: number;
  x: number;
}
export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

/** Algorithm 1 of Kingma & Ba, exactly; one record per step with the state after it. */
export function adam(grad: (x: number) => number, x0: number, steps: number, o: AdamOptions): AdamRecord[] {
  let x = x0,
    m = 0,
    v = 0;
  const trace: AdamRecord[] = [];
  for (let t = 1; t <= steps; t++) {
    const g = grad(x);
    m = o.beta1 * m + (1 - o.beta1) * g;
    v = o.beta2 * v + (1 - o.beta2) * g * g;
    const mHat = m / (1 - o.beta1 ** t);
    const vHat = v / (1 - o.beta2 ** t);
    x = x - (o.lr * mHat) / (Math.sqrt(vHat) + o.epsilon);
    trace.push({ t, g, m, v, mHat, vHat, x });
  }
  return trace;
}

export interface GdResult {
  x: number[];
  outcome: 'cycle' | 'escaped' | 'converged';
  cycle: number[];
}

/** Gradient descent until it escapes past the peak, stops moving, or revisits a point (a cycle). */
export function gradientDescent(curve: BumpCurve, x0: number, lr: number, maxSteps = 10000): GdResult {
  const xs = [x0];
  for (let i = 0; i < maxSteps; i++) {
    const prev = xs[xs.length - 1];
    // Past the peak every gradient is negative, so gradient descent only moves further right.
    if (prev >= 1 + curve.h) return { x: xs, outcome: 'escaped', cycle: [] };
    const next = prev - lr * bumpGrad(prev, curve);
    if (Math.abs(next - prev) < 1e-12) return { x: xs, outcome: 'converged', cycle: [] };
    const seen = xs.findIndex((x) => Math.abs(x - next) < 1e-9);
    xs.push(next);
    if (seen >= 0) return { x: xs, outcome: 'cycle', cycle: xs.slice(seen, xs.length - 1) };
  }
  throw new Error(`gradient descent neither escaped, converged nor cycled in ${maxSteps} steps`);
}

/** Escaped = after the horizon, x is past the peak (and, the gradient there being negative, still moving right). */
function adamEscapes(h: number, config: Config, farSlope: number, horizon = config.horizon): boolean {
  const curve = { h, farSlope };
  const trace = adam((x) => bumpGrad(x, curve), config.start, horizon, { ...config, epsilon: config.q12Epsilon });
  const last = trace[trace.length - 1];
  return last.x > 1 + h && last.m < 0;
}

/** Largest h that Adam escapes, by bisection on the simulated outcome. */
function adamMaxH(config: Config, farSlope: number): { exact: number; escapesAt: number; failsAt: number } {
  let lo = 1e-3,
    hi = 10;
  if (!adamEscapes(lo, config, farSlope) || adamEscapes(hi, config, farSlope)) {
    throw new Error(`bisection bracket [${lo}, ${hi}] does not straddle the escape threshold`);
  }
  while (hi - lo > config.bisectTol) {
    const mid = (lo + hi) / 2;
    if (adamEscapes(mid, config, farSlope)) lo = mid;
    else hi = mid;
  }
  return { exact: (lo + hi) / 2, escapesAt: lo, failsAt: hi };
}

// ---- plots ----------------------------------------------------------------------------------

const SERIES = ['g', 'm', 'v', 'mHat', 'vHat', 'x'] as const;
const SERIES_LABEL: Record<(typeof SERIES)[number], string> = { g: 'g', m: 'm', v: 'v', mHat: 'm̂', vHat: 'v̂', x: 'x' };

/**
 * One panel's values and axis title. A series that stays within a hair of one number (v̂ within
 * 1e-7 of 1 on the bump) is drawn as its offset from that number: plotted as is, every tick
 * would print the same.
 */
export function momentPanel(label: string, values: number[]): { title: string; values: number[] } {
  const lo = Math.min(...values),
    hi = Math.max(...values);
  const magnitude = Math.max(Math.abs(lo), Math.abs(hi));
  if (!(hi > lo) || hi - lo >= 1e-4 * magnitude) return { title: label, values };
  const reference = Number(((lo + hi) / 2).toPrecision(3));
  return { title: `${label} − ${reference}`, values: values.map((v) => v - reference) };
}

/** The six Adam series of Q1.3/Q1.4 as one chart: a row per series, each with its own y scale and ticks. */
function momentChart(title: string, trace: AdamRecord[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    spacing: 6,
    vconcat: SERIES.map((s, i) => {
      const panel = momentPanel(
        SERIES_LABEL[s],
        trace.map((r) => r[s]),
      );
      return {
        width: 460,
        height: 80,
        data: { values: trace.map((r, k) => ({ t: r.t, value: panel.values[k] })) },
        mark: { type: 'line', point: { size: 12 } },
        encoding: {
          x: { field: 't', type: 'quantitative', title: i === SERIES.length - 1 ? 't (step)' : null },
          y: { field: 'value', type: 'quantitative', scale: { zero: false }, title: panel.title, axis: { format: '.3~g', tickCount: 4 } },
        },
      };
    }),
  } as TopLevelSpec;
}

function curveWithIterates(title: string, curve: BumpCurve, xs: number[], xMax: number): TopLevelSpec {
  const grid = Array.from({ length: 401 }, (_, i) => -0.2 + (i * (xMax + 0.2)) / 400);
  const kinks = [1, 1 + curve.h, 1 + 2 * curve.h].filter((k) => k < xMax);
  const line = [...grid, ...kinks].sort((a, b) => a - b).map((x) => ({ x, loss: bumpLoss(x, curve) }));
  const iterates = xs.map((x, t) => ({ x, loss: bumpLoss(x, curve), t }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 460,
    height: 260,
    layer: [
      {
        data: { values: line },
        mark: { type: 'line', color: '#888' },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'loss', type: 'quantitative', title: 'L(x)' } },
      },
      {
        data: { values: iterates },
        mark: { type: 'line', point: true, color: '#d62728', strokeDash: [4, 3] },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'loss', type: 'quantitative' }, order: { field: 't' } },
      },
    ],
  } as TopLevelSpec;
}

const fmt = (v: number, d = 4) => Number(v.toFixed(d)).toString();

async function run(config: Config, ctx: RunContext) {
  if (!(config.farSlope < 0))
    throw new UsageError(`--far-slope expects a negative number (the loss goes down past the bump), found ${config.farSlope}`);
  const curve = { h: config.gdH, farSlope: config.farSlope };

  // Q1.1 — gradient descent.
  const gd = gradientDescent(curve, config.start, config.lr);
  ctx.log(
    `Q1.1 gradient descent: ${gd.outcome}${gd.cycle.length ? ` between ${gd.cycle.map((x) => fmt(x)).join(' and ')}` : ''} after ${gd.x.length - 1} steps`,
  );
  await ctx.writeFigure(
    'q11-gd-trajectory',
    lineChart({
      title: `Q1.1 gradient descent, η = ${config.lr}, h = ${config.gdH}: ${gd.outcome}`,
      x: 't',
      y: 'value',
      xTitle: 't (step)',
      series: 'series',
      points: true,
      rows: gd.x.flatMap((x, t) => [
        { t, series: 'x', value: x },
        { t, series: 'L(x)', value: bumpLoss(x, curve) },
      ]),
    }),
  );
  await ctx.writeFigure(
    'q11-gd-curve',
    curveWithIterates(`Q1.1 iterates on the loss (h = ${config.gdH})`, curve, gd.x, 1 + 2 * config.gdH + 1),
  );

  // Q1.2 — the largest bump Adam escapes, on the chosen far slope and on others.
  const maxH = adamMaxH(config, config.farSlope);
  const rounded = Number(maxH.exact.toFixed(2));
  const bySlope = config.farSlopeChecks.map((farSlope) => ({ farSlope, exact: adamMaxH(config, farSlope).exact }));
  const longerHorizon = {
    escapes: adamEscapes(maxH.escapesAt, config, config.farSlope, config.horizon * 5),
    fails: !adamEscapes(maxH.failsAt, config, config.farSlope, config.horizon * 5),
  };
  if (!longerHorizon.escapes || !longerHorizon.fails)
    throw new Error(`the outcome at the threshold changes with a ${config.horizon * 5}-step horizon`);
  ctx.log(
    `Q1.2 Adam escapes bumps up to h = ${maxH.exact.toFixed(6)} → ${rounded.toFixed(2)} (same on far slopes ${bySlope.map((b) => b.farSlope).join(', ')}: ${bySlope.every((b) => Math.abs(b.exact - maxH.exact) < 2 * config.bisectTol)})`,
  );
  const nearThreshold = [maxH.escapesAt - 0.01, maxH.failsAt + 0.01].map((h) => ({
    h,
    trace: adam((x) => bumpGrad(x, { h, farSlope: config.farSlope }), config.start, 40, { ...config, epsilon: config.q12Epsilon }),
  }));
  await ctx.writeFigure(
    'q12-threshold',
    lineChart({
      title: `Q1.2 Adam (α = ${config.lr}, ε = 0) just below and above h* = ${maxH.exact.toFixed(4)}`,
      x: 't',
      y: 'x',
      xTitle: 't (Adam step)',
      series: 'bump',
      points: true,
      rows: nearThreshold.flatMap(({ h, trace }) => [
        { t: 0, x: config.start, bump: `h = ${h.toFixed(3)}` },
        ...trace.map((r) => ({ t: r.t, x: r.x, bump: `h = ${h.toFixed(3)}` })),
      ]),
    }),
  );

  // Q1.3 — Adam's moments on the bump.
  const q13Curve = { h: config.q13H, farSlope: config.farSlope };
  const q13 = adam((x) => bumpGrad(x, q13Curve), config.start, config.q13Steps, { ...config, epsilon: config.q12Epsilon });
  await ctx.writeFigure(
    'q13-moments',
    momentChart(`Q1.3 Adam on the bump, h = ${config.q13H}, α = ${config.lr}, ε = 0, ${config.q13Steps} steps`, q13),
  );

  // Q1.4 — Adam from x = 2 on ReLU, sigmoid and |x|; subgradient 0 at exactly 0, as in PyTorch.
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  const functions = {
    relu: (x: number) => (x > 0 ? 1 : 0),
    sigmoid: (x: number) => sigmoid(x) * (1 - sigmoid(x)),
    abs: (x: number) => Math.sign(x),
  };
  const q14 = Object.fromEntries(
    Object.entries(functions).map(([name, grad]) => [name, adam(grad, config.q14Start, config.q14Steps, config)]),
  ) as Record<keyof typeof functions, AdamRecord[]>;
  for (const [name, trace] of Object.entries(q14)) {
    await ctx.writeFigure(
      `q14-${name}`,
      momentChart(
        `Q1.4 Adam on ${name === 'abs' ? '|x|' : `${name}(x)`} from x = ${config.q14Start}, α = ${config.lr}, ${config.q14Steps} steps`,
        trace,
      ),
    );
  }

  ctx.writeText('observations.md', observations({ config, gd, maxH, rounded, bySlope, q13, q14 }));
  return {
    gd: { h: config.gdH, lr: config.lr, x: gd.x, outcome: gd.outcome, cycle: gd.cycle },
    adamMaxH: {
      rounded,
      exact: maxH.exact,
      escapesAt: maxH.escapesAt,
      failsAt: maxH.failsAt,
      alpha: config.lr,
      epsilon: config.q12Epsilon,
      farSlope: config.farSlope,
      byFarSlope: bySlope,
      horizon: config.horizon,
    },
    q13: { h: config.q13H, trace: q13 },
    q14,
  };
}

/** The numbers Q1's observations are written from. */
export interface Q1Facts {
  config: Pick<Config, 'start' | 'lr' | 'gdH' | 'beta1' | 'beta2' | 'q12Epsilon' | 'q13H' | 'q14Start' | 'bisectTol'>;
  gd: GdResult;
  maxH: { exact: number };
  rounded: number;
  bySlope: { farSlope: number; exact: number }[];
  q13: AdamRecord[];
  q14: Record<'relu' | 'sigmoid' | 'abs', AdamRecord[]>;
}

const maxDeviation = (values: number[], from: number) => Math.max(0, ...values.map((v) => Math.abs(v - from)));
/** "exactly" when no deviation at all, else the bound that was measured. */
const within = (deviation: number) => (deviation === 0 ? 'exactly' : `to within ${deviation.toExponential(0)}`);

/** Turning points of x (local extremes of the distance from `centre`), in order. */
function turningPoints(trace: AdamRecord[], centre: number): number[] {
  return trace
    .filter((r, i) => {
      if (i === 0 || i === trace.length - 1) return false;
      const [before, here, after] = [trace[i - 1].x, r.x, trace[i + 1].x].map((x) => Math.abs(x - centre));
      return here >= before && here >= after && here > 0;
    })
    .map((r) => r.x);
}

const shrinking = (xs: number[], centre: number) =>
  xs.length >= 2 && xs.every((x, i) => i === 0 || Math.abs(x - centre) < Math.abs(xs[i - 1] - centre));

function gdLines({ config, gd }: Q1Facts): string[] {
  const from = `From O (x = ${config.start}) with η = ${config.lr} on h = ${config.gdH}, gradient descent`;
  if (gd.outcome === 'escaped') return [`${from} escapes past the peak after ${gd.x.length - 1} steps.`];
  if (gd.outcome === 'converged') return [`${from} converges at x = ${fmt(gd.x[gd.x.length - 1])}.`];
  // In a cycle every point lies left of the peak, where |slope| = 1, so every step is exactly η long.
  return [
    `${from} falls into a cycle between x = ${gd.cycle.map((x) => fmt(x)).join(' and x = ')}. ` +
      `Left of the peak |slope| = 1, so every step has length η = ${config.lr}; a step that lands on the bump's ` +
      `rising side (slope +1) is sent straight back. The furthest it gets is x = ${fmt(Math.max(...gd.x))}, ` +
      `short of the peak at x = ${fmt(1 + config.gdH)}, and it never comes to rest at the minimum x = 1.`,
  ];
}

function adamLines({ config, maxH, rounded, bySlope, q13 }: Q1Facts): string[] {
  const downhill = q13.slice(
    0,
    q13.findIndex((r) => r.g > 0),
  );
  const ratios = downhill.map((r) => r.mHat / Math.sqrt(r.vHat));
  const lines = [
    `Adam (α = ${config.lr}, β1 = ${config.beta1}, β2 = ${config.beta2}, ε = ${config.q12Epsilon}) escapes the local minimum ` +
      `for every bump up to **h = ${rounded.toFixed(2)}** (bisection on the simulated outcome: h* = ${maxH.exact.toFixed(6)}).`,
  ];
  if (ratios.length > 0)
    lines.push(
      `On the constant slope down to the minimum (the first ${ratios.length} steps with h = ${config.q13H}), ` +
        `m̂/(√v̂ + ε) is −1 ${within(maxDeviation(ratios, -1))}, so every step there is α = ${config.lr} long. ` +
        'On the bump the gradient flips to +1, but m still carries the downhill history: m̂ shrinks step by step and changes sign ' +
        'only after several steps, so Adam keeps moving right a bounded distance; a peak within that distance is crossed.',
    );
  const spread = Math.max(...bySlope.map((b) => b.exact)) - Math.min(...bySlope.map((b) => b.exact));
  const thresholds = `with far slopes ${bySlope.map((b) => b.farSlope).join(', ')} the thresholds are ${bySlope.map((b) => b.exact.toFixed(6)).join(', ')}`;
  lines.push(
    spread <= 2 * config.bisectTol
      ? `The answer does not depend on the slope past the bump: ${thresholds}, equal to within the bisection tolerance ` +
          `${config.bisectTol}, because the outcome is decided before the iterate reaches that part of the curve.`
      : `The answer depends on the slope past the bump: ${thresholds} (spread ${spread.toExponential(2)}, ` +
          `more than the bisection tolerance ${config.bisectTol}).`,
    '',
  );
  return lines;
}

function q13Lines({ config, maxH, q13 }: Q1Facts): string[] {
  const firstUp = q13.findIndex((r) => r.g > 0);
  const downhill = firstUp < 0 ? q13 : q13.slice(0, firstUp);
  const furthest = Math.max(...q13.map((r) => r.x));
  const peak = 1 + config.q13H;
  const unitGradients = q13.every((r) => Math.abs(r.g) === 1);
  const sentences = [
    `With h = ${config.q13H}: g is −1 for the first ${downhill.length} steps, while m̂ = −1 ${within(
      maxDeviation(
        downhill.map((r) => r.mHat),
        -1,
      ),
    )} ` +
      `and v̂ = 1 ${within(
        maxDeviation(
          downhill.map((r) => r.vHat),
          1,
        ),
      )} (bias correction removes the warm-up of m and v).`,
  ];
  if (firstUp >= 0)
    sentences.push(
      `On the bump g jumps to +1 and m moves towards it by (1 − β1) = ${fmt(1 - config.beta1, 2)} of the gap per step` +
        (unitGradients
          ? `; v̂ stays at 1 (largest |v̂ − 1| ${maxDeviation(
              q13.map((r) => r.vHat),
              1,
            ).toExponential(0)}) because g² = 1 at every step.`
          : '.'),
    );
  const comparison =
    config.q13H > maxH.exact ? `h = ${config.q13H} > h* = ${fmt(maxH.exact, 6)}` : `h = ${config.q13H} ≤ h* = ${fmt(maxH.exact, 6)}`;
  if (furthest < peak) {
    const turns = turningPoints(q13, 1).filter((x) => x < furthest);
    const swings = shrinking(turns, 1)
      ? `then swings around the minimum x = 1 with shrinking amplitude (turning points ${turns.map((x) => fmt(x, 3)).join(', ')})`
      : `then moves around the minimum x = 1 (turning points ${turns.map((x) => fmt(x, 3)).join(', ') || 'none'})`;
    sentences.push(
      `The furthest x reaches is ${fmt(furthest)}, short of the peak at ${fmt(peak)}: Adam is turned back (${comparison}), ` +
        `${swings}, ending at x = ${fmt(q13[q13.length - 1].x)} after ${q13.length} steps.`,
    );
  } else {
    sentences.push(
      `x passes the peak at ${fmt(peak)} (${comparison}) and ends at x = ${fmt(q13[q13.length - 1].x)} after ${q13.length} steps.`,
    );
  }
  if (furthest < peak !== config.q13H > maxH.exact)
    sentences.push(`Within these ${q13.length} steps the outcome differs from the bisection's, which ran longer.`);
  return [sentences.join(' '), ''];
}

function reluLine(config: Q1Facts['config'], relu: AdamRecord[]): string {
  const zeroAt = relu.findIndex((r) => r.g === 0);
  const last = relu[relu.length - 1];
  if (zeroAt < 0)
    return `- **ReLU**: the gradient is 1 while x > 0; x stays positive for all ${relu.length} steps, ending at ${fmt(last.x)}.`;
  const after = relu.slice(zeroAt);
  const steps = after.slice(1).map((r, i) => Math.abs(r.x - after[i].x));
  const decreasing = steps.length > 1 && steps.every((d, i) => i === 0 || d <= steps[i - 1]) && steps.every((d) => d > 0);
  return (
    `- **ReLU**: the gradient is 1 while x > 0, so x falls by about α = ${config.lr} per step; it crosses 0 after ${zeroAt} steps. ` +
    `From then g = 0: m decays by β1 and v by β2 per step` +
    (decreasing
      ? `, so x keeps drifting left with ever smaller steps (x = ${fmt(last.x)} at t = ${relu.length}, m̂ = ${last.mHat.toExponential(2)}): ` +
        'the loss is flat there, and the momentum carries Adam past the kink.'
      : ` (x = ${fmt(last.x)} at t = ${relu.length}, m̂ = ${last.mHat.toExponential(2)}).`)
  );
}

function sigmoidLine(config: Q1Facts['config'], sig: AdamRecord[]): string {
  const ratio = sig.map((r) => r.mHat / Math.sqrt(r.vHat));
  const nearOne = ratio.findIndex((q) => Math.abs(q - 1) > 0.05);
  const crossed = sig.findIndex((r) => r.x < 0);
  const last = sig[sig.length - 1];
  const parts = [
    `- **Sigmoid**: the gradient σ(x)(1 − σ(x)) is ${fmt(sig[0].g)} at x = ${config.q14Start}, but Adam divides it by √v̂, ` +
      `so m̂/√v̂ stays within 5% of 1 for the first ${nearOne < 0 ? sig.length : nearOne} steps and x moves by about α per step`,
  ];
  if (crossed >= 0) {
    parts.push(`, crossing x = 0 (where the gradient peaks at 0.25) at step ${crossed + 1}`);
    const falls = ratio[ratio.length - 1] < ratio[crossed];
    parts.push(
      falls
        ? `. Past 0 the gradient shrinks faster than v̂ forgets the larger gradients it has seen: m̂/√v̂ falls from ` +
            `${fmt(ratio[crossed], 3)} to ${fmt(ratio[ratio.length - 1], 3)} at t = ${sig.length} and the steps shrink; x ends at ${fmt(last.x)}.`
        : `; m̂/√v̂ is ${fmt(ratio[ratio.length - 1], 3)} at t = ${sig.length} and x ends at ${fmt(last.x)}.`,
    );
  } else parts.push(`; x stays positive, ending at ${fmt(last.x)} after ${sig.length} steps.`);
  return parts.join('');
}

function absLine(abs: AdamRecord[]): string {
  const signChanges = abs.slice(1).filter((r, i) => r.g !== abs[i].g).length;
  const turns = turningPoints(abs, 0);
  const vHatDeviation = maxDeviation(
    abs.map((r) => r.vHat),
    1,
  );
  const head = `- **|x|**: g = +1 while x > 0 and −1 below; it changes sign ${signChanges} times in ${abs.length} steps.`;
  if (signChanges === 0) return `${head} x ends at ${fmt(abs[abs.length - 1].x)}.`;
  const amplitude = shrinking(turns, 0)
    ? 'the amplitude shrinks as m averages the alternating gradient'
    : 'the amplitude does not shrink at every swing';
  const vHat = vHatDeviation < 1e-6 ? `, while v̂ stays 1 (to within ${vHatDeviation.toExponential(0)}) since g² = 1` : '';
  return (
    `${head} m lags the sign flips, so x overshoots 0 and swings around it, with turning points at x = ` +
    `${turns.map((x) => fmt(x, 3)).join(', ')}: ${amplitude}${vHat} (final x = ${fmt(abs[abs.length - 1].x)}).`
  );
}

/** observations.md of Q1: every sentence from the measured numbers, each claim only where they show it. */
export function observations(facts: Q1Facts): string {
  const { config, q14 } = facts;
  return `${[
    '# Question 1: observations',
    '',
    '*Written by `a2 run q1-adam` from the numbers it measured.*',
    '',
    '## Q1.1 gradient descent',
    '',
    ...gdLines(facts),
    '',
    '## Q1.2 Adam',
    '',
    ...adamLines(facts),
    '## Q1.3 the moments on the bump',
    '',
    ...q13Lines(facts),
    `## Q1.4 ReLU, sigmoid and |x| from x = ${config.q14Start}`,
    '',
    reluLine(config, q14.relu),
    sigmoidLine(config, q14.sigmoid),
    absLine(q14.abs),
  ].join('\n')}\n`;
}

// ---- What this experiment declares: its metrics, artefacts, report section and sources.

type Metrics = Awaited<ReturnType<typeof run>>;

const adamRecords = { type: 'array', minItems: 1, items: obj({ t: num, g: num, m: num, v: num, mHat: num, vHat: num, x: num }) };
const FIGURES = ['q11-gd-trajectory', 'q11-gd-curve', 'q12-threshold', 'q13-moments', 'q14-relu', 'q14-sigmoid', 'q14-abs'];
const artefacts: Artefact[] = [...figures(...FIGURES), { file: 'observations.md', kind: 'md' }];
const metricsSchema = obj({
  gd: obj({ h: num, lr: num, x: numbers, outcome: { enum: ['cycle', 'escaped', 'converged'] }, cycle: numbers }),
  adamMaxH: obj({ rounded: num, exact: num, escapesAt: num, failsAt: num }),
  q13: obj({ h: num, trace: adamRecords }),
  q14: obj({ relu: adamRecords, sigmoid: adamRecords, abs: adamRecords }),
});

export const experiment: Experiment<Config, Metrics> = {
  name: 'q1-adam',
  defaults,
  seedless: 'gradient descent and Adam from fixed starts on fixed curves draw no random number',
  profiles: { smoke: { horizon: 500, farSlopeChecks: [-0.05, -1] } },
  run,
  headline: (m) => `Adam's max h = ${m.adamMaxH.rounded.toFixed(2)}`,
  sources: ['experiments/q1-adam.ts'],
  artefacts,
  metricsSchema,
  report: {
    title: 'Q1 — Optimisation: gradient descent and Adam on the bump',
    figures: FIGURES,
    answer: ({ gd, adamMaxH: h }) => {
      // Enough decimals that the two ends of the bisection bracket print differently.
      const gap = h.failsAt - h.escapesAt;
      const digits = gap > 0 ? Math.min(15, Math.max(6, Math.ceil(-Math.log10(gap)) + 1)) : 6;
      const cycle = gd.cycle.length ? ` between x = ${gd.cycle.map((x) => x.toFixed(4)).join(' and ')}` : '';
      return (
        `- **Q1.1** gradient descent (η = ${gd.lr}, h = ${gd.h}): **${gd.outcome}**${cycle}.\n` +
        `- **Q1.2** the largest bump Adam escapes (α = ${h.alpha}, ε = ${h.epsilon}): **h = ${h.rounded.toFixed(2)}** ` +
        `(bisection: ${h.exact.toFixed(digits)}; escapes at ${h.escapesAt.toFixed(digits)}, fails at ${h.failsAt.toFixed(digits)}).`
      );
    },
  },
};
