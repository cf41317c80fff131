// The parts of the Q5 recipe taken from airbench, each checked against what it claims to do.
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RECIPE, alternatingFlip, evaluate, learningRateAt, makeBatch, makeCifarNet, whiteningKernel } from '../../experiments/cifar.js';
import { loadCifar } from '../../src/data/index.js';
import { initBackend, makeRng, tf } from '../../src/tensor/index.js';
import { saveModel, loadModel } from '../../src/run/models.js';
import { DATA_DIR, tempDir } from '../helpers.js';

// fp32: the checks below are exact up to float rounding, which bf16 convolutions are not.
await initBackend('wasm', { precision: 'fp32' });
const train = loadCifar(DATA_DIR, 'train', []);
const first = (n: number) => ({ images: train.images.subarray(0, n * 3072), labels: train.labels.subarray(0, n), count: n });

test('the learning rate starts at lrStart of the peak and ends at lrEnd of it', () => {
  const c = { lr: 2, epochs: 10, warmup: 0.2, lrStart: 0.2, lrEnd: 0.07 };
  assert.ok(Math.abs(learningRateAt(0, c) - 0.4) < 1e-12);
  assert.ok(Math.abs(learningRateAt(1, c) - 1.2) < 1e-12);
  assert.ok(Math.abs(learningRateAt(2, c) - 2) < 1e-12);
  assert.ok(Math.abs(learningRateAt(10, c) - 0.14) < 1e-12);
});

test('the whitening stem decorrelates 2×2 patches: their covariance after it is the identity', () => {
  const images = first(300);
  const kernel = whiteningKernel(images, 300, 0);
  assert.deepEqual(kernel.shape, [2, 2, 3, 24]);
  const covariance = tf.tidy(() => {
    const { x } = makeBatch(
      images,
      Array.from({ length: 300 }, (_, i) => i),
    );
    // The first 12 channels are the scaled eigenvectors (the other 12 their negatives).
    const out = tf.conv2d(x, kernel.slice([0, 0, 0, 0], [2, 2, 3, 12]), 1, 'valid').reshape([-1, 12]);
    return tf.matMul(out, out, true, false).div(out.shape[0]).arraySync() as number[][];
  });
  kernel.dispose();
  for (let a = 0; a < 12; a++)
    for (let b = 0; b < 12; b++)
      assert.ok(Math.abs(covariance[a][b] - (a === b ? 1 : 0)) < 1e-3, `covariance[${a}][${b}] = ${covariance[a][b]}`);
});

test('alternating flip: each image flips one way in odd epochs and the other in even ones', () => {
  const flipped = alternatingFlip(1000, 3);
  const odd = Array.from({ length: 1000 }, (_, i) => flipped(1)(i));
  assert.deepEqual(
    Array.from({ length: 1000 }, (_, i) => flipped(3)(i)),
    odd,
  );
  assert.deepEqual(
    Array.from({ length: 1000 }, (_, i) => flipped(2)(i)),
    odd.map((f) => !f),
  );
  const share = odd.filter(Boolean).length / 1000;
  assert.ok(share > 0.45 && share < 0.55, `${share} of images flipped in epoch 1`);
});

test('a test-time view shifts the image by whole pixels with reflect padding, and mirrors it', () => {
  const one = first(1);
  const pixel = (t: tf.Tensor4D, r: number, c: number) => Array.from(t.slice([0, r, c, 0], [1, 1, 1, 3]).dataSync());
  const plain = makeBatch(one, [0]).x;
  const shifted = makeBatch(one, [0], undefined, { mirror: false, dy: -1, dx: 1 }).x;
  const mirrored = makeBatch(one, [0], undefined, { mirror: true, dy: 0, dx: 0 }).x;
  assert.deepEqual(pixel(shifted, 5, 7), pixel(plain, 4, 8));
  assert.deepEqual(pixel(shifted, 0, 7), pixel(plain, 1, 8), 'row −1 reflects to row 1');
  assert.deepEqual(pixel(mirrored, 3, 0), pixel(plain, 3, 31));
  tf.dispose([plain, shifted, mirrored]);
});

