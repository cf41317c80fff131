// Floating-point operations of a model's forward pass, for time-to-accuracy and throughput figures.
import * as tf from '@tensorflow/tfjs';

/**
 * Multiply-adds ×2 of the Conv2D, Conv2DTranspose and Dense layers for one input (nested models
 * included). Pooling, normalisation and activations are left out: they are a few percent of a
 * conv net's work. A training step costs about 3× this per image (forward, and backward to both
 * the inputs and the weights).
 */
export function forwardFlops(model: tf.LayersModel): number {
  let flops = 0;
  const visit = (m: tf.LayersModel) => {
    for (const layer of m.layers) {
      if (layer instanceof tf.LayersModel) {
        visit(layer);
        continue;
      }
      const cls = layer.getClassName();
      const weights = (layer.getWeights()[0]?.shape ?? []) as number[];
      const out = (layer.outputShape as number[]).slice(1);
      const inp = ((layer.input as tf.SymbolicTensor).shape as number[]).slice(1);
      if (cls === 'Conv2D') flops += 2 * out[0] * out[1] * weights[0] * weights[1] * weights[2] * weights[3];
      else if (cls === 'Conv2DTranspose') flops += 2 * inp[0] * inp[1] * weights[0] * weights[1] * weights[2] * weights[3];
      else if (cls === 'Dense') flops += 2 * weights[0] * weights[1];
    }
  };
  visit(model);
  return flops;
}
