import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { encodePt, readPt } from '../../src/data/index.js';
import { DATA_DIR, tempDir } from '../helpers.js';
import { NO_TORCH, runTorch } from '../torch-python.js';

test("reads the assignment's own .pt files", () => {
  const input = readPt(path.join(DATA_DIR, 'assignment-q4/pixel_input.pt'));
  const filter = readPt(path.join(DATA_DIR, 'assignment-q4/filter.pt'));
  assert.deepEqual(input.shape, [1, 1, 32]);
  assert.deepEqual(filter.shape, [3, 1, 1]);
  assert.equal(input.data.length, 32);
  assert.ok(Array.from(filter.data).every(Number.isFinite));
});

test('what encodePt writes, readPt reads back exactly', () => {
  const data = Float32Array.from({ length: 2 * 3 * 70 }, (_, i) => Math.sin(i) * 1000);
  const dir = tempDir();
  writeFileSync(path.join(dir, 't.pt'), encodePt({ shape: [2, 3, 70], data }, 't'));
  const back = readPt(path.join(dir, 't.pt'));
  assert.deepEqual(back.shape, [2, 3, 70]);
  assert.deepEqual(back.data, data);
});

test('a pickle that names anything outside the tensor subset is rejected, not run', () => {
  const dir = tempDir();
  // GLOBAL os.system, the classic pickle payload.
  const evil = Uint8Array.from([0x80, 2, ...strToU8('cos\nsystem\n'), 0x58, 4, 0, 0, 0, ...strToU8('true'), 0x85, 0x52, 0x2e]);
  writeFileSync(path.join(dir, 'evil.pt'), zipSync({ 'evil/data.pkl': evil, 'evil/version': strToU8('3\n') }));
  assert.throws(
    () => readPt(path.join(dir, 'evil.pt')),
    /evil\.pt: expected a torch\.save pickle of one tensor, found a reference to os\.system/,
  );
});

test('malformed .pt files give an error naming the file, expected and found', () => {
  const dir = tempDir();
  writeFileSync(path.join(dir, 'text.pt'), 'not a zip at all');
  assert.throws(
    () => readPt(path.join(dir, 'text.pt')),
    /text\.pt: expected a torch\.save zip archive, found no zip end-of-central-directory record/,
  );
  writeFileSync(path.join(dir, 'nopkl.pt'), zipSync({ 'x/other': strToU8('1') }));
  assert.throws(
    () => readPt(path.join(dir, 'nopkl.pt')),
    /nopkl\.pt: expected a zip archive with <name>\/data\.pkl, found entries x\/other/,
  );
  const good = encodePt({ shape: [4], data: Float32Array.from([1, 2, 3, 4]) }, 'g');
  writeFileSync(path.join(dir, 'cut.pt'), good.subarray(0, good.length - 30));
  assert.throws(() => readPt(path.join(dir, 'cut.pt')), /cut\.pt: expected/);
  assert.throws(() => readPt(path.join(dir, 'absent.pt')), /absent\.pt: expected a torch\.save \.pt file, found no such file/);
});

test('reads what real PyTorch saves: nn.Parameter, float64, float16 and a transposed view', { skip: NO_TORCH }, () => {
  const dir = tempDir();
  const expected = JSON.parse(
    runTorch(
      `
torch.manual_seed(1)
made = {
  'param': torch.nn.Linear(32, 16).weight,
  'double': torch.randn(2, 3, 5, dtype=torch.float64),
  'half': (torch.randn(4, 7) * 100).half(),
  'view': torch.randn(6, 4).t()[1:, ::2],
}
for name, t in made.items():
  torch.save(t, f'{out}/{name}.pt')
print(json.dumps({name: {'shape': list(t.shape), 'values': t.detach().float().flatten().tolist()} for name, t in made.items()}))
`,
      dir,
    ),
  ) as Record<string, { shape: number[]; values: number[] }>;
  const dtypes: Record<string, string> = { param: 'float32', double: 'float64', half: 'float16', view: 'float32' };
  for (const [name, want] of Object.entries(expected)) {
    const got = readPt(path.join(dir, `${name}.pt`));
    assert.deepEqual(got.shape, want.shape, name);
    assert.equal(got.dtype, dtypes[name], name);
    assert.deepEqual(Array.from(got.data), want.values, name); // torch's .float() and a2's conversion agree bit for bit
  }
});

