import { type RuleSetConfig, shownValue } from '@implicit-it/rules';
import { AdapterContractError, ContextLengthError, type ContextOverrun, EvalInputError } from './errors.js';
import type { Generator, RankSource, ResponseItem, Scorer } from './model-interfaces.js';

/**
 * An instruction, or (format `raw`) the instruction as the whole prompt text.
 *
 * @example
 * const raw: PromptInput = { text: 'Q: Name a prime.\nA:' };
 * model.prompt(raw, 'raw').ids.length;
 */
export type PromptInput = { instruction: string } | { text: string };

/**
 * The runtime input of an instruction: under format `raw` the instruction is the prompt itself (no
 * template; the runtime takes raw prompts as `{ text }`), otherwise it goes into the format's template.
 */
const promptInput = (instruction: string, format: RuntimeAdapterOptions['format']): PromptInput =>
  format === 'raw' ? { text: instruction } : { instruction };

/**
 * The part of an `@implicit-it/runtime` `Model` the adapters use, written out structurally so that
 * this package does not pull onnxruntime-node into installs that only compute win rates. A loaded
 * runtime `Model` satisfies it (checked by this package's type tests).
 *
 * @example
 * import { loadModel } from '@implicit-it/runtime';
 * const model: RuntimeModel = await loadModel('models/SmolLM2-135M');
 */
export interface RuntimeModel {
  generate(
    inputs: readonly PromptInput[],
    options: {
      format?: 'tulu' | 'chat-template' | 'raw';
      addBos?: boolean;
      maxNewTokens?: number;
      rules?: string | false | RuleSetConfig;
      batchSize?: number;
      signal?: AbortSignal;
    },
  ): Promise<{ text: string; finishReason: string; tokenIds: number[] }[]>;
  score(
    items: readonly {
      /** An instruction or a raw text, or a prompt built already (`prompt()`'s ids and scope). */
      prompt: PromptInput | { promptIds: readonly number[]; scopeStart?: number };
      continuation: string | readonly number[];
    }[],
    options: {
      format?: 'tulu' | 'chat-template' | 'raw';
      addBos?: boolean;
      rules?: string | false | RuleSetConfig;
      ranks?: boolean;
      batchSize?: number;
      signal?: AbortSignal;
    },
  ): Promise<{ tokenIds: number[]; logprobs: number[]; ranks?: number[] }[]>;
  /**
   * The prompt of an instruction (its ids, its text, and where the rules' scope starts: the first
   * token of the last user message), `addBos` as in `generate`.
   */
  prompt(
    input: PromptInput,
    format?: 'tulu' | 'chat-template' | 'raw',
    options?: { addBos?: boolean },
  ): BuiltPrompt;
  /** The ids of a response where it follows its prompt (prompt and response tokenized together). */
  continuationIds(prompt: { ids: number[]; text: string }, text: string): number[];
  /** The model's context in tokens (`max_position_embeddings`, or the graph's position table where shorter; undefined: none). */
  readonly info?: { readonly maxPositions?: number | undefined };
  readonly tokenizer: {
    encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
    decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
    /**
     * The text a token adds after other text (`Tokenizer.tokenText`: a SentencePiece `▁I` is " I");
     * without it, token-shift reports show `decode([id])`, which drops that space.
     */
    tokenText?(id: number): string;
    /**
     * The UTF-8 bytes a token stands for (`Tokenizer.tokenBytes`): token-shift reports write the
     * bytes of a token that is part of a character (a byte-level `Ã` piece, a SentencePiece
     * `<0xC3>`) as `<0xC3>`, where its text would be U+FFFD, the same for every such token.
     */
    tokenBytes?(id: number): ArrayLike<number>;
    /** End-of-sequence ids; the first is the one the Tulu prompt and the paper's scoring write. */
    readonly eosIds: readonly number[];
  };
}

/**
 * A prompt as `RuntimeModel.prompt` builds it: its ids, its text, and where the rules' scope starts
 * (the first token of the last user message; the runtime's `Prompt.scopeStart`).
 *
 * @example
 * const prompt: BuiltPrompt = model.prompt({ instruction: 'Name a prime.' });
 * model.continuationIds(prompt, 'Seven.');
 */
export interface BuiltPrompt {
  ids: number[];
  text: string;
  scopeStart: number;
}

/**
 * Options shared by the runtime adapters.
 *
 * @example
 * const options: RuntimeAdapterOptions = { format: 'chat-template', rules: 'hewitt2024', batchSize: 8 };
 * const generator = runtimeGenerator(model, options);
 */
