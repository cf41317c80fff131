// Each kernel a2 registers on wasm is checked against the cpu backend's result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initBackend, makeRng } from '../../src/tensor/index.js';

// fp32: these compare kernels with the cpu backend to fp32 roundoff (bf16 has its own test).
await initBackend('wasm', { precision: 'fp32' });

function randomValues(n: number, seed: number, offset = 0): Float32Array {
  const rng = makeRng(seed);
  return Float32Array.from({ length: n }, () => rng() * 2 - 1 + offset);
}

/** Runs fn on both backends with the same inputs; returns the largest absolute difference per output. */
async function compareBackends(fn: () => tf.Tensor[]): Promise<number[]> {
  const results: Record<string, Float32Array[]> = {};
  for (const backend of ['cpu', 'wasm']) {
    await tf.setBackend(backend);
    const outs = tf.tidy(fn);
    results[backend] = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
    tf.dispose(outs);
  }
  await tf.setBackend('wasm');
  return results.cpu.map((cpu, i) => {
    const wasm = results.wasm[i];
    assert.equal(wasm.length, cpu.length);
    let max = 0;
    for (let j = 0; j < cpu.length; j++) max = Math.max(max, Math.abs(cpu[j] - wasm[j]));
    return max;
  });
}

const convCases: { stride: number; pad: 'same' | 'valid'; k: number; hw: number }[] = [
  { stride: 1, pad: 'same', k: 3, hw: 9 },
  { stride: 1, pad: 'valid', k: 3, hw: 9 },
  { stride: 2, pad: 'same', k: 3, hw: 9 },
  { stride: 2, pad: 'valid', k: 3, hw: 10 },
  { stride: 2, pad: 'same', k: 4, hw: 8 },
  { stride: 3, pad: 'valid', k: 5, hw: 13 },
];

for (const { stride, pad, k, hw } of convCases) {
  test(`conv2d gradients match cpu: k=${k} stride=${stride} pad=${pad}`, async () => {
    const [n, cin, cout] = [3, 4, 5];
    const xv = randomValues(n * hw * hw * cin, 1);
    const wv = randomValues(k * k * cin * cout, 2);
    const diffs = await compareBackends(() => {
      const x = tf.tensor4d(xv, [n, hw, hw, cin]);
      const w = tf.tensor4d(wv, [k, k, cin, cout]);
      const f = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.conv2d(a, b, stride, pad).square().sum();
      const [dx, dw] = tf.grads(f as (...args: tf.Tensor[]) => tf.Tensor)([x, w]);
      return [tf.conv2d(x, w, stride, pad), dx, dw];
    });
    console.log(
      `  k=${k} s=${stride} ${pad}: max |Δ| y ${diffs[0].toExponential(2)} dX ${diffs[1].toExponential(2)} dW ${diffs[2].toExponential(2)}`,
    );
    for (const d of diffs) assert.ok(d < 1e-3, `difference ${d}`);
  });
}

for (const { size, stride, pad } of [
  { size: 2, stride: 2, pad: 'valid' as const },
  { size: 3, stride: 2, pad: 'same' as const },
  { size: 3, stride: 1, pad: 'same' as const },
]) {
  test(`maxPool gradient matches cpu, including all-negative windows: ${size}/${stride} ${pad}`, async () => {
    // Shifted down so most windows hold only values <= 0: the case wasm's shipped kernel gets wrong.
    const xv = randomValues(2 * 8 * 8 * 3, 3, -0.8);
    const diffs = await compareBackends(() => {
      const x = tf.tensor4d(xv, [2, 8, 8, 3]);
      // A distinct weight per output makes a gradient routed to the wrong element visible.
      const g = tf.grad((a: tf.Tensor) => {
        const pooled = tf.maxPool(a as tf.Tensor4D, size, stride, pad);
        return pooled.mul(tf.linspace(1, 2, pooled.size).reshape(pooled.shape)).sum();
      });
      return [g(x)];
    });
    console.log(`  maxPool ${size}/${stride} ${pad}: max |Δ| dX ${diffs[0].toExponential(2)}`);
    assert.ok(diffs[0] < 1e-5, `difference ${diffs[0]}`);
  });
}

test('batched matmul with transposes matches cpu', async () => {
  const av = randomValues(2 * 7 * 5, 4);
  const bv = randomValues(2 * 5 * 6, 5);
  const diffs = await compareBackends(() => {
    const a = tf.tensor3d(av, [2, 7, 5]);
    const b = tf.tensor3d(bv, [2, 5, 6]);
    return [
      tf.matMul(a, b),
      tf.matMul(a.transpose([0, 2, 1]), b, true, false),
      tf.matMul(a, b.transpose([0, 2, 1]), false, true),
      tf.matMul(b, a, true, true),
    ];
  });
  console.log(`  matmul: max |Δ| ${diffs.map((d) => d.toExponential(2)).join(' ')}`);
  for (const d of diffs) assert.ok(d < 1e-5);
});

