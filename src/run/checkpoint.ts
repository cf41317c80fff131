// Checkpoints for --resume: model weights, optimizer slots and a JSON state (epoch, curves,
// config), written after each completed epoch. The state file is written last, so a
// checkpoint whose state exists is complete even if the process died mid-write.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../tensor/index.js';
import { writeAtomic, writeJsonAtomic } from './files.js';
import { loadModel, saveModel } from './models.js';

interface TensorEntry {
  name: string;
  shape: number[];
  offset: number;
  length: number;
}

export async function saveCheckpoint(dir: string, model: tf.LayersModel, optimizer: tf.Optimizer, state: object): Promise<void> {
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
  return existsSync(path.join(dir, 'state.json'));
}

/** Restores weights into `model` and slots into `optimizer` (tfjs matches optimizer slots by position). */
export async function loadCheckpoint<S>(dir: string, model: tf.LayersModel, optimizer: tf.Optimizer): Promise<S> {
  const saved = await loadModel(path.join(dir, 'model'));
  model.setWeights(saved.getWeights());
  saved.dispose();
  const entries = JSON.parse(readFileSync(path.join(dir, 'optimizer.json'), 'utf8')) as TensorEntry[];
  const bin = readFileSync(path.join(dir, 'optimizer.bin'));
  const all = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
  await optimizer.setWeights(
    entries.map((e) => ({ name: e.name, tensor: tf.tensor(all.subarray(e.offset, e.offset + e.length), e.shape) })),
  );
  return JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as S;
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
