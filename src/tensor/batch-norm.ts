// Batch normalisation over N·H·W of channels-last activations, as one op with one gradient.
// tfjs-layers' BatchNormalization computes the statistics with separate ops (mean, subtract,
// square, mean, normalise) and differentiates each of them: a dozen full passes over the
// activation per layer. Here the forward pass and the whole backward pass are one kernel each
// where the backend has them (oneDNN on wasm); elsewhere the same maths runs as tfjs ops.
import * as tf from '@tensorflow/tfjs';

export const BATCH_NORM_TRAIN = 'A2BatchNormTrain';
export const BATCH_NORM_TRAIN_GRAD = 'A2BatchNormTrainGrad';
export const BATCH_NORM_INFERENCE = 'A2BatchNormInference';

const hasKernel = (name: string) => tf.getKernel(name, tf.getBackend()) !== undefined;

/**
 * y = (x − mean)/√(var + ε)·γ + β with the batch's own mean and (biased) variance, and those
 * statistics; with `relu`, y = max(0, …) in the same pass (the ReLU that follows most norms).
 */
export function batchNormTraining(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  relu = false,
): { y: tf.Tensor4D; mean: tf.Tensor1D; variance: tf.Tensor1D } {
  if (!hasKernel(BATCH_NORM_TRAIN) || !hasKernel(BATCH_NORM_TRAIN_GRAD)) {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const normalised = tf.batchNorm(x, mean, variance, beta, gamma, epsilon) as tf.Tensor4D;
    return { y: relu ? tf.relu(normalised) : normalised, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
  }
  let stats: tf.Tensor[] = [];
  // customGrad passes the inputs, then the save function, in one rest list.
  const normalise = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, scale, shift, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    // With relu the kernel also returns the ReLU mask (a workspace) for the backward pass.
    const [y, mean, variance, mask] = tf
      .engine()
      .runKernel(BATCH_NORM_TRAIN, { x: input, scale, offset: shift }, { epsilon, relu }) as tf.Tensor[];
    save(mask ? [input, scale, shift, mean, variance, mask] : [input, scale, shift, mean, variance]);
    // The engine saves its own copies for the gradient: these leave the op as they are.
    stats = [tf.keep(mean), tf.keep(variance)];
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [savedX, savedScale, savedShift, savedMean, savedVariance, savedMask] = saved;
        const inputs = { x: savedX, scale: savedScale, offset: savedShift, dy: dy as tf.Tensor, mean: savedMean, variance: savedVariance };
        return tf
          .engine()
          .runKernel(BATCH_NORM_TRAIN_GRAD, savedMask ? { ...inputs, mask: savedMask } : inputs, { epsilon, relu }) as tf.Tensor[];
      },
    };
  });
  const y = normalise(x, gamma, beta) as tf.Tensor4D;
  return { y, mean: stats[0] as tf.Tensor1D, variance: stats[1] as tf.Tensor1D };
}

interface BatchNormArgs {
  momentum?: number;
  epsilon?: number;
  /** Apply a ReLU after the norm, in the same kernel. */
  relu?: boolean;
  name?: string;
}

/**
 * A channels-last BatchNormalization layer (4-D inputs) with tfjs-layers' semantics: γ, β,
 * moving mean and variance, moving averages with `momentum` (the weight of the old value).
 */
export class BatchNorm extends tf.layers.Layer {
  static className = 'A2BatchNorm';
  private readonly momentum: number;
  private readonly epsilon: number;
  private readonly relu: boolean;
  private gamma!: tf.LayerVariable;
  private beta!: tf.LayerVariable;
  private movingMean!: tf.LayerVariable;
  private movingVariance!: tf.LayerVariable;

  constructor(args: BatchNormArgs = {}) {
    super(args);
    this.momentum = args.momentum ?? 0.99;
    this.epsilon = args.epsilon ?? 1e-3;
    this.relu = args.relu ?? false;
    this.supportsMasking = true;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[shape.length - 1] as number;
    this.gamma = this.addWeight('gamma', [channels], 'float32', tf.initializers.ones());
    this.beta = this.addWeight('beta', [channels], 'float32', tf.initializers.zeros());
    this.movingMean = this.addWeight('moving_mean', [channels], 'float32', tf.initializers.zeros(), undefined, false);
    this.movingVariance = this.addWeight('moving_variance', [channels], 'float32', tf.initializers.ones(), undefined, false);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
    const gamma = this.gamma.read() as tf.Tensor1D,
      beta = this.beta.read() as tf.Tensor1D;
    if (!kwargs.training) {
      const [mean, variance] = [this.movingMean.read(), this.movingVariance.read()];
      // One pass with the ReLU, where the backend has it: the same bits as the two ops below.
      if (hasKernel(BATCH_NORM_INFERENCE) && x.dtype === 'float32')
        return tf
          .engine()
          .runKernel(
            BATCH_NORM_INFERENCE,
            { x, mean, variance, offset: beta, scale: gamma },
            { epsilon: this.epsilon, relu: this.relu },
          ) as tf.Tensor;
      const y = tf.batchNorm(x, mean as tf.Tensor1D, variance as tf.Tensor1D, beta, gamma, this.epsilon);
      return this.relu ? tf.relu(y) : y;
    }
    const { y, mean, variance } = batchNormTraining(x, gamma, beta, this.epsilon, this.relu);
    const update = (v: tf.LayerVariable, value: tf.Tensor) =>
      tf.tidy(() => {
        const old = v.read();
        v.write(tf.sub(old, tf.mul(tf.sub(old, value), 1 - this.momentum)));
      });
    update(this.movingMean, mean);
    update(this.movingVariance, variance);
    tf.dispose([mean, variance]);
    return y;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), momentum: this.momentum, epsilon: this.epsilon, relu: this.relu };
  }
}
tf.serialization.registerClass(BatchNorm);
