import {
  chmodSync,
  lstatSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ListsEveryKey } from '@implicit-it/rules';
import type { DecoderConfig } from './config.js';
import { ModelConfigError } from './errors.js';
import { toGenerationConfig, toHfConfig } from './hf-config.js';
import type { DecoderGraphOptions, Q4Options, WeightDtype } from './onnx/decoder-graph.js';
import { checkDtypes, checkGraphOptions, checkQ4Options, writeGraphAside } from './onnx/write-aside.js';
import { GRAPH_OPTIONS, refuseUnknownOptions } from './options.js';
import { CONFIG_INPUT_OPTIONS, type ConfigInput, resolveConfig, validateConfig } from './resolve-config.js';
import { streamSafetensors } from './safetensors.js';
import { shown } from './shown.js';
import { tinyTokenizer } from './tokenizer/tiny-tokenizer.js';
import {
  CONVENTIONAL_EOS_TOKENS,
  readTokenizerDir,
  TOKENIZER_FILE_NAMES,
} from './tokenizer/tokenizer-dir.js';
import {
  type ModelWeights,
  numel,
  parameterCount,
  randomWeightSource,
  type WeightSource,
  weightSpecs,
  weightsSource,
} from './weights.js';

/** The largest Float32Array V8 allocates, 2^32 values (each weight tensor is one). */
const MAX_TENSOR_BYTES = 4 * 2 ** 32;

/** Throws a {@link ModelConfigError} naming the field when a weight tensor is too large for one array. */
function checkTensorSizes(config: DecoderConfig): void {
  const field: Record<string, keyof DecoderConfig> = {
    embed_tokens: 'vocabSize',
    lm_head: 'vocabSize',
    q_proj: 'hiddenSize',
    k_proj: 'hiddenSize',
    v_proj: 'hiddenSize',
    o_proj: 'hiddenSize',
    gate_proj: 'intermediateSize',
    up_proj: 'intermediateSize',
    down_proj: 'intermediateSize',
  };
  for (const spec of weightSpecs(config)) {
    const bytes = numel(spec.shape) * 4;
    if (bytes > MAX_TENSOR_BYTES) {
      const part = Object.keys(field).find((k) => spec.name.includes(k));
      throw new ModelConfigError(
        part ? field[part]! : 'hiddenSize',
        `makes ${spec.name} [${spec.shape.join(', ')}] ${(bytes / 1024 ** 3).toFixed(1)} GiB, more than one Float32Array can hold (16 GiB); pick smaller sizes`,
      );
    }
  }
}

/**
 * Files of a Hugging Face model directory that loaders read (this repository's runtime and tokenizers,
 * transformers.js, transformers): those a new model does not write are removed from the directory, so
 * that no file of a previous model there is read beside the new one (SmolLM's `vocab.json` and
 * `merges.txt` beside a tiny `tokenizer.json`, a stale `onnx/model_fp16.onnx` loaded for `fp16`, old
 * PyTorch weights that transformers would load with the new config). Other files are left alone.
 */
const MODEL_FILE_NAMES: readonly string[] = [
  'config.json',
  'generation_config.json',
  ...TOKENIZER_FILE_NAMES,
  'model.safetensors',
  'model.safetensors.index.json',
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
];
/** Sharded PyTorch weights (`model-00001-of-00002.safetensors`). */
const WEIGHT_SHARD = /^(model|pytorch_model)-\d+-of-\d+\.(safetensors|bin)$/;
/**
 * ONNX decoders the runtime and transformers.js pick by dtype (fp32, fp16, q8, int8, uint8, q4, q4f16,
 * bnb4), at the top or in `onnx/`, with their external data.
 */
export const ONNX_DECODER =
  /^(model|decoder_model_merged)(_fp16|_quantized|_int8|_uint8|_q4|_q4f16|_bnb4)?\.onnx(_data(_\d+)?)?$/;