test('every weight gradient of a conv-net training step matches cpu', async () => {
  const xv = randomValues(4 * 16 * 16 * 3, 6);
  const labels = [0, 3, 1, 2];
  const diffs = await compareBackends(() => {
    const rng = makeRng(7);
    const param = (shape: number[], scale: number) =>
      tf.variable(
        tf.tensor(
          Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => (rng() * 2 - 1) * scale),
          shape,
        ),
      );
    const w1 = param([3, 3, 3, 8], 0.3),
      w2 = param([3, 3, 8, 16], 0.2),
      w3 = param([4 * 4 * 16, 4], 0.05);
    const gamma = tf.variable(tf.ones([8])),
      beta = tf.variable(tf.zeros([8]));
    const x = tf.tensor4d(xv, [4, 16, 16, 3]);
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 4);
    const { grads } = tf.variableGrads(() => {
      let h: tf.Tensor4D = tf.conv2d(x, w1 as tf.Variable<tf.Rank.R4>, 1, 'same');
      const { mean, variance } = tf.moments(h, [0, 1, 2]);
      h = tf.batchNorm(h, mean, variance, beta, gamma, 1e-5).relu();
      h = tf.maxPool(h, 2, 2, 'valid');
      h = tf.conv2d(h, w2 as tf.Variable<tf.Rank.R4>, 2, 'same').relu();
      const logits = h.reshape([4, -1]).matMul(w3);
      return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
    }, [w1, w2, w3, gamma, beta]);
    const out = [w1, w2, w3, gamma, beta].map((v) => grads[v.name]);
    for (const v of [w1, w2, w3, gamma, beta]) v.dispose();
    return out;
  });
  console.log(`  conv-net step: max |Δ| per weight gradient ${diffs.map((d) => d.toExponential(2)).join(' ')}`);
  for (const d of diffs) assert.ok(d < 1e-4);
});

test('transposed convolution (stride 2, as in the conv autoencoder) and its gradients match cpu', async () => {
  const xv = randomValues(2 * 7 * 7 * 8, 8);
  const wv = randomValues(3 * 3 * 16 * 8, 9);
  const diffs = await compareBackends(() => {
    const x = tf.tensor4d(xv, [2, 7, 7, 8]);
    const w = tf.tensor4d(wv, [3, 3, 16, 8]);
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      tf
        .conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, [2, 14, 14, 16], 2, 'same')
        .square()
        .sum();
    const [dx, dw] = tf.grads(f)([x, w]);
    return [tf.conv2dTranspose(x, w, [2, 14, 14, 16], 2, 'same'), dx, dw];
  });
  console.log(
    `  conv2dTranspose s=2: max |Δ| y ${diffs[0].toExponential(2)} dX ${diffs[1].toExponential(2)} dW ${diffs[2].toExponential(2)}`,
  );
  for (const d of diffs) assert.ok(d < 1e-3, `difference ${d}`);
});

test('the FusedBatchNorm gradient equals autodiff of the written-out formula', () => {
  const worst = tf.tidy(() => {
    const x = tf.tensor4d(randomValues(4 * 5 * 5 * 6, 10), [4, 5, 5, 6]);
    const mean = tf.tensor1d([0.1, -0.2, 0.3, 0, 0.5, -0.1]),
      variance = tf.tensor1d([1, 2, 0.5, 1.5, 0.7, 1.1]);
    const scale = tf.tensor1d([1.5, 0.5, 1, 2, 0.8, 1.2]),
      offset = tf.tensor1d([0, 1, -1, 0.5, 0.2, 0]);
    const weight = tf.linspace(-1, 1, x.size).reshape(x.shape);
    const fused = (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: tf.Tensor, o: tf.Tensor) =>
      tf
        .batchNorm(a as tf.Tensor4D, m as tf.Tensor1D, v as tf.Tensor1D, o as tf.Tensor1D, s as tf.Tensor1D, 1e-3)
        .mul(weight)
        .sum();
    const written = (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: tf.Tensor, o: tf.Tensor) =>
      a
        .sub(m)
        .mul(tf.rsqrt(v.add(1e-3)))
        .mul(s)
        .add(o)
        .mul(weight)
        .sum();
    const inputs = [x, mean, variance, scale, offset];
    const g1 = tf.grads(fused)(inputs),
      g2 = tf.grads(written)(inputs);
    return g1.map((g, i) => tf.max(tf.abs(g.sub(g2[i]))).dataSync()[0] / Math.max(1, tf.max(tf.abs(g2[i])).dataSync()[0]));
  });
  console.log(`  batchNorm grads vs written-out formula (relative): ${worst.map((d) => d.toExponential(1)).join(' ')}`);
  for (const d of worst) assert.ok(d < 1e-5);
});

