export * as tf from '@tensorflow/tfjs';
export { BACKEND_CHOICES, PRECISION_CHOICES, initBackend, activeBackend } from './backend.js';
export type { BackendChoice, BackendInfo, BackendName, Precision, PrecisionChoice } from './backend.js';
export { makeRng, permutation, seedEverything } from './random.js';
export { BatchNorm, batchNormTraining } from './batch-norm.js';
export { forwardFlops } from './flops.js';
