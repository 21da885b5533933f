import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DecoderConfig } from '../config.js';
import { ModelFileError } from '../errors.js';
import { fromHfConfig } from '../hf-config.js';
import { readJsonFile } from '../json-file.js';
import { type ModelWeights, numel, weightSpecs } from '../weights.js';
import { DataType, onnxType } from './onnx-schema.js';

/**
 * A model directory read back into memory.
 *
 * @example
 * const model: ModelOnDisk = readModel(dir);
 * Object.keys(model.weights).length === weightSpecs(model.config).length; // true
 */
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

/** What to do when `dir/onnx/model.onnx` is missing: the graphs `onnx/` holds and how to pass one. */
function otherGraphs(dir: string): string {
  let graphs: string[] = [];
  try {
    graphs = readdirSync(join(dir, 'onnx'))
      .filter((f) => f.endsWith('.onnx'))
      .sort();
  } catch {
    // no onnx/ folder
  }
  if (graphs.length === 0) return 'write the model with createModel (or exportOnnx for a checkpoint)';
  const float32 = graphs.filter((f) => !/_(q4|q4f16|quantized|int8|uint8|bnb4|fp16)\.onnx$/.test(f));
  if (float32.length === 0)
    return `onnx/ holds only ${graphs.join(', ')}, whose quantized weights readModel does not read back; write the model with dtypes including 'fp32'`;
  return `onnx/ holds ${graphs.join(', ')}; pass the graph to read: readModel(dir, join(dir, 'onnx', '${float32[0]}'))`;
}

/**
 * Reads a llama-family model directory (`config.json` + `onnx/model.onnx`, external data included) back
 * into its config and weights by Hugging Face name: e.g. to run {@link referenceForward} on a written
 * model. Works for directories written by modelkit (weights stored under their HF names). A merged
 * directory (`merged: true`) is read from its graph: `readModel(dir, join(dir, 'onnx',
 * 'decoder_model_merged.onnx'))`; quantized graphs (q4, q8) are not read back.
 *
 * @example
 * const model = readModel(dir);
 * referenceForward(model, [1, 2, 3]);
 */
export function readModel(dir: string, onnxFile = join(dir, 'onnx', 'model.onnx')): ModelOnDisk {
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) throw new ModelFileError(configFile, 'not found; is this a model directory?');
  if (!existsSync(onnxFile)) throw new ModelFileError(onnxFile, `not found; ${otherGraphs(dir)}`);
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
    if (!t) {
      const quantized = [...byName.keys()].some((name) => name.startsWith(`${spec.name}_`));
      throw new ModelFileError(
        onnxFile,
        quantized
          ? `holds ${spec.name} quantized (a q4 or q8 graph), which readModel does not read back; pass a float32 graph (onnx/model.onnx or onnx/decoder_model_merged.onnx)`
          : `has no initializer named ${spec.name}`,
      );
    }
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
