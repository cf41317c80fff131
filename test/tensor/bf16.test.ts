// bf16 convolutions (--precision bf16) against the fp32 cpu backend, and a short real training run
// in both precisions. Skipped where the oneDNN accelerator is not loaded (A2_ONEDNN=0, no libdnnl).
//
// Tolerance. bf16 keeps 8 significant bits: rounding an input to bf16 errs by at most 2^-9
// relative, so a product of two rounded inputs by at most ~2^-8 = 3.9e-3. oneDNN accumulates the
// products in fp32, so a K-term sum of such products with mixed signs errs by about 2^-8 × the
// root-sum-square of its terms, which is the scale of the sum itself. We therefore require the
// RMS difference to stay below 4e-3 of the reference's RMS (one unit of bf16 roundoff), and the
// largest single difference below 1e-2 of the reference's largest magnitude (2.5 units: a few
// outputs among thousands land in the tail). fp32 on the same inputs differs by ~1e-7, so the
// bounds cannot pass by accident if bf16 were wrong by more than rounding; a separate check
// shows bf16 really ran (it differs from fp32 by more than fp32 roundoff).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeCifarNet } from '../../experiments/cifar.js';
import { loadCifar } from '../../src/data/index.js';
import { initBackend, makeRng, seedEverything, tf } from '../../src/tensor/index.js';
import { DATA_DIR } from '../helpers.js';

const info = await initBackend('wasm');
// auto resolves to bf16 only where the accelerator is loaded and the CPU multiplies bf16 natively.
const skip = !info.kernels.some((k) => k.startsWith('oneDNN'))
  ? 'the oneDNN accelerator is not loaded'
  : info.precision !== 'bf16'
    ? 'this CPU has no native bf16 (AMX or AVX512-BF16)'
    : false;

function randomValues(n: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  return Float32Array.from({ length: n }, () => rng() * 2 - 1);
}

interface Error2 {
  rms: number;
  max: number;
}
function relativeError(ref: Float32Array, got: Float32Array): Error2 {
  let d2 = 0,
    r2 = 0,
    dMax = 0,
    rMax = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ref[i] - got[i]);
    d2 += d * d;
    r2 += ref[i] * ref[i];
    dMax = Math.max(dMax, d);
    rMax = Math.max(rMax, Math.abs(ref[i]));
  }
  return { rms: Math.sqrt(d2 / r2), max: dMax / rMax };
}

async function outputs(backend: string, precision: 'fp32' | 'bf16', fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  await initBackend('auto', { precision });
  const outs = tf.tidy(fn);
  const values = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
  tf.dispose(outs);
  await tf.setBackend('wasm');
  await initBackend('auto', { precision: 'fp32' });
  return values;
}

// The q5 net's layer shapes (3→32 stem, 32→64, 128→256), plus strided and unpadded cases. The
// stem (fewer than 16 input channels) stays in fp32 by design (native/onednn.cc says why). Outputs
// of at most 8×8 pixels (the last three) take the weight gradient as im2col + one matmul; the
// stride-1 bf16 cases (the second and third) take the input gradient as a forward convolution with
// the filter flipped (onednn-addon.test.ts checks which path ran).
const cases = [
  { n: 8, hw: 32, cin: 3, cout: 32, k: 3, stride: 1, pad: 'same' as const },
  { n: 8, hw: 16, cin: 32, cout: 64, k: 3, stride: 1, pad: 'same' as const },
  { n: 8, hw: 8, cin: 128, cout: 256, k: 3, stride: 1, pad: 'same' as const },
  { n: 4, hw: 15, cin: 16, cout: 32, k: 3, stride: 2, pad: 'valid' as const },
  { n: 4, hw: 12, cin: 16, cout: 16, k: 5, stride: 2, pad: 'same' as const },
];

for (const c of cases) {
  test(`bf16 conv forward, input and filter gradients track fp32 cpu: ${JSON.stringify(c)}`, { skip }, async () => {
    const xv = randomValues(c.n * c.hw * c.hw * c.cin, 11);
    const wv = randomValues(c.k * c.k * c.cin * c.cout, 12);
    const fn = () => {
      const x = tf.tensor4d(xv, [c.n, c.hw, c.hw, c.cin]);
      const w = tf.tensor4d(wv, [c.k, c.k, c.cin, c.cout]);
      const y = tf.conv2d(x, w, c.stride, c.pad);
      // A fixed upstream gradient that is not y itself, so dX and dW are not fed bf16-rounded y back.
      const dy = tf.tensor4d(randomValues(y.size, 13), y.shape as [number, number, number, number]);
      const dx = tf.conv2dTranspose(dy, w, x.shape, c.stride, c.pad);
      const dw = tf.grad((ww) => tf.sum(tf.mul(tf.conv2d(x, ww as tf.Tensor4D, c.stride, c.pad), dy)))(w);
      return [y, dx, dw];
    };
    const reference = await outputs('cpu', 'fp32', fn);
    const bf16 = await outputs('wasm', 'bf16', fn);
    const fp32 = await outputs('wasm', 'fp32', fn);
    for (const [i, name] of ['y', 'dX', 'dW'].entries()) {
      const e = relativeError(reference[i], bf16[i]);
      const f = relativeError(reference[i], fp32[i]);
      console.log(
        `  ${name}: bf16 rms ${e.rms.toExponential(2)} max ${e.max.toExponential(2)}; fp32 rms ${f.rms.toExponential(2)} max ${f.max.toExponential(2)}`,
      );
      assert.ok(e.rms < 4e-3, `${name}: bf16 RMS error ${e.rms} ≥ 4e-3`);
      assert.ok(e.max < 1e-2, `${name}: bf16 max error ${e.max} ≥ 1e-2`);
      assert.ok(f.rms < 1e-5, `${name}: fp32 RMS error ${f.rms}`);
      if (c.cin < 16) assert.deepEqual(bf16[i], fp32[i], `${name}: a stem conv should stay in fp32`);
      else assert.ok(e.rms > 10 * f.rms, `${name}: bf16 (${e.rms}) is no further from fp32 than fp32 itself (${f.rms}): did bf16 run?`);
    }
  });
}

