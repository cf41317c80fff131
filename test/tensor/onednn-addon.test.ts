// The oneDNN addon's own parts: its primitive caches (capped; a primitive dropped at the cap is
// rebuilt and still right), its evaluation batch norm (wasm's bits), the bf16 gradient paths it
// takes instead of oneDNN's kernels, max-pooling and its kept argmax, and its reductions and
// elementwise passes (the cpu backend's values). Skipped where the addon is not loaded
// (A2_ONEDNN=0, no libdnnl).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BATCH_NORM_INFERENCE, BatchNorm } from '../../src/tensor/batch-norm.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initBackend, makeRng, tf } from '../../src/tensor/index.js';
import { type OneDnnWithNorm, loadOneDnn, setFusedMomentum } from '../../src/tensor/onednn-kernels.js';

const { addon } = loadOneDnn();
const skip = !addon
  ? 'the oneDNN accelerator is not loaded'
  : typeof addon.cachedPrimitives !== 'function' || addon.maxCachedPrimitives === undefined
    ? 'the addon was built before its caches were capped: npm run build:native'
    : false;

// Each width is a new shape: the caches see more shapes than they may hold.
const ramp = (n: number) => Float32Array.from({ length: n }, (_, i) => i + 1);

/** A 1×1 convolution of one channel: every pixel times the weight 0.5. */
function timesHalf(width: number): Float32Array {
  const y = new Float32Array(width);
  const shape = [1, 1, width, 1];
  const g = { x: shape, filter: [1, 1, 1, 1], y: shape, strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0] };
  addon!.conv('forward', g, ramp(width), Float32Array.of(0.5), y, { precision: 'f32' });
  return y;
}

/** The gradient of a 1×2, stride-2 max-pool over an ascending row: each pair's second pixel gets dy. */
function poolGradient(pairs: number): Float32Array {
  const dx = new Float32Array(2 * pairs);
  const g = { x: [1, 1, 2 * pairs, 1], y: [1, 1, pairs, 1], kernel: [1, 2], strides: [1, 2], pads: [0, 0, 0, 0] };
  (addon as OneDnnWithNorm).maxPoolGrad(g, ramp(2 * pairs), new Float32Array(pairs).fill(1), dx);
  return dx;
}

test('the convolution cache stays within its cap, and a dropped shape is rebuilt and still right', { skip }, () => {
  const cap = addon!.maxCachedPrimitives!;
  const widths = cap + 40;
  for (let width = 1; width <= widths; width++) assert.equal(timesHalf(width)[width - 1], width / 2);
  const held = addon!.cachedPrimitives!().conv;
  assert.ok(held <= cap, `${held} convolution primitives held, cap ${cap}`);
  // Width 3 came before the cache was emptied: running it again builds a primitive anew.
  assert.deepEqual(Array.from(timesHalf(3)), [0.5, 1, 1.5]);
  assert.equal(addon!.cachedPrimitives!().conv, held + 1, 'width 3 was rebuilt');
  timesHalf(widths);
  assert.equal(addon!.cachedPrimitives!().conv, held + 1, 'the last width was still cached');
});

test('the max-pool cache stays within its cap, and a dropped shape is rebuilt and still right', { skip }, () => {
  const cap = addon!.maxCachedPrimitives!;
  for (let pairs = 1; pairs <= cap + 40; pairs++) {
    const dx = poolGradient(pairs);
    assert.deepEqual([dx[2 * pairs - 2], dx[2 * pairs - 1]], [0, 1]);
  }
  const held = addon!.cachedPrimitives!().maxPool;
  assert.ok(held <= cap, `${held} max-pool primitives held, cap ${cap}`);
  assert.deepEqual(Array.from(poolGradient(2)), [0, 1, 0, 1]);
  assert.equal(addon!.cachedPrimitives!().maxPool, held + 1, 'the 2-pair shape was rebuilt');
});