export interface RuntimeAdapterOptions {
  /**
   * Prompt format (default `tulu`, the paper's); `chat-template` is the model's own template, `raw`
   * the instruction alone as the prompt text.
   */
  format?: 'tulu' | 'chat-template' | 'raw' | undefined;
  /**
   * Start each prompt with the BOS token (default: the format's own, see the runtime's
   * `GenerateOptions.addBos`: in `tulu`, where the tokenizer adds BOS itself); on a tokenizer
   * without a BOS (OLMo) `true` puts its EOS first, as open-instruct's `bos_token = eos_token` does. A run's record should hold it beside `format` (the CLI's fingerprints do).
   * Not with `format: 'raw'` (its text is tokenized as written): the runtime refuses that pair when it builds the first prompt.
   */
  addBos?: boolean | undefined;
  /** The rule-based adapter: a preset / subset name, a config, or false for the base model (default false). */
  rules?: string | false | RuleSetConfig | undefined;
  /** Rows per forward pass / decoding batch (default: the runtime's). */
  batchSize?: number | undefined;
}

/**
 * Options of `runtimeRankSource` (and, of them, `format`, `addBos` and `prompts`, of
 * `promptsOverContext`).
 *
 * @example
 * const built = new Map(instructions.map((x) => [x.instruction, baseModel.prompt({ instruction: x.instruction })]));
 * const options: RuntimeRankSourceOptions = { batchSize: 8, prompts: built };
 * await tokenShift({ base: runtimeRankSource(baseModel, options), aligned: 'run/outputs/chat.json' });
 */
export interface RuntimeRankSourceOptions extends RuntimeAdapterOptions {
  /**
   * Prompts this model has built already under `format` and `addBos` (`model.prompt(...)` of each
   * instruction), by instruction: taken as they are rather than built again, by a caller that built
   * them to check them first (`implicit-it eval shift` compares them with the aligned model's, and
   * checks them against the context, before it generates). Built under other settings or by another
   * model, they would be ranked after as they are: nothing here can tell. An instruction without one
   * has its prompt built as usual.
   */
  prompts?: ReadonlyMap<string, BuiltPrompt> | undefined;
}

/** What `model.prompt` takes of the options: the format, and `addBos` where given. */
const promptOptions = (o: Pick<RuntimeAdapterOptions, 'format' | 'addBos'>) => ({
  format: o.format ?? 'tulu',
  ...(o.addBos !== undefined ? { addBos: o.addBos } : {}),
});

/** The prompt of `instruction`: the one `options.prompts` holds for it, else built by `model`. */
function promptOf(
  model: RuntimeModel,
  instruction: string,
  options: Pick<RuntimeRankSourceOptions, 'format' | 'addBos' | 'prompts'>,
): BuiltPrompt {
  const given = options.prompts?.get(instruction);
  if (given) return given;
  const { format, ...bos } = promptOptions(options);
  return model.prompt(promptInput(instruction, format), format, bos);
}

const pick = (o: RuntimeAdapterOptions) => ({
  ...promptOptions(o),
  rules: o.rules ?? false,
  ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
});

/**
 * The first words of a text for a message, quoted: at most `max` characters, whitespace collapsed.
 *
 * @example
 * excerpt('Give me  a recipe\nfor tiramisu.', 16); // '"Give me a rec..."'
 */
