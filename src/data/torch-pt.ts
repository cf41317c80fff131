// PyTorch's `torch.save` zip format for a single tensor, read and written without Python.
// The archive holds <stem>/data.pkl (a protocol-2 pickle calling
// torch._utils._rebuild_tensor_v2 on a persistent storage id, wrapped in
// torch._utils._rebuild_parameter for an nn.Parameter) and the storage's raw little-endian
// bytes at <stem>/data/<key>. The reader runs a pickle machine that knows only the opcodes
// and globals of that shape and rejects everything else: loading a file never executes
// anything it names. Nothing a file declares is trusted either: the zip's declared sizes
// are checked against the tensor the pickle claims before anything is inflated, and the
// shape, strides and offset must describe a view that fits inside its storage.
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { zipSync } from 'fflate';
import { InputError } from '../errors.js';

/** The element types a2 reads; every one arrives as float32. */
export type PtDtype = 'float32' | 'float64' | 'float16';

export interface PtTensor {
  shape: number[];
  /** Values in row-major order, always float32 (float64 and float16 files are converted). */
  data: Float32Array;
  /** The element type the file stored (readPt sets it), so a caller can note a conversion. */
  dtype?: PtDtype;
}

/** The most elements one .pt may hold: 2^27 float32 values are 512 MiB, far above any input a2 takes. */
export const MAX_PT_ELEMENTS = 2 ** 27;
/** A one-tensor pickle is a few hundred bytes; 64 KiB leaves room for any rank a2 accepts. */
const MAX_PICKLE_BYTES = 2 ** 16;
/** torch.save writes three to five entries. */
const MAX_ZIP_ENTRIES = 64;

/** IEEE 754 half precision → number (DataView.getFloat16 is not in Node 20). */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 31) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const STORAGE_DTYPES: Record<string, { dtype: PtDtype; bytes: number; read: (v: DataView, at: number) => number }> = {
  FloatStorage: { dtype: 'float32', bytes: 4, read: (v, at) => v.getFloat32(at, true) },
  DoubleStorage: { dtype: 'float64', bytes: 8, read: (v, at) => v.getFloat64(at, true) },
  HalfStorage: { dtype: 'float16', bytes: 2, read: (v, at) => halfToNumber(v.getUint16(at, true)) },
};

