import type { Tensor } from '@huggingface/transformers';
import type { RuleSet } from '@implicit-it/rules';

/**
 * The rules as a `@huggingface/transformers` LogitsProcessor, for using them inside transformers.js
 * `generate()` (and for checking this engine against it). One rule state per batch row, created
 * from the row's last `promptLength` ids (left padding is skipped) and advanced with each new token.
 *
 * @example
 * import { LogitsProcessorList } from '@huggingface/transformers';
 * const list = new LogitsProcessorList();
 * list.push(await transformersRulesProcessor(rules, { scopeStart: prompt.scopeStart, promptLength: prompt.promptLength }));
 * await hfModel.generate({ input_ids, logits_processor: list, max_new_tokens: 128, do_sample: false });
 */
export async function transformersRulesProcessor(
  rules: RuleSet,
  prompt: { scopeStart: number; promptLength: number },
): Promise<object> {
  const { LogitsProcessor } = await import('@huggingface/transformers');
  class RulesLogitsProcessor extends LogitsProcessor {
    private readonly states: ReturnType<RuleSet['createState']>[] = [];
    private readonly seen: number[] = [];
    override _call(inputIds: bigint[][], logits: Tensor) {
      // logits[i] is a view of row i: the rules add to it in place, as transformers' own processors do
      const rows = logits as unknown as { [row: number]: { data: Float32Array } };
      for (let i = 0; i < inputIds.length; i++) {
        const ids = inputIds[i]!;
        let state = this.states[i];
        if (!state) {
          const promptIds = ids.slice(ids.length - prompt.promptLength).map(Number);
          state = rules.createState({
            promptIds,
            scopeStart: prompt.scopeStart,
            promptLength: prompt.promptLength,
          });
          this.states[i] = state;
          this.seen[i] = ids.length;
        }
        for (let j = this.seen[i]!; j < ids.length; j++) state.append(Number(ids[j]));
        this.seen[i] = ids.length;
        rules.apply(rows[i]!.data, state);
      }
      return logits;
    }
  }
  return new RulesLogitsProcessor();
}