// ---- hand-made faults: a pickle with any values torch would never write, and zip headers that lie.

/** The protocol-2 pickle of _rebuild_tensor_v2 with whatever offset, shape and stride values are given. */
function tensorPickle(layout: { numel: number; offset: number; shape: number[]; stride: number[] }): Uint8Array {
  const out: number[] = [];
  const text = (s: string) => out.push(...strToU8(s));
  const value = (v: number) => {
    const b = new DataView(new ArrayBuffer(8));
    if (Number.isInteger(v) && Math.abs(v) < 2 ** 31) {
      b.setInt32(0, v, true);
      out.push(0x4a, ...new Uint8Array(b.buffer, 0, 4)); // BININT
    } else if (Number.isInteger(v)) {
      b.setBigInt64(0, BigInt(v), true);
      out.push(0x8a, 8, ...new Uint8Array(b.buffer)); // LONG1
    } else {
      b.setFloat64(0, v);
      out.push(0x47, ...new Uint8Array(b.buffer)); // BINFLOAT
    }
  };
  const tuple = (vs: number[]) => {
    out.push(0x28);
    vs.forEach(value);
    out.push(0x74);
  };
  const str = (s: string) => {
    out.push(0x58, s.length, 0, 0, 0);
    text(s);
  };
  out.push(0x80, 2);
  text('ctorch._utils\n_rebuild_tensor_v2\n');
  out.push(0x28, 0x28);
  str('storage');
  text('ctorch\nFloatStorage\n');
  str('0');
  str('cpu');
  value(layout.numel);
  out.push(0x74, 0x51);
  value(layout.offset);
  tuple(layout.shape);
  tuple(layout.stride);
  out.push(0x89);
  text('ccollections\nOrderedDict\n');
  out.push(0x29, 0x52, 0x74, 0x52, 0x2e);
  return Uint8Array.from(out);
}

function writeLayout(dir: string, name: string, layout: Parameters<typeof tensorPickle>[0]): string {
  const file = path.join(dir, `${name}.pt`);
  writeFileSync(
    file,
    zipSync({ 'x/data.pkl': tensorPickle(layout), 'x/data/0': new Uint8Array(Math.min(layout.numel, 64) * 4) }, { level: 0 }),
  );
  return file;
}

/** Rewrites the uncompressed size the central directory declares for `entry`. */
function declareSize(zip: Uint8Array, entry: string, size: number): Uint8Array {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  for (let at = 0; at + 46 < zip.length; at++) {
    if (view.getUint32(at, true) !== 0x02014b50) continue;
    const nameLength = view.getUint16(at + 28, true);
    if (new TextDecoder().decode(zip.subarray(at + 46, at + 46 + nameLength)) !== entry) continue;
    view.setUint32(at + 24, size, true);
    return zip;
  }
  throw new Error(`no central directory entry ${entry}`);
}

