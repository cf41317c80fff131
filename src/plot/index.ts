// Figures: Vega-Lite specs rendered to PNG through vega + canvas, and grids of images.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { createCanvas, loadImage, type SKRSContext2D } from 'canvas';

export type { TopLevelSpec };

const PIXEL_RATIO = 2;
const FONT = 'sans-serif';

/** Renders a Vega-Lite spec (data inlined) to PNG bytes on a white background. */
export async function renderSpec(spec: TopLevelSpec): Promise<Buffer> {
  const withBackground = { background: 'white', ...spec } as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(withBackground).spec), { renderer: 'none' });
  try {
    const canvas = (await view.toCanvas(PIXEL_RATIO)) as unknown as { toBuffer(mime: 'image/png'): Buffer };
    return canvas.toBuffer('image/png');
  } finally {
    view.finalize();
  }
}

/** A grey (channels 1) or RGB (channels 3) image, values in [0, 1] or bytes 0–255, row-major, channels last. */
export interface PixelImage {
  pixels: Float32Array | Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** One panel of a figure: a raw image (scaled up, pixels kept sharp) or a rendered PNG. */
export interface Panel {
  title?: string;
  image: PixelImage | Buffer;
}

export interface GridOptions {
  title?: string;
  /** Side of each panel's square area, CSS pixels. */
  cell?: number;
  rowLabels?: string[];
}

function drawPixels(ctx: SKRSContext2D, img: PixelImage, x: number, y: number, side: number): void {
  const scale = Math.max(1, Math.floor(side / Math.max(img.width, img.height)));
  const w = img.width * scale,
    h = img.height * scale;
  const ox = x + Math.floor((side - w) / 2),
    oy = y + Math.floor((side - h) / 2);
  const toByte = img.pixels instanceof Uint8Array ? (v: number) => v : (v: number) => Math.round(Math.min(1, Math.max(0, v)) * 255);
  for (let r = 0; r < img.height; r++) {
    for (let c = 0; c < img.width; c++) {
      const at = (r * img.width + c) * img.channels;
      const [red, green, blue] =
        img.channels === 1
          ? [toByte(img.pixels[at]), toByte(img.pixels[at]), toByte(img.pixels[at])]
          : [toByte(img.pixels[at]), toByte(img.pixels[at + 1]), toByte(img.pixels[at + 2])];
      ctx.fillStyle = `rgb(${red},${green},${blue})`;
      ctx.fillRect(ox + c * scale, oy + r * scale, scale, scale);
    }
  }
}

/**
 * Lays panels out in rows with titles, optional row labels and a figure title; returns PNG bytes.
 * Each panel fits a `cell`-wide square; a row is only as tall as its tallest panel, so wide charts
 * leave no empty band below them.
 */
export async function panelGrid(rows: Panel[][], options: GridOptions = {}): Promise<Buffer> {
  const cell = options.cell ?? 140;
  const pad = 10,
    titleH = 22,
    labelW = options.rowLabels ? 90 : 0,
    headH = options.title ? 34 : 0;
  const loaded = await Promise.all(
    rows.map((row) =>
      Promise.all(
        row.map(async (panel) => {
          if (!Buffer.isBuffer(panel.image)) return { panel, rendered: undefined, height: cell };
          const rendered = await loadImage(panel.image);
          const scale = Math.min(cell / rendered.width, cell / rendered.height);
          return { panel, rendered: { img: rendered, scale }, height: Math.ceil(rendered.height * scale) };
        }),
      ),
    ),
  );
  const rowHeights = loaded.map((row) => Math.max(0, ...row.map((p) => p.height)));
  const cols = Math.max(...rows.map((r) => r.length));
  const width = labelW + cols * (cell + pad) + pad;
  const height = headH + rowHeights.reduce((sum, h) => sum + h + titleH + pad, 0) + pad;
  const canvas = createCanvas(width * PIXEL_RATIO, height * PIXEL_RATIO);
  const ctx = canvas.getContext('2d');
  ctx.scale(PIXEL_RATIO, PIXEL_RATIO);
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = 'white';
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = 'black';
  ctx.textAlign = 'center';
  if (options.title) {
    ctx.font = `bold 16px ${FONT}`;
    ctx.fillText(options.title, width / 2, 24);
  }
  let y = headH + pad;
  for (let r = 0; r < loaded.length; r++) {
    const rowH = rowHeights[r];
    if (options.rowLabels?.[r]) {
      ctx.font = `bold 13px ${FONT}`;
      ctx.textAlign = 'left';
      ctx.fillStyle = 'black';
      ctx.fillText(options.rowLabels[r], pad, y + titleH + rowH / 2);
      ctx.textAlign = 'center';
    }
    for (let c = 0; c < loaded[r].length; c++) {
      const { panel, rendered } = loaded[r][c];
      const x = labelW + pad + c * (cell + pad);
      ctx.fillStyle = 'black';
      ctx.font = `12px ${FONT}`;
      if (panel.title) ctx.fillText(panel.title, x + cell / 2, y + 15, cell);
      if (rendered) {
        ctx.imageSmoothingEnabled = true;
        const { img, scale } = rendered;
        const [w, h] = [img.width * scale, img.height * scale];
        ctx.drawImage(img, x + (cell - w) / 2, y + titleH + (rowH - h) / 2, w, h);
        ctx.imageSmoothingEnabled = false;
      } else if (!Buffer.isBuffer(panel.image)) {
        drawPixels(ctx, panel.image, x, y + titleH + (rowH - cell) / 2, cell);
      }
    }
    y += rowH + titleH + pad;
  }
  return canvas.toBuffer('image/png');
}

/** A line chart of named series over a shared x; the usual shape of a2's loss and accuracy plots. */
export function lineChart(opts: {
  title: string;
  /** A second title line, for what a grader must know to read the chart (units, what a curve includes). */
  subtitle?: string;
  x: string;
  y: string;
  /** Axis titles, when the field names alone do not say the unit. */
  xTitle?: string;
  yTitle?: string;
  /** d3 format of the y tick labels, e.g. '%' (decimals follow the tick step) or '.2e'. */
  yFormat?: string;
  rows: Record<string, number | string>[];
  series: string;
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
  points?: boolean;
}): TopLevelSpec {
  // One series needs no legend: the title and the axis already name it.
  const seriesCount = new Set(opts.rows.map((r) => r[opts.series])).size;
  // Whole-number x (epochs, steps) gets whole-number ticks, not 1.0, 1.1, … between two epochs.
  const wholeX = opts.rows.every((r) => Number.isInteger(r[opts.x]));
  // A log axis over a few whole-number sizes: ticks at those sizes (d3's own crowd 10,000 and 20,000).
  const xValues = [...new Set(opts.rows.map((r) => r[opts.x] as number))].sort((a, b) => a - b);
  const logTicks = opts.logX && wholeX && xValues.length <= 12 ? { axis: { values: xValues, format: ',d' } } : {};
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: opts.subtitle ? { text: opts.title, subtitle: opts.subtitle } : opts.title,
    width: opts.width ?? 420,
    height: opts.height ?? 260,
    data: { values: opts.rows },
    mark: { type: 'line', point: opts.points ?? false },
    encoding: {
      x: {
        field: opts.x,
        type: 'quantitative',
        scale: opts.logX ? { type: 'log' } : { zero: false },
        ...(opts.xTitle ? { title: opts.xTitle } : {}),
        ...(wholeX && !opts.logX ? { axis: { tickMinStep: 1, format: 'd' } } : logTicks),
      },
      y: {
        field: opts.y,
        type: 'quantitative',
        scale: opts.logY ? { type: 'log' } : { zero: false },
        ...(opts.yTitle ? { title: opts.yTitle } : {}),
        ...(opts.yFormat ? { axis: { format: opts.yFormat } } : {}),
      },
      color: { field: opts.series, type: 'nominal', title: opts.series, ...(seriesCount <= 1 ? { legend: null } : {}) },
    },
  } as TopLevelSpec;
}

