import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { DecoderConfig } from '../config.js';
import { ModelWeightsError } from '../errors.js';
import { modelkitVersion } from '../package-version.js';
import { type Q4Matrix, type Q8Tensor, quantizeQ4, quantizeQ8, transposeInt8 } from '../quantize.js';
import type { WeightSource } from '../weights.js';
import {
  buildDecoderGraph,
  DEFAULT_Q4_BLOCK_SIZE,
  type DecoderGraphOptions,
  type GraphTensor,
  type Q4Options,
  valueInfoObject,
  type WeightDtype,
} from './decoder-graph.js';
import { onnxType } from './onnx-schema.js';

/**
 * The ai.onnx opset the written graphs import (onnxruntime 1.16+ runs it).
 *
 * @example
 * console.log(`ai.onnx opset ${OPSET_VERSION}, IR ${IR_VERSION}`); // ai.onnx opset 17, IR 8
 */
export const OPSET_VERSION = 17;
/**
 * The ONNX IR version the written model files declare (`ir_version`; onnxruntime 1.16+ reads it).
 *
 * @example
 * import { readFileSync } from 'node:fs';
 * // ir_version is the model's field 1: its tag byte 0x08, then the varint
 * readFileSync(`${dir}/onnx/model.onnx`)[1] === IR_VERSION; // true
 */
export const IR_VERSION = 8;
/**
 * Default total tensor size above which weights go to `<model>_data` (protobuf files cap at 2 GiB).
 *
 * @example
 * // Qwen2.5-0.5B's float32 weights (1.98 GB) still fit one file; a threshold of 0 splits any model
 * parameterCount(PRESETS['qwen2.5-0.5b']) * 4 > EXTERNAL_DATA_THRESHOLD; // false
 * await createModel({ preset: 'tiny', out, externalDataThreshold: 0 }); // onnx/model.onnx_data
 */
export const EXTERNAL_DATA_THRESHOLD = 2 * 1024 ** 3 - 64 * 1024 ** 2;
/** Tensors smaller than this stay inline even in the external-data layout (as onnx's converter does). */
const EXTERNAL_MIN_BYTES = 1024;
const ALIGN = 4096;

/**
 * Options of {@link writeOnnxModel}.
 *
 * @example
 * const options: WriteOnnxOptions = { dtype: 'q4', onTensor: (name, i, n) => console.log(`${i + 1}/${n} ${name}`) };
 * writeOnnxModel(`${dir}/onnx/model_q4.onnx`, config, randomWeightSource(1), options);
 */
export interface WriteOnnxOptions extends DecoderGraphOptions, Q4Options {
  /** How linear weights are stored (default `fp32`; see {@link WeightDtype}). */
  dtype?: WeightDtype | undefined;
  /** Total tensor bytes above which weights are written to `<file>_data`; default just under 2 GiB. */
  externalDataThreshold?: number | undefined;
  /** Called after each weight tensor is written. */
  onTensor?: ((name: string, index: number, count: number) => void) | undefined;
}

/**
 * What {@link writeOnnxModel} wrote.
 *
 * @example
 * const written: WrittenOnnx = writeOnnxModel(`${dir}/onnx/model.onnx`, PRESETS.tiny, randomWeightSource(1));
 * written.weightBytes; // 427264
 * written.external; // false
 */
export interface WrittenOnnx {
  /** Files written (the model, and the external data file when used). */
  files: string[];
  /** Bytes of weight data (weights only, not constants; quantized weights at their packed size). */
  weightBytes: number;
  external: boolean;
}

/** A weight's values, and its quantized forms once made. */
interface CurrentWeight {
  values: Float32Array;
  q4?: Q4Matrix;
  q8?: Q8Tensor;
  q8Transposed?: Int8Array;
}

const bytesOf = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

/** `quantize()`, its error (a value the form cannot hold) naming the weight. */
function quantized<T>(tensor: GraphTensor, quantize: () => T): T {
  try {
    return quantize();
  } catch (error) {
    throw new ModelWeightsError(tensor.spec.name, (error as Error).message);
  }
}

/** The bytes of one initializer, from its weight's values (quantized once, for all its parts). */
function tensorBytes(tensor: GraphTensor, weight: CurrentWeight, blockSize: number): Uint8Array {
  if (tensor.form === 'float32') return bytesOf(weight.values);
  const [rows, cols] = tensor.spec.shape as [number, number];
  if (tensor.form === 'q8-data' || tensor.form === 'q8-data-t' || tensor.form === 'q8-scale') {
    weight.q8 ??= quantized(tensor, () => quantizeQ8(weight.values));
    if (tensor.form === 'q8-scale') return bytesOf(Float32Array.of(weight.q8.scale));
    if (tensor.form === 'q8-data') return bytesOf(weight.q8.data);
    weight.q8Transposed ??= transposeInt8(weight.q8.data, rows, cols);
    return bytesOf(weight.q8Transposed);
  }
  weight.q4 ??= quantized(tensor, () => quantizeQ4(weight.values, rows, cols, blockSize));
  if (tensor.form === 'q4-data') return weight.q4.data;
  return bytesOf(weight.q4.scales);
}

/** Bytes per write call: one call cannot write 2 GiB or more. */
const WRITE_CHUNK = 64 * 1024 ** 2;