const REBUILD_TENSOR = 'torch._utils._rebuild_tensor_v2';
const REBUILD_PARAMETER = 'torch._utils._rebuild_parameter';
const ALLOWED_GLOBALS = new Set([
  REBUILD_TENSOR,
  REBUILD_PARAMETER,
  'collections.OrderedDict',
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

class Global {
  constructor(readonly name: string) {}
}
interface StorageRef {
  key: string;
  dtype: string;
  numel: unknown;
}
/** _rebuild_tensor_v2's arguments, unchecked: they come straight from the file. */
interface RebuiltTensor {
  storage: StorageRef;
  offset: unknown;
  shape: unknown[];
  stride: unknown[];
}
type PickleValue = string | number | boolean | null | Global | StorageRef | RebuiltTensor | PickleValue[] | Map<unknown, unknown>;

function isStorage(v: unknown): v is StorageRef {
  return typeof v === 'object' && v !== null && 'key' in v && 'numel' in v;
}
function isRebuiltTensor(v: unknown): v is RebuiltTensor {
  return typeof v === 'object' && v !== null && 'storage' in v;
}

/** Runs the pickle; returns the single tensor it builds. */
function unpickleTensor(bytes: Uint8Array, file: string): RebuiltTensor {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder();
  const stack: PickleValue[] = [];
  const marks: number[] = []; // stack heights at each MARK, as pickle's own metastack
  const memo = new Map<number, PickleValue>();
  let at = 0;
  const fail = (found: string): never => {
    throw new InputError(file, 'a torch.save pickle of one tensor', found);
  };
  const popMark = (): PickleValue[] => {
    const height = marks.pop();
    return height === undefined ? fail('a pickle without its MARK') : stack.splice(height);
  };
  const readLine = (): string => {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) fail('an unterminated line');
    const s = decoder.decode(bytes.subarray(at, end));
    at = end + 1;
    return s;
  };
  const need = (n: number) => {
    if (at + n > bytes.length) fail(`a pickle cut off at byte ${bytes.length}`);
  };
  const pop = (): PickleValue => (stack.length > 0 ? stack.pop()! : fail('an empty pickle stack'));
  while (at < bytes.length) {
    const op = bytes[at++];
    switch (op) {
      case 0x80:
        at++;
        break; // PROTO n
      case 0x63: {
        // GLOBAL module\nname\n
        const name = `${readLine()}.${readLine()}`;
        if (!ALLOWED_GLOBALS.has(name)) fail(`a reference to ${name}, which a2 does not load`);
        stack.push(new Global(name));
        break;
      }
      case 0x71:
        memo.set(bytes[at++], stack[stack.length - 1]);
        break; // BINPUT
      case 0x72:
        need(4);
        memo.set(view.getUint32(at, true), stack[stack.length - 1]);
        at += 4;
        break; // LONG_BINPUT
      case 0x68:
        stack.push(memo.get(bytes[at++]) ?? fail('a memo miss'));
        break; // BINGET
      case 0x6a:
        need(4);
        stack.push(memo.get(view.getUint32(at, true)) ?? fail('a memo miss'));
        at += 4;
        break; // LONG_BINGET
      case 0x28:
        marks.push(stack.length);
        break; // MARK
      case 0x58: {
        // BINUNICODE
        need(4);
        const n = view.getUint32(at, true);
        at += 4;
        need(n);
        stack.push(decoder.decode(bytes.subarray(at, at + n)));
        at += n;
        break;
      }
      case 0x4b:
        stack.push(bytes[at++]);
        break; // BININT1
      case 0x4d:
        need(2);
        stack.push(view.getUint16(at, true));
        at += 2;
        break; // BININT2
      case 0x4a:
        need(4);
        stack.push(view.getInt32(at, true));
        at += 4;
        break; // BININT
      case 0x8a: {
        // LONG1: little-endian two's complement; may exceed 2^53, which the layout check refuses
        const n = bytes[at++];
        need(n);
        let v = 0;
        for (let i = n - 1; i >= 0; i--) v = v * 256 + bytes[at + i];
        if (n > 0 && bytes[at + n - 1] & 0x80) v -= 2 ** (8 * n);
        at += n;
        stack.push(v);
        break;
      }
      case 0x47:
        need(8);
        stack.push(view.getFloat64(at));
        at += 8;
        break; // BINFLOAT (big-endian)
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x29:
        stack.push([]);
        break; // EMPTY_TUPLE
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x74:
        stack.push(popMark());
        break; // TUPLE
      case 0x85:
        stack.push([pop()]);
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        stack.push([pop(), b]);
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      } // TUPLE3
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const dict = stack[stack.length - 1];
        if (!(dict instanceof Map)) fail('SETITEMS on a non-dict');
        for (let i = 0; i + 1 < items.length; i += 2) (dict as Map<unknown, unknown>).set(items[i], items[i + 1]);
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', storage_type, key, location, numel)
        const pid = pop();
        if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof Global)) fail('a persistent id that is not a storage');
        const [, type, key, , numel] = pid as [string, Global, string, string, unknown];
        stack.push({ key: String(key), dtype: type.name.replace('torch.', ''), numel });
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!(fn instanceof Global) || !Array.isArray(args)) fail('REDUCE on something other than an allowed call');
        const name = (fn as Global).name;
        const argList = args as PickleValue[];
        if (name === 'collections.OrderedDict') stack.push(new Map());
        else if (name === REBUILD_PARAMETER) {
          // nn.Parameter: (tensor, requires_grad, backward_hooks); the tensor is what a2 reads.
          if (!isRebuiltTensor(argList[0])) fail('an nn.Parameter that does not wrap a tensor');
          stack.push(argList[0] as RebuiltTensor);
        } else if (name === REBUILD_TENSOR) {
          const [storage, offset, shape, stride] = argList;
          if (!isStorage(storage) || !Array.isArray(shape) || !Array.isArray(stride)) fail('malformed _rebuild_tensor_v2 arguments');
          stack.push({ storage: storage as StorageRef, offset, shape: shape as unknown[], stride: stride as unknown[] });
        } else fail(`a call to ${name}`);
        break;
      }
      case 0x2e: {
        // STOP
        const result = pop();
        if (!isRebuiltTensor(result)) fail('a pickle whose result is not a tensor');
        return result as RebuiltTensor;
      }
      default:
        fail(`pickle opcode 0x${op.toString(16)} at byte ${at - 1}, which a2 does not accept`);
    }
  }
  return fail('a pickle without STOP');
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const list = (values: unknown[]) => `(${values.map(String).join(', ')})`;

