import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { shownValue } from '@implicit-it/rules';
import { ModelLoadError } from './errors.js';
import { DTYPE_SUFFIX, didYouMean, type ModelDtype, nearMiss } from './model-dir.js';

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/**
 * Whether `s` looks like a hub id (`owner/name`) rather than a path.
 *
 * @example
 * isHubId('HuggingFaceTB/SmolLM2-135M'); // true (unless a local directory has that path)
 * isHubId('./models/smollm'); // false
 */
export function isHubId(s: string): boolean {
  return HUB_ID.test(s) && !s.startsWith('.') && !existsSync(s);
}

/**
 * Where hub models are cached: `$IMPLICIT_IT_CACHE/hub`, else `~/.cache/implicit-it/hub`.
 *
 * @example
 * console.log(`hub models are cached in ${defaultHubCacheDir()}`);
 */
export function defaultHubCacheDir(): string {
  return resolve(process.env.IMPLICIT_IT_CACHE ?? join(homedir(), '.cache', 'implicit-it'), 'hub');
}

/**
 * Options of `resolveModel`.
 *
 * @example
 * const options: ResolveOptions = { dtype: 'q4', offline: process.env.CI !== undefined, onProgress: console.log };
 * const dir = await resolveModel('HuggingFaceTB/SmolLM2-135M', options);
 */
export interface ResolveOptions {
  dtype?: ModelDtype | undefined;
  /** Never use the network: a hub id must already be cached. */
  offline?: boolean | undefined;
  cacheDir?: string | undefined;
  /**
   * The hub to fetch from: a mirror, or a server of your own with the same `/{id}/resolve/main/{file}`
   * paths. Default: the `HF_ENDPOINT` environment variable (as the Python hub client reads it), else
   * https://huggingface.co.
   */
  endpoint?: string | undefined;
  /**
   * Called with progress messages while downloading: one when it starts, one per file fetched, and, for
   * files of 10 MB or more, one each time another tenth of the file has arrived.
   */
  onProgress?: ((message: string) => void) | undefined;
}

/**
 * Where hub ids are fetched from (see `ResolveOptions.endpoint`).
 *
 * @example
 * hubEndpoint('https://hf-mirror.com/'); // 'https://hf-mirror.com'
 */
export function hubEndpoint(endpoint?: string): string {
  return (endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
}

/** What the hub client of @huggingface/transformers reports while it fetches (`progress_callback`). */
interface HubProgress {
  status: string;
  file?: string;
  loaded?: number;
  total?: number;
}

const MB = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** Turns the hub client's progress events into `onProgress` lines (see `ResolveOptions.onProgress`); exported for tests. */
export function progressLines(onProgress: (message: string) => void): (event: HubProgress) => void {
  const tenths = new Map<string, number>();
  const done = new Set<string>();
  return ({ status, file, loaded, total }) => {
    if (file === undefined) return;
    if (status === 'done' && !done.has(file)) {
      // the client reports a file again when a later step reads it from the cache
      done.add(file);
      onProgress(`fetched ${file}`);
    } else if (status === 'progress' && loaded !== undefined && total !== undefined && total >= 10e6) {
      const tenth = Math.floor((10 * loaded) / total);
      if (tenth > (tenths.get(file) ?? 0) && tenth < 10) {
        tenths.set(file, tenth);
        onProgress(`${file}: ${MB(loaded)} of ${MB(total)} (${tenth * 10}%)`);
      }
    }
  };
}

function cached(dir: string, dtype: ModelDtype): boolean {
  const suffix = DTYPE_SUFFIX[dtype];
  return (
    existsSync(join(dir, 'config.json')) &&
    existsSync(join(dir, 'tokenizer.json')) &&
    (existsSync(join(dir, 'onnx', `model${suffix}.onnx`)) ||
      existsSync(join(dir, 'onnx', `decoder_model_merged${suffix}.onnx`)))
  );
}

/** Whether `error` says that `name` itself (not something it imports) is not installed. */
export function isMissingPackage(error: unknown, name: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    message.includes(`'${name}'`)
  );
}

/**
 * The hub client, `@huggingface/transformers`: an optional peer dependency, loaded only to fetch a
 * hub id that is not cached yet.
 */
