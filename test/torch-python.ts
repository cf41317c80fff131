// Real PyTorch (/usr/bin/python3 with torch 1.13) as the reference for .pt files and Q4's ops.
// Tests that need it skip with this reason when it is absent; CI installs python3-torch.
import { spawnSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';
export const torchAvailable = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
export const NO_TORCH = torchAvailable ? false : `no ${PYTHON} with torch (CI installs python3-torch)`;

/** Runs a Python script with torch imported and `out` bound to `dir`; returns its stdout, throws on failure. */
export function runTorch(script: string, dir: string): string {
  const run = spawnSync(PYTHON, ['-c', `import json, torch\nout = ${JSON.stringify(dir)}\n${script}`]);
  if (run.status !== 0) throw new Error(`python failed: ${run.stderr.toString()}`);
  return run.stdout.toString();
}
