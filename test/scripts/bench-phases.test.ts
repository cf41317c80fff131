import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, splitByPhase } from '../../scripts/bench-phases.js';

const probe = (gflops: number) => ({ gflops, copyGBs: 20 });
const round = (before: number, after = before) => ({ before: probe(before), after: probe(after) });

test('the median of an even count is the mean of the two middle values', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test('rounds are split by the probes on both sides; a round that changed phase counts in neither', () => {
  // Rounds 0 and 2 slow (a2 0.2 s, PyTorch 0.2 s), 1 and 3 fast (a2 0.15 s, PyTorch 0.1 s), round 4 changed phase.
  const probes = [round(450), round(900), round(460, 470), round(950, 880), round(450, 900)];
  const ours = [{ precision: 'bf16' as const, seconds: [0.2, 0.15, 0.2, 0.15, 0.5] }];
  const theirs = [
    { precision: 'bf16' as const, seconds: [0.2, 0.1, 0.2, 0.1, 0.5] },
    { precision: 'fp32' as const, seconds: [0.4, 0.3, 0.4, 0.3, 0.9] },
  ];
  const split = splitByPhase(probes, ours, theirs, 100)!;
  assert.ok(split.threshold !== null && split.threshold > 470 && split.threshold < 880);
  assert.deepEqual(split.slow, { rounds: 2, ratioVsTorchBest: 1, fp32RatioVsTorch: null });
  assert.equal(split.fast?.rounds, 2);
  assert.ok(Math.abs(split.fast!.ratioVsTorchBest - 0.1 / 0.15) < 1e-12);
  assert.equal(split.unclassified, 1);
});

test('probes within 1.4× of each other make one phase; fp32 is compared with PyTorch fp32 only', () => {
  const ours = [
    { precision: 'fp32' as const, seconds: [0.4, 0.4] },
    { precision: 'bf16' as const, seconds: [0.2, 0.2] },
  ];
  const theirs = [
    { precision: 'fp32' as const, seconds: [0.5, 0.5] },
    { precision: 'bf16' as const, seconds: [0.1, 0.1] },
  ];
  const split = splitByPhase([round(450, 500), round(520, 600)], ours, theirs, 100)!;
  assert.equal(split.threshold, null);
  assert.equal(split.fast, null);
  assert.deepEqual(split.slow, { rounds: 2, ratioVsTorchBest: 0.5, fp32RatioVsTorch: 1.25 });
});

test('no split without a PyTorch row or without probes', () => {
  const ours = [{ precision: 'bf16' as const, seconds: [0.2] }];
  assert.equal(splitByPhase([round(450)], ours, [], 100), undefined);
  assert.equal(splitByPhase([], ours, ours, 100), undefined);
});
