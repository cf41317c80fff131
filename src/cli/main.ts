// The a2 command line: list, run, data, report. The only place that decides exit codes:
// 0 ok, 1 a run or input failed, 2 usage.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { UsageError, describeError } from '../errors.js';
import type { Experiment } from '../run/index.js';
import { type FlagKind, type FlagSpec, type RegistryEntry, flagKey, loadExperiments, orderByNeeds } from './registry.js';

export type { FlagSpec, RegistryEntry } from './registry.js';

// Numbers as people write them: JavaScript's Number() would also take "", " ", "0x10", "0b1" and "1e0" for a count.
const WHOLE = /^[0-9]+$/;
const DECIMAL = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;

function parsePositiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!WHOLE.test(value) || !Number.isSafeInteger(n) || n <= 0)
      throw new InvalidArgumentError(`${flag} expects a positive whole number in digits, found "${value}".`);
    return n;
  };
}

function parseFiniteNumber(flag: string, positive = false) {
  return (value: string): number => {
    const n = Number(value);
    if (!DECIMAL.test(value) || !Number.isFinite(n) || (positive && n <= 0)) {
      throw new InvalidArgumentError(
        `${flag} expects a ${positive ? 'positive ' : ''}decimal number (1e-3 form allowed), found "${value}".`,
      );
    }
    return n;
  };
}

export function parseSeed(value: string): number {
  const n = Number(value);
  if (!WHOLE.test(value) || n > 0xffffffff)
    throw new InvalidArgumentError(`--seed expects a whole number from 0 to 4294967295 in digits, found "${value}".`);
  return n;
}

/** A text flag: "" would silently mean its default (the current folder, the assignment's file, Table 1). */
function parseNonBlank(flag: string, what: string) {
  return (value: string): string => {
    if (value.trim() === '') throw new InvalidArgumentError(`${flag} expects ${what}, found an empty string.`);
    return value;
  };
}
const parseFolder = (flag: string) => parseNonBlank(flag, 'a folder');

/**
 * Commander lets the last of a repeated flag win; a2 refuses the repeat instead, so that no
 * value a user typed is silently dropped (`--epochs 1 --epochs 2`). Counted from Commander's own
 * option events, so a value that looks like a flag is taken as Commander takes it.
 */
function refuseRepeatedFlags(command: Command): void {
  const given = new Map<string, (string | undefined)[]>();
  for (const option of command.options)
    command.on(`option:${option.name()}`, (value?: string) =>
      given.set(option.long ?? option.name(), [...(given.get(option.long ?? option.name()) ?? []), value]),
    );
  command.hook('preAction', () => {
    for (const [flag, values] of given)
      if (values.length > 1)
        throw new UsageError(
          `${flag} given ${values.length} times (${values.map((v) => (v === undefined ? 'without a value' : `"${v}"`)).join(', ')}); give it once`,
        );
  });
}

function makeOption(spec: FlagSpec): Option {
  const name = spec.flags.split(/[ ,]+/).find((f) => f.startsWith('--'))!;
  const option = new Option(spec.flags, spec.description);
  const parsers: Record<FlagKind, ((v: string) => unknown) | undefined> = {
    number: parseFiniteNumber(name),
    'positive-int': parsePositiveInt(name),
    string: parseNonBlank(name, 'a value'),
    boolean: undefined,
  };
  const parser = parsers[spec.kind];
  return parser ? option.argParser(parser) : option;
}

const PRECISIONS = ['auto', 'fp32', 'bf16'] as const;
type PrecisionChoice = (typeof PRECISIONS)[number];

interface RunFlags {
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed: number;
  /** --seed was typed (not its default). */
  seedGiven?: boolean;
  backend: string;
  precision: PrecisionChoice;
  dataDir?: string;
  out: string;
  profile: string;
  resume?: boolean;
  /** false with --no-fetch: a missing dataset fails the run instead of being downloaded. */
  fetch?: boolean;
  [flag: string]: unknown;
}

/** What one experiment of `a2 run` is given: the overrides it takes, and the flags it does not take (run beside experiments that do). */
export interface PlannedRun {
  entry: RegistryEntry;
  experiment: Experiment<object>;
  overrides: Record<string, unknown>;
  ignoredFlags: string[];
}