/** Removes the model files under `dir` that are not in `written` (paths relative to `dir`); returns them. */
function removeStaleModelFiles(dir: string, written: readonly string[]): string[] {
  const keep = new Set(written);
  const removed: string[] = [];
  const remove = (path: string) => {
    if (keep.has(path)) return;
    const full = join(dir, path);
    let isFile = false;
    try {
      isFile = lstatSync(full).isFile();
    } catch {
      return; // absent
    }
    if (!isFile) return; // a directory of that name is none of ours
    rmSync(full, { force: true });
    removed.push(path);
  };
  for (const name of MODEL_FILE_NAMES) remove(name);
  for (const sub of ['', 'onnx']) {
    let entries: string[];
    try {
      entries = readdirSync(join(dir, sub));
    } catch {
      continue;
    }
    for (const entry of entries.sort()) {
      if (ONNX_DECODER.test(entry) || (sub === '' && WEIGHT_SHARD.test(entry)))
        remove(sub ? `${sub}/${entry}` : entry);
    }
  }
  return removed;
}

/**
 * Options of {@link createModel}: a preset plus config overrides, where to write, and what weights.
 *
 * @example
 * const options: CreateModelOptions = { preset: 'tiny', seed: 3, dtypes: ['fp32', 'q4'], out: '/tmp/tiny-q4' };
 * const { files } = await createModel(options); // files include 'onnx/model.onnx' and 'onnx/model_q4.onnx'
 */
export interface CreateModelOptions extends ConfigInput, DecoderGraphOptions, Q4Options {
  /**
   * The model directory to write (created when missing). Files of the same names are overwritten, and
   * a previous model's files that the new one does not write (other tokenizer files, ONNX graphs of
   * other dtypes, PyTorch weights) are removed; other files are left alone.
   */
  out: string;
  /** Seed of the random weights, an integer in [0, 2^32) (ignored when `weights` is given); default 0. */
  seed?: number | undefined;
  /** Explicit weights by Hugging Face name (see {@link randomWeights}), or a source called per tensor. */
  weights?: ModelWeights | WeightSource | undefined;
  /**
   * A Hugging Face tokenizer directory whose files are copied in (its vocabulary must fit `vocabSize`).
   * Default: the built-in tiny byte-level BPE tokenizer. The written tokenizer's BOS/EOS/PAD tokens
   * (see {@link readTokenizerDir}: named in its config files, else a conventional special EOS such as
   * `<|endoftext|>`) set the config's ids unless they are given explicitly (a preset's own ids are its
   * real tokenizer's); a tokenizer without a BOS (`bos_token: null`) sets none, one without an EOS is
   * refused (`eosTokenId`). Every id must be one of the tokenizer's.
   */
  tokenizerDir?: string | undefined;
  /**
   * The ONNX graphs to write, by transformers.js dtype: `fp32` (`onnx/model.onnx`) and/or `q4`
   * (`onnx/model_q4.onnx`, see {@link WeightDtype}). Default `['fp32']`.
   */
  dtypes?: readonly WeightDtype[] | undefined;
  /**
   * Also write the weights as PyTorch's `model.safetensors` (float32, Hugging Face names; the same
   * values as the graphs), so that transformers' `from_pretrained` loads the model: a base model to
   * finetune (`@implicit-it/finetune`'s `planJob` refuses a directory of ONNX graphs only). Default false.
   */
  safetensors?: boolean | undefined;
  /** Weight bytes of a graph above which its weights go to `onnx/<file>_data`; default just under 2 GiB. */
  externalDataThreshold?: number | undefined;
  /** Progress per written weight tensor (of all graphs). */
  onProgress?: ((event: { tensor: string; index: number; count: number }) => void) | undefined;
}

/** The options of {@link createModel}, for telling a misspelt one (`dtype`, `hiddenSzie`) from a known one. */
const CREATE_MODEL_OPTIONS = [
  ...CONFIG_INPUT_OPTIONS,
  'out',
  'seed',
  'weights',
  'tokenizerDir',
  'dtypes',
  'safetensors',
  'externalDataThreshold',
  'onProgress',
  ...GRAPH_OPTIONS,
] as const satisfies readonly (keyof CreateModelOptions)[];

// every option is listed (a new one missing here would be refused as unknown)
const _allCreateModelOptionsListed: ListsEveryKey<CreateModelOptions, typeof CREATE_MODEL_OPTIONS> = true;
void _allCreateModelOptionsListed;

/**
 * What {@link createModel} wrote.
 *
 * @example
 * const created: CreatedModel = await createModel({ preset: 'tiny', out });
 * created.parameters; // 106816
 * created.externalData; // false
 */
