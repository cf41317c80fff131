// The plan `a2 run all` prints: expected times from run.json at the same profile, "unknown"
// otherwise, and a start line per experiment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { formatDuration, formatPlan, planRun, startLine } from '../../src/run/plan.js';
import { a2, tempDir } from '../helpers.js';

function writeRun(root: string, name: string, profile: string, durationSeconds: number): void {
  mkdirSync(path.join(root, name), { recursive: true });
  writeFileSync(path.join(root, name, 'run.json'), JSON.stringify({ experiment: name, profile, durationSeconds }));
}

test('expected times come from run.json at the same profile, the outputs folder before the committed one', () => {
  const out = tempDir();
  const committed = tempDir();
  writeRun(out, 'a', 'full', 12);
  writeRun(committed, 'a', 'full', 99);
  writeRun(out, 'b', 'smoke', 3);
  writeRun(committed, 'b', 'full', 150);
  writeRun(committed, 'c', 'smoke', 4);
  mkdirSync(path.join(out, 'd'));
  writeFileSync(path.join(out, 'd', 'run.json'), '{ truncated');
  const plan = planRun(['a', 'b', 'c', 'd'], 'full', out, committed);
  assert.deepEqual(
    plan.map((p) => p.expectedSeconds),
    [12, 150, undefined, undefined],
  );
  assert.equal(plan[1].source, path.join(committed, 'b', 'run.json'));

  const lines = formatPlan(plan, 'full');
  assert.match(lines[0], /^plan: 4 experiments at the full profile, expected ~2\.7 min plus 2 of unknown length/);
  assert.match(lines[1], /1\. a\s+~12 s$/);
  assert.match(lines[3], /3\. c\s+unknown$/);
  assert.equal(startLine(plan, 'b'), '[2/4] b started, expected ~2.5 min');
  assert.equal(startLine(plan, 'd'), '[4/4] d started, no expected time');
  assert.match(formatPlan(planRun(['c'], 'quick', out, committed), 'quick')[0], /no expected time \(no run\.json at this profile yet\)/);
});

test("a resumed run's duration is the resuming part alone: the plan says the time is at least that", () => {
  const out = tempDir();
  writeRun(out, 'a', 'full', 60);
  mkdirSync(path.join(out, 'r'));
  writeFileSync(path.join(out, 'r', 'run.json'), JSON.stringify({ profile: 'full', durationSeconds: 120, resumedWith: 'epochs 1–3 done' }));
  const plan = planRun(['a', 'r'], 'full', out, tempDir());
  assert.deepEqual(
    plan.map((p) => p.resumed),
    [undefined, true],
  );
  const lines = formatPlan(plan, 'full');
  assert.match(lines[0], /expected at least ~3\.0 min;/);
  assert.match(lines[2], /2\. r\s+~2\.0 min or more \(its last run was resumed: that is the resuming part\)$/);
  assert.equal(startLine(plan, 'r'), '[2/2] r started, expected ~2.0 min or more');
});

test('durations read in the unit that fits', () => {
  assert.deepEqual([0.034, 0.7, 4.25, 45, 270, 7200].map(formatDuration), ['0.03 s', '0.7 s', '4.3 s', '45 s', '4.5 min', '2.0 h']);
});

test('a second run of two experiments prints the plan with the first run’s times, then a start line for each', async () => {
  const out = tempDir();
  const first = await a2('run', 'q6-rf', 'q4-ops', '--out', out);
  assert.equal(first.code, 0);
  // The first run's plan may take its times from the checkout's committed outputs/, or have none.
  assert.ok(first.lines.some((l) => /^plan: 2 experiments at the full profile, (no expected time|expected ~)/.test(l)));
  const second = await a2('run', 'q6-rf', 'q4-ops', '--out', out);
  assert.equal(second.code, 0);
  const planAt = second.lines.findIndex((l) => l.startsWith('plan: 2 experiments at the full profile, expected ~'));
  assert.ok(planAt >= 0, second.lines.join('\n'));
  assert.match(second.lines[planAt + 1], /^ {2}1\. q6-rf\s+~[\d.]+ s$/, 'the order given (neither needs the other)');
  assert.match(second.lines[planAt + 2], /^ {2}2\. q4-ops\s+~[\d.]+ s$/);
  const q6Start = second.lines.findIndex((l) => /^\[1\/2\] q6-rf started, expected ~[\d.]+ s$/.test(l));
  const q6Done = second.lines.findIndex((l) => l.startsWith('[q6-rf] done'));
  assert.ok(q6Start > planAt && q6Start < q6Done, 'the start line comes before the experiment runs');
});
