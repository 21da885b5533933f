import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { meantOption } from '@implicit-it/rules';
import { ModelLoadError } from './errors.js';

/**
 * ONNX weight variants, named as transformers.js names them (`dtype` option).
 *
 * @example
 * `onnx/model${DTYPE_SUFFIX.q4}.onnx`; // 'onnx/model_q4.onnx'
 */
export const DTYPE_SUFFIX = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
} as const;
/**
 * A weight variant of the ONNX decoder (`fp32`, `fp16`, `q4`...): a key of `DTYPE_SUFFIX`.
 *
 * @example
 * const dtype: ModelDtype = process.env.SMALL ? 'q4' : 'fp32';
 * const files = resolveModelFiles(modelDir, dtype);
 */
export type ModelDtype = keyof typeof DTYPE_SUFFIX;

/**
 * The parts of config.json the runtime reads.
 *
 * @example
 * const { num_hidden_layers, vocab_size, sliding_window }: ModelConfig = resolveModelFiles(modelDir).config;
 */
export interface ModelConfig {
  model_type: string;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  hidden_size: number;
  head_dim: number;
  vocab_size: number;
  max_position_embeddings: number | undefined;
  /**
   * The sliding window of the model's attention (Mistral, Phi-3, Gemma 2, Qwen2 with
   * `use_sliding_window`): a query sees the keys fewer than this many cache positions back. Null when
   * every layer sees the whole context (no `sliding_window`, `use_sliding_window: false`, no
   * `sliding_attention` layer, or a window as long as `max_position_embeddings`).
   */
  sliding_window: number | null;
  eos_token_id: number[];
  bos_token_id: number | undefined;
  pad_token_id: number | undefined;
  raw: Record<string, unknown>;
}

/**
 * A validated model directory.
 *
 * @example
 * const files: ModelFiles = resolveModelFiles(modelDir, 'fp16');
 * console.log(files.onnxFile, files.merged ? '(merged decoder)' : '', files.generationConfig.eos_token_id);
 */
export interface ModelFiles {
  dir: string;
  config: ModelConfig;
  /** generation_config.json, or `{}` when the directory has none. */
  generationConfig: Record<string, unknown>;
  /** The ONNX decoder chosen for `dtype`. */
  onnxFile: string;
  /** `decoder_model_merged*.onnx` (with a `use_cache_branch` input) rather than `model*.onnx`. */
  merged: boolean;
  dtype: ModelDtype;
}

function readJson(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ModelLoadError(
      'runtime.missing_file',
      `${file}: cannot read ${what} (${(cause as Error).message})`,
      {
        file,
        cause,
      },
    );
  }
  if (text.startsWith('\ufeff')) {
    // what transformers does too: Python's json refuses a byte order mark ("Unexpected UTF-8 BOM")
    throw new ModelLoadError(
      'runtime.malformed_file',
      `${file}: ${what} starts with a UTF-8 byte order mark, which JSON readers (Python's json, Rust's serde_json) refuse; save it as UTF-8 without BOM`,
      { file },
    );
  }
  try {
    const value = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new Error('not a JSON object');
    return value;
  } catch (cause) {
    throw new ModelLoadError(
      'runtime.malformed_file',
      `${file}: ${what} is not valid JSON (${(cause as Error).message})`,
      {
        file,
        cause,
      },
    );
  }
}

const ids = (v: unknown): number[] =>
  v === undefined || v === null
    ? []
    : (Array.isArray(v) ? v : [v]).filter((x): x is number => Number.isInteger(x));

/**
 * The attention window declared by a config, read conservatively: a window on any layer counts (a
 * layer that in fact sees everything only costs the engine some cache copies past the window).
 */
function slidingWindow(c: Record<string, unknown>): number | null {
  const w = c.sliding_window;
  if (typeof w !== 'number' || !Number.isInteger(w) || w <= 0) return null;
  if (c.use_sliding_window === false) return null;
  if (Array.isArray(c.layer_types) && !c.layer_types.includes('sliding_attention')) return null;
  // Qwen2: layers from max_window_layers on are windowed
  const layers = c.num_hidden_layers;
  if (c.use_sliding_window === true && typeof c.max_window_layers === 'number' && typeof layers === 'number')
    if (c.max_window_layers >= layers) return null;
  const maxPos = c.max_position_embeddings;
  if (typeof maxPos === 'number' && w >= maxPos) return null;
  return w;
}

