// What keeps runs from corrupting each other or themselves: the staging lock, atomic checkpoints,
// --resume against the saved configuration, prerequisites checked by their configuration, and
// one-line failures.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { obj } from '../../src/report/declare.js';
import { main } from '../../src/cli/main.js';
import type { RegistryEntry } from '../../src/cli/registry.js';
import { RunError, UsageError, describeError } from '../../src/errors.js';
import {
  type Experiment,
  LOCK_FILE,
  RunContext,
  type RunOptions,
  hasCheckpoint,
  loadCheckpoint,
  resolveConfig,
  runExperiment,
  saveCheckpoint,
} from '../../src/run/index.js';
import { moveAsideStale } from '../../src/run/lock.js';
import { initBackend, tf } from '../../src/tensor/index.js';
import { DATA_DIR, ROOT, a2, tempDir } from '../helpers.js';

function tinyModel(): tf.LayersModel {
  return tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
}

function writeLock(out: string, experiment: string, pid: number): string {
  const dir = path.join(out, '.partial', experiment);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK_FILE);
  writeFileSync(file, JSON.stringify({ pid, host: os.hostname(), startedAt: '2024-01-01T00:00:00.000Z', command: 'run q6-rf' }));
  return file;
}

test('a lock another process took over between the staleness check and the move is put back, not taken', () => {
  const file = path.join(tempDir(), LOCK_FILE);
  const stale = { pid: 1, host: os.hostname(), startedAt: '2024-01-01T00:00:00.000Z', command: 'run q6-rf' };
  writeFileSync(file, JSON.stringify({ ...stale, pid: process.pid, startedAt: '2024-01-02T00:00:00.000Z' }));
  assert.equal(moveAsideStale(file, stale), false);
  assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { pid: number }).pid, process.pid, 'the live lock is back in place');
  writeFileSync(file, JSON.stringify(stale));
  assert.equal(moveAsideStale(file, stale), true);
  assert.equal(existsSync(file), false, 'the stale lock is gone');
  assert.deepEqual(readdirSync(path.dirname(file)), [], 'nothing left aside');
});

