import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { FIGURE_3_SHAPES, makeConvAutoencoder } from '../../experiments/q2-conv-ae.js';
import { makeFcAutoencoder } from '../../experiments/q2-fc-ae.js';
import { type Autoencoder, reconstruct } from '../../experiments/autoencoder.js';
import { loadMnist } from '../../src/data/index.js';
import { initBackend, seedEverything, tf } from '../../src/tensor/index.js';
import { a2, DATA_DIR, tempDir } from '../helpers.js';

await initBackend('wasm');

const outputShapes = (m: tf.Sequential) => m.layers.map((l) => (l.outputShape as number[]).slice(1));

test('the FC autoencoder is 784 → 196 → 49 → λ → 49 → 196 → 784 with ReLU after every layer', () => {
  for (const lambda of [2, 32]) {
    const { encoder, decoder } = makeFcAutoencoder(lambda);
    assert.deepEqual(outputShapes(encoder), [[784], [196], [49], [lambda]]);
    assert.deepEqual(outputShapes(decoder), [[49], [196], [784], [28, 28, 1]]);
    const activations = [...encoder.layers, ...decoder.layers]
      .filter((l) => l.getClassName() === 'Dense')
      .map((l) => (l.getConfig() as { activation: string }).activation);
    assert.deepEqual(activations, Array(6).fill('relu'));
  }
});

test('the conv autoencoder has every block of Figure 3 with exactly its shape', () => {
  for (const lambda of [2, 32]) {
    const { encoder, decoder } = makeConvAutoencoder(lambda);
    const expected = (shapes: (number | string)[][]) => shapes.map((s) => s.map((d) => (d === 'λ' ? lambda : d)));
    assert.deepEqual(outputShapes(encoder), expected(FIGURE_3_SHAPES.encoder));
    assert.deepEqual(outputShapes(decoder), expected(FIGURE_3_SHAPES.decoder));
  }
});

async function stepsReduceLoss(ae: Autoencoder, steps: number): Promise<[number, number]> {
  const data = loadMnist(DATA_DIR, 'train', [], 256);
  const x = tf.tensor4d(data.images, [256, 28, 28, 1]);
  const optimizer = tf.train.adam(3e-3);
  const loss = () => tf.mean(tf.abs(tf.sub(reconstruct(ae, x), x))) as tf.Scalar;
  const before = tf.tidy(() => loss().dataSync()[0]);
  for (let i = 0; i < steps; i++) optimizer.minimize(loss, true)?.dispose();
  const after = tf.tidy(() => loss().dataSync()[0]);
  x.dispose();
  return [before, after];
}

test('a few Adam steps on real digits reduce the L1 loss of both autoencoders', async () => {
  seedEverything(1);
  const [fcBefore, fcAfter] = await stepsReduceLoss(makeFcAutoencoder(32), 30);
  const [convBefore, convAfter] = await stepsReduceLoss(makeConvAutoencoder(32), 15);
  console.log(`  fc: ${fcBefore.toFixed(4)} → ${fcAfter.toFixed(4)}; conv: ${convBefore.toFixed(4)} → ${convAfter.toFixed(4)}`);
  assert.ok(fcAfter < fcBefore * 0.9);
  assert.ok(convAfter < convBefore * 0.95);
});

test('the same seed gives the same metrics; another seed different ones', async () => {
  const run = async (seed: string) => {
    const out = tempDir();
    const { code } = await a2('run', 'q2-fc-ae', '--profile', 'smoke', '--seed', seed, '--data-dir', DATA_DIR, '--out', out);
    assert.equal(code, 0);
    return JSON.parse(readFileSync(path.join(out, 'q2-fc-ae/metrics.json'), 'utf8'));
  };
  const [a, b, c] = [await run('7'), await run('7'), await run('8')];
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.lambdas, c.lambdas);
});

test('q3 trains q2-conv-ae first when its models are missing, then writes every figure', async () => {
  const out = tempDir();
  const { code, lines } = await a2('run', 'q3-mean-latent', '--profile', 'smoke', '--data-dir', DATA_DIR, '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('running q2-conv-ae first')));
  for (const f of [
    'q2-conv-ae/figure.png',
    'q2-conv-ae/loss.png',
    'q2-conv-ae/reconstructions.png',
    'q2-conv-ae/models/lambda-2/encoder/model.json',
    'q3-mean-latent/mean-latent.png',
    'q3-mean-latent/class-means.png',
    'q3-mean-latent/latent-2d.png',
  ]) {
    assert.ok(existsSync(path.join(out, f)), f);
  }
  const metrics = JSON.parse(readFileSync(path.join(out, 'q3-mean-latent/metrics.json'), 'utf8'));
  assert.equal(metrics.lambdas['2'].mu.length, 2);
  assert.equal(metrics.lambdas['32'].mu.length, 32);
  // Second run reuses the models it finds.
  const again = await a2('run', 'q3-mean-latent', '--profile', 'smoke', '--data-dir', DATA_DIR, '--out', out);
  assert.equal(again.code, 0);
  assert.ok(!again.lines.some((l) => l.includes('running q2-conv-ae first')));
});
