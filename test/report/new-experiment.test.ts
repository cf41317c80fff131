// Adding an experiment = its module + one registry line + its test. This file is all three for
// a dummy experiment: with nothing else changed, a2 lists it, runs it, checks its artefacts and
// gives it a report section (with provenance, marked stale once its source changes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { main } from '../../src/cli/main.js';
import { type RegistryEntry, loadExperiments } from '../../src/cli/registry.js';
import { lineChart } from '../../src/plot/index.js';
import { checkOutputs } from '../../src/report/check.js';
import { figures, list, num, obj } from '../../src/report/declare.js';
import { assess, checkLines, writeReport } from '../../src/report/index.js';
import type { Experiment, RunContext } from '../../src/run/index.js';
import { tempDir } from '../helpers.js';

// ---- The experiment's module.
interface Config {
  points: number;
}
async function run(config: Config, ctx: RunContext) {
  const squares = Array.from({ length: config.points }, (_, i) => i * i);
  await ctx.writeFigure(
    'squares',
    lineChart({ title: 'squares', x: 'i', y: 'square', series: 'kind', rows: squares.map((s, i) => ({ i, square: s, kind: 'i²' })) }),
  );
  ctx.writeJson('squares.json', { squares });
  ctx.writeText('observations.md', `# Dummy: observations\n\nThe largest square is ${Math.max(...squares)}.\n`);
  return { squares, sum: squares.reduce((a, b) => a + b, 0) };
}
const dummy: Experiment<Config, Awaited<ReturnType<typeof run>>> = {
  name: 'q9-dummy',
  defaults: { points: 6 },
  profiles: { smoke: { points: 4 } },
  run,
  headline: (m) => `sum of squares ${m.sum}`,
  sources: ['experiments/q9-dummy.ts'],
  artefacts: [
    ...figures('squares'),
    { file: 'squares.json', kind: 'json', schema: obj({ squares: list(num, 2) }) },
    { file: 'observations.md', kind: 'md' },
  ],
  metricsSchema: obj({ squares: list(num), sum: num }),
  report: { title: 'Q9 — The dummy question', figures: ['squares'], answer: (m) => `- sum of the squares: **${m.sum}**` },
};

// ---- Its registry line (a temporary registry: the real one is not touched).
const registry: RegistryEntry[] = [
  { name: 'q9-dummy', summary: 'Q9: squares, to show what adding an experiment takes', load: async () => dummy },
];

const out = tempDir();
const cli = async (...args: string[]) => {
  const lines: string[] = [];
  const code = await main(['node', 'a2', ...args], registry, (l) => lines.push(l));
  return { code, lines };
};

test('a2 list shows it', async () => {
  const { code, lines } = await cli('list');
  assert.equal(code, 0);
  assert.deepEqual(lines, ['q9-dummy  Q9: squares, to show what adding an experiment takes']);
});

test('a2 run runs it with its profile and prints its typed headline', async () => {
  const { code, lines } = await cli('run', 'q9-dummy', '--profile', 'smoke', '--backend', 'cpu', '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(
    lines.some((l) => l.includes('(sum of squares 14)')),
    lines.join('\n'),
  );
  assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'q9-dummy/metrics.json'), 'utf8')), { squares: [0, 1, 4, 9], sum: 14 });
});

test('its declared artefacts are checked, a schema violation and a broken PNG named', async () => {
  const experiments = await loadExperiments(registry);
  assert.deepEqual(await checkOutputs(out, experiments), []);
  const broken = tempDir();
  await cli('run', 'q9-dummy', '--profile', 'smoke', '--backend', 'cpu', '--out', broken);
  writeFileSync(path.join(broken, 'q9-dummy/squares.json'), '{"squares": [1]}');
  writeFileSync(path.join(broken, 'q9-dummy/squares.png'), 'not a png');
  const problems = await checkOutputs(broken, experiments);
  assert.equal(problems.length, 2, problems.join('\n'));
  assert.match(problems[0], /squares\.png: not a PNG that decodes/);
  assert.match(problems[1], /squares\.json: data\/squares must NOT have fewer than 2 items/);
});

test('it gets a report section with its numbers, figure, observations and provenance; stale once its source changes', async () => {
  // A stand-in project with the experiment's source committed, and the run faked to come from that commit.
  const project = tempDir('a2-project-');
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .trim();
  git('init', '-q');
  mkdirSync(path.join(project, 'experiments'));
  writeFileSync(path.join(project, 'experiments/q9-dummy.ts'), '// v1\n');
  git('add', '-A');
  git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'v1');
  const manifestFile = path.join(out, 'q9-dummy/run.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  writeFileSync(manifestFile, JSON.stringify({ ...manifest, gitCommit: git('rev-parse', 'HEAD'), gitDirtyPaths: [] }));
  const experiments = await loadExperiments(registry);

  await writeReport(out, experiments, project);
  const md = readFileSync(path.join(out, 'REPORT.md'), 'utf8');
  assert.match(md, /## Q9 — The dummy question/);
  assert.match(md, /- sum of the squares: \*\*14\*\*/);
  assert.match(md, /!\[q9-dummy\/squares\]\(q9-dummy\/squares\.png\)/);
  assert.match(md, /The largest square is 9\./);
  assert.match(md, /run: profile smoke, seed 0, backend cpu, precision fp32, commit [0-9a-f]{10}, date \d{4}-/);
  assert.doesNotMatch(md, /Stale/);
  assert.deepEqual(checkLines(await assess(out, experiments, project)), ['q9-dummy: profile smoke, not full']);

  writeFileSync(path.join(project, 'experiments/q9-dummy.ts'), '// v2\n');
  await writeReport(out, experiments, project);
  assert.match(
    readFileSync(path.join(out, 'REPORT.md'), 'utf8'),
    /\*\*⚠ Stale\*\*: experiments\/q9-dummy\.ts changed since [0-9a-f]{10} \(uncommitted\)/,
  );
  assert.match(readFileSync(path.join(out, 'index.html'), 'utf8'), /<strong>⚠ Stale<\/strong>/);
  assert.deepEqual(checkLines(await assess(out, experiments, project)), [
    `q9-dummy: stale (experiments/q9-dummy.ts changed since ${git('rev-parse', 'HEAD').slice(0, 10)} (uncommitted))`,
    'q9-dummy: profile smoke, not full',
  ]);
});

test('a2 report --check lists what is missing and exits 1; a2 report still writes the page', async () => {
  const empty = tempDir();
  const check = await cli('report', '--check', '--out', empty);
  assert.equal(check.code, 1);
  assert.deepEqual(check.lines, [
    `q9-dummy: missing (no ${path.join(empty, 'q9-dummy/metrics.json')}; run npx a2 run q9-dummy --out ${empty})`,
  ]);
  const written = await cli('report', '--out', empty);
  assert.equal(written.code, 0);
  assert.match(readFileSync(path.join(empty, 'REPORT.md'), 'utf8'), /\*\*Missing\*\*: `outputs\/q9-dummy` has no results/);
});