export interface CreatedModel {
  /** Absolute path of the model directory. */
  dir: string;
  config: DecoderConfig;
  /** Paths of the written files, relative to `dir`. */
  files: string[];
  /** Paths of a previous model's files that were removed (see {@link CreateModelOptions.out}), relative to `dir`. */
  removed: string[];
  parameters: number;
  /** Bytes of weight data in the ONNX file(s), of all graphs (quantized weights at their packed size). */
  weightBytes: number;
  /** Whether weights went to `onnx/<file>_data` (for any graph). */
  externalData: boolean;
}

/**
 * Refuses an `out` that is a file, or lies under one, before any work: `mkdir` would fail with a bare
 * ENOTDIR after the weights were generated.
 */
function refuseFileOnPath(dir: string): void {
  for (let path = dir; ; path = dirname(path)) {
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(path, { throwIfNoEntry: false });
    } catch (error) {
      // ENOTDIR: a file further up, found on the next turns
      if ((error as NodeJS.ErrnoException).code !== 'ENOTDIR') throw error;
    }
    if (stat !== undefined) {
      if (stat.isDirectory()) return;
      throw new ModelConfigError(
        'out',
        path === dir
          ? `${dir} is a file, not a directory; name a directory to write the model into`
          : `${dir} lies under ${path}, which is a file, not a directory; name another directory`,
      );
    }
    if (dirname(path) === path) return;
  }
}

/**
 * Writes a complete Hugging Face model directory in the optimum / transformers.js layout:
 * `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json` (plus the given
 * tokenizer's other files) and `onnx/model.onnx` (with `onnx/model.onnx_data` for weights above the
 * external-data threshold), or the graphs of the `dtypes` asked for (`onnx/model_q4.onnx`), and
 * with `safetensors: true` PyTorch's `model.safetensors` too. The same options write byte-identical
 * files. Weights are streamed to disk one tensor at a time (a `weights` source is asked for each
 * tensor once per graph, and once more for `model.safetensors`).
 *
 * @example
 * const { dir } = await createModel({ preset: 'tiny', seed: 1, out: '/tmp/tiny' });
 * await createModel({ preset: 'smollm2-135m', seed: 1, out: '/tmp/smol', tokenizerDir: '../shared/fixtures/tokenizers/smollm' });
 */
