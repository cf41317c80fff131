// One run of one experiment: its staging folder, its writers, and how it lands in outputs/.
// Everything is written under outputs/.partial/<name>/ and moved to outputs/<name>/ only
// when the run succeeds, so a failed or interrupted run never leaves half its files beside
// the last good ones. Checkpoints stay in the staging folder for --resume.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { type DataFileRecord, resolveDataDir } from '../data/index.js';
import { type BackendInfo, seedEverything } from '../tensor/index.js';
import { type TopLevelSpec, renderSpec } from '../plot/index.js';
import type { Artefact, JsonSchema, ReportSection } from '../report/declare.js';
import { writeAtomic, writeJsonAtomic } from './files.js';
import { gitState, packageVersions } from './manifest.js';

export const PROFILES = ['full', 'quick', 'smoke'] as const;
export type Profile = (typeof PROFILES)[number];

/** Options every experiment receives from the CLI; experiment flags ride in `flags`. */
export interface RunOptions {
  profile: Profile;
  seed: number;
  outRoot: string;
  dataDir?: string;
  resume?: boolean;
  /** Overrides of config keys (camelCase), from --epochs, --lr and experiment flags. */
  overrides: Record<string, unknown>;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** The parts of another experiment's run.json a dependent run checks. */
export interface LandedRun {
  profile: string;
  seed: number;
  config: object;
  startedAt: string;
  gitCommit: string | null;
}

/**
 * A question's experiment, one self-describing module: defaults in one typed object, presets
 * per profile, run, and what it leaves behind (artefacts, metrics schema, report section,
 * the sources its results depend on). Its one-line summary, prerequisites and CLI flags live
 * in its registry entry (experiments/index.ts), which `a2 list` reads without loading it.
 */
export interface Experiment<C extends object = object, M extends object = object> {
  name: string;
  defaults: C;
  profiles: Partial<Record<Profile, Partial<C>>>;
  run(config: C, ctx: RunContext): Promise<M>;
  /** The one number a summary table shows for this experiment. */
  headline?(metrics: M): string;
  /**
   * Repository-relative files whose change makes a landed result stale: the experiment's own
   * file and the experiments/ modules it imports (recipes, models, other experiments). Shared
   * src/ code is left out on purpose, so a change there does not force long re-runs.
   */
  sources: string[];
  /** Files a run leaves in outputs/<name>/ besides metrics.json and run.json. */
  artefacts: Artefact[];
  /** The JSON schema metrics.json must match. */
  metricsSchema: JsonSchema;
  /** Its section of outputs/index.html and REPORT.md. */
  report: ReportSection<M>;
}

/** defaults ← profile preset ← explicit overrides, keeping only keys the config has. */
export function resolveConfig<C extends object>(
  exp: Pick<Experiment<C>, 'defaults' | 'profiles'>,
  profile: Profile,
  overrides: Record<string, unknown>,
): C {
  const config = { ...exp.defaults, ...(exp.profiles[profile] ?? {}) } as C;
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined && key in exp.defaults) (config as Record<string, unknown>)[key] = value;
  }
  return Object.freeze(config);
}

export class RunContext {
  readonly dir: string;
  readonly finalDir: string;
  readonly dataDir: string;
  readonly dataFiles: DataFileRecord[] = [];
  /** Extra facts for run.json (epoch times, model summaries). */
  readonly manifestExtras: Record<string, unknown> = {};
  private readonly started = new Date();
  // The code that runs is the code at the start: commits made while a long run trains are not it.
  private readonly git = gitState();

  constructor(
    readonly experiment: string,
    readonly options: RunOptions,
    readonly config: object,
    readonly backend: BackendInfo,
  ) {
    this.finalDir = path.resolve(options.outRoot, experiment);
    this.dir = path.resolve(options.outRoot, '.partial', experiment);
    this.dataDir = resolveDataDir(options.dataDir);
    if (!options.resume) rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
  }

  get seed(): number {
    return this.options.seed;
  }
  get signal(): AbortSignal | undefined {
    return this.options.signal;
  }

