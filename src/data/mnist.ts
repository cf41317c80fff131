// MNIST in its IDX format (gzip or raw): big-endian header, then uint8 pixels or labels.
import path from 'node:path';
import { InputError } from '../errors.js';
import { type DataFileRecord, MNIST_DIR, firstExisting, readDataFile } from './files.js';

const IMAGES_MAGIC = 2051;
const LABELS_MAGIC = 2049;
const IMAGE_HEADER_BYTES = 16;
const LABEL_HEADER_BYTES = 8;
export const MNIST_HEIGHT = 28;
export const MNIST_WIDTH = 28;
export const MNIST_PIXELS = MNIST_HEIGHT * MNIST_WIDTH;

const FILES = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte', count: 60000 },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte', count: 10000 },
} as const;

export interface MnistSplit {
  /** n × 784 pixels scaled to [0, 1], row-major. */
  images: Float32Array;
  labels: Uint8Array;
  count: number;
}

function locate(dataDir: string, stem: string): string {
  const dir = path.join(dataDir, MNIST_DIR);
  return firstExisting([path.join(dir, `${stem}.gz`), path.join(dir, stem), path.join(dir, stem.replace('-idx', '.idx'))]);
}

export function parseIdxImages(bytes: Uint8Array, file: string): { pixels: Uint8Array; count: number } {
  if (bytes.length < IMAGE_HEADER_BYTES)
    throw new InputError(file, `an IDX image header of ${IMAGE_HEADER_BYTES} bytes`, `${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== IMAGES_MAGIC) throw new InputError(file, `IDX image magic ${IMAGES_MAGIC}`, `${magic}`);
  const count = view.getUint32(4);
  const rows = view.getUint32(8);
  const cols = view.getUint32(12);
  if (rows !== MNIST_HEIGHT || cols !== MNIST_WIDTH) throw new InputError(file, `${MNIST_HEIGHT}×${MNIST_WIDTH} images`, `${rows}×${cols}`);
  const expected = IMAGE_HEADER_BYTES + count * MNIST_PIXELS;
  if (bytes.length !== expected)
    throw new InputError(file, `${expected} bytes for ${count} images`, `${bytes.length} bytes (truncated or padded)`);
  return { pixels: bytes.subarray(IMAGE_HEADER_BYTES), count };
}

export function parseIdxLabels(bytes: Uint8Array, file: string): Uint8Array {
  if (bytes.length < LABEL_HEADER_BYTES)
    throw new InputError(file, `an IDX label header of ${LABEL_HEADER_BYTES} bytes`, `${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== LABELS_MAGIC) throw new InputError(file, `IDX label magic ${LABELS_MAGIC}`, `${magic}`);
  const count = view.getUint32(4);
  if (bytes.length !== LABEL_HEADER_BYTES + count)
    throw new InputError(file, `${LABEL_HEADER_BYTES + count} bytes for ${count} labels`, `${bytes.length} bytes`);
  const labels = bytes.subarray(LABEL_HEADER_BYTES);
  const bad = labels.findIndex((l) => l > 9);
  if (bad >= 0) throw new InputError(file, 'labels 0–9', `${labels[bad]} at index ${bad}`);
  return labels;
}

/** Loads one split; `limit` keeps the first n examples (for quick and smoke profiles). */
export function loadMnist(dataDir: string, split: 'train' | 'test', read: DataFileRecord[], limit?: number): MnistSplit {
  const names = FILES[split];
  const imageFile = locate(dataDir, names.images);
  const labelFile = locate(dataDir, names.labels);
  const hint = `the MNIST ${split} file (run \`a2 data fetch mnist\` or pass --data-dir)`;
  const official = { dataset: 'mnist', dataDir } as const;
  const { pixels, count } = parseIdxImages(readDataFile(imageFile, read, hint, official), imageFile);
  const labels = parseIdxLabels(readDataFile(labelFile, read, hint, official), labelFile);
  if (labels.length !== count) throw new InputError(labelFile, `${count} labels to match ${imageFile}`, `${labels.length}`);
  const n = Math.min(count, limit ?? count);
  const images = new Float32Array(n * MNIST_PIXELS);
  for (let i = 0; i < images.length; i++) images[i] = pixels[i] / 255;
  return { images, labels: labels.slice(0, n), count: n };
}
