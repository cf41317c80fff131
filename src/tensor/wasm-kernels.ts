// Kernels the wasm backend needs to train conv nets, registered over (or beside) what
// @tensorflow/tfjs-backend-wasm 4.22 ships. Each one composes the backend's own fast
// kernels (XNNPACK convolutions, transposes) rather than adding a new native loop, except
// MaxPoolGrad, whose shipped version is wrong (see below).
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';

const WASM = 'wasm';

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

/** Runs another wasm kernel from inside a kernel, with no engine bookkeeping. */
export function callKernel(backend: BackendWasm, name: string, inputs: NamedTensorInfoMap, attrs: object): TensorInfo {
  const kernel = tf.getKernel(name, WASM);
  if (kernel === undefined) throw new Error(`wasm backend has no ${name} kernel`);
  return kernel.kernelFunc({ inputs, backend, attrs: attrs as NamedAttrMap }) as TensorInfo;
}

export function release(backend: BackendWasm, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

function transpose(backend: BackendWasm, x: TensorInfo, perm: number[]): TensorInfo {
  return callKernel(backend, 'Transpose', { x }, { perm });
}

/**
 * dW of a 2-D convolution as one forward convolution: with batch and channels swapped,
 * x becomes [C, H, W, N] and dy the filter [Ho, Wo, N, Co], and the filter taps of the
 * original conv are `stride` apart in x, so the new conv uses dilation = stride.
 * Output [C, kh, kw, Co] is transposed to [kh, kw, C, Co].
 */
const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
    strides: [number, number] | number;
    pad: 'same' | 'valid' | number;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
  };
  if (dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm supports NHWC only');
  const info: Conv2DInfo = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  const [kh, kw, inC, outC] = filterShape;
  const { top, bottom, left, right } = info.padInfo;

  const xT = transpose(wasm, x, [3, 1, 2, 0]);
  const xPadded =
    top + bottom + left + right > 0
      ? callKernel(
          wasm,
          'PadV2',
          { x: xT },
          {
            paddings: [
              [0, 0],
              [top, bottom],
              [left, right],
              [0, 0],
            ],
            constantValue: 0,
          },
        )
      : xT;
  const dyT = transpose(wasm, dy, [1, 2, 0, 3]);
  const full = callKernel(
    wasm,
    'Conv2D',
    { x: xPadded, filter: dyT },
    {
      strides: [1, 1],
      pad: 'valid',
      dataFormat: 'NHWC',
      dilations: [info.strideHeight, info.strideWidth],
    },
  );
  const cropped =
    full.shape[1] === kh && full.shape[2] === kw
      ? full
      : callKernel(wasm, 'Slice', { x: full }, { begin: [0, 0, 0, 0], size: [inC, kh, kw, outC] });
  const dW = transpose(wasm, cropped, [1, 2, 0, 3]);

  release(wasm, xT, dyT, full);
  if (xPadded !== xT) release(wasm, xPadded);
  if (cropped !== full) release(wasm, cropped);
  return dW;
};

/**
 * Replaces wasm's MaxPoolGrad, which starts its running max at the smallest *positive*
 * float, so in windows whose values are all <= 0 the gradient goes to the wrong element.
 * First maximum wins, as in the cpu backend; padding never wins.
 */
