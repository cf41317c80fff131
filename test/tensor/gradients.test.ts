// Gradients a2 changes over tfjs's: a Conv2D layer without bias or activation runs the plain conv2d
// op, so the tape computes its input's gradient only where it leads to a weight (never for the
// data), with the very bits of tfjs-layers' own call.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tfjsConv2DCall } from '../../src/tensor/gradients.js';
import { initBackend, makeRng, tf } from '../../src/tensor/index.js';

await initBackend('wasm', { precision: 'fp32' });

test("a Conv2D layer without bias or activation gives tfjs-layers' bits and no gradient for the data", async () => {
  const rng = makeRng(12);
  const values = (n: number) => Float32Array.from({ length: n }, () => 2 * rng() - 1);
  const x = tf.tensor4d(values(4 * 9 * 9 * 3), [4, 9, 9, 3]);
  const labels = tf.oneHot(tf.tensor1d([0, 3, 1, 2], 'int32'), 5).toFloat();
  const build = () => {
    const input = tf.input({ shape: [9, 9, 3] });
    let h = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', useBias: false }).apply(input) as tf.SymbolicTensor;
    h = tf.layers.conv2d({ filters: 6, kernelSize: 2, strides: 2, padding: 'valid', useBias: false }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.conv2d({ filters: 7, kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(h) as tf.SymbolicTensor;
    // A layer with bias and ReLU keeps tfjs's fused op.
    h = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: h });
  };
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    const [ours, theirs] = [build(), build()];
    theirs.setWeights(ours.getWeights());
    for (const layer of theirs.layers) if (layer.getClassName() === 'Conv2D') (layer as unknown as { call: unknown }).call = tfjsConv2DCall;
    const run = async (model: tf.LayersModel) => {
      const f = () => tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
      let result: Float32Array[] = [];
      const before = tf.memory().numTensors;
      const profile = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(f);
        const outputs = [value, ...Object.values(grads), model.predict(x) as tf.Tensor];
        result = outputs.map((t) => t.dataSync() as Float32Array);
        tf.dispose(outputs);
      });
      assert.equal(tf.memory().numTensors, before, `${backend}: no tensor left behind`);
      const count = (name: string) => profile.kernels.filter((k) => k.name === name).length;
      return { result, inputGradients: count('Conv2DBackpropInput'), filterGradients: count('Conv2DBackpropFilter') };
    };
    const [mine, tfjs] = [await run(ours), await run(theirs)];
    assert.equal(mine.result.length, tfjs.result.length);
    tfjs.result.forEach((want, i) => {
      const differing = want.findIndex((w, j) => !Object.is(w, mine.result[i][j]));
      assert.equal(differing, -1, `${backend}: output ${i} (loss, gradients, prediction), element ${differing}`);
    });
    // tfjs's fused op computes all four input gradients; the first layer's is the data's, and unused.
    assert.equal(tfjs.inputGradients, 4, `${backend}: tfjs-layers' call`);
    assert.equal(mine.inputGradients, 3, `${backend}: a2's call skips the data's gradient`);
    assert.deepEqual([mine.filterGradients, tfjs.filterGradients], [4, 4], `${backend}: every kernel's gradient`);
    ours.dispose();
    theirs.dispose();
  }
  await tf.setBackend('wasm');
  tf.dispose([x, labels]);
});

test("Conv2D layers loaded from JSON, dilated ones too, predict tfjs-layers' bits; a dilated layer's gradient fails as tfjs's does", async () => {
  const rng = makeRng(13);
  const x = tf.tensor4d(
    Float32Array.from({ length: 2 * 11 * 11 * 4 }, () => 2 * rng() - 1),
    [2, 11, 11, 4],
  );
  const input = tf.input({ shape: [11, 11, 4] });
  let h = tf.layers
    .conv2d({ filters: 6, kernelSize: 3, dilationRate: 2, padding: 'same', useBias: false })
    .apply(input) as tf.SymbolicTensor;
  h = tf.layers.conv2d({ filters: 5, kernelSize: 3, dilationRate: [2, 3], padding: 'valid', useBias: false }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.conv2d({ filters: 3, kernelSize: 2, strides: [1, 2], padding: 'valid', useBias: false }).apply(h) as tf.SymbolicTensor;
  const built = tf.model({ inputs: input, outputs: h });
  const json = built.toJSON(null, false) as tf.serialization.ConfigDict;
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    const [ours, theirs] = [await tf.models.modelFromJSON(json), await tf.models.modelFromJSON(json)];
    ours.setWeights(built.getWeights());
    theirs.setWeights(built.getWeights());
    for (const layer of theirs.layers) if (layer.getClassName() === 'Conv2D') (layer as unknown as { call: unknown }).call = tfjsConv2DCall;
    const [mine, tfjs] = [ours, theirs].map((m) => tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array));
    assert.equal(tfjs.length, 2 * 6 * 2 * 3, `${backend}: the dilated and strided output's size`);
    const differing = tfjs.findIndex((w, j) => !Object.is(w, mine[j]));
    assert.equal(differing, -1, `${backend}: prediction element ${differing}`);
    // tfjs has no gradient for a dilated convolution: both calls must say so, not compute something else.
    for (const model of [ours, theirs])
      assert.throws(
        () => tf.variableGrads(() => tf.sum(model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar),
        /dilation rates greater than 1/,
        `${backend}: ${model === ours ? "a2's" : "tfjs-layers'"} call`,
      );
    ours.dispose();
    theirs.dispose();
  }
  await tf.setBackend('wasm');
  built.dispose();
  x.dispose();
});
