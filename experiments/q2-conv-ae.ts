// Question 2.2 — the convolutional autoencoder of Figure 3 on all 60,000 MNIST training
// images, λ = 2 and λ = 32, ReLU, L1 loss, Adam, the same protocol as Q2.1. Block shapes
// (channels × height × width), each checked in the saved model summary:
//   1×28×28 → 16×28×28 → 16×14×14 → 8×14×14 → 8×7×7 → [392] → [λ] → [392]
//           → 8×7×7 → 8×14×14 → 16×14×14 → 16×28×28 → 1×28×28
// The figure gives no kernel sizes: 3×3 convolutions with 'same' padding, 2×2 max-pooling
// down, 3×3 stride-2 transposed convolutions up. ReLU follows every layer but the last, whose
// output is linear. L1 pulls the output towards the all-black image (the per-pixel median of
// MNIST is 0 almost everywhere): a ReLU output died (exactly 0 everywhere) within 15 batches on
// every seed tried, a sigmoid output stayed on that plateau for 120k images, and a linear output
// left it after ~20k images (README, "Design choices"). Q2.1's net survives a ReLU output
// because each of its 784 output pixels has its own bias; here one bias is shared by all.
//   npx a2 run q2-conv-ae                      full: the whole training set
//   npx a2 run q2-conv-ae --profile smoke      seconds, a subset (CI)
import type { Autoencoder, AutoencoderConfig, AutoencoderExperiment } from './autoencoder.js';
import { autoencoderOutputs, runAutoencoderExperiment, torchInit } from './autoencoder.js';
import { tf } from '../src/tensor/index.js';

const defaults: AutoencoderConfig = {
  lambdas: [2, 32],
  epochs: 10,
  batchSize: 64,
  lr: 1e-3,
  trainImages: 0, // all 60,000
  testImages: 0, // all 10,000
  restarts: 3,
};

/** Figure 3's blocks in tfjs's channels-last order (height, width, channels). */
export const FIGURE_3_SHAPES = {
  encoder: [[28, 28, 16], [14, 14, 16], [14, 14, 8], [7, 7, 8], [392], ['λ']],
  decoder: [[392], [7, 7, 8], [14, 14, 8], [14, 14, 16], [28, 28, 16], [28, 28, 1]],
};

export function makeConvAutoencoder(lambda: number): Autoencoder {
  const conv = (inC: number, filters: number, extra: object = {}) =>
    tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation: 'relu', ...torchInit(inC * 9), ...extra });
  // PyTorch computes a transposed conv's fan-in from its output channels.
  const up = (filters: number) =>
    tf.layers.conv2dTranspose({ filters, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', ...torchInit(filters * 9) });
  const dense = (fanIn: number, units: number) => tf.layers.dense({ units, activation: 'relu', inputShape: [fanIn], ...torchInit(fanIn) });
  const encoder = tf.sequential({
    name: `conv_encoder_${lambda}`,
    layers: [
      conv(1, 16, { inputShape: [28, 28, 1] }), // 16×28×28
      tf.layers.maxPooling2d({ poolSize: 2 }), // 16×14×14
      conv(16, 8), // 8×14×14
      tf.layers.maxPooling2d({ poolSize: 2 }), // 8×7×7
      tf.layers.flatten(), // 392
      dense(392, lambda), // λ
    ],
  });
  const decoder = tf.sequential({
    name: `conv_decoder_${lambda}`,
    layers: [
      dense(lambda, 392), // 392
      tf.layers.reshape({ targetShape: [7, 7, 8] }), // 8×7×7
      up(8), // 8×14×14
      conv(8, 16), // 16×14×14
      up(16), // 16×28×28
      conv(16, 1, { activation: 'linear' }), // 1×28×28, linear (see the header)
    ],
  });
  return { encoder, decoder };
}

export const experiment: AutoencoderExperiment = {
  name: 'q2-conv-ae',
  defaults,
  profiles: {
    quick: { epochs: 3, trainImages: 20000, testImages: 2000 },
    smoke: { epochs: 1, trainImages: 512, testImages: 256 },
  },
  run: (config, ctx) => runAutoencoderExperiment(config, ctx, 'Q2.2 convolutional autoencoder', makeConvAutoencoder),
  // ---- declared: sources, and (shared with the other q2 net) headline, artefacts, report section.
  sources: ['experiments/q2-conv-ae.ts', 'experiments/autoencoder.ts'],
  ...autoencoderOutputs('Q2.2 — Convolutional autoencoder (Figure 3)'),
};
