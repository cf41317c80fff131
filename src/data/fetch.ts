// `a2 data fetch` and `a2 data verify`: the official archives, checked by md5 as torchvision does.
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import * as tar from 'tar';
import { CIFAR_DIR, MNIST_DIR, MissingDatasetError, OFFICIAL_FILES, md5, resolveDataDir } from './files.js';

export type DatasetName = keyof typeof OFFICIAL_FILES;
export const DATASETS = Object.keys(OFFICIAL_FILES) as DatasetName[];

interface Download {
  urls: string[];
  md5: string;
  /** Where the download is saved, under the data folder. */
  saveAs: string;
}

// A2_MNIST_MIRROR puts another mirror first (a local copy, or the tests' loopback server);
// read at each fetch, not at import, so a test can point it elsewhere between runs.
function downloadsOf(dataset: DatasetName): Download[] {
  if (dataset === 'cifar10')
    return [
      {
        urls: ['https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'],
        md5: 'c32a1d4ab5d03f1284b67883e8d87530',
        saveAs: 'cifar-10-binary.tar.gz',
      },
    ];
  const mirrors = [
    ...(process.env.A2_MNIST_MIRROR ? [process.env.A2_MNIST_MIRROR] : []),
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'http://yann.lecun.com/exdb/mnist/',
  ];
  return OFFICIAL_FILES.mnist.map((f) => ({ urls: mirrors.map((m) => m + path.basename(f.name)), md5: f.md5, saveAs: f.name }));
}

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

/** A live bar per file on a terminal; elsewhere (CI logs, pipes) a plain line at each quarter. */
function progressOf(file: string, url: string, total: number, bar: cliProgress.MultiBar | undefined, log: (line: string) => void) {
  if (bar) {
    const live = bar.create(total || 1, 0, { file });
    return (bytes: number) => live.increment(bytes);
  }
  const size = total > 0 ? ` (${(total / 1e6).toFixed(1)} MB)` : '';
  log(`downloading ${file}${size} from ${url}`);
  let done = 0;
  let quarter = 0;
  return (bytes: number) => {
    done += bytes;
    while (total > 0 && quarter < 3 && done >= ((quarter + 1) * total) / 4) log(`  ${file}: ${++quarter * 25}%`);
  };
}

async function downloadOne(url: string, target: string, bar: cliProgress.MultiBar | undefined, log: (line: string) => void): Promise<void> {
  const controller = new AbortController();
  let stall = setTimeout(() => controller.abort(), STALL_SECONDS * 1000);
  const partial = `${target}.part`;
  // The stall timer is cleared however this ends: a refused connection must not keep the process alive.
  try {
    const response = await fetch(url, { signal: controller.signal });
    if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`);
    const total = Number(response.headers.get('content-length') ?? 0);
    const advance = progressOf(path.basename(target), url, total, bar, log);
    const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
    body.on('data', (chunk: Buffer) => {
      clearTimeout(stall);
      stall = setTimeout(() => controller.abort(), STALL_SECONDS * 1000);
      advance(chunk.length);
    });
    await pipeline(body, createWriteStream(partial));
  } finally {
    clearTimeout(stall);
  }
  renameSync(partial, target);
}

/** Downloads, checks md5, and for CIFAR-10 unpacks the binary batches. Returns problems, if any. */
export async function fetchDataset(dataDir: string, dataset: DatasetName, log: (line: string) => void): Promise<string[]> {
  const problems: string[] = [];
  const interactive = process.stderr.isTTY === true && process.env.CI === undefined;
  const bar = interactive
    ? new cliProgress.MultiBar({ format: ' {bar} {percentage}% | {file}', hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined;
  try {
    for (const d of downloadsOf(dataset)) {
      const target = path.join(dataDir, d.saveAs);
      mkdirSync(path.dirname(target), { recursive: true });
      if (existsSync(target) && md5(readFileSync(target)) === d.md5) continue;
      let done = false;
      const failures: string[] = [];
      for (const url of d.urls) {
        try {
          await downloadOne(url, target, bar, log);
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
    bar?.stop();
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

/** Whether `a2 run` may download a missing dataset: not with --no-fetch, nor with A2_NO_FETCH=1. */
export function fetchAllowed(flag: boolean | undefined): boolean {
  return flag !== false && process.env.A2_NO_FETCH !== '1';
}

/**
 * Runs `attempt`; when it stops on a missing MNIST or CIFAR-10 file and fetching is allowed,
 * fetches that dataset (md5-checked) and runs it again. Offline, or not allowed, the original
 * error stands, after the fetch's own lines say which folder to fill.
 */
export async function withDatasetFetch<T>(attempt: () => Promise<T>, allowed: boolean, log: (line: string) => void): Promise<T> {
  const fetched = new Set<string>();
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof MissingDatasetError) || !allowed || fetched.has(err.dataset)) throw err;
      fetched.add(err.dataset);
      log(
        `${err.dataset} is missing from ${err.dataDir}; fetching it from the official mirrors (--no-fetch or A2_NO_FETCH=1 to fail instead)`,
      );
      const problems = await fetchDataset(err.dataDir, err.dataset, log);
      if (problems.length > 0) {
        for (const p of problems) log(`${err.dataset}: ${p}`);
        log(`or, once online: a2 data fetch ${err.dataset}${err.dataDir === resolveDataDir() ? '' : ` --data-dir ${err.dataDir}`}`);
        throw err;
      }
      log(`${err.dataset}: fetched and md5-checked into ${err.dataDir}; starting again`);
    }
  }
}