export function excerpt(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max - 3).trimEnd()}...` : flat);
}

/**
 * The instructions whose prompt leaves the model no position to generate in: a prompt (the
 * instruction in the prompt format) of as many tokens as the model's context
 * (`info.maxPositions`: its `max_position_embeddings`, or the graph's position table where shorter) or more, which the runtime refuses. Empty when
 * every prompt fits or the model names no context. It only tokenizes (fast), so that a run can refuse
 * before generating anything rather than fail at the first batch that holds such an instruction. A
 * prompt that fits but leaves fewer positions than `maxNewTokens` is not an overrun: generation stops
 * at the end of the context with finish reason `length`. `prompts` (built already, by instruction)
 * are counted as they are, not built again.
 *
 * @example
 * const over = promptsOverContext(model, instructions.map((x) => x.instruction));
 * if (over.length) console.error(`instruction ${over[0].index} has ${over[0].tokens} prompt tokens`);
 */
export function promptsOverContext(
  model: RuntimeModel,
  instructions: readonly string[],
  options: Pick<RuntimeRankSourceOptions, 'format' | 'addBos' | 'prompts'> = {},
): ContextOverrun[] {
  const context = model.info?.maxPositions;
  if (context === undefined) return [];
  const over: ContextOverrun[] = [];
  instructions.forEach((instruction, index) => {
    const tokens = promptOf(model, instruction, options).ids.length;
    if (tokens >= context) over.push({ index, tokens });
  });
  return over;
}

/**
 * A `Generator` on a runtime model: greedy decoding under the Tulu prompt, with or without the rules.
 *
 * @example
 * import { loadModel } from '@implicit-it/runtime';
 *
 * const model = await loadModel('models/llama-2-7b');
 * const generator = runtimeGenerator(model, { rules: 'hewitt2024' });
 * await generateRun({ generator, generatorName: 'llama2-7b-rules', out: 'run/outputs/rules.json', instructions });
 */
export function runtimeGenerator(model: RuntimeModel, options: RuntimeAdapterOptions = {}): Generator {
  return {
    async generateBatch(instructions, o) {
      const results = await model.generate(
        instructions.map((instruction) => promptInput(instruction, options.format)),
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

/**
 * Scores items, skipping empty responses (they have no tokens to score). `eos: 'append'` scores the
 * response followed by the end-of-sequence token (unless its ids already end with one); `'drop'`
 * scores the response's own tokens, a trailing end-of-sequence id left out.
 */
async function scoreNonEmpty(
  model: RuntimeModel,
  items: readonly ResponseItem[],
  options: RuntimeRankSourceOptions,
  ranks: boolean,
  eos: 'append' | 'drop',
  /**
   * Cut prompt + response at this many tokens (and at the model's context), scoring what is left,
   * instead of refusing a batch with a sequence over the context.
   */
  maxLength?: number,
  /** Stops the scoring between its onnxruntime runs (Ctrl-C waited for the whole batch). */
  signal?: AbortSignal,
) {
  const eosIds = model.tokenizer.eosIds;
  const context = model.info?.maxPositions;
  const overruns: (ContextOverrun & { x: ResponseItem })[] = [];
  const live = items.map((x, i) => {
    const prompt = promptOf(model, x.instruction, options);
    // a response's text is tokenized where it follows its prompt, as ratio_eval.py does: alone, a
    // Llama-2 response would begin with a word-initial "▁" token the model never sees there
    let ids = x.responseIds ? [...x.responseIds] : model.continuationIds(prompt, x.response);
    const endsWithEos = ids.length > 0 && eosIds.includes(ids.at(-1)!);
    if (eos === 'drop' && endsWithEos) ids = ids.slice(0, -1);
    const empty = ids.length === 0;
    if (eos === 'append' && !endsWithEos && !empty) {
      if (eosIds[0] === undefined) {
        throw new AdapterContractError(
          "the model's tokenizer names no end-of-sequence token to score after each response; pass { eos: false }",
        );
      }
      ids.push(eosIds[0]);
    }
    const tokens = prompt.ids.length + ids.length;
    if (maxLength !== undefined) {
      const limit = Math.min(maxLength, context ?? Number.POSITIVE_INFINITY);
      const truncated = Math.max(0, Math.min(ids.length, tokens - limit));
      if (truncated > 0) ids = ids.slice(0, ids.length - truncated);
      return { x, i, prompt, ids, empty: empty || ids.length === 0, truncated };
    }
    if (!empty && context !== undefined && tokens > context) overruns.push({ index: i, tokens, x });
    return { x, i, prompt, ids, empty, truncated: 0 };
  });
  const truncated = live.map((r) => r.truncated);
  if (overruns.length > 0) {
    const first = overruns[0]!;
    throw new ContextLengthError(
      '',
      `${overruns.length} of the ${items.length} responses of this batch do not fit in the model's context of ${context} tokens ` +
        `after their prompt: the first, ${excerpt(first.x.response)} after the ` +
        `instruction ${excerpt(first.x.instruction)}, is ${first.tokens} tokens with its prompt`,
      {
        context: context!,
        overruns: overruns.map(({ index, tokens }) => ({ index, tokens })),
        total: items.length,
      },
    );
  }
  const scoring = live.filter((r) => !r.empty);
  // each prompt as built above, its ids: the model does not build it again (its format and BOS are
  // in the ids, so neither option goes with them)
  const { format: _format, addBos: _addBos, ...scoreOptions } = pick(options);
  const scored = await model.score(
    scoring.map(({ prompt, ids }) => ({
      prompt: { promptIds: prompt.ids, scopeStart: prompt.scopeStart },
      continuation: ids,
    })),
    { ...scoreOptions, ranks, ...(signal ? { signal } : {}) },
  );
  // Array.from, not new Array(n): map() skips the holes of a sparse array
  const out: ({ tokenIds: number[]; logprobs: number[]; ranks?: number[] } | undefined)[] = Array.from(
    { length: items.length },
    () => undefined,
  );
  scoring.forEach(({ i }, k) => {
    out[i] = scored[k];
  });
  return { scored: out, truncated };
}

/**
 * Options of `runtimeScorer`.
 *
 * @example
 * const scorer = runtimeScorer(model, { maxSeqLength: 2048, eos: false });
 */
