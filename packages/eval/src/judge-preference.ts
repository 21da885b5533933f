/** The part of an OpenAI-compatible chat completion the preference is read from. */
export interface ChatCompletionChoice {
  message?: { content?: string | null } | null;
  logprobs?: {
    content?:
      | { token: string; logprob: number; top_logprobs?: { token: string; logprob: number }[] }[]
      | null;
  } | null;
  finish_reason?: string | null;
  [extra: string]: unknown;
}

/** A preference in the judge's frame (1: `m` better, 2: `M` better) and where it came from. */
export interface JudgedPreference {
  /** In [1, 2], or NaN when the answer could not be read. */
  preference: number;
  source: 'logprobs' | 'discrete' | 'none';
}

/**
 * alpaca_eval's weighted preference from one completion: 2 - P(m) / (P(m) + P(M)) over the
 * `top_logprobs` of the first answer token (a label missing from the top list has probability 0).
 * When the completion has no logprobs, or neither label is among them, the discrete answer is used:
 * `m` -> 1, `M` -> 2 (`source: 'discrete'`); anything else is NaN (`source: 'none'`).
 *
 * @example
 * preferenceFromChoice({ logprobs: { content: [{ token: 'M', logprob: -0.1,
 *   top_logprobs: [{ token: 'M', logprob: -0.1 }, { token: 'm', logprob: -2.4 }] }] } });
 * // { preference: 1.909..., source: 'logprobs' }
 */
export function preferenceFromChoice(choice: ChatCompletionChoice | undefined): JudgedPreference {
  const top = choice?.logprobs?.content?.[0]?.top_logprobs;
  if (Array.isArray(top)) {
    const found = new Map<string, number>();
    for (const t of top) {
      if ((t.token === 'm' || t.token === 'M') && !found.has(t.token) && Number.isFinite(t.logprob)) {
        found.set(t.token, t.logprob);
      }
    }
    if (found.size > 0) {
      const lm = found.get('m') ?? Number.NEGATIVE_INFINITY;
      const lM = found.get('M') ?? Number.NEGATIVE_INFINITY;
      const max = Math.max(lm, lM);
      const pm = Math.exp(lm - max);
      const pM = Math.exp(lM - max);
      return { preference: 2 - pm / (pm + pM), source: 'logprobs' };
    }
  }
  const answer = choice?.message?.content?.trim();
  if (answer === 'm') return { preference: 1, source: 'discrete' };
  if (answer === 'M') return { preference: 2, source: 'discrete' };
  return { preference: Number.NaN, source: 'none' };
}