/** Writes all of `bytes` (at `position`, or at the file's current position), in chunks. */
export function writeAll(fd: number, bytes: Uint8Array, position?: number): void {
  let done = 0;
  while (done < bytes.length) {
    const n = Math.min(WRITE_CHUNK, bytes.length - done);
    done += writeSync(fd, bytes, done, n, position === undefined ? null : position + done);
  }
}

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/**
 * Writes the decoder's `model.onnx` for `config`, pulling each weight from `source` once and streaming
 * it to disk (one tensor in memory at a time). Above `externalDataThreshold` total bytes, weights go to
 * `<file>_data` (4 KiB-aligned offsets) as real large exports do. The file's directory is created if
 * missing.
 *
 * @example
 * writeOnnxModel('out/onnx/model.onnx', config, randomWeightSource(1));
 */
export function writeOnnxModel(
  file: string,
  config: DecoderConfig,
  source: WeightSource,
  options: WriteOnnxOptions = {},
): WrittenOnnx {
  const graph = buildDecoderGraph(config, options);
  const TensorProto = onnxType('TensorProto');
  const weightBytes = graph.tensors.reduce((n, t) => n + t.bytes, 0);
  const GraphProto = onnxType('GraphProto');
  const graphBody = GraphProto.encode(
    GraphProto.fromObject({
      name: 'main_graph',
      node: graph.builder.nodes,
      input: graph.inputs.map(valueInfoObject),
      output: graph.outputs.map(valueInfoObject),
      initializer: graph.builder.constants.map((c) => ({
        name: c.name,
        dims: c.dims,
        data_type: c.dataType,
        raw_data: c.raw,
      })),
    }),
  ).finish();
  const threshold = options.externalDataThreshold ?? EXTERNAL_DATA_THRESHOLD;
  // the graph's own constants (rotary tables: maxPositionEmbeddings x headDim floats) count too
  const external = weightBytes + graphBody.length > threshold;
  const dataFile = `${file}_data`;
  const dataName = basename(dataFile);

  // Headers (everything but raw_data) of each weight, and where its bytes go.
  let dataOffset = 0;
  const records = graph.tensors.map((tensor) => {
    const { bytes } = tensor;
    const isExternal = external && bytes >= EXTERNAL_MIN_BYTES;
    const header: Record<string, unknown> = {
      dims: tensor.dims,
      data_type: tensor.dataType,
      name: tensor.name,
    };
    let offset = 0;
    if (isExternal) {
      dataOffset = Math.ceil(dataOffset / ALIGN) * ALIGN;
      offset = dataOffset;
      dataOffset += bytes;
      header.external_data = [
        { key: 'location', value: dataName },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(bytes) },
      ];
      header.data_location = 1;
    }
    const head = TensorProto.encode(TensorProto.fromObject(header)).finish();
    const rawPrefix = isExternal ? new Uint8Array(0) : Uint8Array.from([0x4a, ...varint(bytes)]);
    const recordLength = head.length + rawPrefix.length + (isExternal ? 0 : bytes);
    const prefix = Uint8Array.from([0x2a, ...varint(recordLength), ...head, ...rawPrefix]);
    return { tensor, bytes, isExternal, offset, prefix };
  });

  const graphLength = records.reduce(
    (n, r) => n + r.prefix.length + (r.isExternal ? 0 : r.bytes),
    graphBody.length,
  );
  const ModelProto = onnxType('ModelProto');
  const head = ModelProto.encode(
    ModelProto.fromObject({
      ir_version: IR_VERSION,
      opset_import: [
        { domain: '', version: OPSET_VERSION },
        ...graph.builder.domains().map((domain) => ({ domain, version: 1 })),
      ],
      producer_name: '@implicit-it/modelkit',
      producer_version: modelkitVersion(),
      metadata_props: [{ key: 'model_type', value: config.modelType }],
    }),
  ).finish();

  const files = [file];
  // `onnx/` of a new model directory, as its example writes: created, not a bare ENOENT
  mkdirSync(dirname(file), { recursive: true });
  const fd = openSync(file, 'w');
  const dataFd = external ? openSync(dataFile, 'w') : undefined;
  if (external) files.push(dataFile);
  try {
    writeAll(fd, head);
    writeAll(fd, Uint8Array.from([0x3a, ...varint(graphLength)]));
    writeAll(fd, graphBody);
    // the source is asked once per weight; its initializers follow one another
    let current: (CurrentWeight & { spec: GraphTensor['spec'] }) | undefined;
    let index = 0;
    for (const r of records) {
      const { spec } = r.tensor;
      if (current?.spec !== spec) {
        if (current) options.onTensor?.(current.spec.name, index++, graph.weights.length);
        const values = source(spec);
        const expected = spec.shape.reduce((a, b) => a * b, 1);
        if (!(values instanceof Float32Array) || values.length !== expected) {
          throw new ModelWeightsError(
            spec.name,
            `source gave ${values instanceof Float32Array ? `${values.length} values` : typeof values}, expected a Float32Array of ${expected} for shape [${spec.shape.join(', ')}]`,
          );
        }
        current = { spec, values };
      }
      const raw = tensorBytes(r.tensor, current, options.q4BlockSize ?? DEFAULT_Q4_BLOCK_SIZE);
      writeAll(fd, r.prefix);
      if (r.isExternal) writeAll(dataFd!, raw, r.offset);
      else writeAll(fd, raw);
    }
    if (current) options.onTensor?.(current.spec.name, index, graph.weights.length);
  } finally {
    closeSync(fd);
    if (dataFd !== undefined) closeSync(dataFd);
  }
  return { files, weightBytes, external };
}