test('a process that exits at once (a second Ctrl-C: exit 130) leaves no lock behind; a released lock stays released', async () => {
  const dir = tempDir();
  const script = `import { acquireLock } from ${JSON.stringify(path.join(ROOT, 'src/run/lock.ts'))};
acquireLock(${JSON.stringify(dir)}, () => {});
process.exit(130);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: 'ignore' });
  assert.equal(await new Promise((r) => child.once('exit', r)), 130);
  assert.deepEqual(readdirSync(dir), [], 'lock.json went with the process');
  // Releasing before the exit removes the exit hook with the lock: a later lock of the folder is not touched.
  const { acquireLock } = await import('../../src/run/lock.js');
  const release = acquireLock(dir, () => {});
  const before = process.listenerCount('exit');
  release();
  assert.equal(process.listenerCount('exit'), before - 1);
  assert.deepEqual(readdirSync(dir), []);
});

test('a run abandoned with or without checkpoints, or landed, leaves no exit hook behind', async () => {
  const { experiment: q4 } = await import('../../experiments/q4-ops.js');
  const backend = await initBackend();
  const before = process.listenerCount('exit');
  const context = (out: string) =>
    new RunContext(
      'q4-ops',
      { profile: 'full', seed: 0, outRoot: out, overrides: {}, log: () => {} },
      resolveConfig(q4, 'full', {}),
      backend,
    );
  context(tempDir()).abandon();
  await interruptedRun(tempDir(), q4);
  const landed = context(tempDir());
  landed.finish({});
  assert.equal(process.listenerCount('exit'), before);
});

test('a staging folder held by a live a2 is refused, naming the holder; a dead holder is taken over with a note', async () => {
  const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    const out = tempDir();
    const lock = writeLock(out, 'q6-rf', holder.pid!);
    const refused = await a2('run', 'q6-rf', '--out', out);
    assert.equal(refused.code, 1);
    assert.ok(
      refused.lines.some((l) =>
        l.includes(
          `[q6-rf] FAILED: ${path.join(out, '.partial', 'q6-rf')} is in use by another a2 run (pid ${holder.pid} on ${os.hostname()}`,
        ),
      ),
      refused.lines.join('\n'),
    );
    assert.equal((JSON.parse(readFileSync(lock, 'utf8')) as { pid: number }).pid, holder.pid, 'the holder keeps its lock');
    assert.equal(existsSync(path.join(out, 'q6-rf')), false);
  } finally {
    holder.kill();
  }

  const gone = spawn('true', { stdio: 'ignore' });
  await new Promise((r) => gone.once('exit', r));
  const out = tempDir();
  writeLock(out, 'q6-rf', gone.pid!);
  const { code, lines } = await a2('run', 'q6-rf', '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(lines.some((l) => l.includes(`note: taking over the lock of pid ${gone.pid}`)));
  assert.equal(existsSync(path.join(out, 'q6-rf', LOCK_FILE)), false, 'the landed folder carries no lock');
  assert.equal(existsSync(path.join(out, '.partial', 'q6-rf')), false);
});

test('two a2 processes on one experiment and outputs folder: the second is refused while the first trains, which then lands intact', async () => {
  const out = tempDir();
  const args = ['run', 'q5-cifar', '--profile', 'smoke', '--epochs', '1', '--data-dir', DATA_DIR, '--out', out];
  const first = spawn(process.execPath, [path.join(ROOT, 'bin/a2.js'), ...args], { stdio: 'ignore', env: { ...process.env, CI: '1' } });
  const lock = path.join(out, '.partial', 'q5-cifar', LOCK_FILE);
  while (!existsSync(lock)) {
    if (first.exitCode !== null) assert.fail('the first run ended before it took the lock');
    await new Promise((r) => setTimeout(r, 20));
  }
  const second = await a2(...args);
  assert.equal(second.code, 1);
  assert.ok(
    second.lines.some((l) => l.includes(`is in use by another a2 run (pid ${first.pid}`)),
    second.lines.join('\n'),
  );
  const code = await new Promise<number | null>((r) => first.once('exit', r));
  assert.equal(code, 0, 'the first run was not disturbed');
  assert.equal((JSON.parse(readFileSync(path.join(out, 'q5-cifar', 'metrics.json'), 'utf8')) as { epochs: unknown[] }).epochs.length, 1);
});

test('a checkpoint is swapped in whole: a write cut short, or a crash between the renames, leaves a complete one', async () => {
  const dir = path.join(tempDir(), 'checkpoints');
  const model = tinyModel();
  const optimizer = tf.train.adam(0.1);
  await saveCheckpoint(dir, model, optimizer, { epochs: [1] });
  const firstWeights = model.getWeights().map((w) => Array.from(w.dataSync()));
  model.setWeights(model.getWeights().map((w) => tf.add(w, 1)));
  await saveCheckpoint(dir, model, optimizer, { epochs: [1, 2] });
  assert.deepEqual(readdirSync(dir), ['latest'], 'no temporary folder is left');

  // A second process killed while writing its files: a folder without state.json is never read.
  mkdirSync(path.join(dir, 'writing-99999', 'model'), { recursive: true });
  writeFileSync(path.join(dir, 'writing-99999', 'optimizer.bin'), 'torn');
  const restored = tinyModel();
  assert.deepEqual((await loadCheckpoint<{ epochs: number[] }>(dir, restored, tf.train.adam(0.1))).epochs, [1, 2]);
  assert.deepEqual(
    restored.getWeights().map((w) => Array.from(w.dataSync())),
    model.getWeights().map((w) => Array.from(w.dataSync())),
  );

  // Killed after the old checkpoint was moved aside and before the new one took its place.
  renameSync(path.join(dir, 'latest'), path.join(dir, 'previous'));
  assert.ok(hasCheckpoint(dir));
  const fromPrevious = tinyModel();
  assert.deepEqual((await loadCheckpoint<{ epochs: number[] }>(dir, fromPrevious, tf.train.adam(0.1))).epochs, [1, 2]);
  // The weights read from previous/ are the second checkpoint's, not the first's.
  assert.deepEqual(
    fromPrevious.getWeights().map((w) => Array.from(w.dataSync())),
    model.getWeights().map((w) => Array.from(w.dataSync())),
  );
  assert.notDeepEqual(
    firstWeights,
    fromPrevious.getWeights().map((w) => Array.from(w.dataSync())),
  );
});

/** A staging folder left by an interrupted run of `experiment`: a two-epoch checkpoint and the config it was made with. */
async function interruptedRun(out: string, experiment: Experiment<object>, overrides: Record<string, unknown> = {}): Promise<void> {
  const backend = await initBackend();
  const options: RunOptions = { profile: 'full', seed: 0, outRoot: out, overrides, log: () => {} };
  const ctx = new RunContext(experiment.name, options, resolveConfig(experiment, 'full', overrides), backend);
  await saveCheckpoint(ctx.path('checkpoints'), tinyModel(), tf.train.adam(0.1), { epochs: [{}, {}] });
  ctx.abandon();
}

test('--resume refuses a configuration other than the checkpoint’s, listing each difference; without --resume the discarded epochs are named', async () => {
  const { experiment: q4 } = await import('../../experiments/q4-ops.js');
  const out = tempDir();
  await interruptedRun(out, q4);
  const staging = path.join(out, '.partial', 'q4-ops');
  assert.equal(existsSync(path.join(staging, LOCK_FILE)), false, 'an abandoned run releases its lock');

  const changed = await a2('run', 'q4-ops', '--resume', '--input', 'x.pt', '--seed', '4', '--data-dir', DATA_DIR, '--out', out);
  assert.equal(changed.code, 2);
  const message = changed.errors.join('\n');
  assert.match(message, /--resume: the checkpoint in .*q4-ops.checkpoints was made with another configuration/);
  assert.match(message, /seed: checkpoint 0 vs requested 4/);
  assert.match(message, /input: checkpoint "" vs requested "x\.pt"/);
  assert.ok(hasCheckpoint(path.join(staging, 'checkpoints')), 'a refused resume keeps the checkpoint');

  const fresh = await a2('run', 'q4-ops', '--data-dir', DATA_DIR, '--out', out);
  assert.equal(fresh.code, 0, fresh.lines.join('\n'));
  assert.ok(
    fresh.lines.includes('[q4-ops] discarding the checkpoint of an interrupted run (epochs 1–2 done); --resume would have continued it'),
    fresh.lines.join('\n'),
  );
});

test('--resume over a checkpoint that records no configuration is refused', async () => {
  const { experiment: q6 } = await import('../../experiments/q6-rf.js');
  const out = tempDir();
  await interruptedRun(out, q6);
  const staged = path.join(out, '.partial', 'q6-rf', 'staged-run.json');
  renameSync(staged, `${staged}.gone`);
  const { code, errors } = await a2('run', 'q6-rf', '--resume', '--out', out);
  assert.equal(code, 2);
  assert.match(errors.join('\n'), /does not record the configuration it was made with; run without --resume to start over/);
});

// Two toy experiments that share a config key, as q5-subsets and q5-cifar share the recipe's.
interface ToyConfig {
  epochs: number;
}
const runs: string[] = [];
const prerequisite: Experiment<ToyConfig> = {
  name: 'toy-base',
  defaults: { epochs: 5 },
  sources: [],
  artefacts: [],
  metricsSchema: obj({}),
  report: { title: 'toy', answer: () => '' },
  profiles: {},
  run: async (config) => {
    runs.push(`toy-base epochs ${config.epochs}`);
    return {};
  },
};
const dependent: Experiment<ToyConfig> = {
  name: 'toy-dependent',
  defaults: { epochs: 2 },
  sources: [],
  artefacts: [],
  metricsSchema: obj({}),
  report: { title: 'toy', answer: () => '' },
  profiles: {},
  run: async (_config, ctx) => {
    await ctx.outputsBuiltOn(prerequisite as Experiment<object>);
    return {};
  },
};

test('a prerequisite is reused only with the configuration it must have, and never gets the dependent run’s own flags', async () => {
  const backend = await initBackend();
  const out = tempDir();
  const logged: string[] = [];
  const options = (overrides: Record<string, unknown>, prerequisiteOverrides = {}): RunOptions => ({
    profile: 'smoke',
    seed: 0,
    outRoot: out,
    overrides,
    prerequisiteOverrides,
    log: (l) => logged.push(l),
  });
  const baseConfig = () => (JSON.parse(readFileSync(path.join(out, 'toy-base', 'run.json'), 'utf8')) as { config: ToyConfig }).config;

  runs.length = 0;
  await runExperiment(dependent as Experiment<object>, options({ epochs: 7 }), backend);
  assert.deepEqual(runs, ['toy-base epochs 5'], "the dependent's --epochs 7 is not passed on");
  assert.deepEqual(baseConfig(), { epochs: 5 });

  runs.length = 0;
  await runExperiment(dependent as Experiment<object>, options({}), backend);
  assert.deepEqual(runs, [], 'a matching run is reused');

  await runExperiment(prerequisite as Experiment<object>, options({ epochs: 9 }), backend);
  runs.length = 0;
  logged.length = 0;
  await runExperiment(dependent as Experiment<object>, options({}), backend);
  assert.deepEqual(runs, ['toy-base epochs 5'], 'a run with the same profile and seed but another config is not reused');
  assert.ok(
    logged.some((l) => l.includes('outputs/toy-base was run with other settings (epochs: outputs/toy-base 9 vs needed 5)')),
    logged.join('\n'),
  );

  // Run by the same command with its own flags (a2 run toy-base toy-dependent --epochs 9): that run is the one to use.
  await runExperiment(prerequisite as Experiment<object>, options({ epochs: 9 }), backend);
  runs.length = 0;
  await runExperiment(dependent as Experiment<object>, options({}, { 'toy-base': { epochs: 9 } }), backend);
  assert.deepEqual(runs, []);
});

test('describeError: one line for a2’s own errors, file-system errors and anything else; the stack only with A2_DEBUG=1', () => {
  assert.equal(describeError(new UsageError('bad flag'), {}), 'bad flag');
  assert.equal(describeError(new RunError('diverged'), {}), 'diverged');
  const fsError = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES', syscall: 'mkdir', path: '/x/out' });
  assert.equal(describeError(fsError, {}), '/x/out: cannot mkdir: permission denied (EACCES)');
  const unexpected = new TypeError('cannot read properties of undefined\n    more detail');
  assert.equal(describeError(unexpected, {}), 'TypeError: cannot read properties of undefined (A2_DEBUG=1 prints the stack trace)');
  const debug = describeError(unexpected, { A2_DEBUG: '1' });
  assert.ok(debug.startsWith('TypeError: cannot read properties of undefined\n'));
  assert.match(debug, /\n\s+at /);
});

test('an unexpected error in an experiment is one FAILED line, without a stack trace', async () => {
  const broken: RegistryEntry = {
    name: 'broken',
    summary: 'throws',
    load: async () => ({
      name: 'broken',
      sources: [],
      artefacts: [],
      metricsSchema: obj({}),
      report: { title: 'toy', answer: () => '' },
      defaults: {},
      profiles: {},
      run: async () => {
        throw new TypeError('x is undefined');
      },
    }),
  };
  const lines: string[] = [];
  const code = await main(['node', 'a2', 'run', 'broken', '--out', tempDir()], [broken], (l) => lines.push(l));
  assert.equal(code, 1);
  assert.deepEqual(
    lines.filter((l) => l.startsWith('[broken]')),
    ['[broken] FAILED: TypeError: x is undefined (A2_DEBUG=1 prints the stack trace)'],
  );
  assert.ok(!lines.some((l) => /^\s+at /m.test(l)));
});

test('a file where --out’s folder should be, and a directory where run.json should be, are one-line failures', async () => {
  const file = path.join(tempDir(), 'not-a-folder');
  writeFileSync(file, '');
  const onFile = await a2('run', 'q6-rf', '--out', file);
  assert.equal(onFile.code, 1);
  assert.ok(
    onFile.lines.includes(
      `[q6-rf] FAILED: ${path.join(file, '.partial', 'q6-rf')}: cannot mkdir: a file is in the way where a folder should be (ENOTDIR)`,
    ),
    onFile.lines.join('\n'),
  );

  const out = tempDir();
  mkdirSync(path.join(out, 'q2-conv-ae', 'run.json'), { recursive: true });
  const onDir = await a2('run', 'q3-mean-latent', '--profile', 'smoke', '--data-dir', DATA_DIR, '--out', out);
  assert.equal(onDir.code, 1);
  assert.ok(
    onDir.lines.includes(`[q3-mean-latent] FAILED: ${path.join(out, 'q2-conv-ae', 'run.json')}: expected a JSON file, found a directory`),
    onDir.lines.join('\n'),
  );
});

test('--backend tensorflow without @tensorflow/tfjs-node is a one-line usage error', async (t) => {
  const nodeBinding = '@tensorflow/tfjs-node'; // an optional dependency: named at run time, as backend.ts does
  const installed = await import(nodeBinding).then(
    () => true,
    () => false,
  );
  if (installed) return t.skip('@tensorflow/tfjs-node is installed here');
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/a2.js'), 'run', 'q6-rf', '--backend', 'tensorflow', '--out', tempDir()], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  assert.equal(code, 2);
  assert.equal(
    stderr.trim(),
    'error: --backend tensorflow: backend tensorflow could not be loaded: @tensorflow/tfjs-node is not installed; --backend auto picks one that loads',
  );
});

test('a read-only --out is named as read-only, not as missing', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const out = tempDir();
  // A read-only file system needs a mount: root here (CI runs as root); skipped where that is not allowed.
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', out]).status !== 0)
    return t.skip('cannot mount a read-only tmpfs here');
  try {
    const { code, lines } = await a2('run', 'q6-rf', '--out', out);
    assert.equal(code, 1);
    assert.ok(
      lines.some((l) => l.endsWith(`[q6-rf] FAILED: ${out}: cannot access: read-only file system (EROFS)`)),
      lines.join('\n'),
    );
  } finally {
    spawnSync('umount', [out]);
  }
});
