// Checkpoints for --resume: model weights, optimizer slots and a JSON state (epoch, curves,
// config), written after each completed epoch. A checkpoint is written whole into a fresh
// folder and then swapped in by renames, so a process killed mid-write leaves the previous
// checkpoint, never one epoch's weights beside another epoch's state.
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { RunError } from '../errors.js';
import { tf } from '../tensor/index.js';
import { writeAtomic, writeJsonAtomic } from './files.js';
import { loadModel, saveModel } from './models.js';

interface TensorEntry {
  name: string;
  shape: number[];
  offset: number;
  length: number;
}

/** What every checkpoint state holds: one record per completed epoch (a discarded checkpoint is described by them). */
export interface CheckpointState {
  epochs: unknown[];
}

// Inside `dir`: the checkpoint in `latest/`; while a new one is swapped in, the old one is
// `previous/` for a moment. A state.json is written last, so a folder holding one is complete.
const LATEST = 'latest';
const PREVIOUS = 'previous';

/** The folder of the newest complete checkpoint in `dir`, if any. */
function completeCheckpoint(dir: string): string | undefined {
  return [LATEST, PREVIOUS].map((f) => path.join(dir, f)).find((f) => existsSync(path.join(f, 'state.json')));
}

export async function saveCheckpoint<S extends CheckpointState>(
  dir: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  state: S,
): Promise<void> {
  const writing = path.join(dir, `writing-${process.pid}`);
  rmSync(writing, { recursive: true, force: true });
  await writeCheckpointFiles(writing, model, optimizer, state);
  const latest = path.join(dir, LATEST);
  const previous = path.join(dir, PREVIOUS);
  if (existsSync(latest)) {
    rmSync(previous, { recursive: true, force: true });
    renameSync(latest, previous);
  }
  // With no latest/ (a crash between the two renames last time), previous/ is the only complete
  // checkpoint: it stays until the new one has taken its place.
  renameSync(writing, latest);
  rmSync(previous, { recursive: true, force: true });
}

async function writeCheckpointFiles(dir: string, model: tf.LayersModel, optimizer: tf.Optimizer, state: object): Promise<void> {
  await saveModel(model, path.join(dir, 'model'));
  const named = await optimizer.getWeights();
  const entries: TensorEntry[] = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  for (const { name, tensor } of named) {
    const values = (await tensor.data()) as Float32Array;
    entries.push({ name, shape: tensor.shape, offset, length: values.length });
    chunks.push(values);
    offset += values.length;
  }
  const all = new Float32Array(offset);
  chunks.reduce((at, c) => {
    all.set(c, at);
    return at + c.length;
  }, 0);
  writeAtomic(path.join(dir, 'optimizer.bin'), new Uint8Array(all.buffer));
  writeJsonAtomic(path.join(dir, 'optimizer.json'), entries);
  writeJsonAtomic(path.join(dir, 'state.json'), state);
}

export function hasCheckpoint(dir: string): boolean {
  return completeCheckpoint(dir) !== undefined;
}

/** The saved state of the newest complete checkpoint in `dir` without loading its tensors. */
export function checkpointState<S extends CheckpointState>(dir: string): S | undefined {
  const folder = completeCheckpoint(dir);
  return folder ? (JSON.parse(readFileSync(path.join(folder, 'state.json'), 'utf8')) as S) : undefined;
}

/** Restores weights into `model` and slots into `optimizer` (tfjs matches optimizer slots by position). */
export async function loadCheckpoint<S extends CheckpointState>(
  checkpointDir: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
): Promise<S> {
  const dir = completeCheckpoint(checkpointDir);
  if (!dir) throw new Error(`${checkpointDir} holds no complete checkpoint`);
  // A checkpoint damaged after it was written (a file cut short, edited by hand) names itself and the way out.
  const damaged = (what: string, err: unknown): never => {
    throw new RunError(
      `${path.join(dir, what)}: the checkpoint does not load (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); ` +
        'run without --resume to start over',
    );
  };
  try {
    const saved = await loadModel(path.join(dir, 'model'));
    model.setWeights(saved.getWeights());
    saved.dispose();
  } catch (err) {
    damaged('model', err);
  }
  let entries: TensorEntry[] = [];
  try {
    entries = JSON.parse(readFileSync(path.join(dir, 'optimizer.json'), 'utf8')) as TensorEntry[];
  } catch (err) {
    damaged('optimizer.json', err);
  }
  try {
    const bin = readFileSync(path.join(dir, 'optimizer.bin'));
    const all = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength - (bin.byteLength % 4)));
    for (const e of entries)
      if (e.offset + e.length > all.length)
        throw new Error(`${e.name} needs floats ${e.offset}–${e.offset + e.length} of optimizer.bin, which holds ${all.length}`);
    await optimizer.setWeights(
      entries.map((e) => ({ name: e.name, tensor: tf.tensor(all.subarray(e.offset, e.offset + e.length), e.shape) })),
    );
  } catch (err) {
    damaged('optimizer.bin', err);
  }
  try {
    return JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as S;
  } catch (err) {
    return damaged('state.json', err);
  }
}

/**
 * Results of a run's finished parts (one ablation, one subset size), kept in its checkpoints
 * folder so that --resume skips them: `done(key)` is the saved result, `record` saves one.
 */
export function finishedParts<T>(dir: string, resume: boolean): { done(key: string): T | undefined; record(key: string, result: T): void } {
  const file = path.join(dir, 'parts.json');
  const parts: Record<string, T> = resume && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, T>) : {};
  return {
    done: (key) => parts[key],
    record: (key, result) => {
      parts[key] = result;
      writeJsonAtomic(file, parts);
    },
  };
}

/** What a checkpoints folder holds, in words ("epochs 1–5 done"), or undefined when it holds nothing to resume. */
export function describeCheckpoints(dir: string): string | undefined {
  const said: string[] = [];
  const state = checkpointState(dir);
  if (state) said.push(state.epochs.length > 0 ? `epochs 1–${state.epochs.length} done` : 'no epoch done');
  const partsFile = path.join(dir, 'parts.json');
  if (existsSync(partsFile)) {
    const keys = Object.keys(JSON.parse(readFileSync(partsFile, 'utf8')) as object);
    if (keys.length > 0) said.push(`finished parts ${keys.join(', ')}`);
  }
  return said.length > 0 ? said.join('; ') : undefined;
}
