// The grading report: outputs/index.html (one self-contained page, images inlined) and
// outputs/REPORT.md, following the assignment Q1 … Q6 from whatever outputs/ holds.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { marked } from 'marked';
import { writeAtomic } from '../run/files.js';

interface Section {
  question: string;
  experiment: string;
  /** Figures in reading order (others found in the folder follow). */
  figures: string[];
  /** The numbers that answer the question, as Markdown, from metrics.json. */
  answer(metrics: Record<string, unknown>, dir: string): string;
}

type Json = Record<string, unknown>;
const num = (v: unknown, digits = 4) => (typeof v === 'number' ? v.toFixed(digits) : 'n/a');
const pct = (v: unknown) => (typeof v === 'number' ? `${(100 * v).toFixed(2)}%` : 'n/a');

const autoencoderAnswer = (m: Json) => {
  const lambdas = (m.lambdas ?? {}) as Record<string, { finalTestL1: number; activeLatents?: number }>;
  return (
    `${m.epochs} epochs, batch ${m.batchSize}, Adam lr ${m.lr}, ${m.trainImages ?? '?'} training images.\n\n| λ | final test L1 | active latent units |\n| --- | --- | --- |\n` +
    Object.entries(lambdas)
      .map(([l, r]) => `| ${l} | ${num(r.finalTestL1)} | ${r.activeLatents ?? 'n/a'} |`)
      .join('\n')
  );
};

