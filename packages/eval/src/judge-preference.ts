/**
 * The part of an OpenAI-compatible chat completion the preference is read from.
 *
 * @example
 * const choice: ChatCompletionChoice = { message: { content: 'M' }, logprobs: null };
 * preferenceFromChoice(choice); // { preference: 2, source: 'discrete' }
 */
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

/**
 * A preference in the judge's frame (1: `m` better, 2: `M` better) and where it came from.
 *
 * @example
 * const judged: JudgedPreference = preferenceFromChoice(response.choices[0]);
 * if (judged.source === 'none') console.warn('the judge gave neither m nor M');
 */
export interface JudgedPreference {
  /** In [1, 2], or NaN when the answer could not be read. */
  preference: number;
  source: 'logprobs' | 'discrete' | 'none';
}

/**
 * alpaca_eval's weighted preference from one completion: 2 - P(m) / (P(m) + P(M)) over the
 * `top_logprobs` of the first answer token (a label missing from the top list has probability 0).
 * Labels are matched exactly, as alpaca_eval does (GPT-4 lists ` M` beside `M`, and alpaca_eval's
 * published numbers leave it out). When the answer token itself is a whitespace variant (a judge
 * whose vocabulary answers ` M`), or no exact label is listed, the variants of each label are summed
 * instead: exact matching would read ` M` at 0.9 and `m` at 0.05 as "certainly m".
 * When the completion has no logprobs, or neither label is among them, the discrete answer is used:
 * `m` -> 1, `M` -> 2 (`source: 'discrete'`); anything else is NaN (`source: 'none'`).
 *
 * @example
 * preferenceFromChoice({ logprobs: { content: [{ token: 'M', logprob: -0.1,
 *   top_logprobs: [{ token: 'M', logprob: -0.1 }, { token: 'm', logprob: -2.4 }] }] } });
 * // { preference: 1.9088..., source: 'logprobs' }
 */
export function preferenceFromChoice(choice: ChatCompletionChoice | undefined): JudgedPreference {
  const top = choice?.logprobs?.content?.[0]?.top_logprobs;
  if (Array.isArray(top)) {
    // alpaca_eval's logprob_parser: the labels exactly as listed. A judge whose answer token itself
    // is a variant (` M`) has a vocabulary that spells labels so: there, or when no exact label is
    // listed, the whitespace variants of each label are summed.
    const first = choice?.logprobs?.content?.[0]?.token;
    const variantAnswer = typeof first === 'string' && first !== first.trim() && isLabel(first.trim());
    const exact = variantAnswer ? undefined : labelPreference(top, (token) => token);
    const weighted = exact ?? labelPreference(top, (token) => token.trim());
    if (weighted !== undefined) return { preference: weighted, source: 'logprobs' };
  }
  const answer = choice?.message?.content?.trim();
  if (answer === 'm') return { preference: 1, source: 'discrete' };
  if (answer === 'M') return { preference: 2, source: 'discrete' };
  return { preference: Number.NaN, source: 'none' };
}

const isLabel = (text: string): text is 'm' | 'M' => text === 'm' || text === 'M';

/** 2 - P(m) / (P(m) + P(M)) over the listed tokens that `label` maps to m or M; undefined if none does. */
function labelPreference(
  top: { token: string; logprob: number }[],
  label: (token: string) => string,
): number | undefined {
  const seen = new Set<string>(); // a token listed twice counts once
  const logprobs: Record<'m' | 'M', number[]> = { m: [], M: [] };
  for (const t of top) {
    if (typeof t?.token !== 'string' || seen.has(t.token) || !Number.isFinite(t.logprob)) continue;
    const l = label(t.token);
    if (!isLabel(l)) continue;
    seen.add(t.token);
    logprobs[l].push(t.logprob);
  }
  if (seen.size === 0) return undefined;
  const max = Math.max(...logprobs.m, ...logprobs.M);
  const pm = logprobs.m.reduce((sum, l) => sum + Math.exp(l - max), 0);
  const pM = logprobs.M.reduce((sum, l) => sum + Math.exp(l - max), 0);
  return 2 - pm / (pm + pM);
}
