// `a2 data fetch` and `a2 data verify`: the official archives, checked by md5 as torchvision does.
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import * as tar from 'tar';
import { CIFAR_DIR, MNIST_DIR, OFFICIAL_FILES, md5 } from './files.js';

export type DatasetName = keyof typeof OFFICIAL_FILES;
export const DATASETS = Object.keys(OFFICIAL_FILES) as DatasetName[];

interface Download {
  urls: string[];
  md5: string;
  /** Where the download is saved, under the data folder. */
  saveAs: string;
}

// A2_MNIST_MIRROR puts another mirror first (a local copy, or the tests' loopback server).
const MNIST_MIRRORS = [
  ...(process.env.A2_MNIST_MIRROR ? [process.env.A2_MNIST_MIRROR] : []),
  'https://ossci-datasets.s3.amazonaws.com/mnist/',
  'http://yann.lecun.com/exdb/mnist/',
];
const DOWNLOADS: Record<DatasetName, Download[]> = {
  mnist: OFFICIAL_FILES.mnist.map((f) => ({
    urls: MNIST_MIRRORS.map((m) => m + path.basename(f.name)),
    md5: f.md5,
    saveAs: f.name,
  })),
  cifar10: [
    {
      urls: ['https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'],
      md5: 'c32a1d4ab5d03f1284b67883e8d87530',
      saveAs: 'cifar-10-binary.tar.gz',
    },
  ],
};

/** Seconds without a byte before a download is given up: offline, say so instead of hanging. */
const STALL_SECONDS = 20;

export interface FileCheck {
  name: string;
  status: 'ok' | 'missing' | 'bad-md5';
  found?: string;
  expected: string;
}

export function verifyDataset(dataDir: string, dataset: DatasetName): FileCheck[] {
  return OFFICIAL_FILES[dataset].map((f) => {
    const file = path.join(dataDir, f.name);
    if (!existsSync(file)) return { name: file, status: 'missing', expected: f.md5 };
    const found = md5(readFileSync(file));
    return { name: file, status: found === f.md5 ? 'ok' : 'bad-md5', found, expected: f.md5 };
  });
}

async function downloadOne(url: string, target: string, bar: cliProgress.MultiBar): Promise<void> {
  const controller = new AbortController();
  let stall = setTimeout(() => controller.abort(), STALL_SECONDS * 1000);
  const response = await fetch(url, { signal: controller.signal });
  if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`);
  const total = Number(response.headers.get('content-length') ?? 0);
  const progress = bar.create(total || 1, 0, { file: path.basename(target) });
  const partial = `${target}.part`;
  const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
  body.on('data', (chunk: Buffer) => {
    clearTimeout(stall);
    stall = setTimeout(() => controller.abort(), STALL_SECONDS * 1000);
    progress.increment(chunk.length);
  });
  try {
    await pipeline(body, createWriteStream(partial));
  } finally {
    clearTimeout(stall);
  }
  renameSync(partial, target);
}

/** Downloads, checks md5, and for CIFAR-10 unpacks the binary batches. Returns problems, if any. */
export async function fetchDataset(dataDir: string, dataset: DatasetName, log: (line: string) => void): Promise<string[]> {
  const problems: string[] = [];
  const bar = new cliProgress.MultiBar({ format: ' {bar} {percentage}% | {file}', hideCursor: true }, cliProgress.Presets.shades_classic);
  try {
    for (const d of DOWNLOADS[dataset]) {
      const target = path.join(dataDir, d.saveAs);
      mkdirSync(path.dirname(target), { recursive: true });
      if (existsSync(target) && md5(readFileSync(target)) === d.md5) continue;
      let done = false;
      const failures: string[] = [];
      for (const url of d.urls) {
        try {
          await downloadOne(url, target, bar);
        } catch (err) {
          rmSync(`${target}.part`, { force: true });
          const cause = (err as { cause?: { code?: string; message?: string } }).cause;
          failures.push(
            `${url}: ${(err as Error).name === 'AbortError' ? `no data for ${STALL_SECONDS}s` : (err as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`,
          );
          continue;
        }
        const found = md5(readFileSync(target));
        if (found === d.md5) {
          done = true;
          break;
        }
        rmSync(target);
        failures.push(`${url}: md5 ${found}, expected ${d.md5}`);
      }
      if (!done) problems.push(`${d.saveAs} could not be downloaded (${failures.join('; ')})`);
    }
  } finally {
    bar.stop();
  }
  if (problems.length === 0 && dataset === 'cifar10') {
    await tar.x({ file: path.join(dataDir, 'cifar-10-binary.tar.gz'), cwd: dataDir });
  }
  if (problems.length > 0) {
    const dir = dataset === 'mnist' ? MNIST_DIR : CIFAR_DIR;
    log(
      `Place the official files by hand in ${path.join(dataDir, dir)}/ (names and md5s: a2 data verify), or point --data-dir / A2_DATA_DIR at a folder that has them.`,
    );
  }
  return problems;
}
