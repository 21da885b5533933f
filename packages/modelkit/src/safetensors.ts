import { closeSync, existsSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ModelFileError } from './errors.js';
import { readJsonFile } from './json-file.js';
import { writeAll } from './onnx/write-onnx.js';
import { numel } from './weights.js';

/**
 * Element types of safetensors tensors that modelkit reads (all widened to float32 exactly: bf16 and
 * f16 values are float32 values; f64 is rounded).
 *
 * @example
 * const widened: SafetensorsDtype[] = ['F32', 'F16', 'BF16', 'F64'];
 * const unreadable = [...openSafetensors(dir).tensors.values()].filter((e) => !widened.some((d) => d === e.dtype));
 */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64';

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** Largest header the safetensors format allows (its reference reader refuses more). */
const MAX_HEADER_BYTES = 100_000_000;

/**
 * One tensor of a safetensors checkpoint: where its bytes are and what they hold.
 *
 * @example
 * const entry: SafetensorsEntry = openSafetensors(dir).tensors.get('model.norm.weight')!;
 * console.log(entry.dtype, entry.shape, `${entry.byteLength} bytes at ${entry.offset} of ${entry.file}`);
 */
export interface SafetensorsEntry {
  name: string;
  /**
   * The dtype the file names: one `read` widens (a {@link SafetensorsDtype}), or another (`I8`, `U8`,
   * ...) that `read` refuses. Listed either way, so a checkpoint can be inspected before it is read.
   */
  dtype: SafetensorsDtype | (string & {});
  shape: number[];
  /** The `.safetensors` file holding it. */
  file: string;
  /** Absolute byte offset of its data in `file`. */
  offset: number;
  byteLength: number;
}

/**
 * The tensors of a checkpoint (one file, or the shards of a `model.safetensors.index.json`).
 *
 * @example
 * const ckpt: SafetensorsCheckpoint = openSafetensors('jobs/poetry/output');
 * for (const name of ckpt.tensors.keys()) console.log(name, ckpt.read(name).length);
 */
export interface SafetensorsCheckpoint {
  /** The file that lists the tensors: `model.safetensors` or `model.safetensors.index.json`. */
  source: string;
  /** Every tensor by name, in file order (shards in index order). */
  tensors: Map<string, SafetensorsEntry>;
  /** The `__metadata__` of the (first) file, e.g. `{ format: 'pt' }`. */
  metadata: Record<string, string>;
  /**
   * The tensor's values as float32 (read from disk on each call; nothing is held in memory).
   * Throws a {@link ModelFileError} naming the file for a dtype other than F32/F16/BF16/F64.
   */
  read(name: string): Float32Array;
}

function readHeader(
  file: string,
  fd: number,
): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  const size = fstatSync(fd).size;
  const bad = (what: string) => new ModelFileError(file, `not a safetensors file: ${what}`);
  if (size < 8) throw bad(`${size} bytes, shorter than the 8-byte header length`);
  const lengthBytes = Buffer.alloc(8);
  readSync(fd, lengthBytes, 0, 8, 0);
  const headerLength = Number(lengthBytes.readBigUInt64LE(0));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) {
    throw bad(`header length ${headerLength} does not fit the file's ${size} bytes`);
  }
  const headerBytes = Buffer.alloc(headerLength);
  readSync(fd, headerBytes, 0, headerLength, 8);
  let header: unknown;
  try {
    header = JSON.parse(headerBytes.toString('utf8'));
  } catch (error) {
    throw bad(`its header is not JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw bad('its header is not a JSON object');
  const dataStart = 8 + headerLength;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value === 'object' && value !== null) {
        for (const [k, v] of Object.entries(value)) if (typeof v === 'string') metadata[k] = v;
      }
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const offsets = info?.data_offsets;
    if (
      typeof info?.dtype !== 'string' ||
      !Array.isArray(info.shape) ||
      !info.shape.every((d) => Number.isInteger(d) && d >= 0) ||
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isInteger(o) && o >= 0) ||
      offsets[1] < offsets[0]
    ) {
      throw bad(`tensor "${name}" has no valid dtype, shape and data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    if (dataStart + end > size) {
      throw new ModelFileError(
        file,
        `tensor "${name}" ends at byte ${dataStart + end}, past the end of the file (${size} bytes): the file is truncated`,
      );
    }
    const width = BYTES[info.dtype as SafetensorsDtype];
    if (width !== undefined && end - begin !== numel(info.shape) * width) {
      throw bad(
        `tensor "${name}" [${info.shape.join(', ')}] ${info.dtype} needs ${numel(info.shape) * width} bytes, its offsets span ${end - begin}`,
      );
    }
    entries.push({
      name,
      dtype: info.dtype,
      shape: info.shape as number[],
      file,
      offset: dataStart + begin,
      byteLength: end - begin,
    });
  }
  entries.sort((a, b) => a.offset - b.offset);
  return { entries, metadata };
}

