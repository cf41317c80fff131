// One run of one experiment: its staging folder, its writers, and how it lands in outputs/.
// Everything is written under outputs/.partial/<name>/ and moved to outputs/<name>/ only
// when the run succeeds, so a failed or interrupted run never leaves half its files beside
// the last good ones. Checkpoints stay in the staging folder for --resume, with the
// configuration they were made with; a lock file keeps a second a2 out of the folder.
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { InputError, RunError, UsageError } from '../errors.js';
import { type DataFileRecord, resolveDataDir } from '../data/index.js';
import { type BackendInfo, seedEverything } from '../tensor/index.js';
import { type TopLevelSpec, renderSpec } from '../plot/index.js';
import type { Artefact, JsonSchema, ReportSection } from '../report/declare.js';
import { describeCheckpoints } from './checkpoint.js';
import { writeAtomic, writeJsonAtomic } from './files.js';
import { stopLiveProgress } from './progress.js';
import { LOCK_FILE, acquireLock } from './lock.js';
import { loadedCodeGitState, packageVersions } from './manifest.js';

export const PROFILES = ['full', 'quick', 'smoke'] as const;
export type Profile = (typeof PROFILES)[number];

/** Options every experiment receives from the CLI; experiment flags ride in `flags`. */
export interface RunOptions {
  profile: Profile;
  seed: number;
  outRoot: string;
  dataDir?: string;
  resume?: boolean;
  /** Overrides of config keys (camelCase), from --epochs, --lr and experiment flags; only keys the experiment takes. */
  overrides: Record<string, unknown>;
  /** Flags given on the command line that this experiment does not take (run with others that do); recorded in run.json. */
  ignoredFlags?: string[];
  /**
   * Overrides of the other experiments run by the same command, by name: a prerequisite this run
   * builds on must have been made with them (and with none of this run's own overrides).
   */
  prerequisiteOverrides?: Record<string, Record<string, unknown>>;
  /** The numeric precision asked for with --precision; recorded in run.json. */
  precision?: 'auto' | 'fp32' | 'bf16';
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
  /** Why --seed changes nothing here (no random number is drawn), or absent where the seed matters. */
  seedless?: string;
  /** Config keys no flag may set, with why (q5-subsets: each subset size sets its own epochs, batch size and lr). */
  notSetByFlags?: Partial<Record<keyof C & string, string>>;
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

/** Whether a flag may set config key `key` of `exp`: the config has it and the experiment does not keep it to itself. */
export function takesKey(exp: Pick<Experiment<object>, 'defaults' | 'notSetByFlags'>, key: string): boolean {
  return key in exp.defaults && !(key in (exp.notSetByFlags ?? {}));
}

/** defaults ← profile preset ← explicit overrides; an override of a key the experiment does not take is a UsageError. */
export function resolveConfig<C extends object>(
  exp: Pick<Experiment<C>, 'name' | 'defaults' | 'profiles' | 'notSetByFlags'>,
  profile: Profile,
  overrides: Record<string, unknown>,
): C {
  const config = { ...exp.defaults, ...(exp.profiles[profile] ?? {}) } as C;
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    if (!takesKey(exp, key)) throw new UsageError(`${exp.name} does not take a setting "${key}"`);
    (config as Record<string, unknown>)[key] = value;
  }
  return Object.freeze(config);
}

/** `key: <saved> value vs <wanted> value` for every key where two configurations differ. */
export function configDifferences(saved: object, wanted: object, labels: [string, string]): string[] {
  const a = saved as Record<string, unknown>,
    b = wanted as Record<string, unknown>;
  return [...new Set([...Object.keys(b), ...Object.keys(a)])]
    .filter((key) => !isDeepStrictEqual(a[key], b[key]))
    .map((key) => `${key}: ${labels[0]} ${JSON.stringify(a[key]) ?? 'absent'} vs ${labels[1]} ${JSON.stringify(b[key]) ?? 'absent'}`);
}

