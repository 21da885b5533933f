import { basename, dirname } from 'node:path';
import type { LogitsProcessorList } from '@huggingface/transformers';
import { AutoModelForCausalLM, env, Tensor } from '@huggingface/transformers';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { expect } from 'vitest';
import type { StepInputs } from '../src/decoder-session.js';
import { type GenerateInput, type GenerateOptions, loadModel, type Model } from '../src/index.js';

const loaded = new Map<number, Promise<Model>>();

/** `a` and `b` have the same length and differ by less than 1e-5 everywhere (float rounding). */
export function expectClose(a: Float32Array, b: Float32Array): void {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  expect(max).toBeLessThan(1e-5);
}

/**
 * A tiny modelkit model whose seeded weights are scaled by 10, so that its greedy answers vary from
 * token to token (see createTinyModel's initScale). Written once into modelkit's cache and reused.
 */
export async function diverseModelDir(seed = 1): Promise<string> {
  return (await createTinyModel({ seed: seed, initScale: 10 })).dir;
}

/** The diverse tiny model, loaded once per test file (quiet). */
export function tinyModel(seed = 1): Promise<Model> {
  let m = loaded.get(seed);
  if (!m) {
    m = diverseModelDir(seed).then((dir) => loadModel(dir, { log: () => {} }));
    loaded.set(seed, m);
  }
  return m;
}

export const PROMPTS = [
  'Give me a recipe for tiramisu.',
  'Write a poem about the sea.',
  'What is 2 + 2?',
  'List three colors and explain why you like each of them in one sentence.',
];

/** One unpadded row `ids` from an empty cache, as `DecoderSession.run` takes it. */
export function promptStep(
  ids: readonly number[],
  logitsFrom: number,
  fetch: NonNullable<StepInputs['fetch']>,
): StepInputs {
  return {
    batch: 1,
    seq: ids.length,
    inputIds: BigInt64Array.from(ids, BigInt),
    attentionMask: new BigInt64Array(ids.length).fill(1n),
    positionIds: BigInt64Array.from(ids, (_, i) => BigInt(i)),
    past: null,
    logitsFrom,
    fetch,
  };
}

/**
 * Streams `prompt` on `model`: `started` resolves once `tokens` tokens are out (so that other requests
 * can join a running batch), `ids` with every token id when the stream ends.
 */
export function streamInBackground(
  model: Model,
  prompt: GenerateInput,
  options: GenerateOptions,
  tokens: number,
): { started: Promise<void>; ids: Promise<number[]> } {
  let release!: () => void;
  const started = new Promise<void>((r) => {
    release = r;
  });
  const ids = (async () => {
    const out: number[] = [];
    for await (const part of model.stream(prompt, options)) {
      if (part.type !== 'token') continue;
      out.push(part.id);
      if (out.length === tokens) release();
    }
    return out;
  })();
  return { started, ids };
}

/**
 * Greedy `@huggingface/transformers` generate() on `hf` (a causal LM loaded from `model`'s
 * directory), the prompt `ids` and the rules `processors` as its LogitsProcessorList, stopping at
 * `model`'s EOS ids: the new token ids.
 */
export async function transformersGreedy(
  hf: { generate(options: unknown): Promise<unknown> },
  model: Model,
  ids: readonly number[],
  maxNewTokens: number,
  processors: LogitsProcessorList,
): Promise<number[]> {
  const out = (await hf.generate({
    input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
    attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
    max_new_tokens: maxNewTokens,
    do_sample: false,
    logits_processor: processors,
    eos_token_id: model.info.eosIds,
  })) as Tensor;
  return Array.from(out.data as BigInt64Array, Number).slice(ids.length);
}

/**
 * A level-0 q4 file loaded with `q4AccuracyLevel: 4` scores exactly like the level-4 file of the same
 * weights (and unlike itself as written), and the log names `nodes` rewritten nodes.
 */
export async function expectLevelRaised(level0: string, level4: string, nodes: number): Promise<Model[]> {
  const lines: string[] = [];
  const models = await Promise.all([
    loadModel(level0, { dtype: 'q4', log: () => {} }),
    loadModel(level0, { dtype: 'q4', q4AccuracyLevel: 4, log: (l) => lines.push(l) }),
    loadModel(level4, { dtype: 'q4', log: () => {} }),
  ]);
  try {
    expect(lines).toContain(`MatMulNBits accuracy level 4 on ${nodes} nodes`);
    expect(models.map((m) => m.info.q4AccuracyLevel)).toEqual([0, 4, 4]);
    const item = [{ prompt: PROMPTS[1]!, continuation: ' The sea is wide and deep and blue.' }];
    const [asWritten, raised, written4] = await Promise.all(models.map((m) => m.score(item)));
    expect(raised![0]!.logprobs).toEqual(written4![0]!.logprobs);
    expect(raised![0]!.logprobs).not.toEqual(asWritten![0]!.logprobs);
    return models;
  } finally {
    await Promise.all(models.map((m) => m.dispose()));
  }
}

/** The model directory `dir` loaded by transformers.js, offline, on the CPU (`fp32` unless `options` say otherwise). */
export function transformersModel(
  dir: string,
  options: { dtype?: 'fp32' | 'q4' | 'q8'; model_file_name?: string } = {},
): ReturnType<typeof AutoModelForCausalLM.from_pretrained> {
  env.allowRemoteModels = false;
  env.localModelPath = dirname(dir);
  return AutoModelForCausalLM.from_pretrained(basename(dir), { dtype: 'fp32', device: 'cpu', ...options });
}
