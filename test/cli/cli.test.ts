import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { a2, tempDir } from '../helpers.js';

test('list names every experiment of the design card', async () => {
  const { code, lines } = await a2('list');
  assert.equal(code, 0);
  for (const name of ['q1-adam', 'q2-fc-ae', 'q2-conv-ae', 'q3-mean-latent', 'q4-ops', 'q5-cifar', 'q6-rf']) {
    assert.ok(
      lines.some((l) => l.startsWith(name)),
      `${name} missing from a2 list`,
    );
  }
});

const usageCases: [string, string[]][] = [
  ['an unknown experiment', ['run', 'q9-nope']],
  ['a non-numeric --epochs', ['run', 'q6-rf', '--epochs', 'ten']],
  ['a zero --batch-size', ['run', 'q6-rf', '--batch-size', '0']],
  ['a negative --lr', ['run', 'q6-rf', '--lr', '-1']],
  ['an unknown --backend', ['run', 'q6-rf', '--backend', 'tpu']],
  ['an unknown --profile', ['run', 'q6-rf', '--profile', 'huge']],
  ['an unknown flag', ['run', 'q6-rf', '--colour', 'red']],
  ['a malformed --layers stack', ['run', 'q6-rf', '--layers', 'conv(3,1)']],
  ['a --layers stack with an empty layer', ['run', 'q6-rf', '--layers', 'conv2d(3,1),']],
  ['a --layers stack too large to measure', ['run', 'q6-rf', '--layers', 'conv2d(100000,1)']],
  ['a --layers stack too costly to measure', ['run', 'q6-rf', '--layers', 'conv2d(300,1),conv2d(300,1)']],
  ['an empty --layers', ['run', 'q6-rf', '--layers', '']],
  ['an empty --input', ['run', 'q4-ops', '--input', ' ']],
  ['a flag of an experiment not being run', ['run', 'q6-rf', '--far-slope', '-0.5']],
];

for (const [what, args] of usageCases) {
  test(`${what} is a usage error: exit 2, nothing written`, async () => {
    const out = tempDir();
    const { code } = await a2(...args, '--out', out);
    assert.equal(code, 2);
    assert.deepEqual(
      readdirSync(out).filter((f) => f !== '.partial'),
      [],
    );
  });
}

test('an unknown experiment lists the valid choices', async () => {
  const { errors } = await a2('run', 'q9-nope');
  assert.match(errors.join('\n'), /unknown experiment "q9-nope"; choose from: q1-adam, .*q6-rf, all/);
});

test('a malformed .pt input fails the run (exit 1) and leaves no outputs folder behind', async () => {
  const out = tempDir();
  const { code, lines } = await a2('run', 'q4-ops', '--input', path.join(out, 'missing.pt'), '--out', out);
  assert.equal(code, 1);
  assert.ok(lines.some((l) => l.includes('missing.pt: expected a torch.save .pt file, found no such file')));
  assert.equal(existsSync(path.join(out, 'q4-ops')), false);
  assert.equal(existsSync(path.join(out, '.partial', 'q4-ops')), false);
});

/** q2-fc-ae (quick) started in a child process and left until it is into its first epoch. */
async function trainingRun(out: string) {
  const { spawn } = await import('node:child_process');
  const { DATA_DIR, ROOT } = await import('../helpers.js');
  const child = spawn(
    process.execPath,
    [path.join(ROOT, 'bin/a2.js'), 'run', 'q2-fc-ae', '--profile', 'quick', '--data-dir', DATA_DIR, '--out', out],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } },
  );
  let output = '';
  const collect = (d: Buffer) => {
    output += d.toString();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  while (!output.includes('backend:')) {
    if (child.exitCode !== null) assert.fail(`exited early: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 1500)); // into the first epoch
  const exit = new Promise<number | null>((r) => child.once('exit', r));
  return { child, exit, output: () => output };
}

test('Ctrl-C (SIGINT) mid-training stops the run cleanly: non-zero exit, nothing landed, nothing half-written', async () => {
  const out = tempDir();
  const run = await trainingRun(out);
  run.child.kill('SIGINT');
  const code = await run.exit;
  const stderr = run.output();
  assert.equal(code, 1, stderr);
  assert.match(stderr, /stopping after the current batch/);
  assert.match(stderr, /FAILED: .*interrupted/);
  assert.doesNotMatch(stderr, /\n\s+at /, 'one line, no stack trace');
  assert.equal(existsSync(path.join(out, 'q2-fc-ae')), false);
  assert.equal(existsSync(path.join(out, '.partial')), false, 'no empty staging folder left either');
});

test('a file where the results folder goes is refused before anything runs, and kept', async () => {
  const { readFileSync, writeFileSync } = await import('node:fs');
  const out = tempDir();
  writeFileSync(path.join(out, 'q6-rf'), 'my notes');
  const { code, lines } = await a2('run', 'q6-rf', '--out', out);
  assert.equal(code, 1, lines.join('\n'));
  assert.ok(
    lines.some((l) =>
      l.endsWith(`${path.join(out, 'q6-rf')}: a file is where the results folder goes; move it away or give another --out`),
    ),
    lines.join('\n'),
  );
  assert.equal(readFileSync(path.join(out, 'q6-rf'), 'utf8'), 'my notes');
  assert.deepEqual(readdirSync(out), ['q6-rf']);
});

test("one experiment's run refreshes the report of its outputs folder too", async () => {
  const out = tempDir();
  const { code, lines } = await a2('run', 'q6-rf', '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(
    lines.some((l) => l.startsWith('report: ')),
    lines.join('\n'),
  );
  const { readFileSync } = await import('node:fs');
  const report = readFileSync(path.join(out, 'REPORT.md'), 'utf8');
  assert.match(report, /## Q6/);
  assert.match(report, /q1-adam.*has no results/s, 'the experiments not run are listed as missing');
  assert.ok(existsSync(path.join(out, 'index.html')));
});

test('--version prints the version of package.json and exits 0', async () => {
  const { readFileSync } = await import('node:fs');
  const { ROOT } = await import('../helpers.js');
  const { spawnSync } = await import('node:child_process');
  const run = spawnSync(process.execPath, [path.join(ROOT, 'bin/a2.js'), '--version'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, `${(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`);
});
