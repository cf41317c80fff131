// Where a landed result came from (its run.json) and whether it is current: a result is
// stale when any of the sources its experiment declares differs, in the working tree, from
// the commit the result was produced from. Unknown commits, commits outside HEAD's history,
// uncommitted sources and runs made from uncommitted edits to those sources all count as stale.
import { execFileSync } from 'node:child_process';

/** The fields of run.json the report shows. */
export interface RunManifest {
  profile?: string;
  seed?: number;
  backend?: { name?: string };
  precision?: string;
  gitCommit?: string | null;
  /** Tracked files that differed from gitCommit when the run started (relative to the project). */
  gitDirtyPaths?: string[];
  startedAt?: string;
  durationSeconds?: number;
}

/** One line of provenance: profile, seed, backend, precision, commit, date, duration. */
export function provenanceLine(run: RunManifest): string {
  const commit = run.gitCommit ? `${run.gitCommit.slice(0, 10)}${run.gitCommit.endsWith('+dirty') ? '+dirty' : ''}` : 'unknown';
  const seconds = run.durationSeconds;
  return [
    `profile ${run.profile ?? '?'}`,
    `seed ${run.seed ?? '?'}`,
    `backend ${run.backend?.name ?? '?'}`,
    `precision ${run.precision ?? 'fp32'}`,
    `commit ${commit}`,
    `date ${run.startedAt ?? '?'}`,
    `duration ${typeof seconds === 'number' ? formatDuration(seconds) : '?'}`,
  ].join(', ');
}

function formatDuration(seconds: number): string {
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(2)} h`;
}

/**
 * Why the result is stale, or undefined when it is current. `projectRoot` is the checkout the
 * sources are relative to (it may sit below the repository root).
 */
export function staleness(projectRoot: string, run: RunManifest, sources: string[]): string | undefined {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: projectRoot, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const recorded = run.gitCommit;
  if (!recorded) return 'produced from an unknown commit';
  const commit = recorded.replace(/\+dirty$/, '');
  if (!/^[0-9a-f]{7,64}$/.test(commit)) return `produced from "${recorded}", not a commit id`;
  try {
    git('rev-parse', 'HEAD');
  } catch {
    return `cannot compare: ${projectRoot} is not a git checkout`;
  }
  try {
    git('cat-file', '-e', `${commit}^{commit}`);
    git('merge-base', '--is-ancestor', commit, 'HEAD');
  } catch {
    return `produced from commit ${commit.slice(0, 10)}, which is not in this checkout's history`;
  }
  // Which of the sources git knows: a source it does not track cannot be compared.
  const tracked = new Set(lines(git('ls-files', '--', ...sources)));
  const untracked = sources.filter((s) => !tracked.has(s));
  if (untracked.length) return `${untracked.join(', ')} ${untracked.length === 1 ? 'is' : 'are'} not committed`;
  if (recorded.endsWith('+dirty')) {
    // Older run.json files do not list the dirty paths: then nothing says the sources were clean.
    if (!run.gitDirtyPaths) return `produced from uncommitted changes to commit ${commit.slice(0, 10)}`;
    const touched = run.gitDirtyPaths.filter((p) => sources.includes(p));
    if (touched.length) return `produced from uncommitted changes to ${touched.join(', ')}`;
  }
  const changedSince = lines(git('diff', '--relative', '--name-only', commit, 'HEAD', '--', ...sources));
  if (changedSince.length) return `${changedSince.join(', ')} changed since ${commit.slice(0, 10)}`;
  const uncommitted = lines(git('diff', '--relative', '--name-only', 'HEAD', '--', ...sources));
  if (uncommitted.length) return `${uncommitted.join(', ')} changed since ${commit.slice(0, 10)} (uncommitted)`;
  return undefined;
}

const lines = (text: string) => text.split('\n').filter(Boolean);
