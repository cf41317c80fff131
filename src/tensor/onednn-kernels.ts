// Convolutions through oneDNN (native/onednn.cc, built at install against Debian's
// libdnnl-dev) for the wasm backend: forward, backward-data and backward-weights run on
// both cores in oneDNN's JIT kernels, reading and writing the wasm heap in place. Where the
// addon is not built or cannot load, wasm keeps a2's composite kernels (wasm-kernels.ts).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { BATCH_NORM_INFERENCE, BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD } from './batch-norm.js';
import { broadcastOperands, callKernel, leadingReduction, maxPoolGeometry, release, setWasmKernel } from './wasm-kernels.js';

interface Geometry {
  x: number[];
  filter: number[];
  y: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
}
export type Precision = 'fp32' | 'bf16';
interface ConvOptions {
  precision?: 'f32' | 'bf16';
  /** bf16 buffers lent for the input operands (x; dy), `ready` when an earlier call filled them. */
  xCopy?: Uint16Array | null;
  yCopy?: Uint16Array | null;
  xCopyReady?: boolean;
  yCopyReady?: boolean;
}
interface OneDnn {
  conv(
    kind: 'forward' | 'backwardData' | 'backwardWeights',
    g: Geometry,
    x: Float32Array,
    w: Float32Array,
    y: Float32Array,
    options?: ConvOptions,
  ): { impl: string; xCopied?: boolean; yCopied?: boolean };
  version: string;
  /** The calling convention of the build (absent before the first one was numbered). */
  abi?: number;
  /** Entries of the addon's shape-keyed primitive caches, each capped at `maxCachedPrimitives` (absent in addons built before the cap). */
  cachedPrimitives?(): { conv: number; batchNorm: number; maxPool: number };
  maxCachedPrimitives?: number;
  /** oneDNN dispatches to an ISA that multiplies bf16 natively (AVX512-BF16 or AMX). */
  bf16Native?: boolean;
}

// The precision of the products inside convolutions; outputs and accumulation stay f32.
let convPrecision: Precision = 'fp32';
export function setConvPrecision(p: Precision): void {
  convPrecision = p;
}
const addonPrecision = () => (convPrecision === 'bf16' ? 'bf16' : 'f32');

const ADDON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/build/Release/a2_onednn.node');

// Measured on the q5 net (2 cores, batch 128, one after the other in the same minutes, session 9):
// 17-24 images/s on a2's composite kernels, 251 with oneDNN in fp32, 464 in bf16.
const WITHOUT_ONEDNN =
  "wasm uses a2's composite conv kernels, so conv nets train 12-25x slower (q5 net, 2 cores: ~20 images/s instead of ~250 in fp32 and ~460 in bf16)";
const GET_ONEDNN = 'to get it: npm run setup (Debian/Ubuntu; or apt-get install libdnnl-dev, then npm run build:native)';

// The addon's calling convention these kernels speak (native/onednn.cc exports its own as `abi`).
const ADDON_ABI = 2;

export function loadOneDnn(): { addon?: OneDnn; notice?: string } {
  if (process.env.A2_ONEDNN === '0') return { notice: `oneDNN convolutions disabled by A2_ONEDNN=0: ${WITHOUT_ONEDNN}` };
  if (!existsSync(ADDON)) return { notice: `oneDNN accelerator not built: ${WITHOUT_ONEDNN}; ${GET_ONEDNN}` };
  try {
    const addon = createRequire(import.meta.url)(ADDON) as OneDnn;
    if (addon.abi !== ADDON_ABI)
      return {
        notice: `oneDNN accelerator ${ADDON} was built from other sources (calling convention ${addon.abi ?? 1}, a2 needs ${ADDON_ABI}): ${WITHOUT_ONEDNN}; rebuild it: npm run build:native`,
      };
    return { addon };
  } catch (err) {
    return {
      notice: `oneDNN accelerator did not load (${(err as Error).message.split('\n')[0]}): ${WITHOUT_ONEDNN}; ${GET_ONEDNN}`,
    };
  }
}

type ConvAttrs = {
  strides: [number, number] | number;
  pad: 'same' | 'valid' | number;
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
};

function geometryOf(xShape: number[], filterShape: number[], a: ConvAttrs): Geometry {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );
  const p = info.padInfo;
  return {
    x: xShape,
    filter: filterShape,
    y: [info.batchSize, info.outHeight, info.outWidth, info.outChannels],
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    pads: [p.top, p.left, p.bottom, p.right],
  };
}