export interface RuntimeScorerOptions extends RuntimeAdapterOptions {
  /**
   * Cut prompt + response at this many tokens, scoring the response's first tokens only, as the
   * paper's `ratio_eval.py` does at `--max_seq_length` (1024 in its runs; the default here). A
   * sequence longer than the model's context is cut at the context. A response left without a
   * token scores nothing (NaN, its pairs left out), as in the reference.
   */
  maxSeqLength?: number | undefined;
  /**
   * Score the end-of-sequence token after each response too, as the paper's response ranking does
   * (its `ratio_eval.py` scores the assistant turn `content + eos_token`). Default true; the token's
   * log-prob is the last of `tokenLogprobs`.
   */
  eos?: boolean | undefined;
}

/**
 * A `Scorer` on a runtime model: teacher-forced log-probs of each response token, then of the
 * end-of-sequence token, after the Tulu prompt of its instruction (the paper's response ranking
 * scores exp(mean) of them).
 *
 * @example
 * await rankResponses({ scorer: runtimeScorer(model), data: 'alpaca_data_2k.json', n: 1000 });
 */
export function runtimeScorer(model: RuntimeModel, options: RuntimeScorerOptions = {}): Scorer {
  const eos = options.eos === false ? 'drop' : 'append';
  const maxSeqLength = options.maxSeqLength ?? 1024;
  if (!Number.isInteger(maxSeqLength) || maxSeqLength < 2) {
    throw new EvalInputError(
      '',
      `maxSeqLength must be an integer of at least 2, got ${shownValue(maxSeqLength)}`,
      {
        field: 'maxSeqLength',
      },
    );
  }
  return {
    async scoreContinuations(items, o) {
      const { scored, truncated } = await scoreNonEmpty(
        model,
        items,
        options,
        false,
        eos,
        maxSeqLength,
        o?.signal,
      );
      return scored.map((s, i) => ({
        tokenLogprobs: s?.logprobs ?? [],
        ...(truncated[i]! > 0 ? { truncated: truncated[i]! } : {}),
      }));
    },
  };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The length of the UTF-8 sequence that lead byte `b` begins (0: no lead byte). */
const sequenceLength = (b: number) =>
  b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;

/**
 * The text of UTF-8 `bytes`, with each byte that is not part of a whole, valid character written as
 * `<0xC3>` (as SentencePiece names its byte pieces): a token that holds part of a character shows
 * its bytes, not a U+FFFD that every such token shares.
 */
function bytesText(bytes: ArrayLike<number>): string {
  const all = Uint8Array.from(bytes);
  let out = '';
  for (let i = 0; i < all.length; ) {
    const n = sequenceLength(all[i]!);
    let char: string | undefined;
    if (n > 0 && i + n <= all.length) {
      try {
        char = UTF8.decode(all.subarray(i, i + n));
      } catch {
        char = undefined; // a bad continuation byte, an overlong form, a surrogate
      }
    }
    if (char === undefined) {
      out += `<0x${all[i]!.toString(16).toUpperCase().padStart(2, '0')}>`;
      i++;
    } else {
      out += char;
      i += n;
    }
  }
  return out;
}

/**
 * A `RankSource` on a runtime model: each response token's rank under the model (1 = its greedy
 * pick) given the same prefix, with the token's text, for the token-shift analysis (a token that
 * holds part of a character, whose text is U+FFFD, as its bytes: `<0xC3>`). The tokens are
 * those of the response text: a generation's final end-of-sequence id (kept in `token_ids`) is left
 * out, so that outputs with and without `token_ids` count the same tokens. Each prompt is built once
 * (or taken from `prompts`, built already) and scored as its ids.
 *
 * @example
 * await tokenShift({ base: runtimeRankSource(baseModel), aligned: 'run/outputs/chat.json' });
 */
export function runtimeRankSource(model: RuntimeModel, options: RuntimeRankSourceOptions = {}): RankSource {
  return {
    async rankTokens(items, o) {
      const tok = model.tokenizer;
      const tokenText = (id: number) => {
        const text = tok.tokenText?.(id) ?? tok.decode([id]);
        // part of a character: its bytes, not the U+FFFD every such token shares
        return text.includes('\ufffd') && tok.tokenBytes ? bytesText(tok.tokenBytes(id)) : text;
      };
      const { scored } = await scoreNonEmpty(model, items, options, true, 'drop', undefined, o?.signal);
      return scored.map((s) => {
        if (!s) return { tokens: [] };
        if (!s.ranks || s.ranks.length !== s.tokenIds.length) {
          throw new AdapterContractError(
            'model.score(..., { ranks: true }) returned no rank for every token',
          );
        }
        return {
          tokens: s.tokenIds.map((id, k) => ({ id, text: tokenText(id), rank: s.ranks![k]! })),
        };
      });
    },
  };
}