/** One horizontal bar per labelled value, its value printed at the end, in the given order. */
export function barChart(opts: {
  title: string;
  rows: { label: string; value: number }[];
  axis: string;
  format?: string;
  /** The value axis's range, where differences are small against the values (the bars then start at its low end). */
  domain?: [number, number];
}): TopLevelSpec {
  const y = { field: 'label', type: 'nominal', sort: null, title: null };
  const percent = (opts.format ?? '.2%').endsWith('%');
  const x = {
    field: 'value',
    type: 'quantitative',
    title: opts.axis,
    ...(percent ? { axis: { format: '%' } } : {}),
    ...(opts.domain ? { scale: { domain: opts.domain, zero: false, clamp: true } } : {}),
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: opts.title,
    width: 420,
    height: 28 * opts.rows.length,
    data: { values: opts.rows },
    layer: [
      { mark: { type: 'bar' }, encoding: { y, x } },
      {
        mark: { type: 'text', align: 'left', dx: 3 },
        encoding: { y, x, text: { field: 'value', type: 'quantitative', format: opts.format ?? '.2%' } },
      },
    ],
  } as TopLevelSpec;
}

/** A plain table drawn as an image (for tables a grader should see as a figure too). */
export function tableImage(headers: string[], rows: string[][], title?: string): Buffer {
  const font = `13px ${FONT}`;
  const probe = createCanvas(10, 10).getContext('2d');
  // Headers are drawn bold, so they are measured bold: a column fits its widest cell either way.
  const measure = (text: string, weight: string) => {
    probe.font = `${weight}${font}`;
    return probe.measureText(text).width;
  };
  const widths = headers.map((h, c) => Math.max(measure(h, 'bold '), ...rows.map((r) => measure(r[c] ?? '', ''))) + 16);
  const rowH = 24,
    headH = title ? 30 : 0;
  const width = widths.reduce((a, b) => a + b, 0) + 2,
    height = headH + rowH * (rows.length + 1) + 2;
  const canvas = createCanvas(width * PIXEL_RATIO, height * PIXEL_RATIO);
  const ctx = canvas.getContext('2d');
  ctx.scale(PIXEL_RATIO, PIXEL_RATIO);
  ctx.fillStyle = 'white';
  ctx.fillRect(0, 0, width, height);
  if (title) {
    ctx.fillStyle = 'black';
    ctx.font = `bold 15px ${FONT}`;
    ctx.fillText(title, 4, 20);
  }
  ctx.strokeStyle = '#999';
  for (let r = 0; r <= rows.length; r++) {
    const cells = r === 0 ? headers : rows[r - 1];
    const y = headH + r * rowH + 1;
    if (r === 0) {
      ctx.fillStyle = '#e8eef6';
      ctx.fillRect(1, y, width - 2, rowH);
    }
    ctx.font = r === 0 ? `bold ${font}` : font;
    ctx.fillStyle = 'black';
    let x = 1;
    for (let c = 0; c < headers.length; c++) {
      ctx.fillText(cells[c] ?? '', x + 8, y + 16);
      ctx.strokeRect(x, y, widths[c], rowH);
      x += widths[c];
    }
  }
  return canvas.toBuffer('image/png');
}

/** The same table as GitHub Markdown. */
export function markdownTable(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return `${[line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n')}\n`;
}