const view = (backend: BackendWasm, t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;

type DataId = TensorInfo['dataId'];

/**
 * Buffers that belong to a tfjs tensor, by its data id: the bf16 copy a convolution made of it (each
 * activation is read twice, by the forward and the weight gradient, and each dy twice, by both
 * gradients: kept here, each is converted once), or the argmax workspace of the max-pool that made
 * it (so that the gradient need not pool again). A data id's contents never change in tfjs (a new
 * value gets a new id), so a buffer stays right until the backend frees the id; it is then dropped
 * and pooled for the next tensor of its size (each kind's pool holds at most POOL_BYTES).
 */
class SideBuffers<B extends Uint8Array | Uint16Array> {
  private readonly kept = new Map<DataId, { buffer: B; of?: DataId }>();
  private readonly pool = new Map<number, B[]>();
  private pooledBytes = 0;
  private static readonly POOL_BYTES = 1 << 30;
  private static readonly all: SideBuffers<Uint8Array | Uint16Array>[] = [];
  private static hooked = new WeakSet<BackendWasm>();

  constructor(private readonly make: (length: number) => B) {
    SideBuffers.all.push(this as unknown as SideBuffers<Uint8Array | Uint16Array>);
  }

  /** Starts dropping every kind's buffers when `backend` frees their tensors. */
  static watch(backend: BackendWasm): void {
    if (SideBuffers.hooked.has(backend)) return;
    SideBuffers.hooked.add(backend);
    const disposeData = backend.disposeData.bind(backend);
    backend.disposeData = (dataId: DataId, force?: boolean) => {
      const freed = disposeData(dataId, force);
      if (freed) for (const buffers of SideBuffers.all) buffers.drop(dataId);
      return freed;
    };
  }

  /** The buffer kept for `t` (and, if given, made from the tensor `of`). */
  get(t: TensorInfo, of?: TensorInfo): B | undefined {
    const entry = this.kept.get(t.dataId);
    return entry && entry.of === of?.dataId ? entry.buffer : undefined;
  }

  /** A buffer of `length` elements: a pooled one or a new one. */
  take(length: number): B {
    const pooled = this.pool.get(length)?.pop();
    if (pooled) this.pooledBytes -= pooled.byteLength;
    return pooled ?? this.make(length);
  }

  keep(t: TensorInfo, buffer: B, of?: TensorInfo): void {
    this.kept.set(t.dataId, { buffer, of: of?.dataId });
  }

  recycle(buffer: B): void {
    if (this.pooledBytes + buffer.byteLength > SideBuffers.POOL_BYTES) return;
    const free = this.pool.get(buffer.length) ?? [];
    free.push(buffer);
    this.pool.set(buffer.length, free);
    this.pooledBytes += buffer.byteLength;
  }

  private drop(dataId: DataId): void {
    const entry = this.kept.get(dataId);
    if (!entry) return;
    this.kept.delete(dataId);
    this.recycle(entry.buffer);
  }

  /** Buffers kept and bytes pooled, for tests. */
  get sizes(): { kept: number; pooledBytes: number } {
    return { kept: this.kept.size, pooledBytes: this.pooledBytes };
  }
}

const bf16Copies = new SideBuffers((n) => new Uint16Array(n));
const poolWorkspaces = new SideBuffers((n) => new Uint8Array(n));

/** Whether tfjs is recording for a gradient (inside minimize, grads, variableGrads): only then can a kept buffer be read again. */
const recordingGradients = () => tf.engine().state.gradientDepth > 0;

let reuseBf16Copies = true;
/** Whether bf16 convolutions keep each input's bf16 copy for the next convolution that reads it (the results are the same bits either way). */
export function setBf16CopyReuse(on: boolean): void {
  reuseBf16Copies = on;
}
/** bf16 copies held and bytes pooled (zero copies once every tensor a convolution read is disposed). */
export function bf16CopySizes(): { copies: number; pooledBytes: number } {
  const { kept, pooledBytes } = bf16Copies.sizes;
  return { copies: kept, pooledBytes };
}
/** Max-pool workspaces held (zero once every pooled output is disposed). */
export function poolWorkspacesHeld(): number {
  return poolWorkspaces.sizes.kept;
}

export function registerOneDnnKernels(addon: OneDnn): string[] {
  // Each falls back to the kernel it replaces (shipped, or a2's composite) for NCHW and odd cases.
  const replace = (name: string, make: (previous: KernelFunc) => KernelFunc) => setWasmKernel(name, (previous) => make(previous!));

  // One convolution; x and y are the input, output or gradient tensors by the kind's roles.
  const conv = (
    backend: BackendWasm,
    kind: 'forward' | 'backwardData' | 'backwardWeights',
    g: Geometry,
    x: TensorInfo,
    w: TensorInfo,
    y: TensorInfo,
  ) => {
    const precision = addonPrecision();
    // A forward's copy of x is read again only by a gradient; dy's always (both gradients read it).
    const reuse = precision === 'bf16' && reuseBf16Copies && (kind !== 'forward' || recordingGradients());
    if (reuse) SideBuffers.watch(backend);
    // A copy already kept is ready; otherwise the addon fills the lent buffer if its primitive reads bf16.
    const lend = (t: TensorInfo) => {
      const kept = bf16Copies.get(t);
      return { buffer: kept ?? bf16Copies.take(t.shape.reduce((a, b) => a * b, 1)), ready: kept !== undefined };
    };
    const xCopy = reuse && kind !== 'backwardData' ? lend(x) : undefined;
    const yCopy = reuse && kind !== 'forward' ? lend(y) : undefined;
    const done = addon.conv(kind, g, view(backend, x), view(backend, w), view(backend, y), {
      precision,
      xCopy: xCopy?.buffer,
      yCopy: yCopy?.buffer,
      xCopyReady: xCopy?.ready,
      yCopyReady: yCopy?.ready,
    });
    for (const [t, lent, filled] of [
      [x, xCopy, done.xCopied],
      [y, yCopy, done.yCopied],
    ] as const) {
      if (!lent || lent.ready) continue;
      if (filled) bf16Copies.keep(t, lent.buffer);
      else bf16Copies.recycle(lent.buffer);
    }
  };

  const forward = (backend: BackendWasm, x: TensorInfo, filter: TensorInfo, attrs: ConvAttrs): TensorInfo => {
    const g = geometryOf(x.shape, filter.shape, attrs);
    const out = backend.makeOutput(g.y, 'float32');
    conv(backend, 'forward', g, x, filter, out);
    return out;
  };

  replace('Conv2D', (shipped) => (args) => {
    const attrs = args.attrs as unknown as ConvAttrs;
    if (attrs.dataFormat === 'NCHW') return shipped(args);
    const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
    return forward(args.backend as BackendWasm, x, filter, attrs);
  });

  replace('FusedConv2D', (shipped) => (args) => {
    const attrs = args.attrs as unknown as ConvAttrs & { activation: string };
    const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, TensorInfo | undefined>;
    if (attrs.dataFormat === 'NCHW' || preluActivationWeights || !['linear', 'relu'].includes(attrs.activation)) return shipped(args);
    const backend = args.backend as BackendWasm;
    // The epilogue in the kernels registered for Add and Relu (a2's, on both cores, where loaded).
    let out = forward(backend, x!, filter!, attrs);
    if (bias) {
      const added = callKernel(backend, 'Add', { a: out, b: bias }, {});
      release(backend, out);
      out = added;
    }
    if (attrs.activation === 'relu') {
      const activated = callKernel(backend, 'Relu', { x: out }, {});
      release(backend, out);
      out = activated;
    }
    return out;
  });

  replace('Conv2DBackpropInput', (shipped) => (args) => {
    const attrs = args.attrs as unknown as ConvAttrs & { inputShape: number[] };
    if (attrs.dataFormat === 'NCHW') return shipped(args);
    const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
    const backend = args.backend as BackendWasm;
    const g = geometryOf(attrs.inputShape, filter.shape, attrs);
    const dx = backend.makeOutput(attrs.inputShape, 'float32');
    conv(backend, 'backwardData', g, dx, filter, dy);
    return dx;
  });

  replace('Conv2DBackpropFilter', (previous) => (args) => {
    const attrs = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
    if (attrs.dataFormat === 'NCHW') return previous(args);
    const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
    const backend = args.backend as BackendWasm;
    const g = geometryOf(x.shape, attrs.filterShape, attrs);
    const dw = backend.makeOutput(attrs.filterShape, 'float32');
    conv(backend, 'backwardWeights', g, x, dw, dy);
    return dw;
  });
  return [`oneDNN ${addon.version}: Conv2D`, 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'];
}

interface PoolGeometry {
  x: number[];
  y: number[];
  kernel: number[];
  strides: number[];
  pads: number[];
}

export interface OneDnnWithNorm extends OneDnn {
  batchNorm(kind: 'forward' | 'backward', shape: number[], epsilon: number, relu: boolean, ...buffers: Float32Array[]): void;
  batchNormWorkspaceFloats(shape: number[], epsilon: number): number;
  batchNormInference?(shape: number[], epsilon: number, relu: boolean, ...buffers: Float32Array[]): void;
  maxPoolGrad(g: PoolGeometry, x: Float32Array, dy: Float32Array, dx: Float32Array, workspace?: Uint8Array): void;
  /** Absent in addons built before them. */
  maxPool?(g: PoolGeometry, x: Float32Array, y: Float32Array, workspace?: Uint8Array): void;
  maxPoolWorkspaceBytes?(g: PoolGeometry): number;
  /** Absent in addons built before them. */
  sumLeadingAxes?(x: Float32Array, outer: number, inner: number, scale: number, out: Float32Array): void;
  equalBroadcast?(shape: number[], a: Float32Array, aStrides: number[], b: Float32Array, bStrides: number[], out: Uint8Array): void;
  biasAdd?(x: Float32Array, bias: Float32Array, y: Float32Array): void;
  relu?(x: Float32Array, y: Float32Array): void;
  reluGrad?(dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  /** (momentum, scale, nesterov, then for each variable: its element count, value, accumulation, gradient, new value, new accumulation). */
  momentumUpdate?(m: number, c: number, nesterov: boolean, ...variables: (number | Float32Array)[]): void;
}

/** MaxPool and MaxPoolGrad through the addon (both cores, vectorised: 2×2/2 in its own loops, other shapes in oneDNN) instead of wasm's and a2's single-threaded loops. */
export function registerOneDnnMaxPool(addon: OneDnn): string[] {
  const native = addon as OneDnnWithNorm;
  if (typeof native.maxPoolGrad !== 'function') return [];
  // oneDNN rejects windows that lie wholly in the padding; those shapes keep the kernel it replaces.
  const geometry = (input: TensorInfo, info: tf.backend_util.Conv2DInfo) => {
    const p = info.padInfo;
    if (info.filterHeight <= p.top || info.filterWidth <= p.left || info.filterHeight <= p.bottom || info.filterWidth <= p.right) return;
    return {
      x: input.shape,
      y: [info.batchSize, info.outHeight, info.outWidth, info.outChannels],
      kernel: [info.filterHeight, info.filterWidth],
      strides: [info.strideHeight, info.strideWidth],
      pads: [p.top, p.left, p.bottom, p.right],
    };
  };
  const names = ['MaxPoolGrad'];
  const { maxPool, maxPoolWorkspaceBytes } = native;
  if (typeof maxPool === 'function' && typeof maxPoolWorkspaceBytes === 'function') {
    // Under a gradient, the forward keeps where each maximum was (a byte per output), for the gradient of this output.
    setWasmKernel('MaxPool', (shipped) => (args) => {
      const wasm = args.backend as BackendWasm;
      const { input, info } = maxPoolGeometry(args.inputs, args.attrs);
      const g = geometry(input, info);
      if (!g || input.dtype !== 'float32') return shipped!(args);
      const y = wasm.makeOutput(g.y, 'float32');
      const workspace = recordingGradients() ? poolWorkspaces.take(maxPoolWorkspaceBytes.call(native, g)) : undefined;
      maxPool.call(native, g, view(wasm, input), view(wasm, y), workspace);
      if (workspace) {
        SideBuffers.watch(wasm);
        poolWorkspaces.keep(y, workspace, input);
      }
      return y;
    });
    names.unshift('MaxPool');
  }
  setWasmKernel('MaxPoolGrad', (js) => (args) => {
    const wasm = args.backend as BackendWasm;
    const { dy, input, info } = maxPoolGeometry(args.inputs, args.attrs);
    const g = geometry(input, info);
    if (!g) return js!(args);
    const dx = wasm.makeOutput(input.shape, 'float32');
    // The workspace the forward kept for this output of this input, if any; else the pool runs again.
    const { output } = args.inputs;
    const workspace = output ? poolWorkspaces.get(output, input) : undefined;
    native.maxPoolGrad(g, view(wasm, input), view(wasm, dy), view(wasm, dx), workspace);
    return dx;
  });
  return names;
}

/**
 * Sum and Mean over leading axes (per-channel reductions of NHWC tensors: bias gradients, batch
 * statistics) on both cores, with the bits of a2's single-threaded kernel, which the rest keep;
 * and broadcasting Equal in C++ rather than a2's JS loop.
 */
export function registerOneDnnReductions(addon: OneDnn): string[] {
  const sum = (addon as OneDnnWithNorm).sumLeadingAxes?.bind(addon);
  if (!sum) return [];
  for (const [name, kind] of [
    ['Sum', 'sum'],
    ['Mean', 'mean'],
  ] as const)
    setWasmKernel(name, (previous) => (args) => {
      const r = leadingReduction(kind, args.inputs, args.attrs);
      if (!r) return previous!(args);
      const wasm = args.backend as BackendWasm;
      const out = wasm.makeOutput(r.outShape, 'float32');
      sum(view(wasm, r.x), r.outer, r.inner, r.scale, view(wasm, out));
      return out;
    });
  const names = ['Sum', 'Mean'];
  const equal = (addon as OneDnnWithNorm).equalBroadcast?.bind(addon);
  if (!equal) return names;
  // Equal with broadcasting (a global max-pool's gradient compares x with its max per channel).
  setWasmKernel('Equal', (previous) => (args) => {
    const operands = broadcastOperands(args.inputs);
    if (!operands) return previous!(args);
    const { a, b, shape, sa, sb } = operands;
    const wasm = args.backend as BackendWasm;
    const out = wasm.makeOutput(shape, 'bool');
    equal(shape, view(wasm, a), sa, view(wasm, b), sb, wasm.typedArrayFromHeap(out) as Uint8Array);
    return out;
  });
  return [...names, 'Equal'];
}

const RELU_GRAD = 'A2ReluGrad';
/** tfjs-core's ReLU gradient as ops: g · step(x). */
const timesStep = (g: tf.Tensor, x: tf.Tensor) => tf.mul(g, tf.cast(tf.step(x), 'float32'));

/**
 * Elementwise passes on both cores with the bits of wasm's one-core kernels: a per-channel bias
 * add (Add of an NHWC tensor and a vector of its channels), ReLU, and ReLU's gradient in one pass
 * (tfjs's is Step, Cast and Multiply: three passes over the activation).
 */
export function registerOneDnnElementwise(addon: OneDnn): string[] {
  const native = addon as OneDnnWithNorm;
  const { biasAdd, relu, reluGrad } = native;
  if (typeof biasAdd !== 'function' || typeof relu !== 'function' || typeof reluGrad !== 'function') return [];
  setWasmKernel('Add', (previous) => (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const perChannel = b.shape.length === 1 && a.shape.length > 1 && b.shape[0] === a.shape[a.shape.length - 1];
    if (!perChannel || a.dtype !== 'float32' || b.dtype !== 'float32') return previous!(args);
    const wasm = args.backend as BackendWasm;
    const y = wasm.makeOutput(a.shape, 'float32');
    biasAdd.call(native, view(wasm, a), view(wasm, b), view(wasm, y));
    return y;
  });
  setWasmKernel('Relu', (previous) => (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype !== 'float32') return previous!(args);
    const wasm = args.backend as BackendWasm;
    const y = wasm.makeOutput(x.shape, 'float32');
    relu.call(native, view(wasm, x), view(wasm, y));
    return y;
  });
  // Its own gradient, so that Relu stays twice differentiable: d(dy·step(x))/d(dy) = step(x), 0 for x.
  tf.registerGradient({
    kernelName: RELU_GRAD,
    inputsToSave: ['x'],
    gradFunc: (ddx, saved) => {
      const [x] = saved;
      return { dy: () => timesStep(ddx as tf.Tensor, x), x: () => tf.zerosLike(x) };
    },
  });
  tf.registerKernel({
    kernelName: RELU_GRAD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as BackendWasm;
      const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
      const dx = wasm.makeOutput(x.shape, 'float32');
      reluGrad.call(native, view(wasm, dy), view(wasm, x), view(wasm, dx));
      return dx;
    },
  });
  // tfjs-core's gradient, term for term, in one kernel where the active backend has it.
  tf.registerGradient({
    kernelName: 'Relu',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      const g = dy as tf.Tensor;
      const fused = tf.getKernel(RELU_GRAD, tf.getBackend()) !== undefined && x.dtype === 'float32' && g.dtype === 'float32';
      return {
        x: () => (fused ? (tf.engine().runKernel(RELU_GRAD, { dy: g, x }) as tf.Tensor) : timesStep(g, x)),
      };
    },
  });
  return ['Add (per channel)', 'Relu', `${RELU_GRAD} (Relu gradient)`];
}

