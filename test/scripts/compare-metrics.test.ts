// CI's reproduction check: two real full-profile runs of q4-ops and q6-rf must compare equal,
// and a changed, missing or extra leaf must be named by its path and fail the script.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { compareExperiment, compareTrees } from '../../scripts/compare-metrics.js';
import { ROOT, a2, tempDir } from '../helpers.js';

const committed = tempDir();
const fresh = tempDir();
for (const out of [committed, fresh]) {
  const { code } = await a2('run', 'q4-ops', 'q6-rf', '--out', out);
  assert.equal(code, 0);
}

function editMetrics(root: string, name: string, edit: (m: Record<string, unknown>) => void): void {
  const file = path.join(root, name, 'metrics.json');
  const metrics = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(metrics);
  writeFileSync(file, JSON.stringify(metrics));
}

test('two full runs of q4-ops and q6-rf reproduce each other exactly', () => {
  for (const name of ['q4-ops', 'q6-rf']) {
    const result = compareExperiment(committed, fresh, name);
    assert.ok(result.ok, result.lines.join('\n'));
  }
});

test('a changed number, a changed string and a missing key are each named by their path', () => {
  const changed = tempDir();
  cpSync(fresh, changed, { recursive: true });
  editMetrics(changed, 'q4-ops', (m) => {
    const ops = m.ops as Record<string, { maxAbsDiff: number; tfjs: number[] }>;
    ops.conv1d.tfjs[3] += 1e-12;
    delete (ops.sigmoid as Partial<typeof ops.sigmoid>).maxAbsDiff;
    (ops.conv1d as unknown as Record<string, unknown>).filterReading = 'another reading';
  });
  const result = compareExperiment(committed, changed, 'q4-ops');
  assert.equal(result.ok, false);
  const text = result.lines.join('\n');
  assert.match(text, /q4-ops: 3 leaf\(s\) of metrics.json differ/);
  assert.match(text, /ops\.conv1d\.tfjs\[3\]: committed [-\d.e]+, now [-\d.e]+/);
  assert.match(text, /ops\.sigmoid\.maxAbsDiff: committed [-\d.e]+, now \(absent\)/);
  assert.match(text, /ops\.conv1d\.filterReading: committed ".*, now "another reading"/);
});

test('declared tolerances, ignored paths and timing leaves', () => {
  assert.deepEqual(compareTrees({ a: 1 }, { a: 1.001 }, { relative: 1e-2, why: 't' }), []);
  assert.equal(compareTrees({ a: 1 }, { a: 1.1 }, { relative: 1e-2, why: 't' }).length, 1);
  assert.deepEqual(compareTrees({ a: 1, p: '/x' }, { a: 1, p: '/y' }, { ignore: ['p'], why: 't' }), []);
  assert.deepEqual(compareTrees({ epochs: [{ seconds: 3, wallSeconds: 9 }] }, { epochs: [{ seconds: 4, wallSeconds: 8 }] }), []);
  assert.deepEqual(compareTrees([1, 2], [1, 2, 3]), [{ path: '[2]', committed: '(absent)', found: '3' }]);
  assert.equal(compareTrees({ a: [1] }, { a: { 0: 1 } }).length, 1, 'an array is not an object with the same keys');
});

test('the script exits 1 naming a missing committed metrics.json, 0 when everything matches', () => {
  const script = path.join(ROOT, 'scripts/compare-metrics.ts');
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, encoding: 'utf8' });
  const ok = run(committed, fresh, 'q4-ops', 'q6-rf');
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  const partial = tempDir();
  cpSync(committed, partial, { recursive: true });
  rmSync(path.join(partial, 'q6-rf', 'metrics.json'));
  const missing = run(partial, fresh, 'q4-ops', 'q6-rf');
  assert.equal(missing.status, 1);
  assert.match(missing.stdout, /q6-rf: .*q6-rf\/metrics\.json is missing/);
  assert.equal(run(committed).status, 2);
});
