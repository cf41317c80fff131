// Picks the tfjs backend once per process and says which one runs.
import * as tf from '@tensorflow/tfjs';
import { UsageError } from '../errors.js';
import { registerGradients } from './gradients.js';
import {
  type Precision,
  loadOneDnn,
  registerOneDnnBatchNorm,
  registerOneDnnMomentum,
  registerOneDnnKernels,
  registerOneDnnMaxPool,
  registerOneDnnElementwise,
  registerOneDnnReductions,
  setConvPrecision,
} from './onednn-kernels.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';

export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendName = Exclude<BackendChoice, 'auto'>;

export const PRECISION_CHOICES = ['auto', 'fp32', 'bf16'] as const;
export type PrecisionChoice = (typeof PRECISION_CHOICES)[number];
export type { Precision };

export interface BackendInfo {
  requested: BackendChoice;
  /** Precision of the products inside convolutions (accumulation, outputs, weights: always fp32). */
  precision: Precision;
  requestedPrecision: PrecisionChoice;
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
    // tfjs-node-gpu falls back to the CPU where CUDA is missing; there the wasm + oneDNN path is faster.
    if (name === 'tensorflow-gpu' && (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice !== true) {
      return `${pkg} loaded but found no CUDA GPU (it would run on the CPU)`;
    }
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
// The oneDNN addon, once wasm loaded it: whether its CPU multiplies bf16 natively decides `auto` precision.
let onednnLoaded: { bf16Native?: boolean } | undefined;

// One rung of the auto ladder: 'wasm+onednn' is wasm only when the oneDNN accelerator loads.
type Rung = BackendName | 'wasm+onednn';
// GPU first (only on a real GPU); then the fastest CPU path measured here (wasm + oneDNN: q5 ~250
// img/s in fp32, ~460 in bf16, vs ~20 for wasm's own kernels); then libtensorflow on the CPU; then
// the plain fallbacks.
const AUTO_ORDER: Rung[] = ['tensorflow-gpu', 'wasm+onednn', 'tensorflow', 'wasm', 'cpu'];

/** fp32 or bf16 for the convolutions: bf16 needs the oneDNN accelerator; auto picks it where the CPU multiplies bf16 natively. */
function resolvePrecision(choice: PrecisionChoice, onednn: { bf16Native?: boolean } | undefined, notices: string[]): Precision {
  if (choice === 'fp32') return 'fp32';
  if (choice === 'auto') return onednn?.bf16Native ? 'bf16' : 'fp32';
  if (!onednn)
    throw new UsageError('--precision bf16 needs the oneDNN accelerator on the wasm backend (npm run setup); use --precision fp32 or auto');
  if (!onednn.bf16Native) notices.push('this CPU has no native bf16 (AVX512-BF16 or AMX): oneDNN emulates it, slower than fp32');
  return 'bf16';
}

/** Initialises the backend; later calls return the first answer (tfjs has one engine per process). */
export async function initBackend(requested: BackendChoice = 'auto', options: { precision?: PrecisionChoice } = {}): Promise<BackendInfo> {
  const requestedPrecision = options.precision ?? 'auto';
  if (active !== undefined) {
    if (requested !== 'auto' && requested !== active.name) {
      throw new Error(`backend ${active.name} is already active in this process; cannot switch to ${requested}`);
    }
    if (requestedPrecision !== active.requestedPrecision) {
      active.precision = resolvePrecision(requestedPrecision, active.name === 'wasm' ? onednnLoaded : undefined, active.notices);
      active.requestedPrecision = requestedPrecision;
      setConvPrecision(active.precision);
    }
    return active;
  }
  const order: Rung[] = requested === 'auto' ? AUTO_ORDER : [requested];
  const notices: string[] = [];
  for (const rung of order) {
    const name: BackendName = rung === 'wasm+onednn' ? 'wasm' : rung;
    let failure: string | undefined;
    if (name === 'tensorflow-gpu' || name === 'tensorflow') failure = await tryNode(name);
    else if (name === 'wasm') failure = await tryWasm();
    else failure = (await tf.setBackend('cpu')) ? undefined : 'cpu backend did not initialise';
    const onednn = name === 'wasm' && failure === undefined ? loadOneDnn() : undefined;
    if (rung === 'wasm+onednn' && failure === undefined && !onednn?.addon) failure = onednn?.notice;
    if (failure !== undefined) {
      if (!notices.includes(failure)) notices.push(failure);
      continue;
    }
    await tf.ready();
    const kernels = [...(name === 'wasm' ? registerWasmTrainingKernels() : []), ...registerGradients()];
    if (onednn?.addon) {
      onednnLoaded = onednn.addon;
      kernels.push(
        ...registerOneDnnKernels(onednn.addon),
        ...registerOneDnnBatchNorm(onednn.addon),
        ...registerOneDnnMaxPool(onednn.addon),
        ...registerOneDnnReductions(onednn.addon),
        ...registerOneDnnElementwise(onednn.addon),
        ...registerOneDnnMomentum(onednn.addon),
      );
    } else if (onednn?.notice && !notices.includes(onednn.notice)) notices.push(onednn.notice);
    const precision = resolvePrecision(requestedPrecision, onednnLoaded, notices);
    setConvPrecision(precision);
    active = { requested, name, tfjsBackend: tf.getBackend(), precision, requestedPrecision, kernels, notices };
    return active;
  }
  throw new Error(`backend ${requested} could not be loaded: ${notices.join('; ')}`);
}

export function activeBackend(): BackendInfo | undefined {
  return active;
}