const SECTIONS: Section[] = [
  {
    question: 'Q1 — Optimisation: gradient descent and Adam on the bump',
    experiment: 'q1-adam',
    figures: ['q11-gd-trajectory', 'q11-gd-curve', 'q12-threshold', 'q13-moments', 'q14-relu', 'q14-sigmoid', 'q14-abs'],
    answer: (m) => {
      const gd = m.gd as Json,
        h = m.adamMaxH as Json;
      // Enough decimals that the two ends of the bisection bracket print differently.
      const gap = typeof h.failsAt === 'number' && typeof h.escapesAt === 'number' ? h.failsAt - h.escapesAt : 0;
      const digits = gap > 0 ? Math.min(15, Math.max(6, Math.ceil(-Math.log10(gap)) + 1)) : 6;
      const cycle =
        Array.isArray(gd.cycle) && gd.cycle.length ? ` between x = ${(gd.cycle as number[]).map((x) => x.toFixed(4)).join(' and ')}` : '';
      // Runs written before α and ε were recorded used gd's lr for α and ε = 0.
      const alpha = h.alpha ?? gd.lr,
        epsilon = h.epsilon ?? 0;
      return (
        `- **Q1.1** gradient descent (η = ${gd.lr}, h = ${gd.h}): **${gd.outcome}**${cycle}.\n` +
        `- **Q1.2** the largest bump Adam escapes (α = ${alpha}, ε = ${epsilon}): **h = ${num(h.rounded, 2)}** ` +
        `(bisection: ${num(h.exact, digits)}; escapes at ${num(h.escapesAt, digits)}, fails at ${num(h.failsAt, digits)}).`
      );
    },
  },
  {
    question: 'Q2.1 — Fully connected autoencoder',
    experiment: 'q2-fc-ae',
    figures: ['figure', 'loss', 'reconstructions'],
    answer: autoencoderAnswer,
  },
  {
    question: 'Q2.2 — Convolutional autoencoder (Figure 3)',
    experiment: 'q2-conv-ae',
    figures: ['figure', 'loss', 'reconstructions'],
    answer: autoencoderAnswer,
  },
  {
    question: 'Q3 — Common features: the mean latent decoded',
    experiment: 'q3-mean-latent',
    figures: ['mean-latent', 'class-means', 'latent-2d'],
    answer: (m) =>
      Object.entries((m.lambdas ?? {}) as Record<string, { mu: number[] }>)
        .map(
          ([l, r]) =>
            `- λ = ${l}: μ = [${r.mu
              .slice(0, 8)
              .map((v) => v.toFixed(3))
              .join(', ')}${r.mu.length > 8 ? ', …' : ''}]`,
        )
        .join('\n'),
  },
  {
    question: 'Q4 — Understanding PyTorch: six ops by library and by hand',
    experiment: 'q4-ops',
    figures: [],
    answer: (m) => {
      const ops = (m.ops ?? {}) as Record<string, { shape: number[]; maxAbsDiff: number }>;
      return (
        `Inputs: ${JSON.stringify(m.inputs)}.\n\n| op | output shape | max |tfjs − by hand| |\n| --- | --- | --- |\n` +
        Object.entries(ops)
          .map(([op, r]) => `| ${op} | (${r.shape.join(', ')}) | ${r.maxAbsDiff.toExponential(2)} |`)
          .join('\n') +
        '\n\nEvery output is saved as `tfjs_<op>_out.pt` and `my_<op>_out.pt` in the run folder.'
      );
    },
  },
  {
    question: 'Q5.1 — CIFAR-10 from scratch',
    experiment: 'q5-cifar',
    figures: ['curves', 'test-acc-vs-seconds', 'train-loss', 'train-acc', 'test-loss', 'test-acc'],
    answer: (m) => {
      const reached = ((m.timeToAccuracy ?? []) as { target: number; epoch: number | null; seconds: number | null; flops: number | null }[])
        .map((t) =>
          t.epoch === null
            ? `${pct(t.target)} not reached`
            : `${pct(t.target)} at epoch ${t.epoch} (${num(t.seconds, 0)} s, ${(t.flops ?? 0).toExponential(2)} FLOPs)`,
        )
        .join('; ');
      return (
        `- final test accuracy **${pct(m.finalTestAcc)}**, best ${pct(m.bestTestAcc)}, ` +
        `${(m.epochs as unknown[]).length} epochs on ${m.trainImages ?? 'all'} training images, wall time ${num(m.wallSeconds, 0)} s` +
        (typeof m.trainingFlops === 'number' ? `, ${m.trainingFlops.toExponential(2)} training FLOPs.` : '.') +
        (reached ? `\n- time to accuracy: ${reached}.` : '')
      );
    },
  },
  {
    question: 'Q5.2 — Accuracy against the number of training images',
    experiment: 'q5-subsets',
    figures: ['subsets'],
    answer: (m) => {
      const subsets = (m.subsets ?? []) as { perClass: number; images: number; trainAcc: number; testAcc: number; hyper: Json }[];
      return (
        `| per class | images | train acc | test acc | lr | weight decay | epochs |\n| --- | --- | --- | --- | --- | --- | --- |\n` +
        subsets
          .map(
            (s) =>
              `| ${s.perClass} | ${s.images} | ${pct(s.trainAcc)} | ${pct(s.testAcc)} | ${s.hyper.lr} | ${s.hyper.weightDecay} | ${s.hyper.epochs} |`,
          )
          .join('\n') +
        `\n\nEach size's lr and weight decay were chosen on ${m.validationImages} validation images outside every subset (every trial: \`q5-subsets/tuning.md\`); the last row is q5-cifar's run.`
      );
    },
  },
  {
    question: 'Q5 — What each part of the recipe contributes (ablations)',
    experiment: 'q5-ablations',
    figures: ['ablations'],
    answer: (_m, dir) =>
      existsSync(path.join(dir, 'ablations.md')) ? embedMarkdown(readFileSync(path.join(dir, 'ablations.md'), 'utf8')) : '',
  },
  {
    question: 'Q6 — Receptive fields',
    experiment: 'q6-rf',
    figures: ['table'],
    answer: (_m, dir) => (existsSync(path.join(dir, 'table.md')) ? embedMarkdown(readFileSync(path.join(dir, 'table.md'), 'utf8')) : ''),
  },
];

