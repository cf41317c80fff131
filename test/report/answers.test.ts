// The report's answer lines say what the run's metrics hold, with enough digits to tell compared numbers apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadExperiments } from '../../src/cli/registry.js';
import { writeReport } from '../../src/report/index.js';
import { registry } from '../../experiments/index.js';
import { tempDir } from '../helpers.js';

async function reportOf(metrics: Record<string, object>): Promise<string> {
  const out = tempDir();
  for (const [experiment, m] of Object.entries(metrics)) {
    mkdirSync(path.join(out, experiment));
    writeFileSync(path.join(out, experiment, 'metrics.json'), JSON.stringify(m));
  }
  await writeReport(out, await loadExperiments(registry.filter((e) => e.name in metrics)));
  return readFileSync(path.join(out, 'REPORT.md'), 'utf8');
}

const gd = { h: 0.5, lr: 0.1, x: [0], outcome: 'cycle', cycle: [0.9, 1.2] };

test("Q1.2 prints the run's α and ε and bracket ends that differ", async () => {
  const md = await reportOf({
    'q1-adam': {
      gd,
      adamMaxH: { rounded: 0.41, exact: 0.410184, escapesAt: 0.41018355, failsAt: 0.41018445, alpha: 0.1, epsilon: 1e-3 },
    },
  });
  assert.match(md, /\(α = 0\.1, ε = 0\.001\)/);
  const [, escapes, fails] = /escapes at ([\d.]+), fails at ([\d.]+)/.exec(md) ?? [];
  assert.ok(escapes && fails && escapes !== fails, `${escapes} vs ${fails}`);
});

test('Q5.1 states training FLOPs and when each accuracy target was first reached, or that it was not', async () => {
  const md = await reportOf({
    'q5-cifar': {
      finalTestAcc: 0.91,
      testViews: 6,
      finalOneViewTestAcc: 0.905,
      bestOneViewTestAcc: 0.906,
      epochs: [{}, {}],
      trainImages: 50000,
      wallSeconds: 1234,
      trainingFlops: 5.2e13,
      timeToAccuracy: [
        { target: 0.9, epoch: 2, seconds: 1234, flops: 5.2e13 },
        { target: 0.93, epoch: null, seconds: null, flops: null },
      ],
    },
  });
  assert.match(md, /final test accuracy \*\*91\.00%\*\* with 6 test-time views \(one view 90\.50%\), best epoch on one view 90\.60%/);
  assert.match(md, /5\.20e\+13 training FLOPs/);
  assert.match(
    md,
    /90\.00% at epoch 2 \(1234 s, 5\.20e\+13 FLOPs\); 93\.00% not reached \(epochs before the last tested on one view, the last with 6\)\./,
  );
});
