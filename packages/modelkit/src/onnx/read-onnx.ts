import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DecoderConfig } from '../config.js';
import { ModelFileError } from '../errors.js';
import { fromHfConfig } from '../hf-config.js';
import { readJsonFile } from '../json-file.js';
import { type ModelWeights, numel, weightSpecs } from '../weights.js';
import { DataType, onnxType } from './onnx-schema.js';

/** A model directory read back into memory. */
export interface ModelOnDisk {
  config: DecoderConfig;
  weights: ModelWeights;
}

interface TensorMessage {
  name: string;
  dims: unknown[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  external_data?: { key: string; value: string }[];
  data_location?: number;
}

function tensorData(t: TensorMessage, onnxFile: string): Float32Array {
  if (t.data_type !== DataType.FLOAT) throw new ModelFileError(onnxFile, `${t.name} is not float32`);
  if (t.data_location === 1) {
    const entry = (k: string) => t.external_data?.find((e) => e.key === k)?.value;
    const file = join(dirname(onnxFile), entry('location') ?? '');
    const offset = Number(entry('offset') ?? 0);
    const length = Number(entry('length') ?? numel(t.dims.map(Number)) * 4);
    if (!existsSync(file)) throw new ModelFileError(file, `external data of ${t.name} not found`);
    // only this tensor's bytes: the data file may be larger than one read can return (2 GiB)
    const out = new Float32Array(length / 4);
    const bytes = new Uint8Array(out.buffer);
    const fd = openSync(file, 'r');
    try {
      let done = 0;
      while (done < length) {
        const n = readSync(fd, bytes, done, Math.min(64 * 1024 ** 2, length - done), offset + done);
        if (n === 0) {
          throw new ModelFileError(file, `ends before ${t.name} (offset ${offset}, ${length} bytes)`);
        }
        done += n;
      }
    } finally {
      closeSync(fd);
    }
    return out;
  }
  if (t.raw_data && t.raw_data.length > 0) {
    const r = t.raw_data;
    return new Float32Array(r.buffer.slice(r.byteOffset, r.byteOffset + r.byteLength));
  }
  return Float32Array.from(t.float_data ?? []);
}

/**
 * Reads a llama-family model directory (`config.json` + `onnx/model.onnx`, external data included) back
 * into its config and weights by Hugging Face name: e.g. to run {@link referenceForward} on a written
 * model. Works for directories written by modelkit (weights stored under their HF names).
 *
 * @example
 * const model = readModel(dir);
 * referenceForward(model, [1, 2, 3]);
 */
export function readModel(dir: string, onnxFile = join(dir, 'onnx', 'model.onnx')): ModelOnDisk {
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) throw new ModelFileError(configFile, 'not found; is this a model directory?');
  if (!existsSync(onnxFile))
    throw new ModelFileError(onnxFile, 'not found; write the model with createModel');
  const config = fromHfConfig(readJsonFile(configFile));
  const ModelProto = onnxType('ModelProto');
  const model = ModelProto.toObject(ModelProto.decode(readFileSync(onnxFile)), {
    longs: Number,
    defaults: false,
  }) as {
    graph?: { initializer?: TensorMessage[] };
  };
  const byName = new Map((model.graph?.initializer ?? []).map((t) => [t.name, t]));
  const weights: ModelWeights = {};
  for (const spec of weightSpecs(config)) {
    const t = byName.get(spec.name);
    if (!t) throw new ModelFileError(onnxFile, `has no initializer named ${spec.name}`);
    const data = tensorData(t, onnxFile);
    if (data.length !== numel(spec.shape)) {
      throw new ModelFileError(
        onnxFile,
        `${spec.name} has ${data.length} values, expected ${numel(spec.shape)}`,
      );
    }
    weights[spec.name] = data;
  }
  return { config, weights };
}
