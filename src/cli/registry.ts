// What the CLI knows about experiments without loading them: names, one-line summaries,
// prerequisites, flags, and how to import them. experiments/index.ts fills it in. This is the
// only place those facts live (so `a2 list` and usage errors never load tfjs); everything
// else about an experiment (config, metrics, artefacts, report section, sources) is in its module.
import type { Experiment } from '../run/index.js';

export type FlagKind = 'number' | 'positive-int' | 'string' | 'boolean';

export interface FlagSpec {
  /** commander syntax, e.g. '--far-slope <number>'. */
  flags: string;
  description: string;
  kind: FlagKind;
}

export interface RegistryEntry {
  name: string;
  summary: string;
  /** Experiments that must run first (their outputs are read). */
  needs?: string[];
  flags?: FlagSpec[];
  load(): Promise<AnyExperiment>;
}

// Experiments are generic over their own config and metrics; the registry erases both.
// biome-ignore lint/suspicious/noExplicitAny: the registry erases each experiment's config and metrics types
export type AnyExperiment = Experiment<any, any>;

/** Every entry's module, loaded (imports tfjs: not for `a2 list` or usage errors). */
export function loadExperiments(registry: RegistryEntry[]): Promise<AnyExperiment[]> {
  return Promise.all(registry.map((e) => e.load()));
}

/** camelCase config key of a flag: '--far-slope <n>' → 'farSlope'. */
export function flagKey(flags: string): string {
  const long = flags
    .split(/[ ,]+/)
    .find((f) => f.startsWith('--'))!
    .slice(2);
  return long.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Names in dependency order: every experiment after those it needs. */
export function orderByNeeds(names: string[], registry: RegistryEntry[]): string[] {
  const byName = new Map(registry.map((e) => [e.name, e]));
  const ordered: string[] = [];
  const visit = (name: string) => {
    if (ordered.includes(name)) return;
    for (const need of byName.get(name)?.needs ?? []) if (names.includes(need)) visit(need);
    ordered.push(name);
  };
  names.forEach(visit);
  return ordered;
}
