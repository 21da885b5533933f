import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ListsEveryKey } from '@implicit-it/rules';
import type { DecoderConfig } from './config.js';
import { ONNX_DECODER } from './create-model.js';
import { ModelFileError, ModelWeightsError } from './errors.js';
import { fromHfConfig } from './hf-config.js';
import { readJsonFile } from './json-file.js';
import type { DecoderGraphOptions, Q4Options, WeightDtype } from './onnx/decoder-graph.js';
import {
  checkDtypes,
  checkGraphOptions,
  checkQ4Options,
  graphFileName,
  writeGraphAside,
} from './onnx/write-aside.js';
import { GRAPH_OPTIONS, refuseUnknownOptions } from './options.js';
import { openSafetensors, type SafetensorsCheckpoint } from './safetensors.js';
import { parameterCount, type WeightSpec, weightSpecs } from './weights.js';

/**
 * Options of {@link exportOnnx}.
 *
 * @example
 * const options: ExportOnnxOptions = { dir: 'jobs/poetry/output', dtypes: ['fp32', 'q4'], overwrite: true };
 * await exportOnnx(options);
 */
export interface ExportOnnxOptions extends DecoderGraphOptions, Q4Options {
  /** A Hugging Face model directory: `config.json` and `model.safetensors` (or its sharded index). */
  dir: string;
  /**
   * For a LoRA adapter directory (`adapter_config.json`, `adapter_model.safetensors`, as peft saves
   * it): the base model directory its weights are merged into. Default: the adapter's
   * `base_model_name_or_path`, when that is a local directory.
   */
  base?: string | undefined;
  /**
   * The graphs to write, by transformers.js dtype: `fp32` (`onnx/model.onnx`) and/or `q4`
   * (`onnx/model_q4.onnx`: 4-bit linear layers, see `WeightDtype`). Default `['fp32']`.
   */
  dtypes?: readonly WeightDtype[] | undefined;
  /** Replace existing graphs of those dtypes (default false: refused, naming the file). */
  overwrite?: boolean | undefined;
  /** Weight bytes of a graph above which its weights go to `onnx/<file>_data`; default just under 2 GiB. */
  externalDataThreshold?: number | undefined;
  /** Progress per written weight tensor. */
  onProgress?: ((event: { tensor: string; index: number; count: number }) => void) | undefined;
}

/** The options of {@link exportOnnx}, for telling a misspelt one (`dtype`, `kvDType`) from a known one. */
const EXPORT_ONNX_OPTIONS = [
  'dir',
  'base',
  'dtypes',
  'overwrite',
  'externalDataThreshold',
  'onProgress',
  ...GRAPH_OPTIONS,
] as const satisfies readonly (keyof ExportOnnxOptions)[];

// every option is listed (a new one missing here would be refused as unknown)
const _allExportOnnxOptionsListed: ListsEveryKey<ExportOnnxOptions, typeof EXPORT_ONNX_OPTIONS> = true;
void _allExportOnnxOptionsListed;

/**
 * What {@link exportOnnx} wrote.
 *
 * @example
 * const exported: ExportedOnnx = await exportOnnx({ dir: 'jobs/lora/output', base: 'models/Llama-2-7b-hf' });
 * if (exported.adapter) console.log(`merged rank ${exported.adapter.rank} into ${exported.adapter.base}`);
 */
export interface ExportedOnnx {
  /** Absolute path of the model directory. */
  dir: string;
  config: DecoderConfig;
  /** The checkpoint read: `model.safetensors` or `model.safetensors.index.json`. */
  source: string;
  /** Element types of the tensors read (e.g. `['BF16']`); all are written as float32. */
  sourceDtypes: string[];
  /** Tensors of the checkpoint that the graph does not use: rotary `inv_freq` buffers, a tied `lm_head.weight`. */
  ignored: string[];
  /** Paths of the written files, relative to `dir`. */
  files: string[];
  parameters: number;
  /** Bytes of weight data in the ONNX file(s), of all graphs (quantized weights at their packed size). */
  weightBytes: number;
  /** Whether weights went to `onnx/<file>_data` (for any graph). */
  externalData: boolean;
  /**
   * ONNX decoders in `onnx/` this export did not write (another dtype's `model_q4.onnx`, an optimum
   * `model_fp16.onnx`...), relative to `dir`: they still hold the weights they were made from, which
   * may no longer be the checkpoint's.
   */
  otherGraphs: string[];
  /** A LoRA adapter merged into its base: W + scale * B A on each adapted matrix. */
  adapter?: { base: string; rank: number; scale: number; matrices: number };
}