  log(line: string): void {
    (this.options.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(`[${this.experiment}] ${line}`);
  }

  /**
   * Call between batches: lets the event loop run (a training loop on wasm otherwise never
   * yields, so Ctrl-C would wait for the whole run), then throws if a stop was asked for.
   */
  async yieldOrStop(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    if (this.signal?.aborted) throw new Error('interrupted');
  }

  path(rel: string): string {
    return path.join(this.dir, rel);
  }

  writeText(rel: string, text: string): void {
    writeAtomic(this.path(rel), text);
  }
  writeBytes(rel: string, bytes: Uint8Array): void {
    writeAtomic(this.path(rel), bytes);
  }
  writeJson(rel: string, value: unknown): void {
    writeJsonAtomic(this.path(rel), value);
  }

  /** Writes <rel>.png and its spec with data as <rel>.vl.json. */
  async writeFigure(rel: string, spec: TopLevelSpec): Promise<Buffer> {
    const png = await renderSpec(spec);
    this.writeJson(`${rel}.vl.json`, spec);
    this.writeBytes(`${rel}.png`, png);
    return png;
  }

  /** Reads another experiment's landed outputs (q3 reads q2-conv-ae's models). */
  outputsOf(experiment: string): string {
    return path.resolve(this.options.outRoot, experiment);
  }

  /**
   * The landed outputs of another experiment this one builds on (q3 reads q2-conv-ae's models,
   * q5-subsets q5-cifar's full-set numbers): run it first, with this run's options, unless
   * `usable` accepts its run.json. The run used is recorded in this run's manifest.
   */
  async outputsBuiltOn<C extends object, M extends object>(
    exp: Experiment<C, M>,
    usable: (run: LandedRun) => boolean,
  ): Promise<{ dir: string; run: LandedRun }> {
    const dir = this.outputsOf(exp.name);
    const manifest = path.join(dir, 'run.json');
    const existing = existsSync(manifest) ? readJson<LandedRun>(manifest) : undefined;
    if (!existing || !usable(existing)) {
      this.log(
        `outputs/${exp.name} ${existing ? 'was run with other settings' : 'is missing'}; running ${exp.name} first (profile ${this.options.profile})`,
      );
      await runExperiment(exp, { ...this.options, resume: false }, this.backend);
    }
    const run = readJson<LandedRun>(manifest);
    this.manifestExtras.builtOn = {
      ...(this.manifestExtras.builtOn as object | undefined),
      [exp.name]: { startedAt: run.startedAt, gitCommit: run.gitCommit },
    };
    return { dir, run };
  }

  /** Writes metrics.json and run.json, then swaps the staging folder in as outputs/<name>/. */
  finish(metrics: object): void {
    const finished = new Date();
    this.writeJson('metrics.json', metrics);
    this.writeJson('run.json', {
      experiment: this.experiment,
      profile: this.options.profile,
      seed: this.options.seed,
      config: this.config,
      // What the convolutions multiplied in (bf16 or fp32), and what --precision asked for.
      precision: this.backend.precision,
      requestedPrecision: this.backend.requestedPrecision,
      backend: {
        name: this.backend.name,
        tfjsBackend: this.backend.tfjsBackend,
        kernels: this.backend.kernels,
        notices: this.backend.notices,
      },
      packages: packageVersions(),
      gitCommit: this.git.commit,
      // Which tracked files differed from the commit: a result is stale only if they include its sources.
      gitDirtyPaths: this.git.dirtyPaths,
      dataFiles: this.dataFiles.map((f) => ({ ...f, path: path.relative(process.cwd(), f.path) || f.path })),
      startedAt: this.started.toISOString(),
      finishedAt: finished.toISOString(),
      durationSeconds: (finished.getTime() - this.started.getTime()) / 1000,
      ...this.manifestExtras,
    });
    rmSync(path.join(this.dir, 'checkpoints'), { recursive: true, force: true });
    const old = `${this.finalDir}.old-${process.pid}`;
    if (existsSync(this.finalDir)) renameSync(this.finalDir, old);
    renameSync(this.dir, this.finalDir);
    rmSync(old, { recursive: true, force: true });
  }

  /** After a failure: drop the staging folder unless it holds checkpoints a --resume can use. */
  abandon(): void {
    if (!existsSync(path.join(this.dir, 'checkpoints'))) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Seeds, builds the context, runs, and lands or abandons the outputs. */
export async function runExperiment<C extends object, M extends object>(
  exp: Experiment<C, M>,
  options: RunOptions,
  backend: BackendInfo,
): Promise<{ metrics: M; dir: string; seconds: number }> {
  const config = resolveConfig(exp, options.profile, options.overrides);
  seedEverything(options.seed);
  const ctx = new RunContext(exp.name, options, config, backend);
  const started = performance.now();
  try {
    const metrics = await exp.run(config, ctx);
    ctx.finish(metrics);
    return { metrics, dir: ctx.finalDir, seconds: (performance.now() - started) / 1000 };
  } catch (err) {
    ctx.abandon();
    throw err;
  }
}

export function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}
