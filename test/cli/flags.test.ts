// argv → resolved config, for every experiment and every flag that sets a config key: each flag
// either lands in the config under its key or is refused (exit 2) naming the experiments that take it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { registry } from '../../experiments/index.js';
import { planArgv } from '../../src/cli/main.js';
import { flagKey } from '../../src/cli/registry.js';
import { UsageError } from '../../src/errors.js';
import { resolveConfig } from '../../src/run/index.js';
import { a2, tempDir } from '../helpers.js';

/** One value per config flag, as typed and as it must land in the config. */
const SAMPLES: Record<string, [string, unknown]> = {
  '--epochs': ['3', 3],
  '--batch-size': ['8', 8],
  '--lr': ['0.5', 0.5],
  '--far-slope': ['-0.5', -0.5],
  '--input': ['x.pt', 'x.pt'],
  '--filter': ['f.pt', 'f.pt'],
  '--linear-weight': ['w.pt', 'w.pt'],
  '--linear-bias': ['b.pt', 'b.pt'],
  '--layers': ['conv2d(3,1)', 'conv2d(3,1)'],
};

/** The flags each experiment takes; every other flag of SAMPLES is refused. Written out by hand, not derived. */
const TAKES: Record<string, string[]> = {
  'q1-adam': ['--lr', '--far-slope'],
  'q2-fc-ae': ['--epochs', '--batch-size', '--lr'],
  'q2-conv-ae': ['--epochs', '--batch-size', '--lr'],
  'q3-mean-latent': [],
  'q4-ops': ['--input', '--filter', '--linear-weight', '--linear-bias'],
  'q5-cifar': ['--epochs', '--batch-size', '--lr'],
  'q5-subsets': [], // its per-size plans own epochs, batch size and lr
  'q5-ablations': ['--epochs', '--batch-size', '--lr'],
  'q6-rf': ['--layers'],
};

test('the table covers every experiment of the registry and every config flag it declares', () => {
  assert.deepEqual(Object.keys(TAKES).sort(), registry.map((e) => e.name).sort());
  for (const entry of registry)
    for (const spec of entry.flags ?? []) {
      const flag = spec.flags.split(' ')[0];
      assert.ok(flag in SAMPLES, `${flag} of ${entry.name} needs a sample in this table`);
      assert.ok(TAKES[entry.name].includes(flag), `${entry.name} declares ${flag} but the table says it does not take it`);
    }
});

for (const [name, takes] of Object.entries(TAKES))
  for (const [flag, [typed, value]] of Object.entries(SAMPLES)) {
    const argv = ['node', 'a2', 'run', name, '--profile', 'smoke', flag, typed];
    if (takes.includes(flag)) {
      test(`a2 run ${name} ${flag} ${typed} sets ${flagKey(flag)} and nothing else`, async () => {
        const [plan] = await planArgv(argv, registry);
        assert.deepEqual(plan.ignoredFlags, []);
        const config = resolveConfig(plan.experiment, 'smoke', plan.overrides) as Record<string, unknown>;
        const plain = resolveConfig(plan.experiment, 'smoke', {}) as Record<string, unknown>;
        assert.deepEqual(config, { ...plain, [flagKey(flag)]: value });
      });
    } else {
      test(`a2 run ${name} ${flag} ${typed} is refused, naming ${flag} and the experiments that take it`, async () => {
        const takers = Object.entries(TAKES)
          .filter(([, t]) => t.includes(flag))
          .map(([n]) => n);
        await assert.rejects(planArgv(argv, registry), (err: Error) => {
          assert.ok(err instanceof UsageError, String(err));
          assert.ok(err.message.includes(flag), err.message);
          assert.ok(err.message.endsWith(`experiments that take ${flag}: ${takers.join(', ')}`), err.message);
          return true;
        });
      });
    }
  }

test('q5-subsets says why it refuses --epochs, --batch-size and --lr', async () => {
  for (const flag of ['--epochs', '--batch-size', '--lr']) {
    const { code, errors } = await a2('run', 'q5-subsets', flag, SAMPLES[flag][0], '--out', tempDir());
    assert.equal(code, 2);
    assert.match(errors.join('\n'), new RegExp(`q5-subsets does not take ${flag}: each subset size sets its own`));
  }
});

test('a2 run q6-rf --epochs 9 exits 2 naming --epochs', async () => {
  const { code, errors } = await a2('run', 'q6-rf', '--epochs', '9', '--out', tempDir());
  assert.equal(code, 2);
  assert.match(errors.join('\n'), /--epochs is not used by q6-rf; experiments that take --epochs: q2-fc-ae/);
});