test('a batch is each byte normalised, (v / 255 − mean) / std in float32, read through the flip and the reflect-padded shift', () => {
  // The formula written out per pixel, as makeBatch computed it before its lookup table.
  const [mean, std] = [
    [0.4914, 0.4822, 0.4465],
    [0.247, 0.2435, 0.2616],
  ];
  const reflect = (v: number) => (v < 0 ? -v : v > 31 ? 62 - v : v);
  const images = first(40);
  const indices = Array.from({ length: 40 }, (_, i) => (i * 7) % 40);
  const expected = (draws: { flip: boolean; dy: number; dx: number }[]) => {
    const out = new Float32Array(indices.length * 3072);
    indices.forEach((src, k) => {
      const { flip, dy, dx } = draws[k];
      for (let r = 0; r < 32; r++)
        for (let c = 0; c < 32; c++)
          for (let ch = 0; ch < 3; ch++) {
            const from = src * 3072 + (reflect(r + dy) * 32 + reflect((flip ? 31 - c : c) + dx)) * 3 + ch;
            out[k * 3072 + (r * 32 + c) * 3 + ch] = (images.images[from] / 255 - mean[ch]) / std[ch];
          }
    });
    return out;
  };
  // Augmented: per image a coin for the flip, then dy and dx uniform in −2…2, drawn in that order.
  const draws = makeRng(7);
  const augmentedDraws = indices.map(() => ({ flip: draws() < 0.5, dy: Math.floor(draws() * 5) - 2, dx: Math.floor(draws() * 5) - 2 }));
  const augmented = makeBatch(images, indices, { flip: true, translate: 2, rng: makeRng(7) });
  assert.deepEqual(augmented.x.dataSync(), expected(augmentedDraws));
  assert.ok(augmentedDraws.some((d) => d.flip) && augmentedDraws.some((d) => d.dy !== 0 || d.dx !== 0));
  for (const view of [
    { mirror: false, dy: 0, dx: 0 },
    { mirror: true, dy: -1, dx: 1 },
  ]) {
    const { x } = makeBatch(images, indices, undefined, view);
    assert.deepEqual(x.dataSync(), expected(indices.map(() => ({ flip: view.mirror, dy: view.dy, dx: view.dx }))));
    x.dispose();
  }
  tf.dispose([augmented.x, augmented.y]);
});

test('dirac init: each block conv starts as the identity on its first input-many channels', () => {
  const net = makeCifarNet([24, 16, 32, 32], { whiten: true, dirac: true, logitScale: 1 });
  const convs = net.layers.filter((l) => l.getClassName() === 'Conv2D' && l.name !== 'whiten');
  assert.equal(convs.length, 6);
  for (const conv of convs) {
    const kernel = conv.getWeights()[0];
    const [, , cin, cout] = kernel.shape;
    const x = tf.randomNormal([1, 5, 5, cin]) as tf.Tensor4D;
    const y = tf.conv2d(x, kernel as tf.Tensor4D, 1, 'same');
    const n = Math.min(cin, cout);
    const diff = tf
      .sub(y.slice([0, 0, 0, 0], [1, 5, 5, n]), x.slice([0, 0, 0, 0], [1, 5, 5, n]))
      .abs()
      .max()
      .dataSync()[0];
    assert.ok(diff < 1e-6, `${conv.name}: ${diff}`);
    tf.dispose([x, y]);
  }
});

test('flip + translate TTA averages six views; a net blind to position and mirroring scores them as one', () => {
  // Logits from channel means only: every view of an image gives the same logits up to the shifted border.
  const input = tf.input({ shape: [32, 32, 3] });
  const pooled = tf.layers.globalAveragePooling2d({}).apply(input) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: 10, kernelInitializer: 'glorotNormal' }).apply(pooled) as tf.SymbolicTensor;
  const net = tf.model({ inputs: input, outputs: logits });
  const images = first(200);
  const plain = evaluate(net, images, { flipTta: false, translateTta: false });
  const flip = evaluate(net, images, { flipTta: true, translateTta: false });
  const all = evaluate(net, images, { ...RECIPE, flipTta: true, translateTta: true });
  // Equal up to float32 roundoff: the mirrored image's channel sums add the same pixels in another order.
  assert.ok(Math.abs(flip.loss - plain.loss) < 1e-6 * plain.loss, `mirroring does not change channel means: ${flip.loss} vs ${plain.loss}`);
  assert.ok(Math.abs(all.loss - plain.loss) < 0.02 * plain.loss, `${all.loss} vs ${plain.loss}`);
});

test('a net with the whitening stem and a logit scale survives a checkpoint: same logits after loading', async () => {
  const net = makeCifarNet([24, 8, 16, 16], { whiten: true, dirac: true, logitScale: 1 / 9 });
  const dir = tempDir();
  await saveModel(net, path.join(dir, 'model'));
  const loaded = await loadModel(path.join(dir, 'model'));
  const x = tf.randomNormal([2, 32, 32, 3]);
  const a = (net.predict(x) as tf.Tensor).dataSync(),
    b = (loaded.predict(x) as tf.Tensor).dataSync();
  assert.deepEqual(Array.from(b), Array.from(a));
  assert.ok(Math.max(...Array.from(a, Math.abs)) > 0, 'the logits are not all zero');
});
