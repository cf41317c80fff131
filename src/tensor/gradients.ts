// Gradients a2 registers over tfjs-core's, for every backend.
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';

/**
 * tfjs-core's FusedBatchNorm gradient tiles the per-channel 1/√(var+ε) to the full size of x
 * before multiplying; broadcasting does the same arithmetic without building that tensor
 * (the Tile was 15% of a q5 training step on wasm). Same maths, term for term.
 */
const fusedBatchNormGrad: GradConfig = {
  kernelName: 'FusedBatchNorm',
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
    const [x, mean, variance, scale] = saved;
    const g = dy as tf.Tensor;
    const scaleValue = scale ?? tf.scalar(1);
    const axes = x.shape.map((_, i) => i).slice(0, x.rank - mean.rank);
    const perChannel = (t: tf.Tensor) => (mean.rank === 1 ? tf.sum(t, axes) : t).reshape(mean.shape);
    const inverseStd = tf.rsqrt(tf.add(variance, varianceEpsilon));
    const xMinusMean = tf.sub(x, mean);
    const dyTimesScale = tf.mul(g, scaleValue);
    return {
      x: () => tf.mul(g, tf.mul(inverseStd, scaleValue)).reshape(x.shape),
      mean: () => perChannel(tf.mul(tf.neg(inverseStd), dyTimesScale)),
      variance: () => perChannel(tf.mul(tf.mul(tf.mul(tf.pow(inverseStd, 3), -0.5), xMinusMean), dyTimesScale)),
      scale: () => perChannel(tf.mul(g, tf.mul(xMinusMean, inverseStd))),
      offset: () => perChannel(g),
    };
  },
};

/** The fields of tfjs-layers' Conv2D its call reads (not in its public typings). */
interface Conv2DLayer {
  bias: tf.LayerVariable | null;
  kernel: tf.LayerVariable;
  activation: { getClassName(): string };
  rank: number;
  dataFormat: string;
  padding: string;
  strides: number[];
  dilationRate: number | number[];
}

/**
 * tfjs-layers' Conv2D always runs tfjs's fused conv op, whose gradient computes the gradient of the
 * layer's input whether or not anything needs it: for a net's first layer, whose input is the data,
 * that is a whole convolution thrown away (4.8 ms of a q5 step; the step ~5% faster without it).
 * Without bias or activation the plain conv2d op runs the same kernels (Conv2D,
 * Conv2DBackpropInput, Conv2DBackpropFilter) with a gradient per input, which the tape computes
 * only where it leads to a weight: the same bits.
 */
function conv2dWithoutUnusedGradients(): boolean {
  const [Conv2D] = tf.serialization.SerializationMap.getMap().classNameMap.Conv2D ?? [];
  if (!Conv2D) return false;
  const proto = Conv2D.prototype as tf.layers.Layer;
  const shipped = proto.call;
  tfjsConv2DCall = shipped;
  proto.call = function (this: tf.layers.Layer, inputs: tf.Tensor | tf.Tensor[], kwargs: tf.serialization.ConfigDict) {
    const layer = this as unknown as Conv2DLayer;
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const plain =
      layer.bias === null &&
      layer.activation.getClassName() === 'linear' &&
      layer.rank === 2 &&
      layer.dataFormat === 'channelsLast' &&
      (layer.padding === 'same' || layer.padding === 'valid') &&
      (!Array.isArray(inputs) || inputs.length === 1) &&
      x.rank === 4;
    if (!plain) return shipped.call(this, inputs, kwargs);
    const dilations = layer.dilationRate as [number, number] | number;
    return tf.tidy(() =>
      tf.conv2d(
        x as tf.Tensor4D,
        layer.kernel.read() as tf.Tensor4D,
        layer.strides as [number, number],
        layer.padding as 'same' | 'valid',
        'NHWC',
        dilations,
      ),
    );
  };
  return true;
}

/** tfjs-layers' own Conv2D call, as it was before a2's (for tests). */
export let tfjsConv2DCall: tf.layers.Layer['call'] | undefined;

let registered: string[] | undefined;

export function registerGradients(): string[] {
  if (!registered) {
    tf.registerGradient(fusedBatchNormGrad);
    registered = ['FusedBatchNorm (gradient)'];
    if (conv2dWithoutUnusedGradients()) registered.push('Conv2D layer (no bias, linear): plain conv2d, gradients where needed');
  }
  return registered;
}
