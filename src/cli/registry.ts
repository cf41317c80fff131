// What the CLI knows about experiments without loading them: names, one-line summaries,
// their flags, and how to import them. experiments/index.ts fills it in.
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
  // Experiments are generic over their own config; the registry erases that type.
  // biome-ignore lint/suspicious/noExplicitAny: the registry erases each experiment's config type
  load(): Promise<Experiment<any>>;
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
