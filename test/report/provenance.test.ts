// Stale detection against a real (temporary) git repository: a result is current only while
// every source its experiment declares is as it was at the commit the result came from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { provenanceLine, staleness } from '../../src/report/provenance.js';
import { tempDir } from '../helpers.js';

const repo = tempDir('a2-git-');
const git = (...args: string[]) =>
  execFileSync('git', args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] })
    .toString()
    .trim();
const write = (rel: string, text: string) => {
  mkdirSync(path.dirname(path.join(repo, rel)), { recursive: true });
  writeFileSync(path.join(repo, rel), text);
};
const commitAll = (message: string) => {
  git('add', '-A');
  git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', message);
  return git('rev-parse', 'HEAD');
};

git('init', '-q');
write('experiments/q9.ts', 'export const q9 = 1;\n');
write('experiments/recipe.ts', 'export const recipe = 1;\n');
write('src/shared.ts', 'export const shared = 1;\n');
const produced = commitAll('first');
const SOURCES = ['experiments/q9.ts', 'experiments/recipe.ts'];

test('a result from HEAD with its sources unchanged is current', () => {
  assert.equal(staleness(repo, { gitCommit: produced }, SOURCES), undefined);
});

test('a commit that touches only other files keeps it current', () => {
  write('src/shared.ts', 'export const shared = 2;\n');
  commitAll('unrelated');
  assert.equal(staleness(repo, { gitCommit: produced }, SOURCES), undefined);
});

test('a committed change to a shared recipe the experiment declares makes it stale, naming the file', () => {
  write('experiments/recipe.ts', 'export const recipe = 2;\n');
  const changed = commitAll('recipe changed');
  assert.match(staleness(repo, { gitCommit: produced }, SOURCES) ?? '', /experiments\/recipe\.ts changed since/);
  // The same change is not a reason for an experiment that does not use the recipe.
  assert.equal(staleness(repo, { gitCommit: produced }, ['experiments/q9.ts']), undefined);
  // A result produced after the change is current again.
  assert.equal(staleness(repo, { gitCommit: changed }, SOURCES), undefined);
});

test('an uncommitted edit to a source makes it stale; reverting it makes it current', () => {
  const head = git('rev-parse', 'HEAD');
  write('experiments/q9.ts', 'export const q9 = 99;\n');
  assert.match(staleness(repo, { gitCommit: head }, SOURCES) ?? '', /experiments\/q9\.ts changed since .*\(uncommitted\)/);
  git('checkout', '--', 'experiments/q9.ts');
  assert.equal(staleness(repo, { gitCommit: head }, SOURCES), undefined);
});

test('unknown, malformed and foreign commits count as stale', () => {
  assert.match(staleness(repo, { gitCommit: null }, SOURCES) ?? '', /unknown commit/);
  assert.match(staleness(repo, {}, SOURCES) ?? '', /unknown commit/);
  assert.match(staleness(repo, { gitCommit: 'not-a-sha' }, SOURCES) ?? '', /not a commit id/);
  assert.match(staleness(repo, { gitCommit: 'f'.repeat(40) }, SOURCES) ?? '', /not in this checkout's history/);
});

test('a commit on another branch, not in HEAD history, counts as stale', () => {
  const main = git('rev-parse', '--abbrev-ref', 'HEAD');
  git('checkout', '-q', '-b', 'side');
  write('notes.txt', 'side\n');
  const side = commitAll('side');
  git('checkout', '-q', main);
  assert.match(staleness(repo, { gitCommit: side }, SOURCES) ?? '', /not in this checkout's history/);
});

test('a run from a dirty tree is stale only when its own sources were the dirty files', () => {
  const head = `${git('rev-parse', 'HEAD')}+dirty`;
  assert.equal(staleness(repo, { gitCommit: head, gitDirtyPaths: ['src/shared.ts', 'outputs/q9/metrics.json'] }, SOURCES), undefined);
  assert.match(
    staleness(repo, { gitCommit: head, gitDirtyPaths: ['experiments/recipe.ts'] }, SOURCES) ?? '',
    /uncommitted changes to experiments\/recipe\.ts/,
  );
  // Without the list (an older run.json) nothing says the sources were clean.
  assert.match(staleness(repo, { gitCommit: head }, SOURCES) ?? '', /uncommitted changes/);
});

test('a declared source git does not track counts as stale', () => {
  write('experiments/new.ts', 'export const fresh = 1;\n');
  assert.match(
    staleness(repo, { gitCommit: git('rev-parse', 'HEAD') }, [...SOURCES, 'experiments/new.ts']) ?? '',
    /new\.ts is not committed/,
  );
});

test('outside a git checkout every result is stale', () => {
  assert.match(staleness(tempDir(), { gitCommit: produced }, SOURCES) ?? '', /not a git checkout/);
});

test('the provenance line shows profile, seed, backend, precision (fp32 when absent), commit, date and duration', () => {
  const line = provenanceLine({
    profile: 'full',
    seed: 3,
    backend: { name: 'wasm' },
    gitCommit: `${produced}+dirty`,
    startedAt: '2024-05-01T10:00:00.000Z',
    durationSeconds: 754.2,
  });
  assert.equal(
    line,
    `profile full, seed 3, backend wasm, precision fp32, commit ${produced.slice(0, 10)}+dirty, date 2024-05-01T10:00:00.000Z, duration 12.6 min`,
  );
  assert.match(provenanceLine({ precision: 'fp16' }), /precision fp16, commit unknown/);
});
