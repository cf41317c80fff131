import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { adam, bumpGrad, bumpLoss, gradientDescent } from '../../experiments/q1-adam.js';
import { initBackend, tf } from '../../src/tensor/index.js';
import { a2, tempDir } from '../helpers.js';

await initBackend('wasm');
const curve = { h: 0.5, farSlope: -0.25 };
const q1Adam = { lr: 0.3, beta1: 0.9, beta2: 0.999, epsilon: 0 };

test('the loss of Figure 1: slope −1 to the minimum at (1, 0), a bump of height h and base 2h, then the far slope', () => {
  assert.equal(bumpLoss(0, curve), 1);
  assert.equal(bumpLoss(1, curve), 0);
  assert.equal(bumpLoss(1.5, curve), 0.5);
  assert.ok(bumpLoss(2, curve) === 0); // −0 from the far piece counts as 0
  assert.equal(bumpLoss(3, curve), -0.25);
  // x = 1 belongs to the bump; the peak to its falling side.
  assert.deepEqual(
    [0.99, 1, 1.49, 1.5, 1.99, 2].map((x) => bumpGrad(x, curve)),
    [-1, 1, 1, -1, -1, -0.25],
  );
});

test("Adam's first steps equal the values worked by hand", () => {
  const trace = adam((x) => bumpGrad(x, curve), 0, 6, q1Adam);
  // Steps 1–4 on slope −1: m̂ = −1, v̂ = 1, so x moves by exactly α.
  assert.ok(Math.abs(trace[0].m - -0.1) < 1e-15 && Math.abs(trace[0].v - 0.001) < 1e-15);
  assert.ok(Math.abs(trace[1].m - -0.19) < 1e-15 && Math.abs(trace[1].v - 0.001999) < 1e-15);
  for (let i = 0; i < 4; i++) {
    assert.ok(Math.abs(trace[i].mHat + 1) < 1e-12 && Math.abs(trace[i].vHat - 1) < 1e-12);
    assert.ok(Math.abs(trace[i].x - 0.3 * (i + 1)) < 1e-12);
  }
  // Step 5 at x = 1.2 (rising side, g = +1): m5 = 0.9·(−0.3439) + 0.1 = −0.20951, m̂5 = −0.20951 / 0.40951.
  assert.equal(trace[4].g, 1);
  assert.ok(Math.abs(trace[4].m - -0.20951) < 1e-12);
  assert.ok(Math.abs(trace[4].mHat - -0.20951 / 0.40951) < 1e-12);
  assert.ok(Math.abs(trace[4].x - (1.2 + (0.3 * 0.20951) / 0.40951)) < 1e-12);
});

test("Adam's trajectory matches tf.train.adam on the same gradients", () => {
  for (const [name, grad, x0, eps] of [
    ['bump', (x: number) => bumpGrad(x, curve), 0, 1e-8],
    ['|x|', (x: number) => Math.sign(x), 2, 1e-8],
    [
      'sigmoid',
      (x: number) => {
        const s = 1 / (1 + Math.exp(-x));
        return s * (1 - s);
      },
      2,
      1e-8,
    ],
  ] as const) {
    const mine = adam(grad, x0, 30, { ...q1Adam, epsilon: eps });
    const optimizer = tf.train.adam(0.3, 0.9, 0.999, eps);
    const x = tf.variable(tf.scalar(x0));
    let worst = 0;
    for (const record of mine) {
      const g = tf.scalar(grad(x.dataSync()[0]));
      optimizer.applyGradients([{ name: x.name, tensor: g }]);
      g.dispose();
      worst = Math.max(worst, Math.abs(x.dataSync()[0] - record.x));
    }
    optimizer.dispose();
    x.dispose();
    assert.ok(worst < 1e-4, `${name}: max |Δx| ${worst}`);
  }
});

test('gradient descent with η = 0.3, h = 0.5 cycles between 0.9 and 1.2; a tiny bump is escaped', () => {
  const gd = gradientDescent(curve, 0, 0.3);
  assert.equal(gd.outcome, 'cycle');
  assert.deepEqual(gd.cycle.map((x) => Number(x.toFixed(6))).sort(), [0.9, 1.2]);
  assert.equal(gradientDescent({ h: 0.1, farSlope: -0.25 }, 0, 0.3).outcome, 'escaped');
});

test("run writes every plot, the metrics and observations; Q1.2's h is the same on every far slope", async () => {
  const out = tempDir();
  const { code } = await a2('run', 'q1-adam', '--out', out, '--far-slope', '-0.1');
  assert.equal(code, 0);
  const dir = path.join(out, 'q1-adam');
  const metrics = JSON.parse(readFileSync(path.join(dir, 'metrics.json'), 'utf8'));
  assert.equal(metrics.gd.outcome, 'cycle');
  assert.ok(metrics.adamMaxH.escapesAt < metrics.adamMaxH.failsAt);
  assert.ok(metrics.adamMaxH.failsAt - metrics.adamMaxH.escapesAt <= 1e-6);
  assert.equal(metrics.adamMaxH.rounded, Number(metrics.adamMaxH.exact.toFixed(2)));
  for (const b of metrics.adamMaxH.byFarSlope) assert.ok(Math.abs(b.exact - metrics.adamMaxH.exact) < 2e-6);
  assert.equal(metrics.q14.relu.length, 30);
  for (const fig of ['q11-gd-trajectory', 'q11-gd-curve', 'q12-threshold', 'q13-moments', 'q14-relu', 'q14-sigmoid', 'q14-abs']) {
    assert.deepEqual(Array.from(readFileSync(path.join(dir, `${fig}.png`)).subarray(1, 4)), [0x50, 0x4e, 0x47], fig);
    JSON.parse(readFileSync(path.join(dir, `${fig}.vl.json`), 'utf8'));
  }
  assert.match(readFileSync(path.join(dir, 'observations.md'), 'utf8'), new RegExp(`h = ${metrics.adamMaxH.rounded.toFixed(2)}`));
});

test('a non-negative far slope is refused', async () => {
  const { code } = await a2('run', 'q1-adam', '--out', tempDir(), '--far-slope', '0.5');
  assert.equal(code, 2);
});