test("evaluation's batch norm (+ReLU) in one pass gives the very bits of wasm's FusedBatchNorm and Relu", async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.some((k) => k.startsWith(BATCH_NORM_INFERENCE))) return t.skip('the addon has no evaluation batch norm here');
  const rng = makeRng(7);
  const values = (n: number, low: number, high: number) => Float32Array.from({ length: n }, () => low + (high - low) * rng());
  for (const shape of [
    [3, 31, 31, 24],
    [5, 7, 7, 128],
    [2, 3, 3, 5],
  ] as [number, number, number, number][]) {
    const channels = shape[3];
    const x = tf.tensor4d(
      values(
        shape.reduce((a, b) => a * b),
        -3,
        3,
      ),
      shape,
    );
    const [mean, offset] = [values(channels, -1, 1), values(channels, -1, 1)].map((v) => tf.tensor1d(v));
    const [variance, scale] = [values(channels, 0.01, 4), values(channels, 0.2, 2)].map((v) => tf.tensor1d(v));
    for (const relu of [false, true]) {
      const reference = tf.tidy(() => {
        const y = tf.batchNorm(x, mean, variance, offset, scale, 1e-5);
        return relu ? tf.relu(y) : y;
      });
      const fused = tf.engine().runKernel(BATCH_NORM_INFERENCE, { x, mean, variance, offset, scale }, { epsilon: 1e-5, relu }) as tf.Tensor;
      const [want, got] = [reference.dataSync(), fused.dataSync()];
      const differing = want.findIndex((w, i) => w !== got[i]);
      assert.equal(differing, -1, `${shape} relu=${relu}: element ${differing} is ${got[differing]}, wasm gives ${want[differing]}`);
      tf.dispose([reference, fused]);
    }
    // The layer at evaluation takes the one-pass kernel and still gives the two ops' bits.
    const layer = new BatchNorm({ epsilon: 1e-5, relu: true });
    layer.build(shape);
    layer.setWeights([scale, offset, mean, variance]);
    const viaLayer = tf.tidy(() => (layer.apply(x, { training: false }) as tf.Tensor).dataSync());
    const twoOps = tf.tidy(() => tf.relu(tf.batchNorm(x, mean, variance, offset, scale, 1e-5)).dataSync());
    assert.ok(
      twoOps.every((w, i) => w === viaLayer[i]),
      `${shape}: the layer's evaluation differs from batchNorm + relu`,
    );
    tf.dispose([x, mean, offset, variance, scale]);
  }
});

test("FusedConv2D's bias and ReLU give the bits of conv2d, then Add, then Relu; NaN kept", async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.some((k) => k.startsWith('oneDNN'))) return t.skip('the oneDNN accelerator is not loaded');
  const rng = makeRng(9);
  const values = (shape: number[]) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => 2 * rng() - 1),
      shape,
    );
  // The autoencoders' layers, the recipe's whitening stem, and two wide enough for bf16.
  const cases: [number, number, number, number, number, 'same' | 'valid'][] = [
    [4, 28, 1, 16, 3, 'same'],
    [4, 14, 16, 8, 3, 'same'],
    [4, 7, 8, 8, 3, 'same'],
    [4, 28, 16, 1, 3, 'same'],
    [8, 32, 3, 24, 2, 'valid'],
    [4, 16, 32, 64, 3, 'same'],
    [2, 8, 64, 128, 3, 'same'],
  ];
  for (const precision of ['fp32', 'bf16'] as const) {
    if (precision === 'bf16' && info.precision !== 'bf16') continue; // bf16 only where the CPU multiplies it natively
    await initBackend('wasm', { precision });
    for (const [n, hw, cin, cout, k, pad] of cases)
      for (const activation of ['linear', 'relu'] as const) {
        const [x, filter, bias] = [values([n, hw, hw, cin]), values([k, k, cin, cout]), values([cout])] as [
          tf.Tensor4D,
          tf.Tensor4D,
          tf.Tensor1D,
        ];
        const fused = tf.fused.conv2d({ x, filter, strides: 1, pad, bias, activation });
        const separate = tf.tidy(() => {
          const y = tf.add(tf.conv2d(x, filter, 1, pad), bias);
          return activation === 'relu' ? tf.relu(y) : y;
        });
        const [want, got] = [separate.dataSync(), fused.dataSync()];
        const differing = want.findIndex((w, i) => !Object.is(w, got[i]));
        assert.equal(
          differing,
          -1,
          `${precision} ${[n, hw, cin, cout, k, pad, activation]}: element ${differing} is ${got[differing]}, conv + Add gives ${want[differing]}`,
        );
        tf.dispose([x, filter, bias, fused, separate]);
      }
  }
  await initBackend('wasm', { precision: 'fp32' });
  const x = tf.tensor4d([Number.NaN, 1, -1, 2], [1, 1, 4, 1]);
  const y = tf.fused.conv2d({
    x,
    filter: tf.ones([1, 1, 1, 1]) as tf.Tensor4D,
    strides: 1,
    pad: 'same',
    bias: tf.zeros([1]),
    activation: 'relu',
  });
  assert.deepEqual(Array.from(y.dataSync()), [Number.NaN, 1, 0, 2]);
});

