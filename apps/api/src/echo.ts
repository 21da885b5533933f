import {
  type LegacyLogprobs,
  legacyTokenName,
  legacyTopLogprobs,
  type PromptEcho,
  TextOffsets,
} from './openai-format.js';
import type { Plan } from './plan.js';

/**
 * The echo of each prompt of a completions request with `echo` (`Plan.echo`), in `Plan.inputs`
 * order: its text and, when the request asks for log-probs, each token's log-prob and top
 * alternatives given the tokens before it. They are scored under the base model in one batched
 * teacher-forced pass (`model.score`): the rules shape what follows a prompt, not the prompt, and
 * OpenAI's and vLLM's prompt log-probs leave the logit bias out too. The first token has nothing
 * before it: null, as OpenAI returns it.
 */
export async function promptEchoes(plan: Plan, signal: AbortSignal): Promise<PromptEcho[]> {
  const texts = plan.echo;
  if (texts === null) throw new Error('promptEchoes: the plan has no echo');
  if (plan.logprobs === null) return texts.map((text) => ({ text, logprobs: null }));
  const { model } = plan.served;
  const { tokenizer } = model;
  const bytes = (id: number) => tokenizer.tokenBytes(id);
  // a one-token prompt has nothing to score
  const scored = plan.inputs.flatMap((input, i) => (input.promptIds.length > 1 ? [i] : []));
  const results = await model.score(
    scored.map((i) => {
      const ids = plan.inputs[i]!.promptIds;
      return { prompt: { promptIds: ids.slice(0, 1) }, continuation: ids.slice(1) };
    }),
    { top: plan.logprobs, signal },
  );
  const byInput = new Map(scored.map((input, k) => [input, results[k]!]));
  return plan.inputs.map(({ promptIds }, i) => {
    const text = texts[i]!;
    const result = byInput.get(i);
    const offsets = new TextOffsets(tokenizer, new Set(), [], true);
    const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const [t, id] of promptIds.entries()) {
      out.tokens.push(legacyTokenName(tokenizer.tokenText(id), bytes(id)));
      out.text_offset.push(Math.min(offsets.next(id), text.length));
      if (t === 0) {
        out.token_logprobs.push(null);
        out.top_logprobs.push(null);
        continue;
      }
      out.token_logprobs.push(result!.logprobs[t - 1]!);
      const top = (result!.top?.[t - 1] ?? []).map((alt) => ({ ...alt, token: tokenizer.tokenText(alt.id) }));
      out.top_logprobs.push(legacyTopLogprobs(top, bytes));
    }
    return { text, logprobs: out };
  });
}