test("the backend says which convolution kernels are active: oneDNN when its addon is built, else a2's composites", async () => {
  const { existsSync } = await import('node:fs');
  const info = await initBackend('wasm');
  const built = existsSync(new URL('../../native/build/Release/a2_onednn.node', import.meta.url));
  const oneDnn = info.kernels.some((k) => k.startsWith('oneDNN'));
  console.log(`  kernels: ${info.kernels.join(', ')}${info.notices.length ? ` | notices: ${info.notices.join('; ')}` : ''}`);
  assert.equal(oneDnn, built && process.env.A2_ONEDNN !== '0');
  if (!oneDnn)
    assert.ok(
      info.notices.some((n) => n.includes('oneDNN')),
      'a one-line notice says why oneDNN is not used',
    );
});

test('sum and mean over leading axes (and any others) match cpu', async () => {
  const xv = randomValues(6 * 5 * 4 * 3, 11);
  const diffs = await compareBackends(() => {
    const x = tf.tensor4d(xv, [6, 5, 4, 3]);
    return [
      tf.sum(x, [0, 1, 2]),
      tf.mean(x, [0, 1, 2], true),
      tf.sum(x, 0),
      tf.mean(x, [0, 1]),
      tf.sum(x, [1, 3]),
      tf.mean(x, -1),
      tf.sum(x),
    ];
  });
  console.log(`  sum/mean: max |Δ| ${diffs.map((d) => d.toExponential(1)).join(' ')}`);
  for (const d of diffs) assert.ok(d < 1e-5);
});

for (const relu of [false, true]) {
  test(`the BatchNorm layer${relu ? ' with its fused ReLU' : ''}: output, moving statistics and every gradient match the cpu backend's plain ops`, async () => {
    const { BatchNorm } = await import('../../src/tensor/index.js');
    const xv = randomValues(8 * 6 * 6 * 5, 12, 0.3);
    const diffs = await compareBackends(() => {
      const layer = new BatchNorm({ momentum: 0.9, epsilon: 1e-5, relu });
      const x = tf.tensor4d(xv, [8, 6, 6, 5]);
      layer.build(x.shape);
      const weight = tf.linspace(-1, 2, x.size).reshape(x.shape);
      const [gamma, beta] = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      const f = (a: tf.Tensor) => (layer.apply(a, { training: true }) as tf.Tensor).mul(weight).sum();
      const { value, grads } = tf.variableGrads(() => f(x) as tf.Scalar, [gamma, beta]);
      const dx = tf.grad(f)(x);
      const y = layer.apply(x, { training: true }) as tf.Tensor;
      const moving = layer.getWeights().slice(2);
      const inference = layer.apply(x, { training: false }) as tf.Tensor;
      const out = [y, dx, grads[gamma.name], grads[beta.name], ...moving, inference, value];
      return out;
    });
    console.log(
      `  BatchNorm layer relu=${relu} (y, dx, dγ, dβ, moving mean, moving var, inference, loss): ${diffs.map((d) => d.toExponential(1)).join(' ')}`,
    );
    for (const d of diffs) assert.ok(d < 1e-3, `difference ${d}`);
  });
}

test('broadcast Equal and the global max-pool gradient that uses it match cpu', async () => {
  const xv = randomValues(3 * 4 * 4 * 5, 13).map((v) => Math.round(v * 4) / 4); // ties on purpose
  const diffs = await compareBackends(() => {
    const x = tf.tensor4d(xv, [3, 4, 4, 5]);
    const m = tf.max(x, [1, 2], true);
    return [
      tf.equal(x, m).toFloat(),
      tf.equal(m, x).toFloat(),
      tf.equal(x, tf.scalar(0.25)).toFloat(),
      tf.equal(x.slice([0, 0, 0, 0], [3, 4, 1, 5]), x).toFloat(),
      tf.grad((a: tf.Tensor) =>
        tf
          .max(a, [1, 2])
          .mul(tf.linspace(1, 2, 15).reshape([3, 5]))
          .sum(),
      )(x),
    ];
  });
  console.log(`  equal/broadcast: max |Δ| ${diffs.map((d) => d.toExponential(1)).join(' ')}`);
  for (const d of diffs) assert.equal(d, 0);
});

test('Identity shares its buffer: a clone outlives its original, and every buffer is freed', async () => {
  await tf.setBackend('wasm');
  const before = tf.memory().numBytes;
  const original = tf.tensor1d([1, 2, 3, 4]);
  const copy = tf.clone(original);
  original.dispose();
  assert.deepEqual(Array.from(await copy.data()), [1, 2, 3, 4]);
  // A gradient path that saves tensors for backward (the clones the sharing Identity serves).
  const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(x, x)))(copy);
  assert.deepEqual(Array.from(await g.data()), [2, 4, 6, 8]);
  tf.dispose([copy, g]);
  assert.equal(tf.memory().numBytes, before);
});