test("max-pool's forward through the addon (2×2/2 in its own loops, other shapes in oneDNN) gives the cpu backend's values", async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.includes('MaxPool')) return t.skip('the addon has no max-pool forward here');
  const rng = makeRng(4);
  const cases: [number[], number, number, 'same' | 'valid'][] = [
    [[4, 31, 31, 64], 2, 2, 'valid'],
    [[2, 8, 8, 16], 3, 1, 'same'],
    [[3, 7, 7, 5], 2, 2, 'same'],
  ];
  for (const [shape, size, stride, pad] of cases) {
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => 2 * rng() - 1);
    const pooled = async (backend: string) => {
      await tf.setBackend(backend);
      return tf.tidy(() => tf.maxPool(tf.tensor4d(data, shape as [number, number, number, number]), size, stride, pad).dataSync());
    };
    const [want, got] = [await pooled('cpu'), await pooled('wasm')];
    assert.equal(got.length, want.length);
    assert.ok(
      want.every((w, i) => w === got[i]),
      `${shape} ${size}/${stride} ${pad}: differs from the cpu backend`,
    );
  }
});

test("per-channel Sum and Mean on both cores give the bits of a2's one-core kernel (double sums in row order)", async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.includes('Sum')) return t.skip('no reductions registered');
  const rng = makeRng(6);
  for (const [shape, axes] of [
    [
      [64, 31, 31, 24],
      [0, 1, 2],
    ],
    [
      [7, 5, 3],
      [0, 1],
    ],
    [[300, 10], [0]],
  ] as [number[], number[]][]) {
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => 100 * rng() - 50);
    const x = tf.tensor(data, shape);
    const inner = shape.slice(axes.length).reduce((a, b) => a * b, 1);
    const outer = data.length / inner;
    const sums = new Float64Array(inner);
    for (let i = 0; i < outer; i++) for (let j = 0; j < inner; j++) sums[j] += data[i * inner + j];
    for (const mean of [false, true]) {
      const want = Float32Array.from(sums, (s) => (mean ? s * (1 / outer) : s));
      const got = (mean ? tf.mean(x, axes, true) : tf.sum(x, axes)).dataSync();
      assert.deepEqual(Array.from(got), Array.from(want), `${mean ? 'mean' : 'sum'} over ${axes} of ${shape}`);
    }
    x.dispose();
  }
});

test("max-pool's gradient from the forward's kept argmax gives the cpu backend's gradient, and no workspace outlives its output", async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.includes('MaxPool')) return t.skip('the addon has no max-pool forward here');
  const { poolWorkspacesHeld } = await import('../../src/tensor/onednn-kernels.js');
  const rng = makeRng(8);
  for (const [shape, size, stride, pad] of [
    [[4, 31, 31, 16], 2, 2, 'valid'],
    [[2, 9, 9, 8], 3, 2, 'same'],
  ] as [number[], number, number, 'same' | 'valid'][]) {
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => 2 * rng() - 1);
    const gradient = async (backend: string) => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const x = tf.tensor4d(data, shape as [number, number, number, number]);
        // A weight per output, so that each window's gradient differs.
        return tf
          .grad((v: tf.Tensor) => {
            const y = tf.maxPool(v as tf.Tensor4D, size, stride, pad);
            // Under a gradient the forward keeps its argmax (checked on wasm, where the addon pools).
            if (backend === 'wasm') assert.equal(poolWorkspacesHeld(), 1, 'the forward kept no workspace');
            return tf.sum(tf.mul(y, tf.range(0, y.size).reshape(y.shape)));
          })(x)
          .dataSync();
      });
    };
    const [want, got] = [await gradient('cpu'), await gradient('wasm')];
    assert.ok(
      want.every((w, i) => w === got[i]),
      `${shape} ${size}/${stride} ${pad}: the gradient differs from the cpu backend's`,
    );
    assert.equal(poolWorkspacesHeld(), 0, 'a max-pool workspace outlived its output');
  }
});

