import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DecoderConfig } from './config.js';
import { ModelFileError, ModelWeightsError } from './errors.js';
import { fromHfConfig } from './hf-config.js';
import type { DecoderGraphOptions } from './onnx/decoder-graph.js';
import { writeGraphAside } from './onnx/write-aside.js';
import { openSafetensors, type SafetensorsCheckpoint } from './safetensors.js';
import { numel, parameterCount, type WeightSpec, weightSpecs } from './weights.js';

/** Options of {@link exportOnnx}. */
export interface ExportOnnxOptions extends DecoderGraphOptions {
  /** A Hugging Face model directory: `config.json` and `model.safetensors` (or its sharded index). */
  dir: string;
  /** Replace an existing `onnx/model.onnx` (default false: refused, naming the file). */
  overwrite?: boolean;
  /** Total weight bytes above which weights go to `onnx/model.onnx_data`; default just under 2 GiB. */
  externalDataThreshold?: number;
  /** Progress per written weight tensor. */
  onProgress?: (event: { tensor: string; index: number; count: number }) => void;
}

/** What {@link exportOnnx} wrote. */
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
  /** Bytes of weight data in the ONNX file(s). */
  weightBytes: number;
  /** Whether weights went to `onnx/model.onnx_data`. */
  externalData: boolean;
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
 * Refused, with an error naming the file and field: a `config.json` modelkit does not build
 * (`rope_scaling`, an activation other than silu, `mlp_bias`, a model type other than llama/qwen2),
 * a missing or mis-shaped tensor, a tensor the configuration has no place for (a LoRA adapter must be
 * merged first), a non-float dtype, and an existing `onnx/model.onnx` unless `overwrite`.
 *
 * @example
 * const exported = await exportOnnx({ dir: 'jobs/poetry/output' });
 * console.log(exported.files); // ['onnx/model.onnx']
 */
export async function exportOnnx(options: ExportOnnxOptions): Promise<ExportedOnnx> {
  const { dir: given, overwrite = false, externalDataThreshold, onProgress, ...graphOptions } = options;
  const dir = resolve(given);
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) {
    throw new ModelFileError(
      configFile,
      'missing: a Hugging Face model directory has config.json beside its weights',
    );
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(configFile, 'utf8'));
  } catch (error) {
    throw new ModelFileError(configFile, `is not JSON (${(error as Error).message})`);
  }
  const config = fromHfConfig(json);
  const target = join(dir, 'onnx', 'model.onnx');
  if (!overwrite && existsSync(target)) {
    throw new ModelFileError(target, 'exists; pass overwrite: true (CLI: --force) to replace it');
  }
  const ckpt = openSafetensors(dir);

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
    const lora = unknown.some((n) => n.includes('lora_'))
      ? ' (LoRA weights: merge the adapter into the model first)'
      : '';
    throw new ModelWeightsError(
      unknown[0]!,
      `${ckpt.source} holds tensors a ${config.modelType} model of this config.json has no place for: ${shown}${lora}`,
    );
  }
  const sourceDtypes = [...new Set([...names.values()].map((n) => ckpt.tensors.get(n)!.dtype))].sort();

  const graph = writeGraphAside(
    dir,
    config,
    (spec) => {
      const values = ckpt.read(names.get(spec.name)!);
      if (values.length !== numel(spec.shape))
        throw new ModelWeightsError(spec.name, 'changed size while reading');
      return values;
    },
    {
      ...graphOptions,
      externalDataThreshold,
      onTensor: onProgress ? (tensor, index, count) => onProgress({ tensor, index, count }) : undefined,
    },
  );
  const files = graph.commit();
  return {
    dir,
    config,
    source: ckpt.source,
    sourceDtypes,
    ignored,
    files,
    parameters: parameterCount(config),
    weightBytes: graph.written.weightBytes,
    externalData: graph.written.external,
  };
}