async function importHubClient(model: string, dir: string) {
  try {
    return await import('@huggingface/transformers');
  } catch (cause) {
    if (!isMissingPackage(cause, '@huggingface/transformers')) throw cause;
    throw new ModelLoadError(
      'runtime.hub_client_missing',
      `fetching "${model}" from the hub needs @huggingface/transformers, an optional peer dependency of @implicit-it/runtime: install it (npm install @huggingface/transformers@4.3.1), or pass a local model directory`,
      { file: dir, cause },
    );
  }
}

/**
 * A local model directory for a path or a hub id. A hub id (`HuggingFaceTB/SmolLM2-135M`) is fetched
 * once with the hub client of `@huggingface/transformers` into the cache, in the Hugging Face layout
 * (`<cacheDir>/<owner>/<name>/config.json, onnx/model.onnx, ...`); later calls use the cache offline.
 * `@huggingface/transformers` is an optional peer dependency: only fetching needs it (without it,
 * a `ModelLoadError` with code `runtime.hub_client_missing`).
 *
 * @example
 * const dir = await resolveModel('HuggingFaceTB/SmolLM2-135M', { dtype: 'fp32' });
 */
export async function resolveModel(model: string, options: ResolveOptions = {}): Promise<string> {
  if (typeof model !== 'string' || model.trim() === '') {
    // resolve('') is the current directory
    throw new ModelLoadError(
      'runtime.not_a_directory',
      (model as unknown) instanceof URL
        ? `model: expected a model directory (a path) or a hub id (owner/name), got the URL ${(model as unknown as URL).href}: pass fileURLToPath(url) (from node:url)`
        : `model: expected a model directory or a hub id (owner/name), got ${shownValue(model)}`,
    );
  }
  if (!isHubId(model)) return resolve(model);
  // for the errors below: an id whose owner is a local directory may be a mistyped path
  // (models/tinyy for models/tiny); looked for only when the id cannot be had
  const near = () => didYouMean(nearMiss(model));
  const dtype = options.dtype ?? 'fp32';
  const cacheDir = options.cacheDir ?? defaultHubCacheDir();
  const dir = join(cacheDir, model);
  if (cached(dir, dtype)) return dir;
  if (options.offline || process.env.HF_HUB_OFFLINE === '1') {
    throw new ModelLoadError(
      'runtime.offline',
      `"${model}" is neither a local directory nor cached in ${dir}, and the hub is off (offline): pass a local model directory, or run once with network access to cache it${near()}`,
      { file: dir },
    );
  }
  const endpoint = hubEndpoint(options.endpoint);
  const hf = await importHubClient(model, dir);
  options.onProgress?.(`downloading ${model} (${dtype}) from ${endpoint} into ${dir}`);
  const saved = {
    cacheDir: hf.env.cacheDir,
    allowRemoteModels: hf.env.allowRemoteModels,
    useFSCache: hf.env.useFSCache,
    remoteHost: hf.env.remoteHost,
  };
  Object.assign(hf.env, { cacheDir, allowRemoteModels: true, useFSCache: true, remoteHost: `${endpoint}/` });
  const progress_callback = options.onProgress ? progressLines(options.onProgress) : undefined;
  try {
    await hf.AutoConfig.from_pretrained(model, { progress_callback });
    await hf.AutoTokenizer.from_pretrained(model, { progress_callback });
    // loading the model fetches generation_config.json and the ONNX file(s) into the cache
    const loaded = await hf.AutoModelForCausalLM.from_pretrained(model, {
      dtype,
      device: 'cpu',
      progress_callback,
    });
    await loaded.dispose();
  } catch (cause) {
    throw new ModelLoadError(
      'runtime.hub_unreachable',
      `could not fetch "${model}" from ${endpoint} (${(cause as Error).message}); check the id and your network, or pass a local model directory${near()}`,
      { file: dir, cause },
    );
  } finally {
    Object.assign(hf.env, saved);
  }
  if (!cached(dir, dtype)) {
    throw new ModelLoadError(
      'runtime.hub_layout',
      `"${model}" was fetched but ${dir} lacks config.json, tokenizer.json or an onnx/ decoder for dtype ${dtype}`,
      {
        file: dir,
      },
    );
  }
  return dir;
}
