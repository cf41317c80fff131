// Checks what a run of an experiment must leave in outputs/<name>/, as the experiment itself
// declares it (src/report/declare.ts): every artefact present and of its kind (PNGs that
// decode, JSON that parses and matches its schema, .pt files that read), metrics.json
// matching the experiment's schema and run.json the manifest's. Used by CI, the report and the tests.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { loadImage } from 'canvas';
import { crc32, inflateSync } from 'node:zlib';
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

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * Why a PNG's pixels would not all decode, or undefined: every chunk inside the file with its
 * CRC, an IEND, and the image data inflating (zlib checks its Adler-32) to the rows its header
 * promises. An image reader reads the header and draws what arrives, so a file cut short (or its
 * data garbled) still "loads".
 */
function pngDataProblem(bytes: Buffer): string | undefined {
  if (!bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return 'no PNG signature';
  const idat: Buffer[] = [];
  let header: { width: number; height: number; bitDepth: number; colorType: number; interlaced: boolean } | undefined;
  let offset = 8;
  for (;;) {
    if (offset + 12 > bytes.length) return `cut short: no IEND chunk (file ends at byte ${bytes.length})`;
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    if (offset + 12 + length > bytes.length) return `cut short inside its ${type} chunk (${length} bytes declared at byte ${offset})`;
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (crc32(bytes.subarray(offset + 4, offset + 8 + length)) !== bytes.readUInt32BE(offset + 8 + length))
      return `its ${type} chunk at byte ${offset} fails its CRC`;
    if (type === 'IHDR')
      header = {
        width: data.readUInt32BE(0),
        height: data.readUInt32BE(4),
        bitDepth: data[8],
        colorType: data[9],
        interlaced: data[12] === 1,
      };
    if (type === 'IDAT') idat.push(data);
    offset += 12 + length;
    if (type === 'IEND') break;
  }
  if (!header || !(header.colorType in PNG_CHANNELS)) return 'no valid IHDR chunk';
  let pixels: Uint8Array;
  try {
    pixels = inflateSync(Buffer.concat(idat));
  } catch (err) {
    return `its image data does not inflate (${(err as Error).message})`;
  }
  if (header.interlaced) return undefined; // seven passes of other sizes: inflating is the check
  const rowBytes = 1 + Math.ceil((header.width * PNG_CHANNELS[header.colorType] * header.bitDepth) / 8);
  const expected = header.height * rowBytes;
  return pixels.length === expected
    ? undefined
    : `its image data holds ${pixels.length} bytes, its ${header.width}×${header.height} header needs ${expected}`;
}

/** Problems with one file of a declared kind; empty when it is fine. */
async function checkFile(full: string, artefact: Artefact): Promise<string[]> {
  if (!existsSync(full)) return [`${full}: missing`];
  if (!statSync(full).isFile()) return [`${full}: not a file`];
  const bytes = readFileSync(full);
  switch (artefact.kind) {
    case 'png':
      try {
        const damaged = pngDataProblem(bytes);
        if (damaged) return [`${full}: not a PNG that decodes (${damaged})`];
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
  if (problems.length === 0) problems.push(...accuracyProblems(path.join(dir, 'metrics.json')));
  return problems;
}

/**
 * Accuracies are fractions of images: every number under a key that names one (testAcc,
 * finalTestAcc, nearestClassMeanAccuracy, …) must lie in [0, 1]. A schema says "a number"; this
 * catches a percentage or a hand edit that the schema lets through.
 */
function accuracyProblems(file: string): string[] {
  const problems: string[] = [];
  const visit = (value: unknown, at: string): void => {
    if (Array.isArray(value)) for (const [i, v] of value.entries()) visit(v, `${at}[${i}]`);
    else if (value !== null && typeof value === 'object')
      for (const [key, v] of Object.entries(value)) {
        const where = at ? `${at}.${key}` : key;
        if (/[aA]cc(uracy)?(?![a-z])/.test(key) && typeof v === 'number' && !(v >= 0 && v <= 1))
          problems.push(`${file}: ${where} is ${v}, expected an accuracy between 0 and 1`);
        visit(v, where);
      }
  };
  visit(JSON.parse(readFileSync(file, 'utf8')), '');
  return problems;
}

/** Problems found in outputs/<experiment> for every experiment given; empty when all is well. */
export async function checkOutputs(outRoot: string, experiments: Checkable[]): Promise<string[]> {
  const problems: string[] = [];
  for (const experiment of experiments) problems.push(...(await checkExperimentDir(path.join(outRoot, experiment.name), experiment)));
  return problems;
}
