// Models saved in the TensorFlow.js layers format (model.json + weights.bin), which
// tf.loadLayersModel('file://…') in tfjs-node and the browser read as they are.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../tensor/index.js';
import { writeAtomic, writeJsonAtomic } from './files.js';

export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0));
      writeAtomic(path.join(dir, 'weights.bin'), new Uint8Array(weights));
      writeJsonAtomic(path.join(dir, 'model.json'), {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      });
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as {
    modelTopology: object;
    weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[];
  };
  const bin = readFileSync(path.join(dir, 'weights.bin'));
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) as ArrayBuffer;
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest.flatMap((m) => m.weights), weightData }),
  );
}

/** One line per layer with its output shape, as model.summary() prints it. */
export function modelSummary(model: tf.LayersModel): string {
  const lines: string[] = [];
  model.summary(100, undefined, (line: string) => lines.push(line));
  return `${lines.join('\n')}\n`;
}
