import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCanvas, loadImage } from 'canvas';
import { lineChart, panelGrid } from '../../src/plot/index.js';

type Encoding = { encoding: { color: { legend?: null }; x: { axis?: { tickMinStep?: number } }; y: { axis?: { format?: string } } } };

test('a one-series line chart has no legend; a two-series one keeps it', () => {
  const one = lineChart({ title: 't', x: 'epoch', y: 'loss', series: 's', rows: [1, 2].map((epoch) => ({ epoch, loss: 1, s: 'a' })) });
  assert.equal((one as unknown as Encoding).encoding.color.legend, null);
  const two = lineChart({ title: 't', x: 'epoch', y: 'loss', series: 's', rows: ['a', 'b'].map((s) => ({ epoch: 1, loss: 1, s })) });
  assert.equal((two as unknown as Encoding).encoding.color.legend, undefined);
});

test('whole-number x gets whole-number ticks; fractional x does not', () => {
  const whole = lineChart({ title: 't', x: 'epoch', y: 'v', series: 's', rows: [{ epoch: 1, v: 0, s: 'a' }] });
  assert.equal((whole as unknown as Encoding).encoding.x.axis?.tickMinStep, 1);
  const seconds = lineChart({ title: 't', x: 'sec', y: 'v', series: 's', rows: [{ sec: 1.5, v: 0, s: 'a' }], yFormat: '%' });
  assert.equal((seconds as unknown as Encoding).encoding.x.axis, undefined);
  assert.equal((seconds as unknown as Encoding).encoding.y.axis?.format, '%');
});

test('a grid row of wide charts is only as tall as the charts, not a square cell', async () => {
  const wideChart = createCanvas(400, 200).toBuffer('image/png');
  const grid = await loadImage(await panelGrid([[{ image: wideChart }, { image: wideChart }]], { cell: 400 }));
  const square = await loadImage(
    await panelGrid([[{ image: { pixels: new Uint8Array(4), width: 2, height: 2, channels: 1 } }]], { cell: 400 }),
  );
  // Pixel ratio 2: a row is (panel + 22 title + 10 pad) + 10 pad CSS pixels.
  assert.equal(grid.height, 2 * (200 + 22 + 10 + 10));
  assert.equal(square.height, 2 * (400 + 22 + 10 + 10));
});

test('a log x axis over a few whole-number sizes ticks at those sizes, written in full', () => {
  const rows = [10, 100, 1000, 10000, 50000].map((images, i) => ({ images, accuracy: i / 5, split: 'testing' }));
  const spec = lineChart({ title: 't', x: 'images', y: 'accuracy', series: 'split', rows, logX: true }) as unknown as {
    encoding: { x: { axis?: { values?: number[]; format?: string } } };
  };
  assert.deepEqual(spec.encoding.x.axis, { values: [10, 100, 1000, 10000, 50000], format: ',d' });
  const linear = lineChart({ title: 't', x: 'images', y: 'accuracy', series: 'split', rows }) as unknown as typeof spec;
  assert.deepEqual(linear.encoding.x.axis, { tickMinStep: 1, format: 'd' });
});
