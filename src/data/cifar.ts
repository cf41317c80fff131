// CIFAR-10, binary version: records of 1 label byte + 1024 R + 1024 G + 1024 B bytes.
import path from 'node:path';
import { InputError } from '../errors.js';
import { CIFAR_DIR, type DataFileRecord, readDataFile } from './files.js';

export const CIFAR_SIZE = 32;
export const CIFAR_CHANNELS = 3;
export const CIFAR_PIXELS = CIFAR_SIZE * CIFAR_SIZE * CIFAR_CHANNELS;
const RECORD_BYTES = 1 + CIFAR_PIXELS;
const RECORDS_PER_FILE = 10000;
const TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];
const TEST_FILES = ['test_batch.bin'];
export const CIFAR_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

export interface CifarSplit {
  /** n × 32 × 32 × 3 bytes, channels last (NHWC). */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

/** Decodes records into NHWC pixels and labels, checking sizes and label range. */
export function parseCifarBatch(bytes: Uint8Array, file: string, images: Uint8Array, labels: Uint8Array, offset: number): number {
  if (bytes.length % RECORD_BYTES !== 0 || bytes.length === 0) {
    throw new InputError(
      file,
      `a whole number of ${RECORD_BYTES}-byte records (${RECORDS_PER_FILE * RECORD_BYTES} bytes)`,
      `${bytes.length} bytes`,
    );
  }
  const n = bytes.length / RECORD_BYTES;
  const plane = CIFAR_SIZE * CIFAR_SIZE;
  for (let r = 0; r < n; r++) {
    const src = r * RECORD_BYTES;
    const label = bytes[src];
    if (label > 9) throw new InputError(file, 'labels 0–9', `${label} in record ${r}`);
    labels[offset + r] = label;
    const dst = (offset + r) * CIFAR_PIXELS;
    for (let p = 0; p < plane; p++) {
      images[dst + p * 3] = bytes[src + 1 + p];
      images[dst + p * 3 + 1] = bytes[src + 1 + plane + p];
      images[dst + p * 3 + 2] = bytes[src + 1 + 2 * plane + p];
    }
  }
  return n;
}

export function loadCifar(dataDir: string, split: 'train' | 'test', read: DataFileRecord[]): CifarSplit {
  const files = (split === 'train' ? TRAIN_FILES : TEST_FILES).map((f) => path.join(dataDir, CIFAR_DIR, f));
  const capacity = files.length * RECORDS_PER_FILE;
  const images = new Uint8Array(capacity * CIFAR_PIXELS);
  const labels = new Uint8Array(capacity);
  let count = 0;
  for (const file of files) {
    const bytes = readDataFile(file, read, 'a CIFAR-10 binary batch (run `a2 data fetch cifar10` or pass --data-dir)', {
      dataset: 'cifar10',
      dataDir,
    });
    if (bytes.length !== RECORDS_PER_FILE * RECORD_BYTES) {
      throw new InputError(file, `${RECORDS_PER_FILE * RECORD_BYTES} bytes (${RECORDS_PER_FILE} records)`, `${bytes.length} bytes`);
    }
    count += parseCifarBatch(bytes, file, images, labels, count);
  }
  return { images, labels, count };
}