/** Batch-norm training forward and backward (src/tensor/batch-norm.ts) through oneDNN, with the ReLU fused in when asked. */
export function registerOneDnnBatchNorm(addon: OneDnn): string[] {
  const native = addon as OneDnnWithNorm;
  if (typeof native.batchNorm !== 'function' || typeof native.batchNormWorkspaceFloats !== 'function') return [];
  tf.registerKernel({
    kernelName: BATCH_NORM_TRAIN,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { x, scale, offset } = inputs as Record<string, TensorInfo>;
      const { epsilon, relu = false } = attrs as { epsilon: number; relu?: boolean };
      const channels = [x.shape[3]];
      const y = wasm.makeOutput(x.shape, 'float32');
      const mean = wasm.makeOutput(channels, 'float32');
      const variance = wasm.makeOutput(channels, 'float32');
      const mask = relu ? wasm.makeOutput([native.batchNormWorkspaceFloats(x.shape, epsilon)], 'float32') : undefined;
      const buffers = [x, scale, offset, y, mean, variance, ...(mask ? [mask] : [])].map((t) => view(wasm, t));
      native.batchNorm('forward', x.shape, epsilon, relu, ...buffers);
      return mask ? [y, mean, variance, mask] : [y, mean, variance];
    },
  });
  tf.registerKernel({
    kernelName: BATCH_NORM_TRAIN_GRAD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { x, scale, offset, dy, mean, variance, mask } = inputs as Record<string, TensorInfo>;
      const { epsilon, relu = false } = attrs as { epsilon: number; relu?: boolean };
      const dx = wasm.makeOutput(x.shape, 'float32');
      const dScale = wasm.makeOutput(scale.shape, 'float32');
      const dShift = wasm.makeOutput(scale.shape, 'float32');
      const buffers = [x, scale, offset, dy, dx, mean, variance, dScale, dShift, ...(relu ? [mask] : [])].map((t) => view(wasm, t));
      native.batchNorm('backward', x.shape, epsilon, relu, ...buffers);
      return [dx, dScale, dShift];
    },
  });
  const names = [`${BATCH_NORM_TRAIN} (+ReLU)`, BATCH_NORM_TRAIN_GRAD];
  const inference = native.batchNormInference?.bind(native);
  if (!inference) return names;
  tf.registerKernel({
    kernelName: BATCH_NORM_INFERENCE,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { x, mean, variance, offset, scale } = inputs as Record<string, TensorInfo>;
      const { epsilon, relu = false } = attrs as { epsilon: number; relu?: boolean };
      const y = wasm.makeOutput(x.shape, 'float32');
      inference(x.shape, epsilon, relu, ...[x, mean, variance, offset, scale, y].map((t) => view(wasm, t)));
      return y;
    },
  });
  return [...names, `${BATCH_NORM_INFERENCE} (+ReLU)`];
}

