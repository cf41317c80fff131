// CI's proof that a result reproduces: compares a fresh run's metrics.json with the committed
// one, leaf by leaf, and names every leaf that differs by its path.
//   node --import tsx scripts/compare-metrics.ts <committed outputs> <new outputs> <experiment...>
// Exits 0 when every experiment matches, 1 on a difference or a missing file, 2 on bad usage.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** How closely one experiment's numbers must match. Absent fields mean "exactly". */
export interface Tolerance {
  /** |new − committed| ≤ absolute + relative × |committed| passes. */
  absolute?: number;
  relative?: number;
  /** Leaf paths (as printed, e.g. "inputs.input") that are not results and are not compared. */
  ignore?: string[];
  /** Why this tolerance: shown with every difference so a reader knows what was expected. */
  why: string;
}

/**
 * Every tolerance in one place. Runs measured deterministic on this machine (two runs,
 * byte-identical metrics.json) are compared exactly; an experiment not listed is compared exactly.
 * Loosen one here, with its reason, if CI shows it varies.
 */
export const TOLERANCES: Record<string, Tolerance> = {
  'q1-adam': { why: 'float64 arithmetic in plain JavaScript: deterministic' },
  'q4-ops': {
    ignore: ['inputs.input', 'inputs.filter'],
    why: 'deterministic; the input paths depend on where the data folder is, not on the result',
  },
  'q6-rf': { why: 'integer arithmetic and one seeded forward pass: deterministic' },
  'q2-fc-ae': { why: 'seeded training on wasm/XNNPACK: two smoke runs on this machine gave identical metrics' },
  'q3-mean-latent': {
    why:
      "encodes with q2-conv-ae's committed models through oneDNN convolutions (bf16 on AMX); the committed run used one " +
      'thread and CI one too, but a regeneration may use two, and oneDNN may split work differently, so the last bits of a sum may move',
    relative: 1e-4,
    absolute: 1e-6,
  },
};

/** Leaves that record how long something took, never what it computed: not compared anywhere. */
const TIMING_KEY = /(^s|S)econds$/;

export interface Difference {
  path: string;
  committed: string;
  found: string;
}

function show(value: unknown): string {
  if (value === undefined) return '(absent)';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Walks both trees; returns every leaf that differs beyond `tolerance`, with its path. */
export function compareTrees(committed: unknown, found: unknown, tolerance: Tolerance = { why: '' }, at = ''): Difference[] {
  if (tolerance.ignore?.includes(at)) return [];
  if (isObject(committed) && isObject(found) && Array.isArray(committed) === Array.isArray(found)) {
    const keys = [...new Set([...Object.keys(committed), ...Object.keys(found)])];
    return keys.flatMap((key) => {
      if (TIMING_KEY.test(key)) return [];
      const child = Array.isArray(committed) ? `${at}[${key}]` : at ? `${at}.${key}` : key;
      return compareTrees(committed[key], found[key], tolerance, child);
    });
  }
  if (typeof committed === 'number' && typeof found === 'number') {
    const allowed = (tolerance.absolute ?? 0) + (tolerance.relative ?? 0) * Math.abs(committed);
    const same = Object.is(committed, found) || Math.abs(found - committed) <= allowed;
    return same ? [] : [{ path: at, committed: show(committed), found: show(found) }];
  }
  return JSON.stringify(committed) === JSON.stringify(found) ? [] : [{ path: at, committed: show(committed), found: show(found) }];
}

/** Compares <committedRoot>/<name>/metrics.json with <newRoot>/<name>/metrics.json; returns the lines to print. */
export function compareExperiment(committedRoot: string, newRoot: string, name: string): { ok: boolean; lines: string[] } {
  const files = [path.join(committedRoot, name, 'metrics.json'), path.join(newRoot, name, 'metrics.json')];
  const absent = files.filter((f) => !existsSync(f));
  if (absent.length > 0) return { ok: false, lines: absent.map((f) => `${name}: ${f} is missing`) };
  const [committed, found] = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as unknown);
  const tolerance = TOLERANCES[name] ?? { why: 'no tolerance declared: compared exactly' };
  const differences = compareTrees(committed, found, tolerance);
  const bound =
    tolerance.absolute || tolerance.relative ? `within ${tolerance.absolute ?? 0} + ${tolerance.relative ?? 0}×|committed|` : 'exactly';
  if (differences.length === 0) return { ok: true, lines: [`${name}: metrics.json reproduced (${bound})`] };
  return {
    ok: false,
    lines: [
      `${name}: ${differences.length} leaf(s) of metrics.json differ from the committed one (compared ${bound}: ${tolerance.why})`,
      ...differences.map((d) => `  ${d.path || '(root)'}: committed ${d.committed}, now ${d.found}`),
    ],
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [committedRoot, newRoot, ...names] = process.argv.slice(2);
  if (!committedRoot || !newRoot || names.length === 0) {
    console.error('usage: compare-metrics.ts <committed outputs> <new outputs> <experiment...>');
    process.exit(2);
  }
  let ok = true;
  for (const name of names) {
    const result = compareExperiment(committedRoot, newRoot, name);
    for (const line of result.lines) console.log(line);
    ok &&= result.ok;
  }
  process.exitCode = ok ? 0 : 1;
}
