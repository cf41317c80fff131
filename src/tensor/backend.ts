// Picks the tfjs backend once per process and says which one runs.
import * as tf from '@tensorflow/tfjs';
import { registerGradients } from './gradients.js';
import { loadOneDnn, registerOneDnnBatchNorm, registerOneDnnKernels, registerOneDnnMaxPoolGrad } from './onednn-kernels.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';

export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendName = Exclude<BackendChoice, 'auto'>;

export interface BackendInfo {
  requested: BackendChoice;
  name: BackendName;
  /** tfjs's own name for the backend ('tensorflow', 'wasm', 'cpu'). */
  tfjsBackend: string;
  /** Kernels a2 registered over the shipped ones. */
  kernels: string[];
  /** One line per backend that was tried and could not load. */
  notices: string[];
}

// Native bindings are optional dependencies: their install downloads libtensorflow, which
// fails where that host is unreachable, so they are imported by name at run time.
const NODE_PACKAGES: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

async function tryNode(name: 'tensorflow-gpu' | 'tensorflow'): Promise<string | undefined> {
  const pkg = NODE_PACKAGES[name];
  try {
    await import(pkg);
    if (!(await tf.setBackend('tensorflow'))) return `${pkg} loaded but its backend did not initialise`;
    return undefined;
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') return `${pkg} is not installed`;
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return `${pkg} did not load (${reason.slice(0, 160)})`;
  }
}

async function tryWasm(): Promise<string | undefined> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) return 'wasm backend did not initialise';
    return undefined;
  } catch (err) {
    return `wasm backend failed to load (${err instanceof Error ? err.message : String(err)})`;
  }
}

let active: BackendInfo | undefined;

export type Precision = 'auto' | 'fp32' | 'bf16';

/** Initialises the backend; later calls return the first answer (tfjs has one engine per process). */
export async function initBackend(requested: BackendChoice = 'auto', options?: { precision?: Precision }): Promise<BackendInfo> {
  void options; // --precision is passed through to here; what it selects is decided in this function
  if (active !== undefined) {
    if (requested !== 'auto' && requested !== active.name) {
      throw new Error(`backend ${active.name} is already active in this process; cannot switch to ${requested}`);
    }
    return active;
  }
  const order: BackendName[] = requested === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] : [requested];
  const notices: string[] = [];
  for (const name of order) {
    let failure: string | undefined;
    if (name === 'tensorflow-gpu' || name === 'tensorflow') failure = await tryNode(name);
    else if (name === 'wasm') failure = await tryWasm();
    else failure = (await tf.setBackend('cpu')) ? undefined : 'cpu backend did not initialise';
    if (failure !== undefined) {
      notices.push(failure);
      continue;
    }
    await tf.ready();
    const kernels = [...(name === 'wasm' ? registerWasmTrainingKernels() : []), ...registerGradients()];
    if (name === 'wasm') {
      const { addon, notice } = loadOneDnn();
      if (addon) kernels.push(...registerOneDnnKernels(addon), ...registerOneDnnBatchNorm(addon), ...registerOneDnnMaxPoolGrad(addon));
      else if (notice) notices.push(notice);
    }
    active = { requested, name, tfjsBackend: tf.getBackend(), kernels, notices };
    return active;
  }
  throw new Error(`backend ${requested} could not be loaded: ${notices.join('; ')}`);
}

export function activeBackend(): BackendInfo | undefined {
  return active;
}