/** Buffers some checkpoints carry that the graph computes itself. */
const IGNORED_BUFFER = /(^|\.)rotary_emb\.inv_freq$/;

/**
 * The checkpoint's name of a weight: the Hugging Face `*ForCausalLM` name, or the bare decoder's
 * (`LlamaModel` saves `embed_tokens.weight`, without `model.`).
 */
function checkpointName(ckpt: SafetensorsCheckpoint, spec: WeightSpec): string | undefined {
  if (ckpt.tensors.has(spec.name)) return spec.name;
  const bare = spec.name.replace(/^model\./, '');
  return bare !== spec.name && ckpt.tensors.has(bare) ? bare : undefined;
}

/**
 * Writes `onnx/model.onnx` into a Hugging Face model directory from its own `config.json` and
 * safetensors weights (F32, BF16, F16 or F64, one file or shards; widened to float32): the same graph
 * {@link createModel} writes, which this repository's runtime, transformers.js and onnxruntime load.
 * It is how a model finetuned with `@implicit-it/finetune` (or any llama / qwen2 checkpoint) reaches
 * the ONNX runtime without Python's optimum. Nothing else in the directory changes; weights are read
 * one tensor at a time.
 *
 * A LoRA adapter directory as peft saves it (`adapter_config.json`, `adapter_model.safetensors`) is
 * merged into its base model (`base`): W + alpha / r * B A on each adapted linear layer; the directory
 * then gets the base's `config.json` and `generation_config.json` beside its own tokenizer.
 *
 * Refused, with an error naming the file and field: a `config.json` modelkit does not build
 * (`rope_scaling`, an activation other than silu, `mlp_bias`, a model type other than llama/qwen2),
 * a missing or mis-shaped tensor, a tensor the configuration has no place for (LoRA weights inside a
 * full checkpoint), an adapter a plain merge does not cover (DoRA, `modules_to_save`, ...), a
 * non-float dtype, and an existing `onnx/model.onnx` unless `overwrite`.
 *
 * @example
 * const exported = await exportOnnx({ dir: 'jobs/poetry/output' });
 * exported.files; // ['onnx/model.onnx']
 */