/** The geometry of a MaxPool or MaxPoolGrad call: its inputs and tfjs's pooling info. */
export function maxPoolGeometry(inputs: NamedTensorInfoMap, attrs: NamedAttrMap | undefined) {
  // MaxPool names its input x, MaxPoolGrad input (with dy beside it).
  const input = (inputs.input ?? inputs.x) as TensorInfo;
  const dy = inputs.dy as TensorInfo;
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as {
    filterSize: [number, number] | number;
    strides: [number, number] | number;
    pad: 'same' | 'valid' | number;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  return { dy, input, info };
}

const maxPoolGrad: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const { dy, input, info } = maxPoolGeometry(inputs, attrs);
  const out = wasm.makeOutput(input.shape, 'float32');
  // Views are taken after makeOutput: allocation can grow (and detach) the wasm heap.
  const x = wasm.typedArrayFromHeap(input) as Float32Array;
  const g = wasm.typedArrayFromHeap(dy) as Float32Array;
  const dx = wasm.typedArrayFromHeap(out) as Float32Array;
  dx.fill(0);
  const { batchSize, inHeight, inWidth, inChannels: C, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  // Channels innermost, as NHWC stores them: each window position is one contiguous run.
  const best = new Float32Array(C);
  const bestAt = new Int32Array(C);
  for (let n = 0; n < batchSize; n++) {
    const xBase = n * inHeight * inWidth * C;
    for (let oh = 0; oh < outHeight; oh++) {
      const h0 = oh * strideHeight - padTop;
      const hStart = Math.max(0, h0);
      const hEnd = Math.min(inHeight, h0 + filterHeight);
      for (let ow = 0; ow < outWidth; ow++) {
        const w0 = ow * strideWidth - padLeft;
        const wStart = Math.max(0, w0);
        const wEnd = Math.min(inWidth, w0 + filterWidth);
        const gBase = ((n * outHeight + oh) * outWidth + ow) * C;
        best.fill(-Infinity);
        bestAt.fill(-1);
        for (let h = hStart; h < hEnd; h++) {
          for (let w = wStart; w < wEnd; w++) {
            const at = xBase + (h * inWidth + w) * C;
            for (let c = 0; c < C; c++) {
              if (x[at + c] > best[c]) {
                best[c] = x[at + c];
                bestAt[c] = at + c;
              }
            }
          }
        }
        for (let c = 0; c < C; c++) if (bestAt[c] >= 0) dx[bestAt[c]] += g[gBase + c];
      }
    }
  }
  return out;
};

/** dy spread out `stride` apart with zeros between, inside a zero border: [N, P, Q, C]. */
function dilateAndPad(
  backend: BackendWasm,
  dy: TensorInfo,
  sh: number,
  sw: number,
  top: number,
  left: number,
  P: number,
  Q: number,
): TensorInfo {
  const [N, Ho, Wo, C] = dy.shape;
  const out = backend.makeOutput([N, P, Q, C], 'float32');
  const src = backend.typedArrayFromHeap(dy) as Float32Array;
  const dst = backend.typedArrayFromHeap(out) as Float32Array;
  dst.fill(0);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < Ho; i++) {
      for (let j = 0; j < Wo; j++) {
        const from = ((n * Ho + i) * Wo + j) * C;
        dst.set(src.subarray(from, from + C), ((n * P + top + i * sh) * Q + left + j * sw) * C);
      }
    }
  }
  return out;
}

/**
 * dX of a convolution as a forward convolution, which XNNPACK runs far faster than the
 * shipped backprop-input kernel: dy (spread `stride` apart when stride > 1) padded k−1−p,
 * convolved with the filter flipped spatially and its in/out channels swapped. This is also
 * the forward pass of a transposed convolution. Shapes it cannot express keep the shipped kernel.
 */
function conv2DBackpropInput(shipped: KernelFunc): KernelFunc {
  return (args) => {
    const wasm = args.backend as BackendWasm;
    const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as unknown as {
      strides: [number, number] | number;
      pad: 'same' | 'valid' | number;
      dataFormat: 'NHWC' | 'NCHW';
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
      inputShape: [number, number, number, number];
    };
    const filterShape = filter.shape as [number, number, number, number];
    const info = tf.backend_util.computeConv2DInfo(inputShape, filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
    const [kh, kw] = filterShape;
    const { strideHeight: sh, strideWidth: sw, inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo } = info;
    const top = kh - 1 - info.padInfo.top,
      left = kw - 1 - info.padInfo.left;
    // Rows and columns of padded, dilated dy that a valid conv needs to give H × W.
    const P = H + kh - 1,
      Q = W + kw - 1;
    const fits = top >= 0 && left >= 0 && P >= top + (Ho - 1) * sh + 1 && Q >= left + (Wo - 1) * sw + 1;
    if (dataFormat === 'NCHW' || !fits) return shipped(args);
    const flipped = callKernel(wasm, 'Reverse', { x: filter }, { dims: [0, 1] });
    const swapped = transpose(wasm, flipped, [0, 1, 3, 2]);
    let dx: TensorInfo;
    if (sh === 1 && sw === 1) {
      dx = callKernel(
        wasm,
        'Conv2D',
        { x: dy, filter: swapped },
        {
          strides: [1, 1],
          pad: [
            [0, 0],
            [top, P - top - Ho],
            [left, Q - left - Wo],
            [0, 0],
          ],
          dataFormat: 'NHWC',
          dilations: [1, 1],
        },
      );
    } else {
      const spread = dilateAndPad(wasm, dy, sh, sw, top, left, P, Q);
      dx = callKernel(
        wasm,
        'Conv2D',
        { x: spread, filter: swapped },
        { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] },
      );
      release(wasm, spread);
    }
    release(wasm, flipped, swapped);
    return dx;
  };
}

