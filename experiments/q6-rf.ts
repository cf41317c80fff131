// Question 6 — receptive fields. For each layer stack of Table 1, the side of the input
// square one output pixel sees: analytically (rf += (k−1)·jump; jump *= s) and measured by
// backpropagating one output pixel through the stack with tfjs. Row 1 is given as 8 × 8.
//   npx a2 run q6-rf                                   the ten rows of Table 1
//   npx a2 run q6-rf --layers "conv2d(3,1),maxpool2d(2,2)"   any stack
import { UsageError } from '../src/errors.js';
import { markdownTable, tableImage } from '../src/plot/index.js';
import { list, num, obj, str } from '../src/report/declare.js';
import type { Experiment, RunContext } from '../src/run/index.js';
import { tf } from '../src/tensor/index.js';

interface Config {
  /** A stack to compute instead of Table 1, as "conv2d(k,s),maxpool2d(k,s),…"; empty = the table. */
  layers: string;
}

const defaults: Config = { layers: '' };

// Table 1 of the assignment; rows 8 and 9 are identical in the original.
const TABLE_1 = [
  'conv2d(3,1) conv2d(3,1) conv2d(1,1) maxpool2d(2,2) conv2d(2,2)',
  'conv2d(3,1) maxpool2d(2,2) conv2d(2,2) maxpool2d(2,2) conv2d(3,1)',
  'conv2d(5,1) maxpool2d(3,1) conv2d(4,1) maxpool2d(2,2) conv2d(3,1)',
  'conv2d(7,2) conv2d(5,1) conv2d(3,2) conv2d(3,1) conv2d(1,1)',
  'conv2d(4,1) conv2d(3,2) maxpool2d(2,2) conv2d(3,1) maxpool2d(2,2)',
  'conv2d(7,2) conv2d(5,2) maxpool2d(2,2) conv2d(5,2) conv2d(7,2)',
  'conv2d(3,3) maxpool2d(2,2) conv2d(5,3) maxpool2d(3,3) conv2d(5,1)',
  'conv2d(4,2) maxpool2d(2,2) conv2d(3,1) conv2d(1,1) conv2d(2,1)',
  'conv2d(4,2) maxpool2d(2,2) conv2d(3,1) conv2d(1,1) conv2d(2,1)',
  'conv2d(11,2) conv2d(7,2) maxpool2d(2,2) conv2d(5,2) conv2d(3,1)',
];
const GIVEN_ROW_1 = 8;

interface Layer {
  kind: 'conv2d' | 'maxpool2d';
  k: number;
  s: number;
  text: string;
}
interface LayerField {
  layer: string;
  receptiveField: number;
  jump: number;
}

export function parseLayers(stack: string): Layer[] {
  if (stack.trim() === '') throw new UsageError(`--layers expects layers like "conv2d(3,1),maxpool2d(2,2)", found "${stack}"`);
  const parts = stack
    .trim()
    .split(/\s*,\s*(?![^(]*\))|\s+(?![^(]*\))/)
    .map((p) => p.trim());
  if (parts.includes('')) throw new UsageError(`--layers: an empty layer in "${stack}" (a comma too many?)`);
  return parts.map((text) => {
    const m = /^(conv2d|maxpool2d)\(\s*(\d+)\s*,\s*(\d+)\s*\)$/i.exec(text);
    if (!m || Number(m[2]) < 1 || Number(m[3]) < 1) {
      throw new UsageError(`--layers: "${text}" is not conv2d(k,s) or maxpool2d(k,s) with whole k, s ≥ 1`);
    }
    return { kind: m[1].toLowerCase() as Layer['kind'], k: Number(m[2]), s: Number(m[3]), text: `${m[1].toLowerCase()}(${m[2]},${m[3]})` };
  });
}

/** Receptive field and jump (input pixels between neighbouring outputs) after each layer. */
export function analyticFields(layers: Layer[]): LayerField[] {
  let rf = 1,
    jump = 1;
  return layers.map((l) => {
    rf += (l.k - 1) * jump;
    jump *= l.s;
    return { layer: l.text, receptiveField: rf, jump };
  });
}

/** The measured field's input is a square of this side at most (16.8 M floats). */
const MAX_MEASURED_SIDE = 4096;
/** …and costs this many multiply-adds at most (Table 1's largest row: ~7.5e6). */
const MAX_MEASURED_WORK = 2e10;

/**
 * Backpropagates one output pixel to the input and measures the side of the square of
 * inputs with non-zero gradient. Weights are all ones so nothing cancels, and max-pool is
 * replaced by average-pool, since max-pool sends the gradient to one element per window.
 */
