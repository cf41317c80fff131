// Checks what a run of an experiment must leave in outputs/<name>/, as the experiment itself
// declares it (src/report/declare.ts): every artefact present and of its kind (PNGs that
// decode, JSON that parses and matches its schema, .pt files that read), metrics.json
// matching the experiment's schema and run.json the manifest's. Used by CI, the report and the tests.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { loadImage } from 'canvas';
import type { Artefact, JsonSchema } from './declare.js';
import { num, obj, str } from './declare.js';

/** The part of an experiment the check reads. */
export interface Checkable {
  name: string;
  artefacts: Artefact[];
  metricsSchema: JsonSchema;
}

export const RUN_SCHEMA = obj({
  experiment: str,
  profile: str,
  seed: num,
  config: { type: 'object' },
  backend: obj({ name: str }),
  packages: { type: 'object' },
  dataFiles: { type: 'array' },
  startedAt: str,
  durationSeconds: num,
});

const ajv = new Ajv({ allErrors: true, strict: false });
const compiled = new WeakMap<JsonSchema, ValidateFunction>();
function validator(schema: JsonSchema): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/** Problems with one file of a declared kind; empty when it is fine. */
async function checkFile(full: string, artefact: Artefact): Promise<string[]> {
  if (!existsSync(full)) return [`${full}: missing`];
  if (!statSync(full).isFile()) return [`${full}: not a file`];
  const bytes = readFileSync(full);
  switch (artefact.kind) {
    case 'png':
      try {
        const img = await loadImage(bytes);
        return img.width < 10 || img.height < 10 ? [`${full}: decodes to ${img.width}×${img.height}`] : [];
      } catch (err) {
        return [`${full}: not a PNG that decodes (${(err as Error).message})`];
      }
    case 'json': {
      let value: unknown;
      try {
        value = JSON.parse(bytes.toString('utf8'));
      } catch (err) {
        return [`${full}: not valid JSON (${(err as Error).message})`];
      }
      if (!artefact.schema) return [];
      const validate = validator(artefact.schema);
      return validate(value) ? [] : [`${full}: ${ajv.errorsText(validate.errors)}`];
    }
    case 'pt': {
      const { readPt } = await import('../data/torch-pt.js');
      try {
        readPt(full);
        return [];
      } catch (err) {
        return [`${full}: not a readable torch.save tensor (${(err as Error).message})`];
      }
    }
    case 'md':
    case 'text':
      return bytes.toString('utf8').trim() === '' ? [`${full}: empty`] : [];
    case 'bytes':
      return bytes.length === 0 ? [`${full}: empty`] : [];
  }
}

/** Problems found in one experiment's folder; empty when everything is there and valid. */
export async function checkExperimentDir(dir: string, experiment: Checkable): Promise<string[]> {
  const declared: Artefact[] = [
    { file: 'metrics.json', kind: 'json', schema: experiment.metricsSchema },
    { file: 'run.json', kind: 'json', schema: RUN_SCHEMA },
    ...experiment.artefacts,
  ];
  const problems: string[] = [];
  for (const artefact of declared) problems.push(...(await checkFile(path.join(dir, artefact.file), artefact)));
  return problems;
}

/** Problems found in outputs/<experiment> for every experiment given; empty when all is well. */
export async function checkOutputs(outRoot: string, experiments: Checkable[]): Promise<string[]> {
  const problems: string[] = [];
  for (const experiment of experiments) problems.push(...(await checkExperimentDir(path.join(outRoot, experiment.name), experiment)));
  return problems;
}
