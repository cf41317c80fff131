// One tuning trial of the Q5 recipe: q5-cifar with recipe changes, trained on 45,000 training
// images and validated on the 5,000 held out of them (the test set plays no part), appended as
// one line to tuning/q5-trials.jsonl: the changes, validation accuracy per epoch, FLOPs, seconds.
//   node --import tsx scripts/tune-q5.ts <trial name> ['<JSON of recipe changes>'] [--seed <n>]
//   e.g. scripts/tune-q5.ts short-8 '{"epochs": 8}' --seed 1
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { experiment } from '../experiments/q5-cifar.js';
import { parseSeed } from '../src/cli/main.js';
import { UsageError, describeError } from '../src/errors.js';
import { runExperiment } from '../src/run/index.js';
import { PROJECT_ROOT } from '../src/run/manifest.js';
import { initBackend } from '../src/tensor/index.js';

function parseChanges(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError(`expected a JSON object of recipe changes, e.g. '{"epochs": 8}', found ${text}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidArgumentError(`expected a JSON object of recipe changes, found ${text}`);
  if ('validationImages' in value)
    throw new InvalidArgumentError('validationImages is not a recipe change: every trial holds out 5,000 training images');
  return value as Record<string, unknown>;
}

const program = new Command('tune-q5.ts')
  .description('one Q5 tuning trial on 45,000 training images, validated on the 5,000 held out of them')
  .argument('<name>', 'trial name, as recorded in tuning/q5-trials.jsonl')
  .argument('[changes]', 'JSON object of recipe changes (an unknown key is refused)', parseChanges, {})
  .option('--seed <n>', 'seed for every random choice', parseSeed, 0)
  .allowExcessArguments(false)
  // Usage errors exit 2, as a2's own do (commander has printed the message by then).
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
  .parse();
// The seed used to come from A2_SEED: refuse it rather than record seed 0 for a run meant as another.
if (process.env.A2_SEED !== undefined) program.error('tune-q5: A2_SEED is no longer read: pass --seed', { exitCode: 2 });
const [name, changes] = program.processedArgs as [string, Record<string, unknown>];
const { seed } = program.opts<{ seed: number }>();
let outRoot: string | undefined;
try {
  const backend = await initBackend('auto');
  outRoot = mkdtempSync(path.join(tmpdir(), 'a2-tune-'));
  const { metrics, seconds } = await runExperiment(
    experiment,
    { profile: 'full', seed, outRoot, overrides: { ...changes, validationImages: 5000 }, log: (line) => console.log(line) },
    backend,
  );
  const trial = {
    name,
    seed,
    changes,
    precision: backend.precision,
    // Since q5-cifar tests each epoch on one view (6a12deb), rows say which views each number used.
    validationAcc: metrics.epochs.map((e) => Number(e.testAcc.toFixed(4))),
    validationViews: 1,
    finalValidationAcc: metrics.finalTestAcc,
    finalValidationViews: metrics.testViews,
    trainingFlops: metrics.trainingFlops,
    wallSeconds: Math.round(metrics.wallSeconds),
    totalSeconds: Math.round(seconds),
    date: new Date().toISOString(),
  };
  mkdirSync(path.join(PROJECT_ROOT, 'tuning'), { recursive: true });
  appendFileSync(path.join(PROJECT_ROOT, 'tuning', 'q5-trials.jsonl'), `${JSON.stringify(trial)}\n`);
  console.log(JSON.stringify(trial));
} catch (err) {
  console.error(`tune-q5: ${describeError(err)}`);
  process.exitCode = err instanceof UsageError ? 2 : 1;
} finally {
  if (outRoot) rmSync(outRoot, { recursive: true, force: true });
}