/** Reads `length` bytes at `position` into `into` (several calls: one read stops at 2 GiB). */
function readAll(fd: number, into: Uint8Array, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, Math.min(into.length - done, 2 ** 30), position + done);
    if (n === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

const F16_EXPONENT_BIAS = 15;

/** Float16 bit patterns to float32 values (exact). */
function widenF16(bits: Uint16Array, out: Float32Array): void {
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i]!;
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    out[i] =
      exponent === 0
        ? sign * mantissa * 2 ** (1 - F16_EXPONENT_BIAS - 10)
        : exponent === 0x1f
          ? mantissa === 0
            ? sign * Number.POSITIVE_INFINITY
            : Number.NaN
          : sign * (1024 + mantissa) * 2 ** (exponent - F16_EXPONENT_BIAS - 10);
  }
}

function readTensor(entry: SafetensorsEntry): Float32Array {
  const n = numel(entry.shape);
  const out = new Float32Array(n);
  const fd = openSync(entry.file, 'r');
  try {
    switch (entry.dtype) {
      case 'F32':
        readAll(fd, new Uint8Array(out.buffer), entry.offset);
        break;
      case 'BF16': {
        // bfloat16 is the upper half of a float32: widen into the same buffer, last value first
        const bits = new Uint16Array(out.buffer);
        readAll(fd, new Uint8Array(out.buffer, 0, 2 * n), entry.offset);
        const words = new Uint32Array(out.buffer);
        for (let i = n - 1; i >= 0; i--) words[i] = bits[i]! << 16;
        break;
      }
      case 'F16': {
        const bits = new Uint16Array(n);
        readAll(fd, new Uint8Array(bits.buffer), entry.offset);
        widenF16(bits, out);
        break;
      }
      case 'F64': {
        const wide = new Float64Array(n);
        readAll(fd, new Uint8Array(wide.buffer), entry.offset);
        out.set(wide);
        break;
      }
      default:
        throw new ModelFileError(
          entry.file,
          `tensor "${entry.name}" is ${entry.dtype}; modelkit reads F32, F16, BF16 and F64 weights (a quantized checkpoint must be dequantized first)`,
        );
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/**
 * Opens the safetensors checkpoint of a Hugging Face model directory: `model.safetensors` (or another
 * `file`, e.g. `adapter_model.safetensors`), or the shards that `model.safetensors.index.json` lists.
 * Only the headers are read; {@link SafetensorsCheckpoint.read} reads one tensor at a time, so a
 * checkpoint of any size is converted in the memory of its largest tensor. Throws a {@link ModelFileError} naming the file for a missing, truncated or malformed one.
 *
 * @example
 * const ckpt = openSafetensors('/models/smollm2-135m');
 * ckpt.read('model.norm.weight').length; // 576
 */
export function openSafetensors(dir: string, file = 'model.safetensors'): SafetensorsCheckpoint {
  const single = join(dir, file);
  const index = join(dir, `${file}.index.json`);
  let files: string[];
  let source: string;
  let weightMap: Record<string, string> | undefined;
  if (existsSync(index)) {
    source = index;
    const json = readJsonFile<{ weight_map?: Record<string, string> }>(index);
    if (typeof json.weight_map !== 'object' || json.weight_map === null) {
      throw new ModelFileError(index, 'has no "weight_map" object (tensor name -> shard file)');
    }
    weightMap = json.weight_map;
    files = [...new Set(Object.values(weightMap))];
    for (const shard of files) {
      if (typeof shard !== 'string' || basename(shard) !== shard) {
        throw new ModelFileError(
          index,
          `names the shard ${JSON.stringify(shard)}; shards are file names beside it`,
        );
      }
      if (!existsSync(join(dir, shard)))
        throw new ModelFileError(join(dir, shard), `missing (listed in ${basename(index)})`);
    }
    files = files.map((f) => join(dir, f));
  } else if (existsSync(single)) {
    source = single;
    files = [single];
  } else {
    const legacy = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((f) =>
      existsSync(join(dir, f)),
    );
    throw new ModelFileError(
      single,
      legacy
        ? `missing; ${dir} has PyTorch pickle weights (${legacy}), which modelkit does not read: save them as safetensors (model.save_pretrained(dir, safe_serialization=True))`
        : `missing, and no ${basename(index)}: ${dir} holds no safetensors weights`,
    );
  }
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const path of files) {
    const fd = openSync(path, 'r');
    try {
      const header = readHeader(path, fd);
      if (path === files[0]) metadata = header.metadata;
      for (const entry of header.entries) {
        if (tensors.has(entry.name))
          throw new ModelFileError(path, `holds tensor "${entry.name}" a second time`);
        if (weightMap && weightMap[entry.name] !== basename(path)) continue; // the index decides
        tensors.set(entry.name, entry);
      }
    } finally {
      closeSync(fd);
    }
  }
  if (weightMap) {
    for (const [name, shard] of Object.entries(weightMap)) {
      if (!tensors.has(name))
        throw new ModelFileError(
          join(dirname(index), shard),
          `lacks tensor "${name}" (listed in ${basename(index)})`,
        );
    }
  }
  return {
    source,
    tensors,
    metadata,
    read(name) {
      const entry = tensors.get(name);
      if (!entry) throw new ModelFileError(source, `holds no tensor "${name}"`);
      return readTensor(entry);
    },
  };
}

/**
 * Writes float32 tensors as one safetensors file (`F32`, in the given order, header padded to 8
 * bytes as the reference writer does): the format transformers' `from_pretrained` reads.
 *
 * @example
 * const weights = randomWeights(config, 1);
 * const tensors = Object.fromEntries(weightSpecs(config).map((s) => [s.name, { shape: s.shape, data: weights[s.name]! }]));
 * writeSafetensors('/tmp/m/model.safetensors', tensors, { format: 'pt' });
 */
export function writeSafetensors(
  file: string,
  tensors: Record<string, { shape: readonly number[]; data: Float32Array }>,
  metadata: Record<string, string> = { format: 'pt' },
): void {
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    if (t.data.length !== numel(t.shape)) {
      throw new ModelFileError(
        file,
        `tensor "${name}" has ${t.data.length} values for shape [${t.shape.join(', ')}]`,
      );
    }
  }
  streamSafetensors(
    file,
    entries.map(([name, t]) => ({ name, shape: t.shape })),
    (i) => entries[i]![1].data,
    metadata,
  );
}

/**
 * Writes float32 tensors of known shapes as one safetensors file, asking `read(i)` for the values of
 * `tensors[i]` only when they are written (one tensor in memory at a time); `onWritten(i)` follows each.
 */
export function streamSafetensors(
  file: string,
  tensors: readonly { name: string; shape: readonly number[] }[],
  read: (index: number) => Float32Array,
  metadata: Record<string, string> = { format: 'pt' },
  onWritten?: (index: number) => void,
): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const bytes = numel(t.shape) * 4;
    header[t.name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, length);
    writeSync(fd, json);
    for (const [i, t] of tensors.entries()) {
      const data = read(i);
      if (data.length !== numel(t.shape)) {
        throw new ModelFileError(
          file,
          `tensor "${t.name}" has ${data.length} values for shape [${t.shape.join(', ')}]`,
        );
      }
      writeAll(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      onWritten?.(i);
    }
  } finally {
    closeSync(fd);
  }
}
