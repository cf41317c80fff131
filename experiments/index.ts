// The experiments a2 knows, in assignment order. Each is imported only when run.
import type { RegistryEntry } from '../src/cli/main.js';

export const registry: RegistryEntry[] = [
  {
    name: 'q1-adam',
    summary: 'Q1: gradient descent vs Adam on the bump curve; the largest bump Adam escapes; moment plots',
    flags: [{ flags: '--far-slope <number>', description: 'slope of the loss past the bump (figure is not to scale)', kind: 'number' }],
    load: async () => (await import('./q1-adam.js')).experiment,
  },
  {
    name: 'q2-fc-ae',
    summary: 'Q2.1: fully connected autoencoder on all of MNIST, λ = 2 and 32, L1 loss, Adam',
    load: async () => (await import('./q2-fc-ae.js')).experiment,
  },
  {
    name: 'q2-conv-ae',
    summary: 'Q2.2: convolutional autoencoder of Figure 3 on all of MNIST, λ = 2 and 32',
    load: async () => (await import('./q2-conv-ae.js')).experiment,
  },
  {
    name: 'q3-mean-latent',
    summary: 'Q3: decode the mean latent of q2-conv-ae over the 60k training images (trains q2-conv-ae if missing)',
    needs: ['q2-conv-ae'],
    load: async () => (await import('./q3-mean-latent.js')).experiment,
  },
  {
    name: 'q4-ops',
    summary: 'Q4: six PyTorch ops on the given .pt files, in tfjs and by hand, compared',
    flags: [
      {
        flags: '--input <file>',
        description: "pixel input .pt (default: the assignment's, <data>/assignment-q4/pixel_input.pt)",
        kind: 'string',
      },
      { flags: '--filter <file>', description: "filter .pt (default: the assignment's, <data>/assignment-q4/filter.pt)", kind: 'string' },
      { flags: '--linear-weight <file>', description: 'Linear weight .pt, shape (out, L)', kind: 'string' },
      { flags: '--linear-bias <file>', description: 'Linear bias .pt, shape (out)', kind: 'string' },
    ],
    load: async () => (await import('./q4-ops.js')).experiment,
  },
  {
    name: 'q5-cifar',
    summary: 'Q5.1: conv net from scratch on all of CIFAR-10, > 90% test accuracy; four curves; --resume',
    load: async () => (await import('./q5-cifar.js')).experiment,
  },
  {
    name: 'q5-subsets',
    summary: 'Q5.2: accuracy vs training images (1, 10, 100, 1000 per class, tuned per size on validation; full set from q5-cifar)',
    needs: ['q5-cifar'],
    load: async () => (await import('./q5-subsets.js')).experiment,
  },
  {
    name: 'q5-ablations',
    summary: 'Q5: what each part of the q5-cifar recipe contributes (short runs, one part changed each, two seeds)',
    load: async () => (await import('./q5-ablations.js')).experiment,
  },
  {
    name: 'q6-rf',
    summary: 'Q6: receptive fields of the ten layer stacks, analytic and checked by backpropagation',
    flags: [{ flags: '--layers <stack>', description: 'any stack, e.g. "conv2d(3,1),maxpool2d(2,2)"', kind: 'string' }],
    load: async () => (await import('./q6-rf.js')).experiment,
  },
];