test('broadcasting Equal gives the cpu backend’s answers, NaN equal to nothing', async () => {
  await initBackend('wasm');
  const rng = makeRng(12);
  for (const [aShape, bShape] of [
    [
      [6, 3, 3, 8],
      [6, 1, 1, 8],
    ],
    [[2, 3, 4], [4]],
    [
      [5, 1, 3],
      [1, 4, 1],
    ],
  ]) {
    // Few distinct values, so that many pairs are equal; one NaN in each.
    const values = (shape: number[]) => {
      const v = Float32Array.from({ length: shape.reduce((p, q) => p * q, 1) }, () => Math.floor(3 * rng()));
      v[0] = Number.NaN;
      return v;
    };
    const [av, bv] = [values(aShape), values(bShape)];
    const equal = async (backend: string) => {
      await tf.setBackend(backend);
      return tf.tidy(() => tf.equal(tf.tensor(av, aShape), tf.tensor(bv, bShape)).dataSync());
    };
    const [want, got] = [await equal('cpu'), await equal('wasm')];
    assert.deepEqual(Array.from(got), Array.from(want), `${aShape} vs ${bShape}`);
  }
});

test('per-channel Add, Relu and its gradient on both cores give the cpu backend’s bits, NaN, ±0 and ±∞ included', async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.includes('Relu')) return t.skip('the addon has no elementwise kernels here');
  const rng = makeRng(10);
  const specials = [Number.NaN, -0, 0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e-45, -1e-45, -1, 1];
  const values = (n: number) => Float32Array.from({ length: n }, (_, i) => (i < specials.length ? specials[i] : 4 * rng() - 2));
  const shape: [number, number, number, number] = [3, 31, 31, 24]; // above the size that splits the work
  const [xv, dyv, bv] = [values(3 * 31 * 31 * 24), values(3 * 31 * 31 * 24).reverse(), values(24)];
  const run = async (backend: string) => {
    await tf.setBackend(backend);
    return tf.tidy(() => {
      const [x, dy] = [tf.tensor4d(xv, shape), tf.tensor4d(dyv, shape)];
      const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.relu(v), dy)))(x);
      return [tf.add(x, tf.tensor1d(bv)), tf.relu(x), dx].map((r) => r.dataSync());
    });
  };
  const [want, got] = [await run('cpu'), await run('wasm')];
  for (const [i, name] of ['bias add', 'relu', 'relu gradient'].entries()) {
    const differing = want[i].findIndex((w, j) => !Object.is(w, got[i][j]));
    assert.equal(
      differing,
      -1,
      `${name}: element ${differing} (x ${xv[differing]}) is ${got[i][differing]}, the cpu backend gives ${want[i][differing]}`,
    );
  }
});

