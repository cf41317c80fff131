import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { analyticFields, empiricalField, parseLayers } from '../../experiments/q6-rf.js';
import { initBackend } from '../../src/tensor/index.js';
import { a2, tempDir } from '../helpers.js';

await initBackend('wasm');

test('the given row 1 comes out as 8 × 8, analytically and by backpropagation', () => {
  const layers = parseLayers('conv2d(3,1),conv2d(3,1),conv2d(1,1),maxpool2d(2,2),conv2d(2,2)');
  const fields = analyticFields(layers);
  assert.deepEqual(
    fields.map((f) => f.receptiveField),
    [3, 5, 5, 6, 8],
  );
  assert.deepEqual(
    fields.map((f) => f.jump),
    [1, 1, 1, 2, 4],
  );
  assert.equal(empiricalField(layers, 8), 8);
});

test('a single layer sees its kernel; stride does not widen the first layer', () => {
  for (const k of [1, 2, 5, 11]) {
    const layers = parseLayers(`conv2d(${k},3)`);
    assert.equal(analyticFields(layers)[0].receptiveField, k);
    assert.equal(empiricalField(layers, k), k);
  }
});

test('run writes all ten rows, each checked against its measured field', async () => {
  const out = tempDir();
  const { code } = await a2('run', 'q6-rf', '--out', out);
  assert.equal(code, 0);
  const metrics = JSON.parse(readFileSync(path.join(out, 'q6-rf/metrics.json'), 'utf8')) as {
    rows: { row: number; receptiveField: number; empirical: number; layers: string[] }[];
  };
  assert.equal(metrics.rows.length, 10);
  for (const r of metrics.rows) assert.equal(r.empirical, r.receptiveField, `row ${r.row}`);
  assert.deepEqual(metrics.rows[7].layers, metrics.rows[8].layers, 'rows 8 and 9 are identical in the original');
  const png = readFileSync(path.join(out, 'q6-rf/table.png'));
  assert.deepEqual(Array.from(png.subarray(1, 4)), [0x50, 0x4e, 0x47]);
});

test('--layers computes any stack', async () => {
  const out = tempDir();
  const { code } = await a2('run', 'q6-rf', '--layers', 'conv2d(3,2), maxpool2d(3,3)', '--out', out);
  assert.equal(code, 0);
  const metrics = JSON.parse(readFileSync(path.join(out, 'q6-rf/metrics.json'), 'utf8')) as { rows: { receptiveField: number }[] };
  assert.deepEqual(
    metrics.rows.map((r) => r.receptiveField),
    [3 + 2 * 2],
  );
});

test('--layers with one stack: the summary gives its field, not the table rows it does not have', async () => {
  const out = tempDir();
  const { code, lines } = await a2('run', 'q6-rf', '--layers', 'conv2d(3,1), maxpool2d(2,2)', '--out', out);
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(
    lines.some((l) => l.endsWith('(conv2d(3,1) maxpool2d(2,2): receptive field 4×4 (measured 4))')),
    lines.join('\n'),
  );
});