/** wasm's BatchMatMul leaves XNNPACK when an operand is transposed; materialise the transpose first. */
function batchMatMul(shipped: KernelFunc): KernelFunc {
  return (args) => {
    const wasm = args.backend as BackendWasm;
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return shipped(args);
    const swapLast = (t: TensorInfo) => {
      const perm = t.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      return transpose(wasm, t, perm);
    };
    const aT = transposeA ? swapLast(a) : a;
    const bT = transposeB ? swapLast(b) : b;
    const out = shipped({
      ...args,
      inputs: { a: aT, b: bT },
      attrs: { ...args.attrs, transposeA: false, transposeB: false },
    }) as TensorInfo;
    if (aT !== a) release(wasm, aT);
    if (bT !== b) release(wasm, bT);
    return out;
  };
}

/** A Sum or Mean over the leading axes of a float32 tensor, as rows × columns; undefined for any other reduction. */
export function leadingReduction(kind: 'sum' | 'mean', inputs: NamedTensorInfoMap, attrs: NamedAttrMap | undefined) {
  const { x } = inputs as { x: TensorInfo };
  const { axis, keepDims } = attrs as unknown as { axis: number | number[]; keepDims: boolean };
  const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
  const leading = axes.length > 0 && axes.length < x.shape.length && axes.every((a, i) => a === i);
  if (x.dtype !== 'float32' || !leading) return undefined;
  const outer = x.shape.slice(0, axes.length).reduce((a, b) => a * b, 1);
  const innerShape = x.shape.slice(axes.length);
  return {
    x,
    outer,
    inner: innerShape.reduce((a, b) => a * b, 1),
    outShape: keepDims ? [...axes.map(() => 1), ...innerShape] : innerShape,
    scale: kind === 'mean' ? 1 / outer : 1,
  };
}

/**
 * Sum and Mean over the leading axes of a float32 tensor (BatchNorm's per-channel reductions
 * over N, H, W of an NHWC activation): one pass over contiguous memory, where the shipped
 * kernels first transpose the whole tensor to make the reduced axes innermost.
 */
function reduceLeadingAxes(kind: 'sum' | 'mean', shipped: KernelFunc): KernelFunc {
  return (args) => {
    const wasm = args.backend as BackendWasm;
    const r = leadingReduction(kind, args.inputs, args.attrs);
    if (!r) return shipped(args);
    const out = wasm.makeOutput(r.outShape, 'float32');
    const src = wasm.typedArrayFromHeap(r.x) as Float32Array;
    const dst = wasm.typedArrayFromHeap(out) as Float32Array;
    const acc = new Float64Array(r.inner);
    for (let i = 0; i < r.outer; i++) {
      const row = i * r.inner;
      for (let j = 0; j < r.inner; j++) acc[j] += src[row + j];
    }
    for (let j = 0; j < r.inner; j++) dst[j] = acc[j] * r.scale;
    return out;
  };
}

/**
 * A float32 comparison of a and b that broadcasts (shapes differ): the broadcast shape and each
 * operand's element strides in its index space (0 along broadcast axes); undefined otherwise.
 */
