// What run.json records: enough to say how a result was made and to make it again.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const REPORTED_PACKAGES = [
  '@tensorflow/tfjs',
  '@tensorflow/tfjs-backend-wasm',
  '@tensorflow/tfjs-node',
  '@tensorflow/tfjs-node-gpu',
  'vega',
  'vega-lite',
  'canvas',
  'commander',
];

export function packageVersions(): Record<string, string> {
  const require = createRequire(path.join(PROJECT_ROOT, 'package.json'));
  const versions: Record<string, string> = { node: process.version };
  for (const name of REPORTED_PACKAGES) {
    try {
      const file = require.resolve(`${name}/package.json`);
      versions[name] = (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    } catch {
      // Not installed (the optional native backends, usually): left out rather than guessed.
    }
  }
  return versions;
}

/** The commit HEAD is at, `+dirty` when tracked files differ from it; null outside git. */
export function gitCommit(): string | null {
  return gitState().commit;
}

/** The commit (as gitCommit) and the tracked files, relative to the project, that differ from it. */
let atLoad: ReturnType<typeof gitState> | undefined;

/**
 * The git state of the code this process runs: read once, at the first call, which the CLI makes
 * before it loads any experiment. A run that starts later in the same process (the fifth of
 * `a2 run all`) runs the code loaded then, not whatever HEAD has become since.
 */
export function loadedCodeGitState(): ReturnType<typeof gitState> {
  atLoad ??= gitState();
  return atLoad;
}

export function gitState(): { commit: string | null; dirtyPaths: string[] } {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  try {
    const head = git('rev-parse', 'HEAD').trim();
    // --relative: paths relative to the project (which may sit below the repository root).
    const dirtyPaths = git('diff', '--relative', '--name-only', 'HEAD').split('\n').filter(Boolean);
    return { commit: dirtyPaths.length ? `${head}+dirty` : head, dirtyPaths };
  } catch {
    return { commit: null, dirtyPaths: [] };
  }
}