/**
 * Checks that the shape, strides and offset the pickle declares are non-negative integers
 * describing a view of at most MAX_PT_ELEMENTS that lies inside the storage; returns numel.
 */
function checkLayout(file: string, t: RebuiltTensor): number {
  const { shape, stride, offset } = t;
  if (!shape.every(isCount)) throw new InputError(file, 'a shape of non-negative integers', `shape ${list(shape)}`);
  if (!stride.every(isCount) || stride.length !== shape.length)
    throw new InputError(file, `${shape.length} non-negative integer strides for shape ${list(shape)}`, `stride ${list(stride)}`);
  if (!isCount(offset)) throw new InputError(file, 'a non-negative integer storage offset', String(offset));
  if (!isCount(t.storage.numel) || t.storage.numel > MAX_PT_ELEMENTS)
    throw new InputError(file, `a storage of at most ${MAX_PT_ELEMENTS} elements`, `a storage declaring ${String(t.storage.numel)}`);
  const dims = shape as number[];
  const strides = stride as number[];
  if (dims.includes(0)) return 0;
  let numel = 1;
  for (const d of dims) {
    numel *= d;
    if (numel > MAX_PT_ELEMENTS) throw new InputError(file, `a tensor of at most ${MAX_PT_ELEMENTS} elements`, `shape ${list(shape)}`);
  }
  // The last element the view touches must lie inside the storage.
  let last = offset as number;
  for (let d = 0; d < dims.length; d++) last += (dims[d] - 1) * strides[d];
  if (!Number.isSafeInteger(last) || last >= t.storage.numel)
    throw new InputError(
      file,
      `a view inside its storage of ${t.storage.numel} elements`,
      `shape ${list(shape)}, stride ${list(stride)}, offset ${offset} reaching element ${last}`,
    );
  return numel;
}

// ---- the zip: listed from its central directory, each entry checked before it is inflated.
// fflate's unzip decodes a deflate stream to its end even when it overruns the declared size
// (~14 s per GiB, all discarded) and exposes no entry offsets, so the walk is a2's own and
// inflation is Node's zlib with maxOutputLength, which stops at the cap.

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  /** The uncompressed size the central directory declares. */
  size: number;
  localOffset: number;
}

const ZIP_SIGNATURE = { end: 0x06054b50, end64: 0x06064b50, locator64: 0x07064b50, central: 0x02014b50, local: 0x04034b50 };
const ZIP64_MARK = 0xffffffff;

function zipReader(file: string, bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (found: string): never => {
    throw new InputError(file, 'a torch.save zip archive', found);
  };
  const u16 = (at: number): number =>
    at >= 0 && at + 2 <= bytes.length ? view.getUint16(at, true) : bad(`a record cut off at byte ${at}`);
  const u32 = (at: number): number =>
    at >= 0 && at + 4 <= bytes.length ? view.getUint32(at, true) : bad(`a record cut off at byte ${at}`);
  const u64 = (at: number): number => u32(at) + u32(at + 4) * 2 ** 32; // beyond 2^53 only for offsets no file reaches
  return { bad, u16, u32, u64 };
}