test('impossible shapes, strides and offsets are refused by name, before any data is read', () => {
  const dir = tempDir();
  const cases: [string, Parameters<typeof tensorPickle>[0], RegExp][] = [
    [
      'negative',
      { numel: 4, offset: 0, shape: [-1, 4], stride: [4, 1] },
      /expected a shape of non-negative integers, found shape \(-1, 4\)/,
    ],
    [
      'fraction',
      { numel: 4, offset: 0, shape: [1.5, 2], stride: [2, 1] },
      /expected a shape of non-negative integers, found shape \(1\.5, 2\)/,
    ],
    [
      'unsafe',
      { numel: 4, offset: 0, shape: [2 ** 60], stride: [1] },
      /expected a shape of non-negative integers, found shape \(1152921504606847000\)/,
    ],
    [
      'huge',
      { numel: 4, offset: 0, shape: [2 ** 20, 2 ** 20, 2 ** 20], stride: [0, 0, 0] },
      /expected a tensor of at most 134217728 elements, found shape \(1048576, 1048576, 1048576\)/,
    ],
    [
      'bigstorage',
      { numel: 2 ** 40, offset: 0, shape: [1], stride: [1] },
      /expected a storage of at most 134217728 elements, found a storage declaring 1099511627776/,
    ],
    [
      'negstride',
      { numel: 4, offset: 3, shape: [4], stride: [-1] },
      /expected 1 non-negative integer strides for shape \(4\), found stride \(-1\)/,
    ],
    [
      'rank',
      { numel: 4, offset: 0, shape: [2, 2], stride: [1] },
      /expected 2 non-negative integer strides for shape \(2, 2\), found stride \(1\)/,
    ],
    ['offset', { numel: 4, offset: -2, shape: [2], stride: [1] }, /expected a non-negative integer storage offset, found -2/],
    [
      'small',
      { numel: 32, offset: 0, shape: [4, 10], stride: [10, 1] },
      /expected a view inside its storage of 32 elements, found shape \(4, 10\), stride \(10, 1\), offset 0 reaching element 39/,
    ],
    ['shifted', { numel: 8, offset: 5, shape: [4], stride: [1] }, /reaching element 8/],
    ['overflow', { numel: 8, offset: 0, shape: [2, 2], stride: [2 ** 52, 2 ** 52] }, /expected a view inside its storage of 8 elements/],
  ];
  for (const [name, layout, message] of cases) {
    const file = writeLayout(dir, name, layout);
    assert.throws(
      () => readPt(file),
      (err: Error) =>
        err.name === 'InputError' && err.message.startsWith(`${file}: `) && message.test(err.message) && !err.message.includes('\n'),
      name,
    );
  }
  // The same writer with a possible layout reads: the faults above are the layouts, not the writer.
  const fine = writeLayout(dir, 'fine', { numel: 8, offset: 2, shape: [2, 3], stride: [3, 1] });
  assert.deepEqual(readPt(fine).shape, [2, 3]);
});

test('a zip that declares more than the tensor needs is refused before inflating, and inflation stops at the declared size', () => {
  const dir = tempDir();
  const small = encodePt({ shape: [1, 1, 32], data: new Float32Array(32) }, 'x');
  // The probe's bomb, in miniature: a (1,1,32) tensor whose storage entry declares ~4 GiB.
  writeFileSync(path.join(dir, 'bomb.pt'), declareSize(small, 'x/data/0', 0xfffffffe));
  const started = performance.now();
  assert.throws(
    () => readPt(path.join(dir, 'bomb.pt')),
    /bomb\.pt: expected x\/data\/0 of 128 bytes \(32 float32 values\), found an entry declaring 4294967294 bytes/,
  );
  assert.ok(performance.now() - started < 1000);
  // A deflated storage declaring the right 128 bytes whose stream inflates to 16 MiB: cut at 128, refused.
  const lying = zipSync({
    'x/data.pkl': tensorPickle({ numel: 32, offset: 0, shape: [32], stride: [1] }),
    'x/data/0': [new Uint8Array(2 ** 24), { level: 9 }],
  });
  writeFileSync(path.join(dir, 'long.pt'), declareSize(lying, 'x/data/0', 128));
  assert.throws(
    () => readPt(path.join(dir, 'long.pt')),
    /long\.pt: expected x\/data\/0 inflating to the 128 bytes it declares, found a stream that inflates past them/,
  );
  // A deflated storage that tells the truth reads.
  const honest = zipSync({
    'x/data.pkl': tensorPickle({ numel: 32, offset: 0, shape: [32], stride: [1] }),
    'x/data/0': [new Uint8Array(128).fill(0x40), { level: 9 }],
  });
  writeFileSync(path.join(dir, 'honest.pt'), honest);
  assert.equal(readPt(path.join(dir, 'honest.pt')).data[0], new DataView(new Uint8Array(4).fill(0x40).buffer).getFloat32(0, true));
  // An oversized data.pkl and an archive of many entries are refused from their declarations too.
  writeFileSync(path.join(dir, 'bigpkl.pt'), declareSize(encodePt({ shape: [1], data: new Float32Array(1) }, 'x'), 'x/data.pkl', 2 ** 30));
  assert.throws(
    () => readPt(path.join(dir, 'bigpkl.pt')),
    /bigpkl\.pt: expected a data\.pkl of at most 65536 bytes, found x\/data\.pkl declaring 1073741824 bytes/,
  );
  const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`x/extra/${i}`, new Uint8Array(1)]));
  writeFileSync(path.join(dir, 'many.pt'), zipSync(many));
  assert.throws(
    () => readPt(path.join(dir, 'many.pt')),
    /many\.pt: expected a torch\.save archive of at most 64 entries, found 100 entries/,
  );
});