function parseConfig(raw: Record<string, unknown>, file: string): ModelConfig {
  // multimodal / nested configs keep the decoder's fields under text_config
  const c = (
    typeof raw.text_config === 'object' && raw.text_config !== null ? { ...raw, ...raw.text_config } : raw
  ) as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new ModelLoadError(
        'runtime.bad_config',
        `${file}: field "${key}" must be a positive integer, got ${JSON.stringify(v)}`,
        {
          file,
        },
      );
    }
    return v;
  };
  const heads = int('num_attention_heads');
  const hidden = int('hidden_size');
  // optional (no context limit without it), but a value there must be one
  const maxPos =
    c.max_position_embeddings === undefined || c.max_position_embeddings === null
      ? undefined
      : int('max_position_embeddings');
  return {
    model_type: typeof c.model_type === 'string' ? c.model_type : 'unknown',
    num_hidden_layers: int('num_hidden_layers'),
    num_attention_heads: heads,
    num_key_value_heads: int('num_key_value_heads', heads),
    hidden_size: hidden,
    head_dim: int('head_dim', Math.floor(hidden / heads)),
    vocab_size: int('vocab_size'),
    max_position_embeddings: maxPos,
    sliding_window: slidingWindow(c),
    eos_token_id: ids(c.eos_token_id),
    bos_token_id: ids(c.bos_token_id)[0],
    pad_token_id: ids(c.pad_token_id)[0],
    raw,
  };
}

/** `; did you mean models/tiny?` for a {@link nearMiss}, `''` for none. */
export const didYouMean = (path: string | undefined): string =>
  path === undefined ? '' : `; did you mean ${path}?`;

/**
 * For a missing model directory `path` whose parent directory holds a directory of a nearby name (a
 * typo, another case): that directory, written as `path` was (`./models/tinyy` gives `./models/tiny`,
 * an absolute path an absolute one); else undefined. What the "did you mean" of `loadModel`'s errors
 * names, for callers that check a path themselves first.
 *
 * @example
 * import { mkdirSync, mkdtempSync } from 'node:fs';
 * import { tmpdir } from 'node:os';
 * import { join } from 'node:path';
 *
 * const models = mkdtempSync(join(tmpdir(), 'models-'));
 * mkdirSync(join(models, 'tiny'));
 * nearMiss(join(models, 'tinyy')) === join(models, 'tiny'); // true
 * nearMiss(join(models, 'other')); // undefined
 */
export function nearMiss(path: string): string | undefined {
  const trimmed = path.replace(/(?<=.)\/+$/, '');
  const name = basename(trimmed);
  let siblings: string[];
  try {
    siblings = readdirSync(dirname(trimmed), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  } catch {
    return undefined;
  }
  const meant = meantOption(name, siblings);
  return meant === undefined ? undefined : trimmed.slice(0, trimmed.length - name.length) + meant;
}

/**
 * The model directory of a file in it, for a hint where the file was given for the directory: the
 * directory above `onnx/` for a graph there (`onnx/model.onnx`, whose own directory has no
 * config.json), else the file's own directory.
 *
 * @example
 * modelDirOf('models/tiny/onnx/model.onnx'); // 'models/tiny'
 * modelDirOf('models/tiny/config.json'); // 'models/tiny'
 */
export function modelDirOf(file: string): string {
  const dir = dirname(file);
  return basename(dir) === 'onnx' ? dirname(dir) : dir;
}

/**
 * Validates a local Hugging Face model directory and picks its ONNX decoder:
 * `onnx/model{suffix}.onnx`, else `onnx/decoder_model_merged{suffix}.onnx` (also looked for at the top
 * level, as some exports place them).
 *
 * @example
 * const files = resolveModelFiles('./SmolLM2-135M', 'fp32');
 */
export function resolveModelFiles(dir: string, dtype: ModelDtype = 'fp32'): ModelFiles {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ModelLoadError(
      'runtime.not_a_directory',
      existsSync(dir)
        ? `${dir}: a file, not a model directory; give the directory that holds it (${modelDirOf(dir)})`
        : `${dir}: not a directory (expected a Hugging Face model directory with config.json and onnx/model.onnx)${didYouMean(nearMiss(dir))}`,
      { file: dir },
    );
  }
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SUFFIX, dtype)) {
    throw new ModelLoadError(
      'runtime.bad_dtype',
      `dtype "${dtype}" is not one of ${Object.keys(DTYPE_SUFFIX).join(', ')}`,
    );
  }
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) {
    // the onnx/ folder of a model, given for the model: the directory above it is the one
    const above = basename(dir) === 'onnx' && existsSync(join(dirname(dir), 'config.json'));
    throw new ModelLoadError(
      'runtime.missing_file',
      `${configFile} is missing: ${dir} is not a Hugging Face model directory${above ? `; give the model directory above it (${dirname(dir)})` : ''}`,
      {
        file: configFile,
      },
    );
  }
  const suffix = DTYPE_SUFFIX[dtype];
  const candidates = [
    [join(dir, 'onnx', `model${suffix}.onnx`), false],
    [join(dir, 'onnx', `decoder_model_merged${suffix}.onnx`), true],
    [join(dir, `model${suffix}.onnx`), false],
    [join(dir, `decoder_model_merged${suffix}.onnx`), true],
  ] as const;
  const found = candidates.find(([file]) => existsSync(file));
  if (!found) {
    // the dtypes whose decoders the directory does have
    const present = (Object.keys(DTYPE_SUFFIX) as ModelDtype[]).filter((d) =>
      ['onnx/model', 'onnx/decoder_model_merged', 'model', 'decoder_model_merged'].some((stem) =>
        existsSync(join(dir, `${stem}${DTYPE_SUFFIX[d]}.onnx`)),
      ),
    );
    throw new ModelLoadError(
      'runtime.missing_file',
      `${dir}: no ONNX decoder for dtype "${dtype}": expected ${candidates.map(([f]) => f.slice(dir.length + 1)).join(' or ')}` +
        (present.length > 0
          ? `; it has ${present.map((d) => `dtype "${d}"`).join(', ')}: choose one with the \`dtype\` option (CLI: --dtype)`
          : checkpointNote(dir)),
      { file: candidates[0][0] },
    );
  }
  checkGraphFiles(dir, found[0]);
  // the config is read once a graph is there: a directory without one (a tokenizer's, a PyTorch
  // checkpoint's of another architecture) is told it lacks the graph, not a llama config field
  const config = parseConfig(readJson(configFile, 'the model config'), configFile);
  const genFile = join(dir, 'generation_config.json');
  const generationConfig = existsSync(genFile) ? readJson(genFile, 'the generation config') : {};
  return { dir, config, generationConfig, onnxFile: found[0], merged: found[1], dtype };
}

