import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { encodePt, readPt } from '../../src/data/index.js';
import { DATA_DIR, tempDir } from '../helpers.js';

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
  assert.throws(() => readPt(path.join(dir, 'text.pt')), /text\.pt: expected a torch\.save zip archive, found unreadable bytes/);
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
