/**
 * What evaluations need from a model, as small interfaces. `runtimeGenerator`, `runtimeScorer` and
 * `runtimeRankSource` adapt an `@implicit-it/runtime` model to them; anything else that can generate or score (a remote API, a test double)
 * can implement them too. Every method takes *user messages* (instructions), not formatted prompts:
 * the adapter applies the chat template (the paper uses the Tulu format
 * `<|user|>\n{instruction}\n<|assistant|>\n`), because it also knows where the user message starts,
 * which the rules need.
 */

/**
 * Options of one generation batch.
 *
 * @example
 * await generator.generateBatch(['Name a prime.'], { maxNewTokens: 64, signal: AbortSignal.timeout(60_000) });
 */
export interface GenerateOptions {
  /** Upper bound on new tokens per output. */
  maxNewTokens?: number;
  /** Cancels the batch. */
  signal?: AbortSignal;
}

/**
 * One generated output.
 *
 * @example
 * const generations: Generation[] = await generator.generateBatch(['Name a prime.', 'Say hi.'], {});
 * const cut = generations.filter((g) => g.finishReason === 'length').length;
 */
export interface Generation {
  /** The decoded response text, without the prompt and without the end-of-sequence token. */
  text: string;
  /** Why generation stopped, when the adapter knows: `stop` (EOS or a stop string) or `length` (the token limit). */
  finishReason?: 'stop' | 'length';
  /** Number of generated tokens, when the adapter knows. */
  tokenCount?: number;
  /** The generated token ids, when the adapter knows (token-shift analysis ranks exactly these). */
  tokenIds?: number[];
}

/**
 * Greedy generation of responses to instructions, in batches.
 *
 * @example
 * const echo: Generator = { async generateBatch(xs) { return xs.map((x) => ({ text: x })); } };
 */
export interface Generator {
  /** Generates one output per instruction, in order. */
  generateBatch(instructions: readonly string[], options: GenerateOptions): Promise<Generation[]>;
}

/**
 * An instruction and a response to score or rank under a model.
 *
 * @example
 * const item: ResponseItem = { instruction: 'Name a prime.', response: '7' };
 * const [scored] = await scorer.scoreContinuations([item]);
 */
export interface ResponseItem {
  instruction: string;
  response: string;
  /**
   * The response's token ids, when known (e.g. from a generation with the same tokenizer): ranked or
   * scored as they are instead of re-tokenizing `response`, which need not give the same tokens back.
   */
  responseIds?: readonly number[];
}

/**
 * Teacher-forced log-probabilities of a response's tokens (natural log), one per token.
 *
 * @example
 * const items = [{ instruction: 'Say hi.', response: 'Hi!' }];
 * const [score]: ContinuationScore[] = await scorer.scoreContinuations(items);
 * console.log(responseScore(score!.tokenLogprobs), score!.truncated ?? 0);
 */
export interface ContinuationScore {
  tokenLogprobs: number[];
  /**
   * Tokens at the response's end left unscored, when the scorer cuts prompt + response at a maximum
   * length (as the paper's `ratio_eval.py` does at `--max_seq_length`): `tokenLogprobs` covers the rest.
   */
  truncated?: number;
}

/**
 * Teacher-forced scoring: log p(response token | prompt, previous response tokens), batched.
 *
 * @example
 * const flat: Scorer = { async scoreContinuations(items) { return items.map(() => ({ tokenLogprobs: [-1] })); } };
 */
export interface Scorer {
  scoreContinuations(
    items: readonly ResponseItem[],
    options?: { signal?: AbortSignal },
  ): Promise<ContinuationScore[]>;
}

/**
 * One response token and its rank under a model (1 = the model's top choice).
 *
 * @example
 * const [{ tokens }] = await baseRanks.rankTokens([{ instruction: 'Say hi.', response: 'Hello there!' }]);
 * const shifted = tokens.filter((t: TokenRank) => t.rank > 3).map((t) => t.text);
 */
export interface TokenRank {
  id: number;
  /** The token's surface text (as decoded), for reporting. */
  text: string;
  /** 1 + the number of vocabulary items the model scores strictly higher at this position. */
  rank: number;
}

/**
 * For every token of a response, its rank under a model given the same prefix (teacher forcing).
 *
 * @example
 * const top: RankSource = { async rankTokens(items) { return items.map(() => ({ tokens: [] })); } };
 */
export interface RankSource {
  rankTokens(
    items: readonly ResponseItem[],
    options?: { signal?: AbortSignal },
  ): Promise<{ tokens: TokenRank[] }[]>;
}

/**
 * Progress of a long-running evaluation step: `done` of `total` items, `resumed` of them from a journal or cache.
 *
 * @example
 * const onProgress = (p: Progress) => console.log(`${p.phase} ${p.label ?? ''} ${p.done}/${p.total}`);
 * await generateRun({ generator, generatorName, out, instructions, onProgress });
 */
export interface Progress {
  phase: 'generate' | 'judge' | 'rank' | 'shift' | 'report';
  done: number;
  total: number;
  resumed: number;
  /** The ablation subset or model being processed, where there are several. */
  label?: string;
}

/**
 * Callbacks every long-running function accepts.
 *
 * @example
 * const callbacks: ProgressCallbacks = { onWarning: (message) => console.warn(message) };
 * await writeReport('runs/llama2', callbacks);
 */
export interface ProgressCallbacks {
  onProgress?: ((progress: Progress) => void) | undefined;
  /** Things the user should know that are not errors (e.g. a judge without logprobs). */
  onWarning?: ((message: string) => void) | undefined;
}