/** How every Git LFS pointer file begins (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md). */
const LFS_POINTER = 'version https://git-lfs.github.com/spec/';

/**
 * Refuses an ONNX graph file, or an external data file beside it (`model.onnx_data`,
 * `model.onnx_data_1`, `model.onnx.data`), that cannot hold the graph, before onnxruntime reads it
 * with a message that names neither the cause nor the fix: a directory, an empty file (an interrupted
 * write or download), or a Git LFS pointer (a repository cloned without git-lfs, where onnxruntime
 * says only "Protobuf parsing failed" or "out of bounds").
 */
function checkGraphFiles(dir: string, graph: string): void {
  if (!statSync(graph).isFile())
    throw new ModelLoadError('runtime.malformed_file', `${graph}: not a file (expected an ONNX graph)`, {
      file: graph,
    });
  const name = basename(graph);
  const data = readdirSync(dirname(graph))
    .filter((f) => f.startsWith(`${name}_data`) || f.startsWith(`${name}.data`))
    .map((f) => join(dirname(graph), f));
  for (const file of [graph, ...data]) {
    const { size } = statSync(file);
    const what = file === graph ? 'the ONNX graph' : `external data of ${name}`;
    if (size === 0)
      throw new ModelLoadError(
        'runtime.malformed_file',
        `${file}: ${what} is empty (0 bytes): an interrupted write or download leaves one; recreate or download it again`,
        { file },
      );
    if (size < 1024 && readHead(file, LFS_POINTER.length) === LFS_POINTER)
      throw new ModelLoadError(
        'runtime.malformed_file',
        `${file}: ${what} is a Git LFS pointer (${size} bytes), not the file itself: the repository was cloned without its LFS files; run \`git lfs install && git lfs pull\` in ${dir}, or download the file`,
        { file },
      );
  }
}

/** The first `n` bytes of a file, as latin1 text. */
function readHead(file: string, n: number): string {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(n);
    return buffer.toString('latin1', 0, readSync(fd, buffer, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * A path as a word of a command a message prints to copy and run: as it is, or in double quotes when
 * it holds a space or another character a shell reads otherwise (double quotes group the word alike in
 * sh, PowerShell and cmd.exe; the CLI's own messages quote each shell exactly).
 */
const commandWord = (path: string) => (/^[\w@%+=:,./\\-]+$/.test(path) ? path : `"${path}"`);

/**
 * For a directory without any ONNX decoder that holds a PyTorch checkpoint (a finetune's output, a
 * hub snapshot without its ONNX export): how to write the graph this runtime needs.
 */
function checkpointNote(dir: string): string {
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return '';
  }
  const weights = files.find((f) =>
    /^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$|\.safetensors\.index\.json$/.test(f),
  );
  if (weights === undefined) return '';
  return `; it holds a PyTorch checkpoint (${weights}): write its ONNX graph with \`implicit-it model export ${commandWord(dir)}\` (@implicit-it/modelkit's exportOnnx: llama and qwen2 decoders) or optimum-cli export onnx`;
}

/** EOS ids of a model: generation_config, then config.json (the tokenizer adds its own). */
export function modelEosIds(files: ModelFiles): number[] {
  const fromGen = ids(files.generationConfig.eos_token_id);
  return fromGen.length > 0 ? fromGen : files.config.eos_token_id;
}