/** The flags of `a2 run` that set config keys, by key: the training flags every experiment may take, and the experiments' own. */
function configFlags(registry: RegistryEntry[]): Map<string, string> {
  const flags = new Map([
    ['epochs', '--epochs'],
    ['batchSize', '--batch-size'],
    ['lr', '--lr'],
  ]);
  for (const entry of registry) for (const spec of entry.flags ?? []) flags.set(flagKey(spec.flags), spec.flags.split(/[ ,]+/)[0]);
  return flags;
}

/**
 * Which experiments run and what each is given. A flag no selected experiment takes is a
 * UsageError naming the experiments that do take it; a flag some of several experiments ignore
 * is said once here and recorded in their run.json.
 */
export async function planRun(
  names: string[],
  flags: RunFlags,
  registry: RegistryEntry[],
  log: (l: string) => void,
): Promise<PlannedRun[]> {
  const known = registry.map((e) => e.name);
  const unknown = names.filter((n) => n !== 'all' && !known.includes(n));
  if (unknown.length > 0)
    throw new UsageError(`unknown experiment ${unknown.map((u) => `"${u}"`).join(', ')}; choose from: ${known.join(', ')}, all`);
  const selected = orderByNeeds(names.includes('all') ? known : [...new Set(names)], registry);
  const given = [...configFlags(registry)].filter(([key]) => flags[key] !== undefined);
  // Loading an experiment loads tfjs: names are checked first, all experiments are loaded only to name a refused flag's takers.
  const load = async (name: string) => (await registry.find((e) => e.name === name)!.load()) as Experiment<object>;
  const plans: PlannedRun[] = [];
  for (const name of selected)
    plans.push({ entry: registry.find((e) => e.name === name)!, experiment: await load(name), overrides: {}, ignoredFlags: [] });
  const { takesKey } = await import('../run/index.js');
  for (const [key, flag] of given) {
    const takers = plans.filter((p) => takesKey(p.experiment, key));
    if (takers.length === 0) {
      const everyTaker: string[] = [];
      for (const name of known) if (takesKey(await load(name), key)) everyTaker.push(name);
      const refusals = plans.flatMap((p) => {
        const why = (p.experiment.notSetByFlags as Record<string, string> | undefined)?.[key];
        return why ? [`${p.entry.name} does not take ${flag}: ${why}`] : [];
      });
      const what = refusals.length > 0 ? refusals.join('; ') : `${flag} is not used by ${selected.join(', ')}`;
      throw new UsageError(`${what}; experiments that take ${flag}: ${everyTaker.join(', ') || 'none'}`);
    }
    for (const plan of plans) {
      if (takers.includes(plan)) plan.overrides[key] = flags[key];
      else plan.ignoredFlags.push(flag);
    }
    const ignoring = plans.filter((p) => !takers.includes(p)).map((p) => p.entry.name);
    if (ignoring.length > 0)
      log(`note: ${flag} is used by ${takers.map((p) => p.entry.name).join(', ')} and ignored by ${ignoring.join(', ')}`);
  }
  // --seed changes nothing where no random number is drawn: refused when it would change nothing at all, noted otherwise.
  if (flags.seedGiven) {
    const seedless = plans.filter((p) => p.experiment.seedless);
    if (seedless.length === plans.length)
      throw new UsageError(`--seed changes nothing in ${seedless.map((p) => `${p.entry.name} (${p.experiment.seedless})`).join('; ')}`);
    for (const plan of seedless) plan.ignoredFlags.push('--seed');
    if (seedless.length > 0)
      log(`note: --seed changes nothing in ${seedless.map((p) => p.entry.name).join(', ')}: no random number is drawn there`);
  }
  return plans;
}