test('a short real CIFAR-10 training run in bf16 tracks fp32 from the same start', { skip }, async () => {
  const split = loadCifar(DATA_DIR, 'train', []);
  const batch = 64;
  const steps = 40;
  const lossesOf = async (precision: 'fp32' | 'bf16') => {
    await initBackend('auto', { precision });
    seedEverything(7);
    const model = makeCifarNet([16, 32, 64, 64]);
    const optimizer = tf.train.momentum(0.05, 0.9, true);
    const losses: number[] = [];
    for (let s = 0; s < steps; s++) {
      const loss = tf.tidy(() => {
        const pixels = Float32Array.from(split.images.subarray(s * batch * 3072, (s + 1) * batch * 3072), (v) => v / 255 - 0.5);
        const x = tf.tensor4d(pixels, [batch, 32, 32, 3]);
        const y = tf.oneHot(tf.tensor1d(Array.from(split.labels.subarray(s * batch, (s + 1) * batch)), 'int32'), 10).toFloat();
        return optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor), true)!;
      });
      losses.push(loss.dataSync()[0]);
      loss.dispose();
    }
    model.dispose();
    optimizer.dispose();
    return losses;
  };
  const fp32 = await lossesOf('fp32');
  const bf16 = await lossesOf('bf16');
  await initBackend('auto', { precision: 'fp32' });
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const gap = mean(fp32.map((l, i) => Math.abs(l - bf16[i])));
  console.log(
    `  loss fp32 ${fp32[0].toFixed(3)} → ${mean(fp32.slice(-10)).toFixed(3)}, bf16 ${bf16[0].toFixed(3)} → ${mean(bf16.slice(-10)).toFixed(3)}; mean |Δ| ${gap.toFixed(4)}`,
  );
  // Both learn (the last ten steps well below the first loss) and the curves stay within 0.05 of
  // each other on average: rounding moves the trajectory, it does not change where it goes.
  for (const curve of [fp32, bf16])
    assert.ok(mean(curve.slice(-10)) < curve[0] - 0.2, `loss did not fall: ${curve.map((l) => l.toFixed(2))}`);
  assert.ok(gap < 0.05, `bf16 loss curve strays from fp32 by ${gap} on average`);
  assert.ok(Math.abs(mean(fp32.slice(-10)) - mean(bf16.slice(-10))) < 0.08);
});

test('bf16 convolutions convert each input once (its copy kept for the next reader): same bits, no copy outlives its tensor', {
  skip,
}, async () => {
  const { bf16CopySizes, setBf16CopyReuse } = await import('../../src/tensor/onednn-kernels.js');
  await initBackend('auto', { precision: 'bf16' });
  const weightsAfterSteps = (reuse: boolean) => {
    setBf16CopyReuse(reuse);
    seedEverything(3);
    const model = makeCifarNet([16, 32, 32, 32]);
    const optimizer = tf.train.momentum(0.05, 0.9, true);
    const x = tf.tensor4d(randomValues(16 * 32 * 32 * 3, 21), [16, 32, 32, 3]);
    const y = tf
      .oneHot(
        tf.tensor1d(
          Array.from({ length: 16 }, (_, i) => i % 10),
          'int32',
        ),
        10,
      )
      .toFloat();
    let keptDuringStep = 0;
    for (let s = 0; s < 3; s++)
      tf.tidy(() => {
        optimizer.minimize(() => {
          const loss = tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
          // After the forward pass: each bf16 conv's input copy is waiting for its weight gradient.
          keptDuringStep = bf16CopySizes().copies;
          return loss;
        });
      });
    const held = bf16CopySizes().copies;
    const weights = model.getWeights().map((w) => w.dataSync().slice());
    tf.dispose([x, y]);
    model.dispose();
    optimizer.dispose();
    return { weights, held, keptDuringStep };
  };
  const converted = weightsAfterSteps(false);
  const reused = weightsAfterSteps(true);
  setBf16CopyReuse(true);
  await initBackend('auto', { precision: 'fp32' });
  assert.equal(converted.keptDuringStep, 0, 'copies kept with reuse off');
  assert.ok(reused.keptDuringStep > 0, 'no bf16 copy was kept for a gradient (did bf16 run?)');
  // Every tensor the steps' convolutions read was disposed with its step: no copy may remain.
  assert.equal(reused.held, 0, 'bf16 copies outlived the tensors they copy');
  assert.equal(reused.weights.length, converted.weights.length);
  for (const [i, w] of reused.weights.entries()) assert.deepEqual(w, converted.weights[i], `weight ${i} differs with reuse`);
});