function listZip(file: string, bytes: Uint8Array): ZipEntry[] {
  const { bad, u16, u32, u64 } = zipReader(file, bytes);
  let end = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 0xffff); at--) {
    if (u32(at) === ZIP_SIGNATURE.end) {
      end = at;
      break;
    }
  }
  if (end < 0) bad('no zip end-of-central-directory record (not a zip file, or cut short)');
  let count = u16(end + 10);
  let at = u32(end + 16);
  if (end >= 20 && u32(end - 20) === ZIP_SIGNATURE.locator64) {
    const end64 = u64(end - 12);
    if (u32(end64) !== ZIP_SIGNATURE.end64) bad(`no zip64 end record at byte ${end64}`);
    count = u64(end64 + 32);
    at = u64(end64 + 48);
  }
  if (count > MAX_ZIP_ENTRIES) throw new InputError(file, `a torch.save archive of at most ${MAX_ZIP_ENTRIES} entries`, `${count} entries`);
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (u32(at) !== ZIP_SIGNATURE.central) bad(`no central directory entry at byte ${at}`);
    const nameLength = u16(at + 28);
    const extraEnd = at + 46 + nameLength + u16(at + 30);
    let compressedSize = u32(at + 20);
    let size = u32(at + 24);
    let localOffset = u32(at + 42);
    // zip64: the fields that read 0xffffffff follow in extra field 1, in this order.
    for (let x = at + 46 + nameLength; x + 4 <= extraEnd; x += 4 + u16(x + 2)) {
      if (u16(x) !== 1) continue;
      let field = x + 4;
      for (const which of ['size', 'compressedSize', 'localOffset'] as const) {
        const value = which === 'size' ? size : which === 'compressedSize' ? compressedSize : localOffset;
        if (value !== ZIP64_MARK) continue;
        const wide = u64(field);
        field += 8;
        if (which === 'size') size = wide;
        else if (which === 'compressedSize') compressedSize = wide;
        else localOffset = wide;
      }
    }
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength));
    entries.push({ name, method: u16(at + 10), compressedSize, size, localOffset });
    at = extraEnd + u16(at + 32);
  }
  return entries;
}