export async function exportOnnx(options: ExportOnnxOptions): Promise<ExportedOnnx> {
  refuseUnknownOptions(options, EXPORT_ONNX_OPTIONS, 'exportOnnx');
  const {
    dir: given,
    base,
    overwrite = false,
    externalDataThreshold,
    onProgress,
    dtypes = ['fp32'],
    ...graphOptions
  } = options;
  checkDtypes(dtypes);
  checkQ4Options(graphOptions);
  checkGraphOptions({ ...graphOptions, externalDataThreshold });
  const dir = resolve(given);
  const adapterFile = join(dir, 'adapter_config.json');
  const adapter = existsSync(adapterFile) ? readAdapter(dir, adapterFile, base) : undefined;
  const modelDir = adapter?.base ?? dir;
  const configFile = join(modelDir, 'config.json');
  if (!existsSync(configFile)) {
    throw new ModelFileError(
      configFile,
      'missing: a Hugging Face model directory has config.json beside its weights',
    );
  }
  const config = fromHfConfig(readJsonFile(configFile));
  // the weights first: a directory with nothing to export says so, not that its graph exists
  const ckpt = openSafetensors(modelDir);
  const lora = adapter ? loraPairs(adapter, config) : undefined;
  for (const dtype of dtypes) {
    const target = join(dir, 'onnx', graphFileName(dtype, graphOptions.merged));
    if (!overwrite && existsSync(target)) {
      throw new ModelFileError(target, 'exists; pass `overwrite: true` (CLI: --force) to replace it');
    }
  }

  const specs = weightSpecs(config);
  const names = new Map<string, string>();
  for (const spec of specs) {
    const name = checkpointName(ckpt, spec);
    if (name === undefined) {
      const hint =
        spec.name === 'lm_head.weight'
          ? ' (config.json says tie_word_embeddings is false; set it true if the model reuses its embeddings)'
          : '';
      throw new ModelWeightsError(spec.name, `missing from ${ckpt.source}${hint}`);
    }
    const entry = ckpt.tensors.get(name)!;
    if (entry.shape.length !== spec.shape.length || entry.shape.some((d, i) => d !== spec.shape[i])) {
      throw new ModelWeightsError(
        spec.name,
        `is [${entry.shape.join(', ')}] in ${entry.file}, but config.json makes it [${spec.shape.join(', ')}]`,
      );
    }
    names.set(spec.name, name);
  }
  const used = new Set(names.values());
  const ignored: string[] = [];
  const unknown: string[] = [];
  for (const name of ckpt.tensors.keys()) {
    if (used.has(name)) continue;
    if (IGNORED_BUFFER.test(name) || (name === 'lm_head.weight' && config.tieWordEmbeddings))
      ignored.push(name);
    else unknown.push(name);
  }
  if (unknown.length > 0) {
    const shown =
      unknown.slice(0, 5).join(', ') + (unknown.length > 5 ? `, and ${unknown.length - 5} more` : '');
    const loraHint = unknown.some((n) => n.includes('lora_'))
      ? ' (LoRA weights: merge the adapter into the model first)'
      : '';
    throw new ModelWeightsError(
      unknown[0]!,
      `${ckpt.source} holds tensors a ${config.modelType} model of this config.json has no place for: ${shown}${loraHint}`,
    );
  }
  const sourceDtypes = [...new Set([...names.values()].map((n) => ckpt.tensors.get(n)!.dtype))].sort();

  const graph = writeGraphAside(
    dir,
    config,
    (spec) => {
      // the shape was checked against the spec above: read() returns exactly its values
      const values = ckpt.read(names.get(spec.name)!);
      const pair = lora?.get(spec.name);
      if (pair && adapter) {
        mergeLora(values, spec.shape, adapter.ckpt.read(pair.a), adapter.ckpt.read(pair.b), adapter);
      }
      return values;
    },
    {
      ...graphOptions,
      externalDataThreshold,
      onTensor: onProgress ? (tensor, index, count) => onProgress({ tensor, index, count }) : undefined,
    },
    dtypes,
  );
  const files: string[] = [];
  if (adapter) {
    // the adapter directory becomes a model directory: the base's config beside the adapter's tokenizer
    for (const name of ['config.json', 'generation_config.json']) {
      if (!existsSync(join(dir, name)) && existsSync(join(modelDir, name))) {
        copyFileSync(join(modelDir, name), join(dir, name));
        files.push(name);
      }
    }
  }
  files.push(...graph.commit());
  const otherGraphs = readdirSync(join(dir, 'onnx'))
    .filter((f) => ONNX_DECODER.test(f) && !f.includes('.onnx_data') && !files.includes(`onnx/${f}`))
    .sort()
    .map((f) => `onnx/${f}`);
  return {
    dir,
    config,
    source: ckpt.source,
    sourceDtypes,
    ignored,
    files,
    parameters: parameterCount(config),
    weightBytes: graph.weightBytes,
    externalData: graph.external,
    otherGraphs,
    ...(adapter && lora
      ? { adapter: { base: adapter.base, rank: adapter.rank, scale: adapter.scale, matrices: lora.size } }
      : {}),
  };
}

/** A LoRA adapter as peft saves it, checked for what a plain merge covers. */
interface Adapter {
  base: string;
  rank: number;
  scale: number;
  ckpt: SafetensorsCheckpoint;
}

function isNonEmptyObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && Object.keys(value).length > 0;
}