test('bf16 gradients take im2col + matmul (dW, outputs ≤ 8×8) and the flipped forward (dX, stride 1), within bf16 roundoff of fp32, asymmetric padding included', async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.some((k) => k.startsWith('oneDNN')) || info.precision !== 'bf16') return t.skip('no bf16 accelerator here');
  const rng = makeRng(13);
  const values = (n: number) => Float32Array.from({ length: n }, () => 2 * rng() - 1);
  // 'same' with an even kernel pads one side more than the other.
  for (const [n, hw, cin, cout, k] of [
    [4, 7, 32, 32, 3],
    [4, 7, 16, 32, 4],
    [2, 9, 16, 16, 2],
  ]) {
    const conv = tf.backend_util.computeConv2DInfo([n, hw, hw, cin], [k, k, cin, cout], 1, 1, 'same', undefined, false, 'channelsLast');
    const p = conv.padInfo;
    const g = {
      x: [n, hw, hw, cin],
      filter: [k, k, cin, cout],
      y: [n, conv.outHeight, conv.outWidth, cout],
      strides: [1, 1],
      dilations: [1, 1],
      pads: [p.top, p.left, p.bottom, p.right],
    };
    const [x, w, dy] = [values(n * hw * hw * cin), values(k * k * cin * cout), values(n * conv.outHeight * conv.outWidth * cout)];
    for (const kind of ['backwardWeights', 'backwardData'] as const) {
      const out = () => new Float32Array(kind === 'backwardWeights' ? w.length : x.length);
      const [exact, rounded] = [out(), out()];
      const run = (precision: 'f32' | 'bf16', into: Float32Array) =>
        kind === 'backwardWeights' ? addon!.conv(kind, g, x, into, dy, { precision }) : addon!.conv(kind, g, into, w, dy, { precision });
      run('f32', exact);
      const { impl } = run('bf16', rounded);
      const expected = kind === 'backwardWeights' ? (conv.outHeight * conv.outWidth <= 64 ? 'im2col+matmul' : '') : 'flipped forward';
      assert.ok(impl.includes(expected), `${kind} ${[n, hw, cin, cout, k]}: ran ${impl}, expected ${expected || 'any'}`);
      let d2 = 0,
        r2 = 0;
      for (let i = 0; i < exact.length; i++) {
        d2 += (exact[i] - rounded[i]) ** 2;
        r2 += exact[i] ** 2;
      }
      const rms = Math.sqrt(d2 / r2);
      // One unit of bf16 roundoff (bf16.test.ts says why 4e-3), and more than f32 roundoff: bf16 ran.
      assert.ok(rms < 4e-3 && rms > 1e-5, `${kind} ${[n, hw, cin, cout, k]}: bf16 RMS error ${rms} vs f32`);
    }
  }
});

test('max-pool treats NaN and −∞ as the cpu backend (tfjs’s reference) does', async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.includes('MaxPool')) return t.skip('the addon has no max-pool forward here');
  // A 4×4 image in 2×2 windows: {NaN, 1, 2, 3} → 3 (NaN is never the larger), {−∞ ×4} → −∞ (oneDNN
  // alone gives −3.4e38), {−∞, 5, −∞, −∞} → 5, {4, 3, 2, 1} → 4.
  const inf = Number.POSITIVE_INFINITY;
  const x = [Number.NaN, 1, -inf, -inf, 2, 3, -inf, -inf, -inf, 5, 4, 3, -inf, -inf, 2, 1];
  const pooled = async (backend: string) => {
    await tf.setBackend(backend);
    return tf.tidy(() => Array.from(tf.maxPool(tf.tensor4d(x, [1, 4, 4, 1]), 2, 2, 'valid').dataSync()));
  };
  const [want, got] = [await pooled('cpu'), await pooled('wasm')];
  assert.deepEqual(got, want);
  assert.deepEqual(want, [3, Number.NEGATIVE_INFINITY, 5, 4]);
});

test("max-pool's gradient without the forward's argmax (pooled again) gives the cpu backend's, empty windows included", async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.includes('MaxPool')) return t.skip('the addon has no max-pool forward here');
  const rng = makeRng(14);
  const shape: [number, number, number, number] = [3, 9, 11, 6];
  const data = Float32Array.from({ length: 3 * 9 * 11 * 6 }, () => 2 * rng() - 1);
  // A window of only −∞ and NaN (image 0, window (0, 0), channel 0): its gradient goes nowhere.
  for (const [h, w, v] of [
    [0, 0, Number.NEGATIVE_INFINITY],
    [0, 1, Number.NaN],
    [1, 0, Number.NEGATIVE_INFINITY],
    [1, 1, Number.NEGATIVE_INFINITY],
  ])
    data[(h * 11 + w) * 6] = v;
  const dyData = Float32Array.from({ length: 3 * 4 * 5 * 6 }, (_, i) => i + 1);
  const gradient = async (backend: string) => {
    await tf.setBackend(backend);
    return tf.tidy(() => {
      const x = tf.tensor4d(data, shape);
      // Pooled outside any gradient, so no argmax is kept: the kernel must find it again.
      const y = tf.maxPool(x, 2, 2, 'valid');
      const dy = tf.tensor4d(dyData, y.shape as [number, number, number, number]);
      const dx = tf
        .engine()
        .runKernel('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: 2, strides: 2, pad: 'valid' }) as tf.Tensor;
      return Array.from(dx.dataSync());
    });
  };
  const [want, got] = [await gradient('cpu'), await gradient('wasm')];
  // The empty window's four pixels, channel 0: (0, 0), (0, 1), (1, 0), (1, 1) of image 0.
  for (const pixel of [0, 1, 11, 12]) assert.equal(want[pixel * 6], 0, 'the cpu backend routes no gradient from an empty window');
  assert.deepEqual(got, want);
});