export async function createModel(options: CreateModelOptions): Promise<CreatedModel> {
  refuseUnknownOptions(options, CREATE_MODEL_OPTIONS, 'createModel');
  const {
    out,
    seed = 0,
    weights,
    tokenizerDir,
    externalDataThreshold,
    onProgress,
    kvDtype,
    repeatKv,
    positionIds,
    linear,
    merged,
    dtypes = ['fp32'],
    safetensors = false,
    q4BlockSize,
    q4AccuracyLevel,
    ...configInput
  } = options;
  if (typeof out !== 'string' || out.trim() === '') {
    // resolve('') is the current directory, whose model files would be replaced and removed
    throw new ModelConfigError(
      'out',
      `expected the path of the model directory to write (e.g. '/tmp/tiny'), got ${shown(out)}`,
    );
  }
  refuseFileOnPath(resolve(out));
  checkDtypes(dtypes);
  checkQ4Options({ q4BlockSize, q4AccuracyLevel });
  checkGraphOptions({ kvDtype, repeatKv, positionIds, linear, merged, externalDataThreshold });
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw new ModelConfigError(
      'onProgress',
      `must be a function ({ tensor, index, count }) => void, got ${shown(onProgress)}`,
    );
  }
  if (typeof safetensors !== 'boolean') {
    throw new ModelConfigError('safetensors', `must be true or false, got ${shown(safetensors)}`);
  }
  if (tokenizerDir !== undefined && (typeof tokenizerDir !== 'string' || tokenizerDir === '')) {
    throw new ModelConfigError(
      'tokenizerDir',
      `must be the path of a tokenizer directory, got ${shown(tokenizerDir)}`,
    );
  }
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new ModelConfigError('seed', `must be an integer in [0, 2^32), got ${shown(seed)}`);
  }
  const base = resolveConfig(configInput);
  const tokenizer = tokenizerDir
    ? readTokenizerDir(tokenizerDir, base.maxPositionEmbeddings)
    : tinyTokenizer(base.maxPositionEmbeddings);
  const config: DecoderConfig = { ...base };
  // the special ids are the written tokenizer's (a preset's are its real tokenizer's, e.g. Qwen's
  // 151643, which the built-in 512-id tokenizer does not have, or an unrelated token of another
  // tokenizer), unless given explicitly; a tokenizer without a BOS leaves none (loaders that fall back
  // to generation_config.json would prepend the preset's)
  for (const key of ['bosTokenId', 'eosTokenId', 'padTokenId'] as const) {
    if (configInput[key] === undefined) config[key] = tokenizer[key];
  }
  if (config.eosTokenId === null && configInput.eosTokenId === undefined) {
    throw new ModelConfigError(
      'eosTokenId',
      `the tokenizer in ${tokenizerDir} names no EOS token (eos_token_id in generation_config.json, eos_token in tokenizer_config.json or special_tokens_map.json) and has none of ${CONVENTIONAL_EOS_TOKENS.join(', ')} as a special token; give eosTokenId explicitly, or name the token in its tokenizer_config.json`,
    );
  }
  validateConfig(config, { tokenizerVocabSize: tokenizer.vocabSize });
  // the tokenizer's files are read before anything is written: `tokenizerDir` may be `out` itself
  const tokenizerFiles = Object.entries(tokenizer.files).map(
    ([name, content]) => [name, typeof content === 'string' ? content : readFileSync(content.path)] as const,
  );
  checkTensorSizes(config);

  const source: WeightSource =
    weights === undefined
      ? randomWeightSource(seed)
      : typeof weights === 'function'
        ? weights
        : weightsSource(config, weights);

  const dir = resolve(out);
  const specs = weightSpecs(config);
  // progress counts the safetensors copy's tensors after the graphs'
  let graphTensors = 0;
  const graph = writeGraphAside(
    dir,
    config,
    source,
    {
      externalDataThreshold,
      kvDtype,
      repeatKv,
      positionIds,
      linear,
      merged,
      q4BlockSize,
      q4AccuracyLevel,
      onTensor: onProgress
        ? (tensor, index, count) => {
            graphTensors = count;
            onProgress({ tensor, index, count: count + (safetensors ? specs.length : 0) });
          }
        : undefined,
    },
    dtypes,
  );
  const files: string[] = [];
  // written beside and renamed into place with the graphs, as they are
  const weightsAside = join(dir, `.model.safetensors.partial-${process.pid}`);
  try {
    if (safetensors) {
      streamSafetensors(
        weightsAside,
        specs,
        (i) => source(specs[i]!),
        { format: 'pt' },
        (i) =>
          onProgress?.({
            tensor: specs[i]!.name,
            index: graphTensors + i,
            count: graphTensors + specs.length,
          }),
      );
    }
    const writeJson = (name: string, value: unknown) => {
      writeFileSync(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
      files.push(name);
    };
    writeJson('config.json', toHfConfig(config));
    writeJson('generation_config.json', toGenerationConfig(config));
    for (const [name, content] of tokenizerFiles) {
      // written beside and renamed over the file: never a missing or truncated tokenizer file, and the
      // copy gets the model's own mode (a read-only source, 0444, must not make a rerun fail)
      const aside = join(dir, `.${name}.partial-${process.pid}`);
      try {
        writeFileSync(aside, content);
        chmodSync(aside, 0o644);
        renameSync(aside, join(dir, name));
      } catch (error) {
        rmSync(aside, { force: true });
        throw error;
      }
      files.push(name);
    }
  } catch (error) {
    graph.discard();
    rmSync(weightsAside, { force: true });
    throw error;
  }
  files.push(...graph.commit());
  if (safetensors) {
    renameSync(weightsAside, join(dir, 'model.safetensors'));
    files.push('model.safetensors');
  }
  // after the new graph is in place: an interrupted run leaves the previous model's files whole
  const removed = removeStaleModelFiles(dir, files);
  return {
    dir,
    config,
    files,
    removed,
    parameters: parameterCount(config),
    weightBytes: graph.weightBytes,
    externalData: graph.external,
  };
}
