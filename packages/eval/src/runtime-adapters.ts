import type { RuleSetConfig } from '@implicit-it/rules';
import { AdapterContractError } from './errors.js';
import type { Generator, RankSource, ResponseItem, Scorer } from './model-interfaces.js';

/**
 * The part of an `@implicit-it/runtime` `Model` the adapters use, written out structurally so that
 * this package does not pull onnxruntime-node into installs that only compute win rates. A loaded
 * runtime `Model` satisfies it (checked by this package's type tests).
 */
export interface RuntimeModel {
  generate(
    inputs: readonly { instruction: string }[],
    options: {
      format?: 'tulu' | 'chat-template' | 'raw';
      maxNewTokens?: number;
      rules?: string | false | RuleSetConfig;
      batchSize?: number;
      signal?: AbortSignal;
    },
  ): Promise<{ text: string; finishReason: string; tokenIds: number[] }[]>;
  score(
    items: readonly { prompt: { instruction: string }; continuation: string | readonly number[] }[],
    options: {
      format?: 'tulu' | 'chat-template' | 'raw';
      rules?: string | false | RuleSetConfig;
      ranks?: boolean;
      batchSize?: number;
    },
  ): Promise<{ tokenIds: number[]; logprobs: number[]; ranks?: number[] }[]>;
  readonly tokenizer: { decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string };
}

/** Options shared by the runtime adapters. */
export interface RuntimeAdapterOptions {
  /** Prompt format (default `tulu`, the paper's). */
  format?: 'tulu' | 'chat-template' | 'raw';
  /** The rule-based adapter: a preset / subset name, a config, or false for the base model (default false). */
  rules?: string | false | RuleSetConfig;
  /** Rows per forward pass / decoding batch (default: the runtime's). */
  batchSize?: number;
}

const pick = (o: RuntimeAdapterOptions) => ({
  format: o.format ?? 'tulu',
  rules: o.rules ?? false,
  ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
});

/**
 * A `Generator` on a runtime model: greedy decoding under the Tulu prompt, with or without the rules.
 *
 * @example
 * const model = await loadModel('models/llama-2-7b');
 * await generateRun({ generator: runtimeGenerator(model, { rules: 'hewitt2024' }), ... });
 */
export function runtimeGenerator(model: RuntimeModel, options: RuntimeAdapterOptions = {}): Generator {
  return {
    async generateBatch(instructions, o) {
      const results = await model.generate(
        instructions.map((instruction) => ({ instruction })),
        {
          ...pick(options),
          ...(o.maxNewTokens !== undefined ? { maxNewTokens: o.maxNewTokens } : {}),
          ...(o.signal ? { signal: o.signal } : {}),
        },
      );
      o.signal?.throwIfAborted();
      return results.map((r, i) => {
        if (r.finishReason === 'abort') throw new AdapterContractError(`generation ${i} was aborted`);
        return {
          text: r.text,
          finishReason: r.finishReason === 'length' ? ('length' as const) : ('stop' as const),
          tokenCount: r.tokenIds.length,
          tokenIds: r.tokenIds,
        };
      });
    },
  };
}

/** Scores items, skipping empty responses (they have no tokens to score). */
async function scoreNonEmpty(
  model: RuntimeModel,
  items: readonly ResponseItem[],
  options: RuntimeAdapterOptions,
  ranks: boolean,
) {
  const live = items
    .map((x, i) => [x, i] as const)
    .filter(([x]) => (x.responseIds ? x.responseIds.length > 0 : x.response.length > 0));
  const scored = await model.score(
    live.map(([x]) => ({
      prompt: { instruction: x.instruction },
      continuation: x.responseIds ?? x.response,
    })),
    { ...pick(options), ranks },
  );
  // Array.from, not new Array(n): map() skips the holes of a sparse array
  const out: ({ tokenIds: number[]; logprobs: number[]; ranks?: number[] } | undefined)[] = Array.from(
    { length: items.length },
    () => undefined,
  );
  live.forEach(([, i], k) => {
    out[i] = scored[k];
  });
  return out;
}

/**
 * A `Scorer` on a runtime model: teacher-forced log-probs of each response token after the Tulu
 * prompt of its instruction (the paper's response ranking scores exp(mean) of them).
 *
 * @example
 * await rankResponses({ scorer: runtimeScorer(model), data: 'alpaca_data_2k.json', n: 1000 });
 */
export function runtimeScorer(model: RuntimeModel, options: RuntimeAdapterOptions = {}): Scorer {
  return {
    async scoreContinuations(items) {
      const scored = await scoreNonEmpty(model, items, options, false);
      return scored.map((s) => ({ tokenLogprobs: s?.logprobs ?? [] }));
    },
  };
}

/**
 * A `RankSource` on a runtime model: each response token's rank under the model (1 = its greedy
 * pick) given the same prefix, with the token's text, for the token-shift analysis.
 *
 * @example
 * await tokenShift({ base: runtimeRankSource(baseModel), aligned: 'run/outputs/chat.json' });
 */
export function runtimeRankSource(model: RuntimeModel, options: RuntimeAdapterOptions = {}): RankSource {
  return {
    async rankTokens(items) {
      const scored = await scoreNonEmpty(model, items, options, true);
      return scored.map((s) => {
        if (!s) return { tokens: [] };
        if (!s.ranks || s.ranks.length !== s.tokenIds.length) {
          throw new AdapterContractError(
            'model.score(..., { ranks: true }) returned no rank for every token',
          );
        }
        return {
          tokens: s.tokenIds.map((id, k) => ({ id, text: model.tokenizer.decode([id]), rank: s.ranks![k]! })),
        };
      });
    },
  };
}