test("MomentumOptimizer's one-pass update gives tfjs's own weights and accumulations, bit for bit, NaN where tfjs has NaN", async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.some((k) => k.startsWith('A2MomentumUpdate'))) return t.skip('the addon has no momentum update here');
  const rng = makeRng(11);
  const specials = [Number.NaN, -0, 0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e-45, -3e-39, 1e-38, -1, 1];
  // Specials anywhere in the array (both cores' shares), at other places in every array, so that they meet each other and finite values.
  const values = (n: number) =>
    Float32Array.from({ length: n }, () => (rng() < 0.01 ? specials[Math.floor(rng() * specials.length)] : 4 * rng() - 2));
  // The first variable splits its work over both cores; a variable without a gradient at steps 0 and 2.
  const sizes = [50_000, 37, 12];
  const start = sizes.map(values);
  const gradients = [0, 1, 2, 3].map(() => sizes.map(values));
  const missing = (step: number, i: number) => (step === 0 && i === 0) || (step === 2 && i === 1);
  const run = async (fused: boolean, nesterov: boolean, asMap: boolean) => {
    setFusedMomentum(fused);
    const variables = start.map((v, i) => tf.variable(tf.tensor1d(v), true, `momentum-test-${fused}-${nesterov}-${asMap}-${i}`));
    const optimizer = tf.train.momentum(0.1, 0.9, nesterov);
    const kernels = new Set<string>();
    for (const [s, step] of gradients.entries()) {
      if (s === 3) optimizer.setLearningRate(0.0371);
      const named = variables.map((v, i) => ({ name: v.name, tensor: missing(s, i) ? null : tf.tensor1d(step[i]) }));
      const given = asMap ? Object.fromEntries(named.map((n) => [n.name, n.tensor])) : named;
      // tfjs skips a variable whose gradient is null (its declared type has no room for one).
      const apply = () => optimizer.applyGradients(given as unknown as Parameters<typeof optimizer.applyGradients>[0]);
      if (s === 1) for (const k of (await tf.profile(apply)).kernelNames) kernels.add(k);
      else apply();
      tf.dispose(named.map((n) => n.tensor).filter((g) => g !== null));
    }
    return { variables, optimizer, kernels };
  };
  const weightsOf = async ({ variables, optimizer }: Awaited<ReturnType<typeof run>>) => {
    const state = await optimizer.getWeights();
    return [...variables.map((v) => ({ name: v.name.replace(/-true-|-false-/, '-'), tensor: v })), ...state];
  };
  try {
    for (const nesterov of [true, false])
      for (const asMap of [false, true]) {
        // tfjs's optimizer leaves its learning-rate scalars behind when disposed: each path must leave no more.
        const left: number[] = [];
        const runs: { weights: { name: string; tensor: tf.Tensor }[]; kernels: Set<string> }[] = [];
        for (const fused of [false, true]) {
          const before = tf.memory().numTensors;
          const r = await run(fused, nesterov, asMap);
          const weights = (await weightsOf(r)).map((w) => ({ name: w.name, tensor: tf.keep(w.tensor.clone()) }));
          tf.dispose(r.variables);
          r.optimizer.dispose();
          runs.push({ weights, kernels: r.kernels });
          left.push(tf.memory().numTensors - before - weights.length);
        }
        const [shipped, fused] = runs;
        assert.ok(
          fused.kernels.has('A2MomentumUpdate') && !shipped.kernels.has('A2MomentumUpdate'),
          'the fused path ran the one kernel, the other did not',
        );
        assert.equal(left[1], left[0], 'tensors left behind: the fused path against tfjs');
        const [want, got] = [shipped.weights, fused.weights];
        assert.equal(got.length, want.length, 'as many weights (variables, iterations, accumulations)');
        want.forEach((w, i) => {
          const [wv, gv] = [w.tensor.dataSync(), got[i].tensor.dataSync()];
          assert.deepEqual(got[i].tensor.shape, w.tensor.shape);
          const differing = wv.findIndex((value, j) => !Object.is(value, gv[j]));
          assert.equal(
            differing,
            -1,
            `nesterov ${nesterov}, map ${asMap}, weight ${i} (${w.name}): element ${differing} is ${gv[differing]}, tfjs gives ${wv[differing]}`,
          );
        });
        tf.dispose([...want, ...got].map((w) => w.tensor));
      }
  } finally {
    setFusedMomentum(true);
  }
});

