import { argmax, type RuleSpec } from '@implicit-it/rules';
import type { PromptFormat } from '@implicit-it/tokenizers';
import { applyRules } from './logits-processor.js';
import type { Model } from './model.js';
import type { GenerateInput } from './options.js';

/**
 * Greedy decoding the way the paper's released code runs it (`use_cache = False`): every step reruns
 * the whole sequence through the model and keeps the last position's logits. Slow by design; the
 * reference that the KV-cached engine is checked and benchmarked against.
 *
 * By default only the last position's logits are computed. `everyPosition: true` computes the LM
 * head at every position of the sequence, as the reference's Hugging Face forward does (it then
 * log-softmaxes them all, which this leaves out). The tokens are the same either way; only the time
 * differs, so the benchmark against the paper's loop uses it.
 *
 * @example
 * const ids = await generateWithoutCache(model, 'Give me a recipe for tiramisu.', { maxNewTokens: 32, rules: 'hewitt2024' });
 */
export async function generateWithoutCache(
  model: Model,
  input: GenerateInput,
  options: {
    maxNewTokens: number;
    rules?: RuleSpec;
    format?: PromptFormat;
    addBos?: boolean;
    ignoreEos?: boolean;
    /** Compute the LM head at every position, as the paper's code does (default false: the last only). */
    everyPosition?: boolean;
  },
): Promise<number[]> {
  const prompt = model.prompt(input, options.format, options);
  const rules = model.rules(options.rules ?? false);
  const state = rules?.createState({
    promptIds: prompt.ids,
    scopeStart: prompt.scopeStart,
    promptLength: prompt.promptLength,
  });
  const eos = new Set(model.info.eosIds);
  const seq = [...prompt.ids];
  const out: number[] = [];
  // the context (ModelInfo.maxPositions) ends it as it ends the engine's rows: the sequence fills it
  const max = model.info.maxPositions ?? Number.POSITIVE_INFINITY;
  while (out.length < options.maxNewTokens && seq.length < max) {
    const n = seq.length;
    const step = await model.session.run({
      batch: 1,
      seq: n,
      inputIds: BigInt64Array.from(seq, BigInt),
      attentionMask: new BigInt64Array(n).fill(1n),
      positionIds: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
      past: null,
      logitsFrom: options.everyPosition ? 0 : -1,
      fetch: 'none',
    });
    const row = step.logits.slice((step.kept - 1) * step.vocab, step.kept * step.vocab);
    if (rules && state) applyRules(rules, row, state);
    const id = argmax(row);
    out.push(id);
    state?.append(id);
    if (eos.has(id) && !options.ignoreEos) break;
    seq.push(id);
  }
  return out;
}