/** The fields of tfjs's MomentumOptimizer its update reads (private in its typings). */
interface MomentumState {
  m: tf.Scalar;
  c: tf.Scalar;
  useNesterov: boolean;
  accumulations: ({ originalName: string; variable: tf.Variable } | undefined)[];
  incrementIterations(): void;
}
const MOMENTUM_UPDATE = 'A2MomentumUpdate';
let fusedMomentum = true;
let momentumPatched = false;
/** Whether MomentumOptimizer updates every variable in one addon call (the same bits either way). */
export function setFusedMomentum(on: boolean): void {
  fusedMomentum = on;
}

/**
 * tfjs's MomentumOptimizer runs six kernels and two assignments a variable, each kernel a JS
 * dispatch and a pass over the weights: 7 ms of a 126 ms q5 step here. a2 computes every
 * variable's new value and accumulation in one kernel, element by element as those ops do (the
 * same bits: tested), and assigns them as tfjs does.
 */
export function registerOneDnnMomentum(addon: OneDnn): string[] {
  const update = (addon as OneDnnWithNorm).momentumUpdate;
  if (typeof update !== 'function') return [];
  tf.registerKernel({
    kernelName: MOMENTUM_UPDATE,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { m, c, nesterov, count } = attrs as unknown as { m: number; c: number; nesterov: boolean; count: number };
      const variables = Array.from({ length: count }, (_, i) => {
        const [value, accumulation, gradient] = ['v', 'a', 'g'].map((k) => (inputs as Record<string, TensorInfo>)[`${k}${i}`]);
        const shape = value.shape.join();
        if (accumulation.shape.join() !== shape || gradient.shape.join() !== shape)
          throw new Error(
            `${MOMENTUM_UPDATE}: variable ${i} is [${value.shape}], its accumulation [${accumulation.shape}], its gradient [${gradient.shape}]`,
          );
        if ([value, accumulation, gradient].some((t) => t.dtype !== 'float32'))
          throw new Error(
            `${MOMENTUM_UPDATE}: variable ${i}: float32 expected, found ${value.dtype}, ${accumulation.dtype}, ${gradient.dtype}`,
          );
        return [value, accumulation, gradient];
      });
      // Every output first, then the views: an allocation can grow the wasm heap and detach views taken before it.
      const outputs = variables.flatMap(([value]) => [wasm.makeOutput(value.shape, 'float32'), wasm.makeOutput(value.shape, 'float32')]);
      const args = variables.flatMap((tensors, i) => [
        tf.util.sizeFromShape(tensors[0].shape),
        ...[...tensors, outputs[2 * i], outputs[2 * i + 1]].map((t) => view(wasm, t)),
      ]);
      try {
        update.call(addon, m, c, nesterov, ...args);
      } catch (err) {
        for (const out of outputs) wasm.disposeData(out.dataId);
        throw err;
      }
      return outputs;
    },
  });
  if (momentumPatched) return [`${MOMENTUM_UPDATE} (MomentumOptimizer, every variable in one pass)`];
  momentumPatched = true;
  const proto = tf.MomentumOptimizer.prototype;
  const shipped = proto.applyGradients;
  type VariableGradients = Parameters<typeof shipped>[0];
  proto.applyGradients = function (this: tf.MomentumOptimizer, variableGradients: VariableGradients) {
    if (!fusedMomentum || tf.getKernel(MOMENTUM_UPDATE, tf.getBackend()) === undefined) return shipped.call(this, variableGradients);
    const named: { name: string; tensor: tf.Tensor | null }[] = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients).map(([name, tensor]) => ({ name, tensor }));
    // What tfjs's ops would cast or broadcast (int32 or broadcasting gradients), a name given twice
    // (tfjs updates it twice, in turn) or an unknown one: left to tfjs, as they are.
    const variables = tf.engine().registeredVariables;
    const plain = named.every(
      ({ name, tensor }, i) =>
        variables[name] !== undefined &&
        named.findIndex((n) => n.name === name) === i &&
        (tensor == null || (tensor.dtype === 'float32' && !tensor.isDisposed && tensor.shape.join() === variables[name].shape.join())),
    );
    if (!plain) return shipped.call(this, variableGradients);
    const state = this as unknown as MomentumState;
    const inputs: Record<string, tf.Tensor> = {};
    const updated: [tf.Variable, tf.Variable][] = [];
    named.forEach(({ name, tensor: gradient }, i) => {
      const value = variables[name];
      // As tfjs does: every variable gets its accumulation, even one without a gradient this time.
      state.accumulations[i] ??= { originalName: `${name}/momentum`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      const accumulation = state.accumulations[i].variable;
      if (gradient == null) return;
      const k = updated.length;
      Object.assign(inputs, { [`v${k}`]: value, [`a${k}`]: accumulation, [`g${k}`]: gradient });
      updated.push([value, accumulation]);
    });
    if (updated.length > 0)
      tf.tidy(() => {
        const [m, c] = [state.m.dataSync()[0], state.c.dataSync()[0]];
        const attrs = { m, c, nesterov: state.useNesterov, count: updated.length };
        const outputs = tf.engine().runKernel(MOMENTUM_UPDATE, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
        updated.forEach(([value, accumulation], k) => {
          accumulation.assign(outputs[2 * k + 1]);
          value.assign(outputs[2 * k]);
        });
      });
    state.incrementIterations();
  };
  return [`${MOMENTUM_UPDATE} (MomentumOptimizer, every variable in one pass)`];
}