test("MomentumOptimizer leaves to tfjs what its ops would cast or broadcast, with tfjs's results", async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.some((k) => k.startsWith('A2MomentumUpdate'))) return t.skip('the addon has no momentum update here');
  const results = [true, false].map((fused) => {
    setFusedMomentum(fused);
    const [w, b] = [
      tf.variable(tf.tensor1d([1, 2, 3]), true, `cast-${fused}-w`),
      tf.variable(tf.tensor1d([4, 5]), true, `cast-${fused}-b`),
    ];
    const optimizer = tf.train.momentum(0.5, 0.9, true);
    // An int32 gradient and a scalar one for a vector: tfjs casts and broadcasts them.
    const grads = { [w.name]: tf.tensor1d([1, -1, 2], 'int32'), [b.name]: tf.scalar(0.25) };
    optimizer.applyGradients(grads as unknown as Parameters<typeof optimizer.applyGradients>[0]);
    const out = [w, b].map((v) => Array.from(v.dataSync()));
    tf.dispose([w, b, ...Object.values(grads)]);
    optimizer.dispose();
    return out;
  });
  setFusedMomentum(true);
  assert.deepEqual(results[0], results[1]);
});

test('the one-pass momentum update stays right when allocating its outputs grows the wasm heap', async (t) => {
  const info = await initBackend('wasm');
  if (!info.kernels.some((k) => k.startsWith('A2MomentumUpdate'))) return t.skip('the addon has no momentum update here');
  const heapBytes = () => ((tf.backend() as BackendWasm).wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8.buffer.byteLength;
  const [m, c] = [0.9, -0.1];
  // Outputs of 128 MB each: more than the ≤96 MB emscripten over-allocates when the inputs grow
  // the heap; a larger free block left by an earlier test only means a second try at twice the size.
  let grew = false;
  for (let n = 32 << 20; !grew && n <= 64 << 20; n *= 2) {
    // Made in JS, so that no freed intermediate leaves room for the outputs.
    const pattern = (k: number, scale: number, offset: number) =>
      tf.tensor1d(Float32Array.from({ length: n }, (_, j) => (j % k) * scale - offset));
    const [value, accumulation, gradient] = [pattern(7, 0.75, 2), pattern(5, 0.5, 1), pattern(3, 1.25, 1.3)];
    const before = heapBytes();
    const [newValue, newAccumulation] = tf
      .engine()
      .runKernel('A2MomentumUpdate', { v0: value, a0: accumulation, g0: gradient }, { m, c, nesterov: true, count: 1 }) as tf.Tensor[];
    grew = heapBytes() > before;
    if (grew) {
      // tfjs's MomentumOptimizer (Nesterov), op by op.
      const [wantValue, wantAccumulation] = tf.tidy(() => {
        const acc = tf.add(tf.mul(tf.scalar(m), accumulation), gradient);
        return [tf.add(tf.mul(tf.scalar(c), tf.add(gradient, tf.mul(acc, tf.scalar(m)))), value), acc];
      });
      for (const [name, got, want] of [
        ['value', newValue, wantValue],
        ['accumulation', newAccumulation, wantAccumulation],
      ] as const) {
        const [g, w] = [got.dataSync(), want.dataSync()];
        const differing = (w as Float32Array).findIndex((x, j) => !Object.is(x, g[j]));
        assert.equal(differing, -1, `${name} of ${n} elements: element ${differing} is ${g[differing]}, tfjs gives ${w[differing]}`);
      }
      tf.dispose([wantValue, wantAccumulation]);
    }
    tf.dispose([value, accumulation, gradient, newValue, newAccumulation]);
  }
  assert.ok(grew, 'the heap grew while the kernel allocated its outputs (else this test tests nothing)');
});