/** What the staging folder records about the run its checkpoints belong to. */
interface StagedRun {
  experiment: string;
  profile: string;
  seed: number;
  config: object;
  /** What the convolutions multiplied in: a resumed curve must not mix fp32 and bf16 epochs. */
  precision?: string;
}
const STAGED_RUN = 'staged-run.json';

export class RunContext {
  readonly dir: string;
  readonly finalDir: string;
  readonly dataDir: string;
  readonly dataFiles: DataFileRecord[] = [];
  /** Extra facts for run.json (epoch times, model summaries). */
  readonly manifestExtras: Record<string, unknown> = {};
  private readonly started = new Date();
  // The code that runs is the code at the start: commits made while a long run trains are not it.
  private readonly git = loadedCodeGitState();
  private readonly releaseLock: () => void;

  constructor(
    readonly experiment: string,
    readonly options: RunOptions,
    readonly config: object,
    readonly backend: BackendInfo,
  ) {
    this.finalDir = path.resolve(options.outRoot, experiment);
    this.dir = path.resolve(options.outRoot, '.partial', experiment);
    this.dataDir = resolveDataDir(options.dataDir);
    refuseFileInTheWay(this.finalDir);
    makeStagingFolder(this.dir, path.resolve(options.outRoot));
    this.releaseLock = acquireLock(this.dir, (l) => this.log(l));
    try {
      const staged: StagedRun = { experiment, profile: options.profile, seed: options.seed, config, precision: backend.precision };
      if (options.resume) {
        this.checkResumable(staged);
        // run.json's duration is this process's: it says what an earlier process had already done.
        const kept = describeCheckpoints(this.path('checkpoints'));
        if (kept) this.manifestExtras.resumedWith = kept;
      } else this.clearStaging();
      writeJsonAtomic(this.path(STAGED_RUN), staged);
    } catch (err) {
      this.releaseLock();
      throw err;
    }
  }

  /** --resume continues only the configuration the checkpoints were made with; any difference is refused, listed. */
  private checkResumable(requested: StagedRun): void {
    const checkpoints = this.path('checkpoints');
    if (describeCheckpoints(checkpoints) === undefined) {
      this.log(`--resume: no checkpoint in ${checkpoints}; starting from the beginning`);
      return;
    }
    const file = this.path(STAGED_RUN);
    if (!existsSync(file))
      throw new UsageError(
        `--resume: the checkpoint in ${checkpoints} does not record the configuration it was made with; run without --resume to start over`,
      );
    const saved = readJson<StagedRun>(file);
    const differences = configDifferences(
      // Staging folders from before precision was recorded are not checked for it.
      { seed: saved.seed, profile: saved.profile, precision: saved.precision ?? requested.precision, ...saved.config },
      { seed: requested.seed, profile: requested.profile, precision: requested.precision, ...requested.config },
      ['checkpoint', 'requested'],
    );
    if (differences.length > 0)
      throw new UsageError(
        `--resume: the checkpoint in ${checkpoints} was made with another configuration (${differences.join('; ')}); resume with the checkpoint's flags, or run without --resume to start over`,
      );
  }

