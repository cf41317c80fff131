// PyTorch's `torch.save` zip format for a single tensor, read and written without Python.
// The archive holds <stem>/data.pkl (a protocol-2 pickle calling
// torch._utils._rebuild_tensor_v2 on a persistent storage id) and the storage's raw
// little-endian bytes at <stem>/data/<key>. The reader runs a pickle machine that knows
// only the opcodes and globals of that shape and rejects everything else: loading a file
// never executes anything it names.
import { readFileSync } from 'node:fs';
import { unzipSync, zipSync } from 'fflate';
import { InputError } from '../errors.js';

export interface PtTensor {
  shape: number[];
  /** Values in row-major order (float32 and float64 files are read as float32). */
  data: Float32Array;
}

const STORAGE_DTYPES: Record<string, { bytes: number; read: (v: DataView, at: number) => number }> = {
  FloatStorage: { bytes: 4, read: (v, at) => v.getFloat32(at, true) },
  DoubleStorage: { bytes: 8, read: (v, at) => v.getFloat64(at, true) },
};

const ALLOWED_GLOBALS = new Set([
  'torch._utils._rebuild_tensor_v2',
  'collections.OrderedDict',
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

class Global {
  constructor(readonly name: string) {}
}
class Mark {}
interface StorageRef {
  key: string;
  dtype: string;
  numel: number;
}
interface RebuiltTensor {
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}
type PickleValue = string | number | boolean | null | Global | StorageRef | RebuiltTensor | PickleValue[] | Map<unknown, unknown> | Mark;

function isStorage(v: unknown): v is StorageRef {
  return typeof v === 'object' && v !== null && 'key' in v && 'numel' in v;
}

/** Runs the pickle; returns the single tensor it builds. */
function unpickleTensor(bytes: Uint8Array, file: string): RebuiltTensor {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder();
  const stack: PickleValue[] = [];
  const memo = new Map<number, PickleValue>();
  let at = 0;
  const fail = (found: string): never => {
    throw new InputError(file, 'a torch.save pickle of one tensor', found);
  };
  const popMark = (): PickleValue[] => {
    const i = stack.map((v) => v instanceof Mark).lastIndexOf(true);
    if (i < 0) fail('a pickle without its MARK');
    const items = stack.splice(i);
    return items.slice(1);
  };
  const readLine = (): string => {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) fail('an unterminated line');
    const s = decoder.decode(bytes.subarray(at, end));
    at = end + 1;
    return s;
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
        memo.set(view.getUint32(at, true), stack[stack.length - 1]);
        at += 4;
        break; // LONG_BINPUT
      case 0x68:
        stack.push(memo.get(bytes[at++]) ?? fail('a memo miss'));
        break; // BINGET
      case 0x6a:
        stack.push(memo.get(view.getUint32(at, true)) ?? fail('a memo miss'));
        at += 4;
        break; // LONG_BINGET
      case 0x28:
        stack.push(new Mark());
        break; // MARK
      case 0x58: {
        // BINUNICODE
        const n = view.getUint32(at, true);
        at += 4;
        stack.push(decoder.decode(bytes.subarray(at, at + n)));
        at += n;
        break;
      }
      case 0x4b:
        stack.push(bytes[at++]);
        break; // BININT1
      case 0x4d:
        stack.push(view.getUint16(at, true));
        at += 2;
        break; // BININT2
      case 0x4a:
        stack.push(view.getInt32(at, true));
        at += 4;
        break; // BININT
      case 0x8a: {
        // LONG1
        const n = bytes[at++];
        let v = 0;
        for (let i = n - 1; i >= 0; i--) v = v * 256 + bytes[at + i];
        if (n > 0 && bytes[at + n - 1] & 0x80) v -= 2 ** (8 * n);
        at += n;
        stack.push(v);
        break;
      }
      case 0x47:
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
        const [, type, key, , numel] = pid as [string, Global, string, string, number];
        stack.push({ key, dtype: type.name.replace('torch.', ''), numel });
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!(fn instanceof Global) || !Array.isArray(args)) fail('REDUCE on something other than an allowed call');
        const name = (fn as Global).name;
        if (name === 'collections.OrderedDict') {
          stack.push(new Map());
          break;
        }
        if (name !== 'torch._utils._rebuild_tensor_v2') fail(`a call to ${name}`);
        const [storage, offset, shape, stride] = args as [unknown, number, number[], number[]];
        if (!isStorage(storage) || !Array.isArray(shape) || !Array.isArray(stride)) fail('malformed _rebuild_tensor_v2 arguments');
        stack.push({ storage: storage as StorageRef, offset, shape, stride });
        break;
      }
      case 0x2e: {
        // STOP
        const result = pop();
        if (typeof result !== 'object' || result === null || !('storage' in result)) fail('a pickle whose result is not a tensor');
        return result as RebuiltTensor;
      }
      default:
        fail(`pickle opcode 0x${op.toString(16)} at byte ${at - 1}, which a2 does not accept`);
    }
  }
  return fail('a pickle without STOP');
}

export function readPt(file: string): PtTensor {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(readFileSync(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new InputError(file, 'a torch.save .pt file', 'no such file');
    throw new InputError(file, 'a torch.save zip archive', `unreadable bytes (${(err as Error).message})`);
  }
  const pklName = Object.keys(entries).find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pklName === undefined)
    throw new InputError(file, 'a zip archive with <name>/data.pkl', `entries ${Object.keys(entries).slice(0, 5).join(', ') || '(none)'}`);
  const stem = pklName.slice(0, -'/data.pkl'.length);
  const t = unpickleTensor(entries[pklName], file);
  const dtype = STORAGE_DTYPES[t.storage.dtype];
  if (dtype === undefined) throw new InputError(file, 'a float32 or float64 storage', t.storage.dtype);
  const raw = entries[`${stem}/data/${t.storage.key}`];
  if (raw === undefined) throw new InputError(file, `storage ${stem}/data/${t.storage.key}`, 'no such entry');
  if (raw.length !== t.storage.numel * dtype.bytes)
    throw new InputError(file, `${t.storage.numel * dtype.bytes} storage bytes`, `${raw.length}`);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  const rawView = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const data = new Float32Array(numel);
  // Walk the tensor's strides, so views (non-contiguous saves) read correctly too.
  const index = new Array<number>(t.shape.length).fill(0);
  for (let i = 0; i < numel; i++) {
    let pos = t.offset;
    for (let d = 0; d < index.length; d++) pos += index[d] * t.stride[d];
    if (pos >= t.storage.numel) throw new InputError(file, `element offsets below ${t.storage.numel}`, `${pos}`);
    data[i] = dtype.read(rawView, pos * dtype.bytes);
    for (let d = index.length - 1; d >= 0; d--) {
      if (++index[d] < t.shape[d]) break;
      index[d] = 0;
    }
  }
  return { shape: t.shape, data };
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
