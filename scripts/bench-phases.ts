// How `npm run bench` reads its alternating rounds when the host changes speed under it.
//
// The shared host's cores run at one speed or about twice it, for seconds at a time, while memory
// bandwidth stays: an engine bound by arithmetic gains, one bound by memory traffic does not. A
// probe of the cores before and after each round says which phase the round ran in; the ratios
// are then also given for each phase apart.
import type { Precision } from '../src/tensor/index.js';

/** The cores' compute speed (GFLOP/s of a short bf16 matrix-product loop) and memory bandwidth (GB/s of a large copy). */
export interface Probe {
  gflops: number;
  copyGBs: number;
}

export interface PhaseRatios {
  rounds: number;
  ratioVsTorchBest: number; // a2's fastest vs PyTorch's fastest, any precision, over these rounds' medians
  fp32RatioVsTorch: number | null; // a2 fp32 vs PyTorch's fastest fp32
}

export interface PhaseSplit {
  probes: { before: Probe; after: Probe }[]; // one pair a round
  threshold: number | null; // GFLOP/s: rounds probed at or above it on both sides are fast, below it on both slow; null: one phase
  fast: PhaseRatios | null;
  slow: PhaseRatios | null;
  unclassified: number; // rounds whose two probes fell on either side of the threshold
}

/** One engine configuration's step seconds, one a round (a2's or PyTorch's). */
export interface Timed {
  precision: Precision;
  seconds: number[];
}

/** The middle value; the mean of the two middle values for an even count. */
export function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The probes' speeds must span this factor for two phases to be told apart. */
export const PHASE_SPREAD = 1.4;

/**
 * The a2/PyTorch ratios over the fast and the slow rounds apart (`ours` and `theirs` hold one step
 * time a round, in round order; `theirs` only the configurations that ran every round). Two
 * phases when the probes span PHASE_SPREAD or more, split at the geometric middle of their range.
 */
export function splitByPhase(
  probes: { before: Probe; after: Probe }[],
  ours: Timed[],
  theirs: Timed[],
  batch: number,
): PhaseSplit | undefined {
  if (theirs.length === 0 || ours.length === 0 || probes.length === 0) return undefined;
  const speeds = probes.flatMap((p) => [p.before.gflops, p.after.gflops]);
  const [low, high] = [Math.min(...speeds), Math.max(...speeds)];
  const ratiosOver = (rounds: number[]): PhaseRatios | null => {
    if (rounds.length === 0) return null;
    const rate = (seconds: number[]) => batch / median(rounds.map((i) => seconds[i]));
    const best = (timed: Timed[], precision?: Precision) =>
      Math.max(...timed.filter((t) => !precision || t.precision === precision).map((t) => rate(t.seconds)));
    const torchFp32 = best(theirs, 'fp32');
    return {
      rounds: rounds.length,
      ratioVsTorchBest: best(ours) / best(theirs),
      fp32RatioVsTorch: ours.some((o) => o.precision === 'fp32') && Number.isFinite(torchFp32) ? best(ours, 'fp32') / torchFp32 : null,
    };
  };
  const all = probes.map((_, i) => i);
  if (high < PHASE_SPREAD * low) return { probes, threshold: null, fast: null, slow: ratiosOver(all), unclassified: 0 };
  const threshold = Math.sqrt(low * high);
  const fast = all.filter((i) => probes[i].before.gflops >= threshold && probes[i].after.gflops >= threshold);
  const slow = all.filter((i) => probes[i].before.gflops < threshold && probes[i].after.gflops < threshold);
  return {
    probes,
    threshold,
    fast: ratiosOver(fast),
    slow: ratiosOver(slow),
    unclassified: probes.length - fast.length - slow.length,
  };
}