export function broadcastOperands(inputs: NamedTensorInfoMap) {
  const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
  const sameShape = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  if (sameShape || a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const rank = shape.length;
  const stridesOf = (s: number[]) => {
    const padded = [...new Array(rank - s.length).fill(1), ...s];
    const strides = new Array<number>(rank).fill(0);
    for (let d = rank - 1, acc = 1; d >= 0; d--) {
      strides[d] = padded[d] === 1 ? 0 : acc;
      acc *= padded[d];
    }
    return strides;
  };
  return { a, b, shape, sa: stridesOf(a.shape), sb: stridesOf(b.shape) };
}

/**
 * Equal with broadcasting (the gradient of a global max-pool compares x with its broadcast
 * max): the shipped kernel's broadcast path took ~120 ns per element. Same shapes keep it.
 */
function broadcastEqual(shipped: KernelFunc): KernelFunc {
  return (args) => {
    const wasm = args.backend as BackendWasm;
    const operands = broadcastOperands(args.inputs);
    if (!operands) return shipped(args);
    const { a, b, shape, sa, sb } = operands;
    const rank = shape.length;
    const out = wasm.makeOutput(shape, 'bool');
    const av = wasm.typedArrayFromHeap(a) as Float32Array,
      bv = wasm.typedArrayFromHeap(b) as Float32Array;
    const ov = wasm.typedArrayFromHeap(out) as Uint8Array;
    const index = new Array<number>(rank).fill(0);
    let ia = 0,
      ib = 0;
    for (let i = 0; i < ov.length; i++) {
      ov[i] = av[ia] === bv[ib] ? 1 : 0;
      for (let d = rank - 1; d >= 0; d--) {
        ia += sa[d];
        ib += sb[d];
        if (++index[d] < shape[d]) break;
        ia -= sa[d] * shape[d];
        ib -= sb[d] * shape[d];
        index[d] = 0;
      }
    }
    return out;
  };
}

/**
 * Registers `make(previous)` as the wasm kernel `name`, in place of whatever is registered
 * (the shipped kernel, or a2's own from an earlier layer), keeping its setup and dispose hooks.
 * `previous` is undefined where wasm has no such kernel.
 */
export function setWasmKernel(name: string, make: (previous: KernelFunc | undefined) => KernelFunc): void {
  const previous = tf.getKernel(name, WASM);
  if (previous !== undefined) tf.unregisterKernel(name, WASM);
  tf.registerKernel({
    kernelName: name,
    backendName: WASM,
    kernelFunc: make(previous?.kernelFunc),
    setupFunc: previous?.setupFunc,
    disposeFunc: previous?.disposeFunc,
  });
}

/** Like setWasmKernel, for kernels wasm ships: the new one may fall back to the shipped one. */
function replaceKernel(name: string, make: (shipped: KernelFunc) => KernelFunc): void {
  setWasmKernel(name, (shipped) => {
    if (shipped === undefined) throw new Error(`wasm backend has no ${name} kernel to replace`);
    return make(shipped);
  });
}

let registered = false;

/** Names of the kernels a2 adds or replaces on wasm; idempotent. */
/**
 * Identity shares its input's buffer (a reference count), as the cpu backend does, instead of
 * copying it: tfjs clones every tensor it saves for the backward pass, and wasm's copying
 * Identity spent ~10% of a q5 training step (187 full copies per step). Safe because tfjs
 * tensors are immutable: every kernel writes a fresh output.
 */
const sharingIdentity: KernelFunc = ({ inputs, backend }) => {
  const { x } = inputs as { x: TensorInfo };
  (backend as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

export function registerWasmTrainingKernels(): string[] {
  const names = ['Conv2DBackpropFilter', 'MaxPoolGrad', 'Conv2DBackpropInput', 'BatchMatMul', 'Sum', 'Mean', 'Equal', 'Identity'];
  if (registered) return names;
  registered = true;
  setWasmKernel('Conv2DBackpropFilter', () => conv2DBackpropFilter);
  replaceKernel('MaxPoolGrad', () => maxPoolGrad);
  replaceKernel('Conv2DBackpropInput', conv2DBackpropInput);
  replaceKernel('BatchMatMul', batchMatMul);
  replaceKernel('Sum', (shipped) => reduceLeadingAxes('sum', shipped));
  replaceKernel('Mean', (shipped) => reduceLeadingAxes('mean', shipped));
  replaceKernel('Equal', broadcastEqual);
  // Strings live outside the heap: the shipped kernel handles them.
  replaceKernel(
    'Identity',
    (shipped) => (args) => ((args.inputs.x as TensorInfo).dtype === 'string' ? shipped(args) : sharingIdentity(args)),
  );
  return names;
}
