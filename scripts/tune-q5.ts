// One tuning trial of the Q5 recipe: q5-cifar with recipe changes, trained on 45,000 training
// images and validated on the 5,000 held out of them (the test set plays no part), appended as
// one line to tuning/q5-trials.jsonl: the changes, validation accuracy per epoch, FLOPs, seconds.
//   node --import tsx scripts/tune-q5.ts <trial name> '<JSON of recipe changes>'
//   e.g. scripts/tune-q5.ts short-8 '{"epochs": 8}'
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { experiment } from '../experiments/q5-cifar.js';
import { runExperiment } from '../src/run/index.js';
import { PROJECT_ROOT } from '../src/run/manifest.js';
import { initBackend } from '../src/tensor/index.js';

const [name, changesJson = '{}'] = process.argv.slice(2);
if (!name) {
  console.error("usage: tune-q5.ts <trial name> '<JSON of recipe changes>'");
  process.exit(2);
}
const changes = JSON.parse(changesJson) as Record<string, unknown>;
const seed = Number(process.env.A2_SEED ?? 0);
const backend = await initBackend('auto');
const outRoot = mkdtempSync(path.join(tmpdir(), 'a2-tune-'));
try {
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
    validationAcc: metrics.epochs.map((e) => Number(e.testAcc.toFixed(4))),
    finalValidationAcc: metrics.finalTestAcc,
    trainingFlops: metrics.trainingFlops,
    wallSeconds: Math.round(metrics.wallSeconds),
    totalSeconds: Math.round(seconds),
    date: new Date().toISOString(),
  };
  mkdirSync(path.join(PROJECT_ROOT, 'tuning'), { recursive: true });
  appendFileSync(path.join(PROJECT_ROOT, 'tuning', 'q5-trials.jsonl'), `${JSON.stringify(trial)}\n`);
  console.log(JSON.stringify(trial));
} finally {
  rmSync(outRoot, { recursive: true, force: true });
}