function readAdapter(dir: string, file: string, givenBase: string | undefined): Adapter {
  const json = readJsonFile(file);
  const refuse = (field: string, why: string) => new ModelFileError(file, `${field}: ${why}`);
  if (json.peft_type !== undefined && json.peft_type !== 'LORA') {
    throw refuse(
      'peft_type',
      `${JSON.stringify(json.peft_type)} is not supported; modelkit merges LORA adapters`,
    );
  }
  const rank = json.r;
  const alpha = json.lora_alpha;
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank <= 0) {
    throw refuse('r', `must be a positive integer, got ${JSON.stringify(rank)}`);
  }
  if (typeof alpha !== 'number') throw refuse('lora_alpha', `must be a number, got ${JSON.stringify(alpha)}`);
  const unsupported: [string, boolean][] = [
    ['use_dora', json.use_dora === true],
    ['fan_in_fan_out', json.fan_in_fan_out === true],
    ['bias', json.bias !== undefined && json.bias !== 'none'],
    ['modules_to_save', Array.isArray(json.modules_to_save) && json.modules_to_save.length > 0],
    ['layers_to_transform', json.layers_to_transform !== undefined && json.layers_to_transform !== null],
    ['rank_pattern', isNonEmptyObject(json.rank_pattern)],
    ['alpha_pattern', isNonEmptyObject(json.alpha_pattern)],
  ];
  for (const [field, set] of unsupported) {
    if (set) {
      throw refuse(
        field,
        `${JSON.stringify(json[field])} is not supported (modelkit merges plain LoRA: W + alpha / r * B A); merge with peft's merge_and_unload() and save the model instead`,
      );
    }
  }
  const named = typeof json.base_model_name_or_path === 'string' ? json.base_model_name_or_path : undefined;
  const base = givenBase ?? named;
  if (base === undefined || !existsSync(join(base, 'config.json'))) {
    throw new ModelFileError(
      file,
      base === undefined
        ? 'names no base model (base_model_name_or_path); give the base model directory with the `base` option (CLI: --base DIR)'
        : `its base model ${JSON.stringify(base)} is not a local model directory (no config.json there); give the base model directory with the \`base\` option (CLI: --base DIR)`,
    );
  }
  const weights = join(dir, 'adapter_model.safetensors');
  if (!existsSync(weights)) {
    throw new ModelFileError(
      weights,
      existsSync(join(dir, 'adapter_model.bin'))
        ? 'missing; the adapter is a PyTorch pickle (adapter_model.bin), which modelkit does not read: save it with safe_serialization=True'
        : 'missing: a LoRA adapter directory holds adapter_config.json and adapter_model.safetensors',
    );
  }
  const ckpt = openSafetensors(dir, 'adapter_model.safetensors');
  const scale = json.use_rslora === true ? alpha / Math.sqrt(rank) : alpha / rank;
  return { base: resolve(base), rank, scale, ckpt };
}

/**
 * The adapter's A and B tensors by the name of the weight they adapt
 * (`model.layers.0.self_attn.q_proj.weight`); every tensor of the adapter must be one of a pair.
 */
function loraPairs(adapter: Adapter, config: DecoderConfig): Map<string, { a: string; b: string }> {
  const specs = new Map(weightSpecs(config).map((s) => [s.name, s]));
  const pairs = new Map<string, { a?: string; b?: string }>();
  for (const [name, entry] of adapter.ckpt.tensors) {
    const m = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(name);
    const target = m ? `${m[1]}.weight` : undefined;
    const spec = target ? specs.get(target) : undefined;
    if (!m || !target || !spec || spec.kind !== 'linear') {
      throw new ModelWeightsError(
        name,
        `in ${adapter.ckpt.source} is not the A or B matrix of a linear layer of this ${config.modelType} model; modelkit merges LoRA on linear layers only`,
      );
    }
    const [rows, cols] = spec.shape as [number, number];
    const expected = m[2] === 'A' ? [adapter.rank, cols] : [rows, adapter.rank];
    if (entry.shape.length !== 2 || entry.shape[0] !== expected[0] || entry.shape[1] !== expected[1]) {
      throw new ModelWeightsError(
        name,
        `is [${entry.shape.join(', ')}] in ${adapter.ckpt.source}, expected [${expected.join(', ')}] (r ${adapter.rank}, ${target} [${rows}, ${cols}])`,
      );
    }
    const pair = pairs.get(target) ?? {};
    if (m[2] === 'A') pair.a = name;
    else pair.b = name;
    pairs.set(target, pair);
  }
  const complete = new Map<string, { a: string; b: string }>();
  for (const [target, { a, b }] of pairs) {
    if (!a || !b) {
      throw new ModelWeightsError(
        target,
        `has a LoRA ${a ? 'A' : 'B'} matrix without its ${a ? 'B' : 'A'} in ${adapter.ckpt.source}`,
      );
    }
    complete.set(target, { a, b });
  }
  if (complete.size === 0) throw new ModelWeightsError(adapter.ckpt.source, 'holds no LoRA matrices');
  return complete;
}

/** w [rows, cols] += scale * (b [rows, r] @ a [r, cols]), as peft's merge does. */
function mergeLora(
  w: Float32Array,
  shape: readonly number[],
  a: Float32Array,
  b: Float32Array,
  adapter: Adapter,
): void {
  const { rank, scale } = adapter;
  const [rows, cols] = shape as [number, number];
  const row = new Float32Array(cols);
  for (let i = 0; i < rows; i++) {
    row.fill(0);
    for (let k = 0; k < rank; k++) {
      const bik = b[i * rank + k]!;
      if (bik === 0) continue;
      const off = k * cols;
      for (let j = 0; j < cols; j++) row[j]! += bik * a[off + j]!;
    }
    const off = i * cols;
    for (let j = 0; j < cols; j++) w[off + j]! += scale * row[j]!;
  }
}
