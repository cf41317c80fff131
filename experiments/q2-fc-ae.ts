// Question 2.1 — a fully connected autoencoder on all 60,000 MNIST training images:
// 784 → 196 → 49 → λ → 49 → 196 → 784, ReLU after every layer (as written), L1 loss, Adam,
// for λ = 2 and λ = 32 with identical hyper-parameters.
//   npx a2 run q2-fc-ae                       full: the whole training set
//   npx a2 run q2-fc-ae --profile smoke       seconds, a subset (CI)
import type { Autoencoder, AutoencoderConfig, AutoencoderExperiment } from './autoencoder.js';
import { autoencoderOutputs, runAutoencoderExperiment, torchInit } from './autoencoder.js';
import { tf } from '../src/tensor/index.js';

const defaults: AutoencoderConfig = {
  lambdas: [2, 32],
  epochs: 20,
  batchSize: 256,
  lr: 1e-3,
  trainImages: 0, // all 60,000
  testImages: 0, // all 10,000
  restarts: 3,
};

export function makeFcAutoencoder(lambda: number): Autoencoder {
  const dense = (fanIn: number, units: number) => tf.layers.dense({ units, activation: 'relu', inputShape: [fanIn], ...torchInit(fanIn) });
  const encoder = tf.sequential({
    name: `fc_encoder_${lambda}`,
    layers: [tf.layers.flatten({ inputShape: [28, 28, 1] }), dense(784, 196), dense(196, 49), dense(49, lambda)],
  });
  const decoder = tf.sequential({
    name: `fc_decoder_${lambda}`,
    layers: [dense(lambda, 49), dense(49, 196), dense(196, 784), tf.layers.reshape({ targetShape: [28, 28, 1] })],
  });
  return { encoder, decoder };
}

export const experiment: AutoencoderExperiment = {
  name: 'q2-fc-ae',
  defaults,
  profiles: {
    quick: { epochs: 5, trainImages: 20000, testImages: 2000 },
    smoke: { epochs: 1, trainImages: 1024, testImages: 500 },
  },
  run: (config, ctx) => runAutoencoderExperiment(config, ctx, 'Q2.1 fully connected autoencoder', makeFcAutoencoder),
  // ---- declared: sources, and (shared with the other q2 net) headline, artefacts, report section.
  sources: ['experiments/q2-fc-ae.ts', 'experiments/autoencoder.ts'],
  ...autoencoderOutputs('Q2.1 — Fully connected autoencoder'),
};
