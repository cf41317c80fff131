// What `a2 run all` (or several experiments) is about to do and how long it should take: each
// experiment's expected time is the duration of its last run at the same profile, read from
// run.json in the outputs folder or, failing that, in the committed outputs/ of the checkout.
// Kept free of tfjs so the plan prints before anything heavy loads.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './manifest.js';

export interface PlannedRun {
  name: string;
  /** Seconds the last run at this profile took, when one is recorded. */
  expectedSeconds?: number;
  /** The run.json that number comes from. */
  source?: string;
  /** That run was resumed: its duration is the resuming process's alone, a lower bound. */
  resumed?: boolean;
}

/** 0.03 s, 4.2 s, 45 s, 4.5 min, 2.1 h: the unit a reader takes in at a glance. */
export function formatDuration(seconds: number): string {
  if (seconds < 1) return `${Number(seconds.toPrecision(1))} s`;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function recordedSeconds(file: string, profile: string): { seconds: number; resumed: boolean } | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const run = JSON.parse(readFileSync(file, 'utf8')) as { profile?: unknown; durationSeconds?: unknown; resumedWith?: unknown };
    return run.profile === profile && typeof run.durationSeconds === 'number' && run.durationSeconds >= 0
      ? { seconds: run.durationSeconds, resumed: run.resumedWith !== undefined }
      : undefined;
  } catch {
    // A damaged run.json says nothing about time; the plan says "unknown" rather than failing the run.
    return undefined;
  }
}

/** The experiments in run order with the time each last took at `profile` (outRoot first, then the checkout's outputs/). */
export function planRun(
  names: string[],
  profile: string,
  outRoot: string,
  committedRoot = path.join(PROJECT_ROOT, 'outputs'),
): PlannedRun[] {
  const roots = [...new Set([path.resolve(outRoot), path.resolve(committedRoot)])];
  return names.map((name) => {
    for (const root of roots) {
      const source = path.join(root, name, 'run.json');
      const recorded = recordedSeconds(source, profile);
      if (recorded) return { name, expectedSeconds: recorded.seconds, source, ...(recorded.resumed ? { resumed: true } : {}) };
    }
    return { name };
  });
}

/** The plan as printed before the first experiment starts. */
export function formatPlan(plan: PlannedRun[], profile: string): string[] {
  const known = plan.filter((p) => p.expectedSeconds !== undefined);
  const total = known.reduce((s, p) => s + p.expectedSeconds!, 0);
  const unknown = plan.length - known.length;
  const width = Math.max(...plan.map((p) => p.name.length));
  const totalText =
    known.length === 0
      ? 'no expected time (no run.json at this profile yet)'
      : `expected ${known.some((p) => p.resumed) ? 'at least ' : ''}~${formatDuration(total)}${unknown > 0 ? ` plus ${unknown} of unknown length` : ''}`;
  const source = known.length === 0 ? '' : `; times from each one's last ${profile} run.json`;
  return [
    `plan: ${plan.length} experiments at the ${profile} profile, ${totalText}${source}`,
    ...plan.map(
      (p, i) =>
        `  ${String(i + 1).padStart(String(plan.length).length)}. ${p.name.padEnd(width)}  ${p.expectedSeconds === undefined ? 'unknown' : `~${formatDuration(p.expectedSeconds)}${p.resumed ? ' or more (its last run was resumed: that is the resuming part)' : ''}`}`,
    ),
  ];
}

/** "[3/9] q2-conv-ae started, expected ~33 min" */
export function startLine(plan: PlannedRun[], name: string): string {
  const index = plan.findIndex((p) => p.name === name);
  const expected = plan[index]?.expectedSeconds;
  return `[${index + 1}/${plan.length}] ${name} started, ${expected === undefined ? 'no expected time' : `expected ~${formatDuration(expected)}${plan[index].resumed ? ' or more' : ''}`}`;
}
