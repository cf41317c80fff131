// What an experiment declares about its outputs, so that src/report can check and render
// them without naming any experiment: the files a run leaves, the JSON schema its metrics
// must match, and its section of the report. Kept free of heavy imports: every experiment
// module imports it.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** A JSON schema (draft 7, as ajv reads it). */
export type JsonSchema = Record<string, unknown>;

export const num: JsonSchema = { type: 'number' };
export const str: JsonSchema = { type: 'string' };
export const numbers: JsonSchema = { type: 'array', items: num };
/** An object schema whose listed properties are all required. */
export function obj(required: Record<string, JsonSchema>, extra: JsonSchema = {}): JsonSchema {
  return { type: 'object', required: Object.keys(required), properties: required, ...extra };
}
/** An array schema with at least `minItems` items of `items`. */
export function list(items: JsonSchema, minItems = 1): JsonSchema {
  return { type: 'array', minItems, items };
}

/**
 * How a file is checked: png decodes to an image; json parses (and matches `schema` when
 * given); pt is read as a torch.save tensor; md and text are non-empty; bytes exist.
 */
export type ArtefactKind = 'png' | 'json' | 'md' | 'text' | 'pt' | 'bytes';

export interface Artefact {
  /** Path inside outputs/<experiment>/. */
  file: string;
  kind: ArtefactKind;
  schema?: JsonSchema;
}

/** A figure written by RunContext.writeFigure: the PNG and its Vega-Lite spec with data. */
export function figures(...stems: string[]): Artefact[] {
  return stems.flatMap((stem) => [
    { file: `${stem}.png`, kind: 'png' as const },
    { file: `${stem}.vl.json`, kind: 'json' as const, schema: obj({ $schema: str }) },
  ]);
}

/** What a report section may read from its experiment's landed folder. */
export interface OutputFiles {
  dir: string;
  /** A text file's contents, or undefined when it is missing. */
  text(rel: string): string | undefined;
  /** A Markdown file set inside the section (its title dropped, headings shifted down); '' when missing. */
  markdown(rel: string): string;
}

/** A file's Markdown inside a section: its title dropped, its headings two levels down. */
export function embedMarkdown(md: string): string {
  return md.replace(/^# .*\n/, '').replace(/^(#{2,4}) /gm, '$1## ');
}

export function outputFiles(dir: string): OutputFiles {
  const text = (rel: string) => (existsSync(path.join(dir, rel)) ? readFileSync(path.join(dir, rel), 'utf8') : undefined);
  return {
    dir,
    text,
    markdown: (rel) => embedMarkdown(text(rel) ?? ''),
  };
}

/** An experiment's section of outputs/index.html and REPORT.md. */
export interface ReportSection<M> {
  /** The section heading, e.g. 'Q6 — Receptive fields'. */
  title: string;
  /** PNG stems in reading order; any other PNGs the run wrote follow, sorted. */
  figures?: string[];
  /** The numbers that answer the question, as Markdown. */
  answer(metrics: M, files: OutputFiles): string;
}
