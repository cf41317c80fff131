// The grading report: outputs/index.html (one self-contained page, images inlined) and
// outputs/REPORT.md, one section per experiment in registry order, each rendered by the
// section the experiment declares, checked against the artefacts it declares, and marked
// stale when its sources changed after the commit its result came from.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { marked } from 'marked';
import { writeAtomic } from '../run/files.js';
import { PROJECT_ROOT } from '../run/manifest.js';
import { type Checkable, checkExperimentDir } from './check.js';
import { type ReportSection, embedMarkdown, outputFiles } from './declare.js';
import { type RunManifest, provenanceLine, staleness } from './provenance.js';

/** The part of an experiment the report reads. */
export interface Reportable extends Checkable {
  sources: string[];
  // Each experiment's metrics type is its own; the report hands it back what it wrote.
  report: ReportSection<never>;
}

/** What outputs/ holds for one experiment, checked. */
export interface Assessment {
  experiment: Reportable;
  dir: string;
  /** False when there is no metrics.json at all. */
  present: boolean;
  metrics?: unknown;
  manifest: RunManifest;
  /** Why the result is stale; undefined when it is current. */
  stale?: string;
  /** Missing or invalid artefacts, corrupt JSON. */
  problems: string[];
}

function readJsonOrProblem(file: string, problems: string[]): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    problems.push(`${file}: ${existsSync(file) ? `not valid JSON (${(err as Error).message})` : 'missing'}`);
    return undefined;
  }
}

/** Reads and checks every experiment's folder in outRoot. */
export async function assess(outRoot: string, experiments: Reportable[], projectRoot = PROJECT_ROOT): Promise<Assessment[]> {
  const assessments: Assessment[] = [];
  for (const experiment of experiments) {
    const dir = path.join(outRoot, experiment.name);
    if (!existsSync(path.join(dir, 'metrics.json'))) {
      assessments.push({ experiment, dir, present: false, manifest: {}, problems: [] });
      continue;
    }
    const problems = await checkExperimentDir(dir, experiment);
    // checkExperimentDir has named any JSON fault already; these reads only fetch the values.
    const metrics = readJsonOrProblem(path.join(dir, 'metrics.json'), []);
    const manifest = (readJsonOrProblem(path.join(dir, 'run.json'), []) ?? {}) as RunManifest;
    const stale = staleness(projectRoot, manifest, experiment.sources);
    assessments.push({ experiment, dir, present: true, metrics, manifest, stale, problems });
  }
  return assessments;
}

/** The command that (re)makes a result in the outputs folder `dir` sits in: --out named unless it is outputs/. */
function rerunCommand(name: string, dir: string): string {
  const outRoot = path.dirname(dir);
  const quoted = /[^\w@%+=:,./-]/.test(outRoot) ? `'${outRoot.replaceAll("'", "'\\''")}'` : outRoot;
  return `npx a2 run ${name}${path.resolve(outRoot) === path.resolve('outputs') ? '' : ` --out ${quoted}`}`;
}

/** `a2 report --check`: one line per result that is missing, stale, not full-profile or invalid. */
export function checkLines(assessments: Assessment[]): string[] {
  const lines: string[] = [];
  for (const a of assessments) {
    const name = a.experiment.name;
    if (!a.present) {
      lines.push(`${name}: missing (no ${path.join(a.dir, 'metrics.json')}; run ${rerunCommand(name, a.dir)})`);
      continue;
    }
    if (a.stale) lines.push(`${name}: stale (${a.stale})`);
    if (a.manifest.profile !== 'full') lines.push(`${name}: profile ${a.manifest.profile ?? 'unknown'}, not full`);
    if (a.problems.length)
      lines.push(`${name}: invalid (${a.problems[0]}${a.problems.length > 1 ? `; and ${a.problems.length - 1} more` : ''})`);
  }
  return lines;
}

function sectionMarkdown(a: Assessment, imageRef: (file: string) => string): string {
  const { experiment, dir } = a;
  const lines = [`## ${experiment.report.title}`, ''];
  if (!a.present) {
    lines.push(`**Missing**: \`outputs/${experiment.name}\` has no results. Run \`${rerunCommand(experiment.name, dir)}\`.`, '');
    return lines.join('\n');
  }
  if (a.stale) lines.push(`> **⚠ Stale**: ${a.stale}. Re-run \`${rerunCommand(experiment.name, dir)}\` for a current result.`, '');
  if (a.problems.length) lines.push('> **⚠ Problems**:', ...a.problems.map((p) => `> - ${p}`), '');
  if (a.metrics !== undefined) {
    try {
      lines.push(experiment.report.answer(a.metrics as never, outputFiles(dir)), '');
    } catch (err) {
      lines.push(`> **⚠ Problems**: metrics.json could not be rendered (${(err as Error).message}).`, '');
    }
  }
  const pngs = readdirSync(dir)
    .filter((f) => f.endsWith('.png'))
    .map((f) => f.slice(0, -4));
  const order = experiment.report.figures ?? [];
  const ordered = [...order.filter((f) => pngs.includes(f)), ...pngs.filter((f) => !order.includes(f)).sort()];
  for (const fig of ordered) lines.push(`![${experiment.name}/${fig}](${imageRef(path.join(dir, `${fig}.png`))})`, '');
  if (existsSync(path.join(dir, 'observations.md'))) {
    lines.push('### Observations', embedMarkdown(readFileSync(path.join(dir, 'observations.md'), 'utf8')), '');
  }
  lines.push(`<small>${a.stale ? '<strong>stale</strong> — ' : ''}run: ${provenanceLine(a.manifest)}</small>`, '');
  return lines.join('\n');
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
img{max-width:min(100%,760px);height:auto;display:block;margin:1em 0;border:1px solid #ddd}
table{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#eef3f8}h2{border-bottom:2px solid #4c78a8;padding-bottom:4px;margin-top:2em}code{background:#f4f4f4;padding:0 3px}
blockquote{margin:1em 0;padding:.5em 1em;background:#fff4e5;border-left:4px solid #e8590c}
small{color:#666;display:block;overflow-wrap:anywhere}`;

/** Writes index.html and REPORT.md into outRoot; returns their paths. */
export async function writeReport(outRoot: string, experiments: Reportable[], projectRoot = PROJECT_ROOT): Promise<string[]> {
  const assessments = await assess(outRoot, experiments, projectRoot);
  const header =
    '# CS5242 Assignment 2, reproduced by a2\n\nEvery number and figure below was produced by `npx a2 run …` from the real datasets; ' +
    'each section ends with where its result came from, and a result whose code changed since is marked **stale**.\n';
  const md = [header, ...assessments.map((a) => sectionMarkdown(a, (file) => path.relative(outRoot, file)))].join('\n');
  const inline = (file: string) => `data:image/png;base64,${readFileSync(file).toString('base64')}`;
  const body = marked.parse([header, ...assessments.map((a) => sectionMarkdown(a, inline))].join('\n'), { async: false }) as string;
  const html =
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>a2 — CS5242 Assignment 2</title><style>${STYLE}</style></head><body>\n${body}\n</body></html>\n`;
  const htmlFile = path.join(outRoot, 'index.html');
  const mdFile = path.join(outRoot, 'REPORT.md');
  writeAtomic(htmlFile, html);
  writeAtomic(mdFile, md);
  return [htmlFile, mdFile];
}