  /** A run without --resume starts from an empty staging folder, saying what an interrupted run had left there. */
  private clearStaging(): void {
    const left = describeCheckpoints(this.path('checkpoints'));
    if (left) this.log(`discarding the checkpoint of an interrupted run (${left}); --resume would have continued it`);
    for (const entry of readdirSync(this.dir)) if (entry !== LOCK_FILE) rmSync(this.path(entry), { recursive: true, force: true });
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
    if (this.signal?.aborted)
      throw new RunError(
        `interrupted${describeCheckpoints(this.path('checkpoints')) ? '; --resume continues from the last checkpoint' : ''}`,
      );
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
   * q5-subsets q5-cifar's full-set numbers). They are used only if made with this run's profile
   * and seed and exactly the configuration that profile gives the prerequisite (with the flags
   * the same command gave it, never this run's own), and `usable` accepts them; otherwise the
   * prerequisite is run first. The run used is recorded in this run's manifest.
   */
  async outputsBuiltOn<C extends object, M extends object>(
    exp: Experiment<C, M>,
    usable: (run: LandedRun) => boolean = () => true,
  ): Promise<{ dir: string; run: LandedRun }> {
    const dir = this.outputsOf(exp.name);
    const manifest = path.join(dir, 'run.json');
    const overrides = this.options.prerequisiteOverrides?.[exp.name] ?? {};
    const wanted = resolveConfig(exp, this.options.profile, overrides);
    const existing = existsSync(manifest) ? readJson<LandedRun>(manifest) : undefined;
    const differences = existing
      ? configDifferences(
          { profile: existing.profile, seed: existing.seed, ...existing.config },
          { profile: this.options.profile, seed: this.seed, ...wanted },
          [`outputs/${exp.name}`, 'needed'],
        )
      : [];
    if (!existing || differences.length > 0 || !usable(existing)) {
      this.log(
        `outputs/${exp.name} ${existing ? `was run with other settings (${differences.join('; ') || 'its files are incomplete'})` : 'is missing'}; running ${exp.name} first (profile ${this.options.profile})`,
      );
      await runExperiment(exp, { ...this.options, overrides, ignoredFlags: [], resume: false }, this.backend);
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
      ...(this.options.ignoredFlags?.length ? { ignoredFlags: this.options.ignoredFlags } : {}),
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
    // Before the checkpoints go: a file that appeared where the results go must not cost the training.
    refuseFileInTheWay(this.finalDir);
    rmSync(path.join(this.dir, 'checkpoints'), { recursive: true, force: true });
    rmSync(this.path(STAGED_RUN), { force: true });
    const old = `${this.finalDir}.old-${process.pid}`;
    const hadOld = existsSync(this.finalDir);
    if (hadOld) renameSync(this.finalDir, old);
    // The lock moves with the folder: until the rename no other a2 can have entered it.
    try {
      renameSync(this.dir, this.finalDir);
    } catch (err) {
      // Put the last good result back rather than leave it stranded in .old-<pid>.
      if (hadOld) renameSync(old, this.finalDir);
      throw err;
    }
    rmSync(path.join(this.finalDir, LOCK_FILE), { force: true });
    rmSync(old, { recursive: true, force: true });
    this.releaseLock();
    removeIfEmpty(path.dirname(this.dir));
  }

  /** After a failure: drop the staging folder unless it holds checkpoints a --resume can use; release the lock. */
  abandon(): void {
    this.releaseLock();
    if (describeCheckpoints(this.path('checkpoints')) === undefined) {
      rmSync(this.dir, { recursive: true, force: true });
      removeIfEmpty(path.dirname(this.dir));
    }
  }
}

/** A file where the results folder goes would be replaced by it: refused, before any training. */
function refuseFileInTheWay(finalDir: string): void {
  if (existsSync(finalDir) && !statSync(finalDir).isDirectory())
    throw new RunError(`${finalDir}: a file is where the results folder goes; move it away or give another --out`);
}

/**
 * Creates the staging folder. Node's recursive mkdir reports a read-only --out as ENOENT (the
 * missing .partial/); the outputs folder's own access check says what is wrong.
 */
function makeStagingFolder(dir: string, outRoot: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT' && existsSync(outRoot)) accessSync(outRoot, constants.W_OK);
    throw err;
  }
}

/** outputs/.partial/ once no run is staged there. */
function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not empty (another run is staged, or checkpoints wait for --resume) or already gone
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
    stopLiveProgress();
    ctx.abandon();
    throw err;
  }
}

/** A JSON file a2 wrote; a missing, unreadable or corrupt one is an InputError naming it. */
export function readJson<T>(file: string): T {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new InputError(
      file,
      'a JSON file',
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory' : `an unreadable file (${code})`,
    );
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new InputError(file, 'JSON', `text that does not parse (${(err as Error).message})`);
  }
}
