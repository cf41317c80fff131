// Where datasets live, what the official files are, and reading them with their md5.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';
import { InputError } from '../errors.js';

export interface DataFileRecord {
  path: string;
  bytes: number;
  md5: string;
}

export interface OfficialFile {
  /** Path under the data folder. */
  name: string;
  md5: string;
}

export const MNIST_DIR = 'mnist';
export const CIFAR_DIR = 'cifar-10-batches-bin';

/** The official files with their published md5s (torchvision's for MNIST; the files inside cifar-10-binary.tar.gz). */
export const OFFICIAL_FILES: Record<'mnist' | 'cifar10', OfficialFile[]> = {
  mnist: [
    { name: `${MNIST_DIR}/train-images-idx3-ubyte.gz`, md5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873' },
    { name: `${MNIST_DIR}/train-labels-idx1-ubyte.gz`, md5: 'd53e105ee54ea40749a09fcbcd1e9432' },
    { name: `${MNIST_DIR}/t10k-images-idx3-ubyte.gz`, md5: '9fb629c4189551a2d022fa330f9573f3' },
    { name: `${MNIST_DIR}/t10k-labels-idx1-ubyte.gz`, md5: 'ec29112dd5afa0611ce80d1b7f02629c' },
  ],
  cifar10: [
    { name: `${CIFAR_DIR}/data_batch_1.bin`, md5: '5dd7e06a14cb22eb9f671a540d1b7c25' },
    { name: `${CIFAR_DIR}/data_batch_2.bin`, md5: '5ea93a67294ea407fff1d09f752e9692' },
    { name: `${CIFAR_DIR}/data_batch_3.bin`, md5: '942cd6a4bcdd0dd3c604fbe906cb4421' },
    { name: `${CIFAR_DIR}/data_batch_4.bin`, md5: 'ae636b3ba5c66a11e91e8cb52e771fcb' },
    { name: `${CIFAR_DIR}/data_batch_5.bin`, md5: '53f37980c15c3d472c316c40844f3f0d' },
    { name: `${CIFAR_DIR}/test_batch.bin`, md5: '803d5f7f4d78ea53de84dbe85f74fb6d' },
  ],
};

/** Where the assignment's own files (Q4's pixel_input.pt and filter.pt) may sit under the data folder, first first. */
export const ASSIGNMENT_DIRS = ['assignment-q4', 'q4'];

/** The assignment's file `name` in the data folder, or undefined. They came with the assignment: no mirror has them. */
export function locateAssignmentFile(dataDir: string, name: string): string | undefined {
  return ASSIGNMENT_DIRS.map((dir) => path.join(dataDir, dir, name)).find(existsSync);
}

/** --data-dir, else A2_DATA_DIR, else data/ under the working directory. */
export function resolveDataDir(flag?: string): string {
  return path.resolve(flag ?? process.env.A2_DATA_DIR ?? 'data');
}

export function md5(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('hex');
}

/** A file of an official dataset is absent: `a2 run` can fetch the dataset and try again. */
export class MissingDatasetError extends InputError {
  override name = 'MissingDatasetError';
  constructor(
    file: string,
    hint: string,
    readonly dataset: 'mnist' | 'cifar10',
    readonly dataDir: string,
  ) {
    super(file, hint, 'no such file');
  }
}

/**
 * Reads a whole file, records its md5 in `read`, and gunzips it when it is gzip. `official`
 * says which downloadable dataset the file belongs to, so its absence can be fetched.
 */
export function readDataFile(
  file: string,
  read: DataFileRecord[],
  hint: string,
  official?: { dataset: 'mnist' | 'cifar10'; dataDir: string },
): Buffer {
  if (!existsSync(file)) {
    if (official) throw new MissingDatasetError(file, hint, official.dataset, official.dataDir);
    throw new InputError(file, hint, 'no such file');
  }
  const raw = readFileSync(file);
  read.push({ path: file, bytes: raw.length, md5: md5(raw) });
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (err) {
      throw new InputError(file, 'a complete gzip stream', `a damaged one (${(err as Error).message})`);
    }
  }
  return raw;
}

/** The first of the candidate paths that exists, else the first (so the error names it). */
export function firstExisting(candidates: string[]): string {
  return candidates.find((c) => existsSync(c)) ?? candidates[0];
}