/** The entry's bytes, inflated to at most its declared size (the caller has checked that size). */
function readEntry(file: string, bytes: Uint8Array, entry: ZipEntry): Uint8Array {
  const { bad, u16, u32 } = zipReader(file, bytes);
  if (u32(entry.localOffset) !== ZIP_SIGNATURE.local) bad(`no local header for ${entry.name} at byte ${entry.localOffset}`);
  const start = entry.localOffset + 30 + u16(entry.localOffset + 26) + u16(entry.localOffset + 28);
  if (start + entry.compressedSize > bytes.length)
    throw new InputError(file, `${entry.name} of ${entry.compressedSize} bytes inside the file`, `a file of ${bytes.length} bytes`);
  const packed = bytes.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) return packed;
  if (entry.method !== 8) throw new InputError(file, `${entry.name} stored or deflated`, `zip compression method ${entry.method}`);
  try {
    return inflateRawSync(packed, { maxOutputLength: Math.max(1, entry.size) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw new InputError(file, `${entry.name} inflating to the ${entry.size} bytes it declares`, 'a stream that inflates past them');
    throw new InputError(file, `a deflate stream in ${entry.name}`, `corrupt data (${(err as Error).message})`);
  }
}

export function readPt(file: string): PtTensor {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(
      file,
      'a torch.save .pt file',
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory' : `unreadable (${code})`,
    );
  }
  const entries = listZip(file, bytes);
  const pkl = entries.find((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkl === undefined)
    throw new InputError(
      file,
      'a zip archive with <name>/data.pkl',
      `entries ${
        entries
          .map((e) => e.name)
          .slice(0, 5)
          .join(', ') || '(none)'
      }`,
    );
  if (pkl.size > MAX_PICKLE_BYTES)
    throw new InputError(file, `a data.pkl of at most ${MAX_PICKLE_BYTES} bytes`, `${pkl.name} declaring ${pkl.size} bytes`);
  const stem = pkl.name.slice(0, -'/data.pkl'.length);
  const t = unpickleTensor(readEntry(file, bytes, pkl), file);
  const dtype = STORAGE_DTYPES[t.storage.dtype];
  if (dtype === undefined) throw new InputError(file, 'a float32, float64 or float16 storage', t.storage.dtype);
  const numel = checkLayout(file, t);
  const storageNumel = t.storage.numel as number;

  // The storage is read only if the zip declares exactly the bytes the tensor needs.
  const storageName = `${stem}/data/${t.storage.key}`;
  const storageEntry = entries.find((e) => e.name === storageName);
  if (storageEntry === undefined) throw new InputError(file, `storage ${storageName}`, 'no such entry');
  const storageBytes = storageNumel * dtype.bytes;
  if (storageEntry.size !== storageBytes)
    throw new InputError(
      file,
      `${storageName} of ${storageBytes} bytes (${storageNumel} ${dtype.dtype} values)`,
      `an entry declaring ${storageEntry.size} bytes`,
    );
  const byteorderEntry = entries.find((e) => e.name === `${stem}/byteorder`); // torch ≥ 2.1 writes it; earlier ones are little-endian
  if (byteorderEntry !== undefined) {
    const order = byteorderEntry.size <= 16 ? new TextDecoder().decode(readEntry(file, bytes, byteorderEntry)).trim() : '(too long)';
    if (order !== 'little') throw new InputError(file, 'little-endian storage', `byteorder "${order}"`);
  }
  const raw = readEntry(file, bytes, storageEntry);
  if (raw.length !== storageBytes) throw new InputError(file, `${storageBytes} storage bytes in ${storageName}`, `${raw.length}`);

  const shape = t.shape as number[];
  const stride = t.stride as number[];
  const rawView = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const data = new Float32Array(numel);
  // Walk the tensor's strides, so views (non-contiguous saves) read correctly too.
  const index = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < numel; i++) {
    let pos = t.offset as number;
    for (let d = 0; d < index.length; d++) pos += index[d] * stride[d];
    data[i] = dtype.read(rawView, pos * dtype.bytes);
    for (let d = index.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return { shape, data, dtype: dtype.dtype };
}

// --- writing: the same pickle torch 1.13 writes for a contiguous float32 tensor.

function pickleTensor(shape: number[]): Uint8Array {
  const out: number[] = [];
  const text = new TextEncoder();
  const bytes = (...b: number[]) => out.push(...b);
  const u32 = (v: number) => bytes(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  const global = (s: string) => bytes(0x63, ...text.encode(`${s.replace(/\.([^.]+)$/, '\n$1')}\n`));
  const str = (s: string) => {
    const e = text.encode(s);
    bytes(0x58);
    u32(e.length);
    bytes(...e);
  };
  const int = (v: number) => {
    if (v < 256) bytes(0x4b, v);
    else if (v < 65536) bytes(0x4d, v & 0xff, v >> 8);
    else {
      bytes(0x4a);
      u32(v);
    }
  };
  const tuple = (items: number[]) => {
    bytes(0x28);
    items.forEach(int);
    bytes(0x74);
  };
  const numel = shape.reduce((a, b) => a * b, 1);
  const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  bytes(0x80, 2);
  global('torch._utils._rebuild_tensor_v2');
  bytes(0x28, 0x28); // MARK (args), MARK (persistent id)
  str('storage');
  global('torch.FloatStorage');
  str('0');
  str('cpu');
  int(numel);
  bytes(0x74, 0x51); // TUPLE, BINPERSID
  int(0);
  tuple(shape);
  tuple(stride);
  bytes(0x89); // requires_grad False
  global('collections.OrderedDict');
  bytes(0x29, 0x52); // OrderedDict()
  bytes(0x74, 0x52, 0x2e); // TUPLE, REDUCE, STOP
  return Uint8Array.from(out);
}

/** A .pt that `torch.load` reads as a float32 tensor of `shape`. */
export function encodePt(tensor: PtTensor, stem: string): Uint8Array {
  const numel = tensor.shape.reduce((a, b) => a * b, 1);
  if (numel !== tensor.data.length) throw new Error(`shape ${tensor.shape} needs ${numel} values, got ${tensor.data.length}`);
  const storage = new Uint8Array(new Float32Array(tensor.data).buffer); // little-endian on every platform Node runs on
  return zipSync(
    {
      [`${stem}/data.pkl`]: pickleTensor(tensor.shape),
      [`${stem}/data/0`]: storage,
      [`${stem}/version`]: new TextEncoder().encode('3\n'),
    },
    { level: 0 },
  );
}
