// What the real experiments declare holds together: registry names match the modules, and
// each experiment's sources exist and cover every experiments/ module it imports, directly or
// through another (so a change to a shared recipe marks every result built on it stale).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { registry } from '../../experiments/index.js';
import { loadExperiments } from '../../src/cli/registry.js';
import { ROOT } from '../helpers.js';

const experiments = await loadExperiments(registry);

/** experiments/*.ts files a module imports, transitively, itself included. */
function localImports(rel: string, seen = new Set<string>()): Set<string> {
  if (seen.has(rel)) return seen;
  seen.add(rel);
  const text = readFileSync(path.join(ROOT, rel), 'utf8');
  for (const [, spec] of text.matchAll(/from '(\.\/[^']+)\.js'/g))
    localImports(path.posix.join(path.posix.dirname(rel), `${spec}.ts`), seen);
  return seen;
}

test('every registry entry loads the module of that name', () => {
  assert.deepEqual(
    experiments.map((e) => e.name),
    registry.map((e) => e.name),
  );
});

for (const experiment of experiments) {
  test(`${experiment.name}: sources exist and cover its file and the experiments/ modules it imports`, () => {
    for (const source of experiment.sources) assert.ok(existsSync(path.join(ROOT, source)), `${source} does not exist`);
    const needed = [...localImports(`experiments/${experiment.name}.ts`)].sort();
    assert.deepEqual([...experiment.sources].sort(), needed);
  });
}

test('report titles are distinct and every artefact is declared once', () => {
  const titles = experiments.map((e) => e.report.title);
  assert.equal(new Set(titles).size, titles.length, titles.join(' | '));
  for (const e of experiments) {
    const files = e.artefacts.map((a) => a.file);
    assert.equal(new Set(files).size, files.length, `${e.name}: ${files.join(', ')}`);
  }
});