test('with several experiments a flag goes to those that take it; the others are named and record it in run.json', async () => {
  const plans = await planArgv(['node', 'a2', 'run', 'q1-adam', 'q2-fc-ae', 'q6-rf', '--epochs', '2', '--lr', '0.01'], registry);
  assert.deepEqual(
    plans.map((p) => [p.entry.name, p.overrides, p.ignoredFlags]),
    [
      ['q1-adam', { lr: 0.01 }, ['--epochs']],
      ['q2-fc-ae', { epochs: 2, lr: 0.01 }, []],
      ['q6-rf', {}, ['--epochs', '--lr']],
    ],
  );
  await assert.rejects(planArgv(['node', 'a2', 'run', 'q3-mean-latent', 'q6-rf', '--lr', '0.1'], registry), /--lr is not used by/);

  const out = tempDir();
  const { code, lines } = await a2('run', 'q1-adam', 'q6-rf', '--profile', 'smoke', '--lr', '0.25', '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(lines.includes('note: --lr is used by q1-adam and ignored by q6-rf'), lines.join('\n'));
  const runOf = (name: string) => JSON.parse(readFileSync(path.join(out, name, 'run.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(runOf('q6-rf').ignoredFlags, ['--lr']);
  assert.equal(runOf('q1-adam').ignoredFlags, undefined);
  assert.equal((runOf('q1-adam').config as { lr: number }).lr, 0.25);
  // What was asked, and what ran: bf16 where the CPU and the accelerator have it, else fp32.
  assert.equal(runOf('q1-adam').requestedPrecision, 'auto');
  assert.ok(['fp32', 'bf16'].includes(runOf('q1-adam').precision as string));
});

test('--precision is one of auto, fp32, bf16 and is recorded in run.json', async () => {
  assert.equal((await a2('run', 'q6-rf', '--precision', 'fp8', '--out', tempDir())).code, 2);
  const out = tempDir();
  const { code } = await a2('run', 'q6-rf', '--precision', 'fp32', '--out', out);
  assert.equal(code, 0);
  assert.equal((JSON.parse(readFileSync(path.join(out, 'q6-rf', 'run.json'), 'utf8')) as { precision: string }).precision, 'fp32');
});

test('numbers in other forms than digits (and a decimal point or exponent where a rate is asked), empty folders and repeated flags are refused: exit 2', async () => {
  const { main } = await import('../../src/cli/main.js');
  const refused: string[][] = [
    ['--seed', ''],
    ['--seed', ' '],
    ['--seed', '0x10'],
    ['--seed', '1e3'],
    ['--epochs', '1e0'],
    ['--epochs', '0x2'],
    ['--epochs', '2.0'],
    ['--lr', '0x1'],
    ['--lr', 'Infinity'],
    ['--lr', ''],
    ['--out', ''],
    ['--data-dir', ' '],
    ['--epochs', '1', '--epochs', '2'],
    ['--profile', 'full', '--profile=smoke'],
    ['--lr', '-0.5', '--lr', '0.5'],
    ['--resume', '--resume'],
  ];
  for (const args of refused)
    await assert.rejects(planArgv(['node', 'a2', 'run', 'q5-cifar', ...args], registry), (err: Error & { code?: string }) => {
      assert.ok(err.name === 'UsageError' || err.code === 'commander.invalidArgument', `${args.join(' ')}: ${err}`);
      return true;
    });
  // As the CLI exits: the usage code, before anything runs.
  assert.equal(await main(['node', 'a2', 'run', 'q5-cifar', '--seed', ''], registry, () => {}), 2);
  await assert.rejects(planArgv(['node', 'a2', 'run', 'q5-cifar', '--epochs', '1', '--epochs', '2'], registry), {
    name: 'UsageError',
    message: '--epochs given 2 times ("1", "2"); give it once',
  });
  // The values as Commander took them: a negative number is a value, not a flag.
  await assert.rejects(planArgv(['node', 'a2', 'run', 'q1-adam', '--far-slope', '-0.5', '--far-slope=2'], registry), {
    name: 'UsageError',
    message: '--far-slope given 2 times ("-0.5", "2"); give it once',
  });
  // Accepted as written: plain digits, a decimal rate, an exponent on a rate, a flag's value after "=".
  const [plan] = await planArgv(['node', 'a2', 'run', 'q5-cifar', '--epochs', '12', '--lr=1e-3', '--seed', '007'], registry);
  assert.deepEqual(plan.overrides, { epochs: 12, lr: 0.001 });
});

test('--seed where no random number is drawn: refused when it changes nothing at all, noted and recorded beside an experiment it changes', async () => {
  const argv = (...names: string[]) => ['node', 'a2', 'run', ...names, '--profile', 'smoke', '--seed', '7'];
  await assert.rejects(planArgv(argv('q6-rf', 'q1-adam'), registry), (err: Error) => {
    assert.ok(err instanceof UsageError, String(err));
    assert.match(err.message, /^--seed changes nothing in q6-rf \(.*no random number drawn\); q1-adam \(.*draw no random number\)$/);
    return true;
  });
  const lines: string[] = [];
  const plans = await planArgv(argv('q6-rf', 'q4-ops'), registry, (l) => lines.push(l));
  assert.deepEqual(
    plans.map((p) => [p.entry.name, p.ignoredFlags]),
    [
      ['q6-rf', ['--seed']],
      ['q4-ops', []],
    ],
  );
  assert.deepEqual(lines, ['note: --seed changes nothing in q6-rf: no random number is drawn there']);
  // The default seed is not typed: nothing to say.
  assert.deepEqual(
    (await planArgv(['node', 'a2', 'run', 'q6-rf'], registry)).map((p) => p.ignoredFlags),
    [[]],
  );
});