/** A file's Markdown inside a section: its title dropped, its headings two levels down. */
function embedMarkdown(md: string): string {
  return md.replace(/^# .*\n/, '').replace(/^(#{2,4}) /gm, '$1## ');
}

interface Manifest {
  backend?: { name: string };
  seed?: number;
  profile?: string;
  durationSeconds?: number;
  packages?: Record<string, string>;
  gitCommit?: string | null;
  startedAt?: string;
}

function sectionMarkdown(s: Section, outRoot: string, imageRef: (file: string) => string): string {
  const dir = path.join(outRoot, s.experiment);
  const lines = [`## ${s.question}`, ''];
  if (!existsSync(path.join(dir, 'metrics.json'))) {
    lines.push(`**Missing**: \`outputs/${s.experiment}\` has no results. Run \`npx a2 run ${s.experiment}\`.`, '');
    return lines.join('\n');
  }
  const metrics = JSON.parse(readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as Json;
  const manifest = existsSync(path.join(dir, 'run.json')) ? (JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8')) as Manifest) : {};
  lines.push(s.answer(metrics, dir), '');
  const pngs = readdirSync(dir)
    .filter((f) => f.endsWith('.png'))
    .map((f) => f.slice(0, -4));
  const ordered = [...s.figures.filter((f) => pngs.includes(f)), ...pngs.filter((f) => !s.figures.includes(f)).sort()];
  for (const fig of ordered) lines.push(`![${s.experiment}/${fig}](${imageRef(path.join(dir, `${fig}.png`))})`, '');
  if (existsSync(path.join(dir, 'observations.md'))) {
    lines.push('### Observations', embedMarkdown(readFileSync(path.join(dir, 'observations.md'), 'utf8')), '');
  }
  lines.push(
    `<small>run: profile ${manifest.profile ?? '?'}, seed ${manifest.seed ?? '?'}, backend ${manifest.backend?.name ?? '?'}, ` +
      `${num(manifest.durationSeconds, 1)} s, started ${manifest.startedAt ?? '?'}, commit ${manifest.gitCommit ?? 'unknown'}, ` +
      `tfjs ${manifest.packages?.['@tensorflow/tfjs'] ?? '?'}, node ${manifest.packages?.node ?? '?'}</small>`,
    '',
  );
  return lines.join('\n');
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
img{max-width:min(100%,760px);height:auto;display:block;margin:1em 0;border:1px solid #ddd}
table{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#eef3f8}h2{border-bottom:2px solid #4c78a8;padding-bottom:4px;margin-top:2em}code{background:#f4f4f4;padding:0 3px}
small{color:#666;display:block;overflow-wrap:anywhere}`;

/** Writes index.html and REPORT.md into outRoot; returns their paths. */
export function writeReport(outRoot: string, experiments: string[]): string[] {
  const sections = SECTIONS.filter((s) => experiments.includes(s.experiment));
  const header =
    '# CS5242 Assignment 2, reproduced by a2\n\nEvery number and figure below was produced by `npx a2 run …` from the real datasets; each section ends with its run manifest.\n';
  const md = [header, ...sections.map((s) => sectionMarkdown(s, outRoot, (file) => path.relative(outRoot, file)))].join('\n');
  const inline = (file: string) => `data:image/png;base64,${readFileSync(file).toString('base64')}`;
  const body = marked.parse([header, ...sections.map((s) => sectionMarkdown(s, outRoot, inline))].join('\n'), { async: false }) as string;
  const html =
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>a2 — CS5242 Assignment 2</title><style>${STYLE}</style></head><body>\n${body}\n</body></html>\n`;
  const htmlFile = path.join(outRoot, 'index.html');
  const mdFile = path.join(outRoot, 'REPORT.md');
  writeAtomic(htmlFile, html);
  writeAtomic(mdFile, md);
  return [htmlFile, mdFile];
}