async function runCommand(names: string[], flags: RunFlags, registry: RegistryEntry[], log: (l: string) => void): Promise<number> {
  // Pin the commit before any experiment's code is loaded: every run.json of this process names it.
  (await import('../run/index.js')).loadedCodeGitState();
  const plans = await planRun(names, flags, registry, log);

  // Loaded only now, so `a2 list` and usage errors never pay for the backend.
  const { initBackend } = await import('../tensor/index.js');
  const { runExperiment } = await import('../run/index.js');
  const { fetchAllowed, withDatasetFetch } = await import('../data/index.js');
  let backend: Awaited<ReturnType<typeof initBackend>>;
  try {
    backend = await initBackend(flags.backend as Parameters<typeof initBackend>[0], { precision: flags.precision });
  } catch (err) {
    if (flags.backend === 'auto' || err instanceof UsageError) throw err;
    throw new UsageError(
      `--backend ${flags.backend}: ${err instanceof Error ? err.message : String(err)}; --backend auto picks one that loads`,
    );
  }
  for (const notice of backend.notices) log(`note: ${notice}`);
  log(`backend: ${backend.name}${backend.kernels.length ? ` (a2 kernels: ${backend.kernels.join(', ')})` : ''}`);
  const { formatPlan, planRun: expectedTimes, startLine } = await import('../run/plan.js');
  const plan = expectedTimes(
    plans.map((p) => p.entry.name),
    flags.profile,
    flags.out,
  );
  if (plans.length > 1) for (const line of formatPlan(plan, flags.profile)) log(line);

  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    log('stopping after the current batch (Ctrl-C again to quit at once)…');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const prerequisiteOverrides = Object.fromEntries(plans.map((p) => [p.entry.name, p.overrides]));
  const summary: { name: string; status: string; headline: string; seconds: number }[] = [];
  try {
    for (const { entry, experiment, overrides, ignoredFlags } of plans) {
      if (controller.signal.aborted) {
        summary.push({ name: entry.name, status: 'skipped', headline: '', seconds: 0 });
        continue;
      }
      const started = performance.now();
      if (plans.length > 1) log(startLine(plan, entry.name));
      try {
        const attempt = () =>
          runExperiment(
            experiment,
            {
              profile: flags.profile as 'full' | 'quick' | 'smoke',
              seed: flags.seed,
              outRoot: flags.out,
              dataDir: flags.dataDir,
              resume: flags.resume,
              overrides,
              ignoredFlags,
              prerequisiteOverrides,
              precision: flags.precision,
              signal: controller.signal,
              log,
            },
            backend,
          );
        const result = await withDatasetFetch(attempt, fetchAllowed(flags.fetch), (l) => log(`[${entry.name}] ${l}`));
        const headline = experiment.headline?.(result.metrics) ?? '';
        summary.push({ name: entry.name, status: 'ok', headline, seconds: result.seconds });
        log(`[${entry.name}] done in ${result.seconds.toFixed(1)} s → ${result.dir}${headline ? ` (${headline})` : ''}`);
      } catch (err) {
        if (err instanceof UsageError) throw err;
        const message = describeError(err);
        log(`[${entry.name}] FAILED: ${message}`);
        summary.push({
          name: entry.name,
          status: 'failed',
          headline: message.split('\n')[0],
          seconds: (performance.now() - started) / 1000,
        });
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (plans.length > 1) {
    const width = Math.max('experiment'.length, ...summary.map((s) => s.name.length));
    log(`\n${'experiment'.padEnd(width + 1)}status   time      headline`);
    for (const s of summary) log(`${s.name.padEnd(width + 1)}${s.status.padEnd(9)}${`${s.seconds.toFixed(1)} s`.padEnd(10)}${s.headline}`);
  }
  // The report follows every landed result, one experiment's too (a failed lone run lands nothing).
  if (plans.length > 1 || summary.some((s) => s.status === 'ok')) {
    const { writeReport } = await import('../report/index.js');
    try {
      const written = await writeReport(flags.out, await loadExperiments(registry));
      log(`report: ${written.join(', ')}`);
    } catch (err) {
      // The results have landed; a report that could not be written (another a2 landing into the
      // same folder at that moment, a full disk) is said, and rewritten by a2 report.
      log(`note: the report was not rewritten (${describeError(err)}); npx a2 report --out ${flags.out} writes it`);
    }
  }
  return summary.some((s) => s.status !== 'ok') ? 1 : 0;
}

type RunAction = (names: string[], flags: RunFlags, registry: RegistryEntry[], log: (l: string) => void) => Promise<number>;

export function buildProgram(
  registry: RegistryEntry[],
  act: (p: Promise<number>) => void,
  log: (l: string) => void,
  runAction: RunAction = runCommand,
): Command {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const program = new Command('a2')
    .description('CS5242 Assignment 2, reproduced: every question from real data and real training, into outputs/.')
    .version(version, '--version', "print a2's version")
    .showHelpAfterError('(a2 --help lists the commands)')
    .exitOverride();

  program
    .command('list')
    .description('list the experiments')
    .action(() => {
      const width = Math.max(...registry.map((e) => e.name.length));
      for (const e of registry) log(`${e.name.padEnd(width + 2)}${e.summary}`);
      act(Promise.resolve(0));
    });

  const run = program
    .command('run')
    .description('run experiments (or all) and write their outputs')
    .showHelpAfterError('(a2 run --help lists its flags, each with the experiments that take it)')
    .argument('<experiments...>', `experiment names or "all": ${registry.map((e) => e.name).join(', ')}`)
    .option('--epochs <n>', 'training epochs (where the experiment trains)', parsePositiveInt('--epochs'))
    .option('--batch-size <n>', 'minibatch size', parsePositiveInt('--batch-size'))
    .option('--lr <rate>', 'learning rate', parseFiniteNumber('--lr', true))
    .option('--seed <n>', 'seed for every random choice', parseSeed, 0)
    .addOption(
      new Option('--backend <name>', 'tensor backend').choices(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    )
    .addOption(new Option('--data-dir <dir>', 'dataset folder (default: $A2_DATA_DIR, else data/)').argParser(parseFolder('--data-dir')))
    .addOption(
      new Option('--precision <mode>', 'numeric precision of training (auto picks per backend)').choices(PRECISIONS).default('auto'),
    )
    .option('--out <dir>', 'outputs folder', parseFolder('--out'), 'outputs')
    .addOption(
      new Option('--profile <name>', "full = the assignment's settings; quick = minutes; smoke = seconds")
        .choices(['full', 'quick', 'smoke'])
        .default('full'),
    )
    .option('--resume', 'continue an interrupted run from its last checkpoint')
    .option('--no-fetch', 'fail on a missing MNIST or CIFAR-10 instead of downloading it (also A2_NO_FETCH=1)');
  const seen = new Set<string>();
  for (const entry of registry)
    for (const spec of entry.flags ?? []) {
      if (seen.has(spec.flags)) continue;
      seen.add(spec.flags);
      run.addOption(makeOption({ ...spec, description: `${spec.description} [${entry.name}]` }));
    }
  run.action((names: string[], flags: RunFlags, command: Command) =>
    act(runAction(names, { ...flags, seedGiven: command.getOptionValueSource('seed') === 'cli' }, registry, log)),
  );

  const data = program.command('data').description('fetch or verify the datasets');
  data
    .command('fetch')
    .description('download the official archives and check their md5')
    .argument('[dataset]', 'mnist or cifar10 (default: both)')
    .option('--data-dir <dir>', 'dataset folder (default: $A2_DATA_DIR, else data/)', parseFolder('--data-dir'))
    .action((dataset: string | undefined, opts: { dataDir?: string }) =>
      act(
        (async () => {
          const { DATASETS, fetchDataset, resolveDataDir } = await import('../data/index.js');
          if (dataset !== undefined && !DATASETS.includes(dataset as never))
            throw new UsageError(`unknown dataset "${dataset}"; choose from: ${DATASETS.join(', ')}`);
          const dir = resolveDataDir(opts.dataDir);
          let failed = false;
          for (const name of dataset ? [dataset as (typeof DATASETS)[number]] : DATASETS) {
            const problems = await fetchDataset(dir, name, log);
            for (const p of problems) log(`${name}: ${p}`);
            if (problems.length === 0) log(`${name}: ok in ${dir}`);
            failed ||= problems.length > 0;
          }
          return failed ? 1 : 0;
        })(),
      ),
    );
  data
    .command('verify')
    .description('check the md5 of every dataset file present')
    .option('--data-dir <dir>', 'dataset folder (default: $A2_DATA_DIR, else data/)', parseFolder('--data-dir'))
    .action((opts: { dataDir?: string }) =>
      act(
        (async () => {
          const { ASSIGNMENT_DIRS, DATASETS, locateAssignmentFile, md5, verifyDataset, resolveDataDir } = await import('../data/index.js');
          const dir = resolveDataDir(opts.dataDir);
          let bad = 0;
          for (const name of DATASETS)
            for (const check of verifyDataset(dir, name)) {
              if (check.status !== 'ok') bad++;
              log(
                `${check.status.padEnd(8)} ${check.name}${check.status === 'bad-md5' ? ` (md5 ${check.found}, expected ${check.expected})` : check.status === 'missing' ? ` (expected md5 ${check.expected})` : ''}`,
              );
            }
          // The assignment's Q4 files: no published md5 to check them against, only whether they are there.
          for (const name of ['pixel_input.pt', 'filter.pt']) {
            const found = locateAssignmentFile(dir, name);
            if (!found) bad++;
            log(
              found
                ? `${'present'.padEnd(8)} ${found} (md5 ${md5(readFileSync(found))}; the assignment publishes none to check against)`
                : `${'missing'.padEnd(8)} ${path.join(dir, ASSIGNMENT_DIRS[0], name)} (or in ${ASSIGNMENT_DIRS[1]}/; q4-ops needs it, and only the assignment has it)`,
            );
          }
          return bad > 0 ? 1 : 0;
        })(),
      ),
    );

  program
    .command('report')
    .description('write outputs/index.html and outputs/REPORT.md from what is in outputs/')
    .option('--out <dir>', 'outputs folder', parseFolder('--out'), 'outputs')
    .option('--check', 'write nothing; list missing, stale, non-full-profile and invalid results, exit 1 if any')
    .option(
      '--allow-missing <experiments>',
      'with --check: these experiments (comma-separated) may be missing; still listed, not failed',
      (v: string) =>
        v
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean),
    )
    .action((opts: { out: string; check?: boolean; allowMissing?: string[] }) =>
      act(
        (async () => {
          const { assess, checkLines, writeReport } = await import('../report/index.js');
          const experiments = await loadExperiments(registry);
          const unknown = (opts.allowMissing ?? []).filter((n) => !registry.some((e) => e.name === n));
          if (unknown.length)
            throw new UsageError(
              `--allow-missing: unknown experiment ${unknown.join(', ')}; choose from: ${registry.map((e) => e.name).join(', ')}`,
            );
          if (opts.allowMissing && !opts.check) throw new UsageError('--allow-missing goes with --check');
          // The report reads the results in --out: a mistyped folder would get a report of nothing.
          const { existsSync, statSync } = await import('node:fs');
          if (!existsSync(opts.out)) throw new UsageError(`--out ${opts.out}: no such folder (expected an outputs folder with results)`);
          if (!statSync(opts.out).isDirectory()) throw new UsageError(`--out ${opts.out}: a file, expected an outputs folder`);
          if (!opts.check) {
            log(`report: ${(await writeReport(opts.out, experiments)).join(', ')}`);
            return 0;
          }
          const lines = checkLines(await assess(opts.out, experiments));
          // A result not yet produced may be let through by name; it is still listed, and nothing else is.
          const allowed = (line: string) => (opts.allowMissing ?? []).some((n) => line.startsWith(`${n}: missing (`));
          for (const line of lines) log(allowed(line) ? `${line} [allowed by --allow-missing]` : line);
          if (lines.length === 0) log(`all ${experiments.length} results in ${opts.out} are present, current, full-profile and valid`);
          return lines.some((l) => !allowed(l)) ? 1 : 0;
        })(),
      ),
    );
  const everyCommand = (command: Command): Command[] => [command, ...command.commands.flatMap(everyCommand)];
  for (const command of everyCommand(program)) refuseRepeatedFlags(command);
  return program;
}

/** Parses argv and carries out the command; resolves to its exit code (0 when a command has none). */
async function parseAndAct(argv: string[], registry: RegistryEntry[], log: (l: string) => void, runAction?: RunAction): Promise<number> {
  let pending: Promise<number> | undefined;
  const act = (p: Promise<number>) => {
    pending = p;
  };
  await buildProgram(registry, act, log, runAction).parseAsync(argv);
  return pending === undefined ? 0 : await pending;
}

/** What `a2 run …` would give each experiment, without running anything: argv → overrides and ignored flags. */
export async function planArgv(argv: string[], registry: RegistryEntry[], log: (l: string) => void = () => {}): Promise<PlannedRun[]> {
  let plans: PlannedRun[] = [];
  await parseAndAct(argv, registry, log, async (names, flags, reg, l) => {
    plans = await planRun(names, flags, reg, l);
    return 0;
  });
  return plans;
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[], registry: RegistryEntry[], log: (l: string) => void = (l) => console.log(l)): Promise<number> {
  try {
    return await parseAndAct(argv, registry, log);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : 2;
    }
    console.error(`error: ${describeError(err)}`);
    return err instanceof UsageError ? 2 : 1;
  }
}