export function empiricalField(layers: Layer[], expectedRf: number): number {
  const jumpAll = layers.reduce((j, l) => j * l.s, 1);
  const size = 2 * expectedRf + 4 * jumpAll + 8;
  if (size > MAX_MEASURED_SIDE)
    throw new UsageError(
      `--layers: a receptive field of ${expectedRf} (jump ${jumpAll}) needs a ${size}×${size} input to measure; a2 measures up to ${MAX_MEASURED_SIDE}×${MAX_MEASURED_SIDE}`,
    );
  // Each layer's window products over its output, forward and back: what the measurement costs.
  let side = size,
    work = 0;
  for (const l of layers) {
    side = Math.floor((side - l.k) / l.s) + 1;
    work += 3 * side * side * l.k * l.k;
  }
  if (work > MAX_MEASURED_WORK)
    throw new UsageError(
      `--layers: measuring a receptive field of ${expectedRf} takes ~${work.toExponential(1)} multiply-adds; a2 measures up to ${MAX_MEASURED_WORK.toExponential(0)} (about a minute)`,
    );
  return tf.tidy(() => {
    const forward = (x: tf.Tensor4D): tf.Tensor4D =>
      layers.reduce(
        (h, l) =>
          l.kind === 'conv2d' ? tf.conv2d(h, tf.ones([l.k, l.k, 1, 1]) as tf.Tensor4D, l.s, 'valid') : tf.avgPool(h, l.k, l.s, 'valid'),
        x,
      );
    const outShape = forward(tf.zeros([1, size, size, 1])).shape;
    const [oh, ow] = [Math.floor(outShape[1] / 2), Math.floor(outShape[2] / 2)];
    const mask = tf.buffer(outShape);
    mask.set(1, 0, oh, ow, 0);
    const grad = tf.grad((x: tf.Tensor) =>
      forward(x as tf.Tensor4D)
        .mul(mask.toTensor())
        .sum(),
    )(tf.zeros([1, size, size, 1]));
    const g = grad.dataSync();
    let [minR, maxR, minC, maxC] = [size, -1, size, -1];
    for (let r = 0; r < size; r++)
      for (let c = 0; c < size; c++) {
        if (g[r * size + c] !== 0) {
          minR = Math.min(minR, r);
          maxR = Math.max(maxR, r);
          minC = Math.min(minC, c);
          maxC = Math.max(maxC, c);
        }
      }
    const [h, w] = [maxR - minR + 1, maxC - minC + 1];
    if (h !== w) throw new Error(`receptive field is not square: ${h}×${w}`);
    return h;
  });
}

async function run(config: Config, ctx: RunContext) {
  const stacks = config.layers ? [config.layers] : TABLE_1;
  const rows = stacks.map((stack, i) => {
    const layers = parseLayers(stack);
    const perLayer = analyticFields(layers);
    const { receptiveField, jump } = perLayer[perLayer.length - 1];
    return {
      row: i + 1,
      layers: layers.map((l) => l.text),
      receptiveField,
      perLayer,
      jump,
      empirical: empiricalField(layers, receptiveField),
    };
  });
  const mismatches = rows.filter((r) => r.empirical !== r.receptiveField);
  if (mismatches.length > 0) throw new Error(`analytic and measured fields differ in rows ${mismatches.map((r) => r.row).join(', ')}`);
  if (!config.layers && rows[0].receptiveField !== GIVEN_ROW_1)
    throw new Error(`row 1 should be the given ${GIVEN_ROW_1}×${GIVEN_ROW_1}, got ${rows[0].receptiveField}`);

  const maxLayers = Math.max(...rows.map((r) => r.layers.length));
  const headers = ['S.No', ...Array.from({ length: maxLayers }, (_, i) => `layer${i + 1}`), 'receptive field', 'measured', 'jump'];
  const cells = rows.map((r) => [
    String(r.row),
    ...Array.from({ length: maxLayers }, (_, i) => r.layers[i] ?? ''),
    `${r.receptiveField} x ${r.receptiveField}`,
    `${r.empirical} x ${r.empirical}`,
    String(r.jump),
  ]);
  const perLayerLines = rows.map(
    (r) => `- row ${r.row}: ${r.perLayer.map((p) => `${p.layer} → rf ${p.receptiveField}, jump ${p.jump}`).join('; ')}`,
  );
  ctx.writeText(
    'table.md',
    `# Question 6: receptive fields\n\n${markdownTable(headers, cells)}\n` +
      'Receptive field: side of the input square that one output pixel depends on; `rf += (k − 1)·jump`, `jump *= s`. ' +
      '"measured" backpropagates one output pixel through the stack with tfjs (all-ones weights; average-pool in place of max-pool).\n\n' +
      `## Per layer\n\n${perLayerLines.join('\n')}\n`,
  );
  ctx.writeBytes('table.png', tableImage(headers, cells, 'Question 6: receptive field of one output pixel'));
  for (const r of rows)
    ctx.log(`row ${r.row}: ${r.layers.join(' ')} → ${r.receptiveField} x ${r.receptiveField} (measured ${r.empirical})`);
  return { rows };
}

// ---- What this experiment declares: its metrics, artefacts, report section and sources.

type Metrics = Awaited<ReturnType<typeof run>>;

export const experiment: Experiment<Config, Metrics> = {
  name: 'q6-rf',
  defaults,
  seedless: 'its fields are computed and measured with all-ones weights, no random number drawn',
  profiles: {},
  run,
  headline: (m) =>
    m.rows.length === 1
      ? `${m.rows[0].layers.join(' ')}: receptive field ${m.rows[0].receptiveField}×${m.rows[0].receptiveField} (measured ${m.rows[0].empirical})`
      : `rows 2–${m.rows.length}: ${m.rows
          .slice(1)
          .map((r) => r.receptiveField)
          .join(', ')}`,
  sources: ['experiments/q6-rf.ts'],
  artefacts: [
    { file: 'table.md', kind: 'md' },
    { file: 'table.png', kind: 'png' },
  ],
  metricsSchema: obj({
    rows: list(
      obj({ row: num, layers: { type: 'array', items: str }, receptiveField: num, perLayer: { type: 'array' }, jump: num, empirical: num }),
    ),
  }),
  report: {
    title: 'Q6 — Receptive fields',
    figures: ['table'],
    answer: (_m, files) => files.markdown('table.md'),
  },
};
