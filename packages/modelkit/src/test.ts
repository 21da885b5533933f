import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { DecoderConfig, DecoderConfigOverrides } from './config.js';
import { createModel } from './create-model.js';
import { fromHfConfig } from './hf-config.js';
import type { DecoderGraphOptions, Q4Options, WeightDtype } from './onnx/decoder-graph.js';
import { graphFileName } from './onnx/write-aside.js';
import { hashString } from './rng.js';
import { randomTensor, type WeightSource } from './weights.js';

/** Bump when the written files change for the same options, so cached tiny models are rebuilt. */
export const TINY_MODEL_FORMAT = 2;

/** Options of {@link createTinyModel}: the `tiny` preset's overrides, a seed, and where to write. */
export interface TinyModelOptions extends DecoderConfigOverrides, DecoderGraphOptions, Q4Options {
  /** Default 1. */
  seed?: number | undefined;
  /** The graphs to write (see `createModel`); default `['fp32']`. */
  dtypes?: readonly WeightDtype[] | undefined;
  /** Write here (overwriting). Default: a cache directory keyed by the options, reused across runs. */
  dir?: string | undefined;
  /**
   * Multiplies the seeded weights (not the norms) by this factor. modelkit's std 0.02 init gives a tiny
   * model near-uniform logits whose greedy output loops; 10 gives varied greedy sequences, which tests
   * that compare decoders token for token need. Default 1.
   */
  initScale?: number | undefined;
  /**
   * A tokenizer directory to write instead of the built-in 512-id one (give `vocabSize` its size or
   * more); the cache key holds its tokenizer.json's hash.
   */
  tokenizerDir?: string | undefined;
}

/**
 * {@link createTinyModel} options for a model whose prefill holds a CPU for a while (8 layers, hidden
 * 256, 2,048 positions: a 1,500-token prompt prefilled whole is one onnxruntime run of about 40
 * GFLOP), for tests of what such a run blocks (a caller's event loop, a server's other requests).
 */
export const SLOW_PREFILL_MODEL: Readonly<TinyModelOptions> = {
  hiddenSize: 256,
  intermediateSize: 1024,
  numHiddenLayers: 8,
  numAttentionHeads: 8,
  numKeyValueHeads: 4,
  headDim: 32,
  maxPositionEmbeddings: 2048,
};

/** The cache root of {@link createTinyModel}: `$IMPLICIT_IT_MODELKIT_CACHE` or `<tmp>/implicit-it-modelkit`. */
export function tinyModelCacheDir(): string {
  return resolve(process.env.IMPLICIT_IT_MODELKIT_CACHE ?? join(tmpdir(), 'implicit-it-modelkit'));
}

/**
 * A tiny seeded llama model directory (preset `tiny`: 2 layers, hidden 64, 4 heads / 2 KV heads,
 * 512-id byte-level BPE tokenizer with the Tulu chat template) for other packages' tests. Without
 * `dir`, it is written once into a cache directory keyed by the options and reused (written to a
 * temporary name and renamed, so parallel test workers are safe).
 *
 * @example
 * import { createTinyModel } from '@implicit-it/modelkit/test';
 * const { dir, config } = await createTinyModel({ seed: 2, numHiddenLayers: 1 });
 */
export async function createTinyModel(
  options: TinyModelOptions = {},
): Promise<{ dir: string; config: DecoderConfig }> {
  const { seed = 1, dir, initScale = 1, tokenizerDir, ...overrides } = options;
  const weights: WeightSource | undefined =
    initScale === 1
      ? undefined
      : (spec) => {
          const t = randomTensor(spec, seed);
          if (spec.kind !== 'norm') for (let i = 0; i < t.length; i++) t[i]! *= initScale;
          return t;
        };
  if (dir) {
    const created = await createModel({
      preset: 'tiny',
      ...overrides,
      seed,
      weights,
      tokenizerDir,
      out: dir,
    });
    return { dir: created.dir, config: created.config };
  }
  const sorted = Object.fromEntries(Object.entries(overrides).sort(([a], [b]) => a.localeCompare(b)));
  const tokenizer =
    tokenizerDir === undefined
      ? undefined
      : hashString(readFileSync(join(tokenizerDir, 'tokenizer.json'), 'utf8'));
  const key = JSON.stringify({ format: TINY_MODEL_FORMAT, seed, initScale, overrides: sorted, tokenizer });
  const target = join(tinyModelCacheDir(), `tiny-${hashString(key).toString(16)}-${key.length}`);
  const graph = join(target, 'onnx', graphFileName(overrides.dtypes?.[0] ?? 'fp32', overrides.merged));
  if (!existsSync(graph)) {
    mkdirSync(tinyModelCacheDir(), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await createModel({ preset: 'tiny', ...overrides, seed, weights, tokenizerDir, out: tmp });
    try {
      renameSync(tmp, target);
    } catch {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(graph)) throw new Error(`could not create ${target}`);
    }
  }
  return { dir: target, config: fromHfConfig(JSON.parse(readFileSync(join(target, 'config.json'), 'utf8'))) };
}
