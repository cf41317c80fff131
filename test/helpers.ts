// Shared test fixtures: where the real data is, temporary folders, and running the CLI in-process.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../src/cli/main.js';
import { registry } from '../experiments/index.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The real datasets: $A2_DATA_DIR, else ../shared/data beside the checkout. */
export const DATA_DIR = process.env.A2_DATA_DIR ?? path.resolve(ROOT, '../shared/data');
// Runs that name no --data-dir (in-process and child a2 alike) read the same datasets.
process.env.A2_DATA_DIR = DATA_DIR;

export function tempDir(prefix = 'a2-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Runs `a2 …args` in this process; returns the exit code, everything logged and what went to stderr (usage and fatal errors). */
export async function a2(...args: string[]): Promise<{ code: number; lines: string[]; errors: string[] }> {
  const lines: string[] = [];
  const errors: string[] = [];
  const original = console.error;
  console.error = (...parts: unknown[]) => errors.push(parts.map(String).join(' '));
  try {
    const code = await main(['node', 'a2', ...args], registry, (l) => lines.push(l));
    return { code, lines, errors };
  } finally {
    console.error = original;
  }
}
