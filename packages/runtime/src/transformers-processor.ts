import type { Tensor } from '@huggingface/transformers';
import { RuleSet, shownValue } from '@implicit-it/rules';
import { applyRules } from './logits-processor.js';

/**
 * The rules as a `@huggingface/transformers` LogitsProcessor, for using them inside transformers.js
 * `generate()` (and for checking this engine against it). One rule state per batch row, created
 * from the row's last `promptLength` ids and advanced with each new token; a call whose ids do not
 * extend the row's last ones (the next `generate()`) starts a new state. In a left-padded batch of
 * prompts of different lengths, give one prompt per row (an array, in row order): each row's state
 * then starts after its own padding. One prompt serves every row of one length. It loads
 * `@huggingface/transformers` (an optional peer dependency of this package): install it to use this.
 *
 * @example
 * import { type LogitsProcessor as HfLogitsProcessor, LogitsProcessorList } from '@huggingface/transformers';
 *
 * const processor = await transformersRulesProcessor(rules, { scopeStart: prompt.scopeStart, promptLength: prompt.promptLength });
 * const list = new LogitsProcessorList();
 * list.push(processor as HfLogitsProcessor); // typed `object`: transformers is an optional peer
 * await hfModel.generate({ input_ids: inputIds, logits_processor: list, max_new_tokens: 128, do_sample: false });
 */
export async function transformersRulesProcessor(
  rules: RuleSet,
  prompt:
    | { scopeStart: number; promptLength: number }
    | readonly { scopeStart: number; promptLength: number }[],
): Promise<object> {
  // checked here: a wrong argument would otherwise fail inside transformers.js's generate()
  // ("rules.createState is not a function")
  if (!RuleSet.isInstance(rules))
    throw new TypeError(
      `transformersRulesProcessor: rules must be a compiled RuleSet (compileRules(spec, tokenizer.vocabulary), or a model's model.rules(spec)), got ${shownValue(rules)}`,
    );
  const prompts = Array.isArray(prompt) ? prompt : undefined;
  (prompts ?? [prompt]).forEach((p: unknown, i) => {
    const { scopeStart, promptLength } = (p ?? {}) as { scopeStart?: unknown; promptLength?: unknown };
    if (!Number.isInteger(scopeStart) || !Number.isInteger(promptLength))
      throw new TypeError(
        `transformersRulesProcessor: ${prompts ? `prompt[${i}]` : 'prompt'} must be { scopeStart, promptLength } (integers, as tokenizer.buildPrompt returns them), got ${shownValue(p)}`,
      );
  });
  const { LogitsProcessor } = await import('@huggingface/transformers');
  class RulesLogitsProcessor extends LogitsProcessor {
    private readonly states: ReturnType<RuleSet['createState']>[] = [];
    /** Each row's ids at the last call: a call whose ids do not extend them starts a new generation. */
    private readonly seen: bigint[][] = [];
    /** `applyRules`' scratch, where the tokenizer has ids past the logits (added tokens). */
    private wide: Float32Array | undefined;
    override _call(inputIds: bigint[][], logits: Tensor) {
      // logits[i] is a view of row i: the rules add to it in place, as transformers' own processors do
      const rows = logits as unknown as { [row: number]: { data: Float32Array } };
      for (let i = 0; i < inputIds.length; i++) {
        const ids = inputIds[i]!;
        let state = this.states[i];
        const before = this.seen[i];
        // the ids after those the state holds (none for a new state: it starts from this prompt)
        let from = before?.length ?? 0;
        if (!state || !before || !extends_(ids, before)) {
          if (prompts && prompts.length !== inputIds.length)
            throw new RangeError(
              `transformersRulesProcessor: ${prompts.length} prompts given for a batch of ${inputIds.length} rows`,
            );
          const { scopeStart, promptLength } = prompts
            ? prompts[i]!
            : (prompt as { scopeStart: number; promptLength: number });
          if (promptLength > ids.length)
            throw new RangeError(
              `transformersRulesProcessor: row ${i} has ${ids.length} ids, fewer than its promptLength ${promptLength}`,
            );
          const promptIds = ids.slice(ids.length - promptLength).map(Number);
          state = rules.createState({ promptIds, scopeStart, promptLength });
          this.states[i] = state;
          from = ids.length;
        }
        for (let j = from; j < ids.length; j++) state.append(Number(ids[j]));
        this.seen[i] = ids.slice();
        // a tokenizer may have ids past the LM head (added tokens the model was not resized for)
        this.wide = applyRules(rules, rows[i]!.data, state, this.wide);
      }
      return logits;
    }
  }
  return new RulesLogitsProcessor();
}

/** Whether `ids` is `before` followed by at least one more id. */
function extends_(ids: readonly bigint[], before: readonly bigint[]): boolean {
  if (ids.length <= before.length) return false;
  for (let j = 0; j < before.length; j++) if (ids[j] !== before[j]) return false;
  return true;
}
