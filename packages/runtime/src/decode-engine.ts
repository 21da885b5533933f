import type { RuleSet } from '@implicit-it/rules';
import type { DecoderSession, StepOutputs } from './decoder-session.js';
import { GenerationAbortedError } from './errors.js';
import { type KvCache, SLOT_CHUNK, SlotCache } from './kv-cache.js';
import type { LogitsProcessor } from './logits-processor.js';
import { RulesProcessor, synchronously } from './logits-processor.js';
import { type ChunkOutputs, I64, runChunked } from './prefill.js';
import { keyOf, type PrefixCache, sharedLength } from './prefix-cache.js';
import {
  createRng,
  logProbAt,
  logSumExp,
  rankOf,
  readLogitsRow,
  type SamplingOptions,
  sampleToken,
  topLogprobs,
} from './sampling.js';
import { StopMatcher } from './stop-matcher.js';

/**
 * Why a generation stopped: EOS or a stop string, or a token limit: `maxNewTokens`, or the model's
 * context (`ModelInfo.maxPositions`) filled first, as OpenAI reports both. (An aborted generation
 * rejects with `GenerationAbortedError` instead of finishing.)
 *
 * @example
 * const [out] = await model.generate('Count to 100.', { maxNewTokens: 16 });
 * const reason: FinishReason = out.finishReason;
 * if (reason === 'length') console.warn('cut off by maxNewTokens or the context');
 */
export type FinishReason = 'stop' | 'length';

/** How a row ended, inside the engine: finished, aborted (rejects), or failed (rejects with `failure`). */
type RowEnd = FinishReason | 'abort' | 'error';

/**
 * The log-probability of a generated token and its top alternatives (under the adapted distribution).
 * `token` is the token's text (`Tokenizer.tokenText`); a token that holds part of a character split over
 * byte tokens shows as U+FFFD there, and `model.tokenizer.tokenBytes(id)` gives its exact bytes.
 *
 * @example
 * const [out] = await model.generate('Name a color.', { logprobs: 3, maxNewTokens: 8 });
 * const logprobs: TokenLogprob[] = out.logprobs ?? [];
 * for (const { token, logprob, top } of logprobs) console.log(token, Math.exp(logprob), top.map((t) => t.token));
 */
export interface TokenLogprob {
  id: number;
  token: string;
  logprob: number;
  top: { id: number; token: string; logprob: number }[];
}

/**
 * One generated token, as streamed.
 *
 * @example
 * // the same fields as a stream's token parts and their text deltas
 * const events: TokenEvent[] = [];
 * for await (const part of model.stream('Name a color.', { trace: true })) {
 *   if (part.type === 'token') events.push({ id: part.id, text: '', baseRank: part.baseRank });
 *   else if (part.type === 'text-delta') events[events.length - 1]!.text += part.text;
 * }
 */
export interface TokenEvent {
  id: number;
  /** Text this token made safe to show (may be '' mid-character or while a stop string may follow). */
  text: string;
  logprob?: TokenLogprob;
  /**
   * Rank of the token under the base model alone (before the logit bias and the rules): 1 = the base
   * model's own top-1. With `trace`.
   */
  baseRank?: number;
}

/** One sequence to generate, prepared. */
export interface RowRequest {
  /** Index of the input in its generate() call (`ProcessorContext.input`). */
  input: number;
  promptIds: readonly number[];
  scopeStart: number;
  maxNewTokens: number;
  /** Keep going past EOS (benchmarks). */
  ignoreEos: boolean;
  stop: readonly string[];
  rules: RuleSet | null;
  processors: readonly LogitsProcessor[];
  sampling: SamplingOptions;
  /** null: no log-probs; k: the chosen token's and the top k alternatives'. */
  logprobs: number | null;
  /** The prompt's log-probs under the base model (null: none; k: with the top k alternatives). */
  promptLogprobs: number | null;
  logitBias: ReadonlyMap<number, number> | null;
  trace: boolean;
  signal?: AbortSignal;
  onToken?: (event: TokenEvent) => void;
  /** With `promptLogprobs`: called once the prompt is prefilled, before the first token. */
  onPromptLogprobs?: (logprobs: (TokenLogprob | null)[]) => void;
}

/** What one row produced. */
export interface RowResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Prompt positions reused from the prefix cache; present where the engine has one. */
  cachedTokens?: number;
  logprobs?: TokenLogprob[];
  promptLogprobs?: (TokenLogprob | null)[];
  baseRanks?: number[];
}

/** What the engine needs from the tokenizer. */
export interface EngineTokenizer {
  createDetokenizer(options?: { skipSpecialTokens?: boolean; context?: readonly number[] }): {
    push(id: number): string;
    flush(): string;
  };
  /** The text of one token where it follows other text, for log-probs (`Tokenizer.tokenText`). */
  tokenText(id: number): string;
}

/** Engine settings. */
export interface EngineOptions {
  eosIds: ReadonlySet<number>;
  padId: number;
  maxPositions: number | undefined;
  /** The model's sliding attention window (`ModelConfig.sliding_window`), or null. */
  slidingWindow: number | null;
  /** Rows decoded together at most. */
  maxBatchSize: number;
  /**
   * Ids the tokenizer has: logits beyond (an LM head padded wider than the vocabulary) are never
   * picked, nor listed among log-prob alternatives.
   */
  tokenCount: number;
  /**
   * Prompt positions prefilled per onnxruntime run (see `LoadOptions.prefillChunk`); 0: all at once.
   * Chunks need the cache in the engine's buffers (`slots`) and a graph whose LM head is sliced (the
   * chunks before the last ask for no logits); the caller sets 0 otherwise.
   */
  prefillChunk: number;
  /**
   * Keys/values of recent prompts, reused by prompts that begin the same way (null: none). Needs
   * what prompt chunks need (see `prefillChunk`): the caller passes null otherwise.
   */
  prefixCache: PrefixCache | null;
}

interface Row {
  /** `ProcessorContext.request` */
  id: number;
  req: RowRequest;
  out: number[];
  rules: RulesProcessor | null;
  detok: { push(id: number): string; flush(): string };
  stop: StopMatcher;
  rng: () => number;
  logprobs: TokenLogprob[];
  /** With `req.promptLogprobs`: set by the prefill. */
  promptLogprobs: (TokenLogprob | null)[] | null;
  baseRanks: number[];
  finish: RowEnd | null;
  /** With `finish: 'error'`: what this row's own processing threw (its logits processors, sampling). */
  failure?: unknown;
  /** `ProcessorContext.promptIds`: a frozen copy of the prompt's ids, made at the first step. */
  promptView?: readonly number[];
  /** position id of the next token to feed */
  nextPos: number;
  /** attention mask over the cache (0 = padding) */
  mask: number[];
  /** Prompt positions reused from the prefix cache (not prefilled). */
  cached: number;
  resolve: (r: RowResult) => void;
  reject: (e: unknown) => void;
}

/**
 * Positions the rows may still add to the cache: one per token they may still generate (each is fed,
 * and cached, at the next step, except the last; the token fed now is cached now).
 */
const room = (rows: readonly Row[]) => Math.max(0, ...rows.map((r) => r.req.maxNewTokens - r.out.length));

/**
 * The rows with distinct prompts, in order; for each row the index of the distinct row whose prompt
 * it has; and for each distinct prompt the alternatives its log-probs list (`promptLogprobs`: the
 * most any of its rows asks), or null where none of them asks.
 */
export function distinctPrompts<
  T extends { req: { promptIds: readonly number[]; promptLogprobs?: number | null } },
>(rows: readonly T[]): { distinct: T[]; source: number[]; top: (number | null)[] } {
  const distinct: T[] = [];
  const top: (number | null)[] = [];
  const seen = new Map<string, number>();
  const source = rows.map((r) => {
    const key = keyOf(r.req.promptIds);
    let i = seen.get(key);
    if (i === undefined) {
      i = distinct.push(r) - 1;
      top.push(null);
      seen.set(key, i);
    }
    const k = r.req.promptLogprobs ?? null;
    if (k !== null) top[i] = Math.max(top[i] ?? 0, k);
    return i;
  });
  return { distinct, source, top };
}

/**
 * `rows` as admission waves: rows whose prompt shares `minTokens` more positions with an earlier
 * row's prompt than the prefix cache gives it wait for the second wave, by when that prompt is kept
 * (see `DecodeEngine.admitGroups`); a prompt the cache would not keep (past its budget) leads none.
 * Rows with the same prompt stay together (they share one prefill). One wave (`[rows]`) where no row
 * gains.
 */
export function sharedPrefixWaves<
  T extends { req: { promptIds: readonly number[]; promptLogprobs?: number | null } },
>(rows: readonly T[], cache: Pick<PrefixCache, 'peek' | 'minTokens' | 'keeps'>): T[][] {
  const { distinct, source, top: scored } = distinctPrompts(rows);
  // a prompt scored whole (its log-probs asked) follows only a leader scored with as many
  // alternatives: the positions it reuses must come with their log-probs
  const leaders: { ids: readonly number[]; scored: number | null }[] = [];
  /** Distinct prompts (by index) that go in the second wave. */
  const follows = new Set<number>();
  // shortest first: a follower of a long prompt would have led a shorter one, which runs sooner
  const byLength = [...distinct.keys()].sort(
    (a, b) => distinct[a]!.req.promptIds.length - distinct[b]!.req.promptIds.length,
  );
  for (const i of byLength) {
    const ids = distinct[i]!.req.promptIds;
    const top = scored[i] ?? null;
    const serving = leaders.filter((lead) => top === null || (lead.scored ?? -1) >= top);
    // (a scored follower reuses one position less: the last shared one is run, for the next token's log-prob)
    const reach = top === null ? ids.length - 1 : ids.length;
    const shared = Math.max(
      0,
      ...serving.map((lead) => sharedLength(lead.ids, ids, reach) - (top === null ? 0 : 1)),
    );
    if (shared >= cache.peek(ids, top) + cache.minTokens) follows.add(i);
    else if (cache.keeps(ids)) leaders.push({ ids, scored: top });
  }
  if (follows.size === 0) return [[...rows]];
  // a row follows where the first row with its prompt does
  const later = rows.map((_, b) => follows.has(source[b]!));
  return [rows.filter((_, b) => !later[b]), rows.filter((_, b) => later[b])];
}

/** A step's last-position logits with row `b` a copy of row `source[b]`'s (its cache outputs are not carried). */
function copyLogitRows(step: StepOutputs, source: readonly number[]): StepOutputs {
  // the last position's only: a prompt scored whole (promptLogprobs) has logits at every position
  const V = step.vocab;
  const logits = new Float32Array(source.length * V);
  for (const [b, from] of source.entries()) {
    const last = (from * step.kept + step.kept - 1) * V;
    logits.set(step.logits.subarray(last, last + V), b * V);
  }
  return { ...step, logits, kept: 1, kv: [] };
}

/** Decoding steps a waiting row may be held back for a fuller admission group. */
const MAX_ADMISSION_WAIT = 8;

/**
 * Rows prefilled together are padded to the longest prompt: a group is split where its padding would
 * exceed both this many positions and `PAD_SHARE` of its real ones (one long prompt must not make
 * short ones wait for, and compute, its length).
 */
const PAD_SLACK = 64;
const PAD_SHARE = 0.25;

/** Positions per row per prefill run, at least (`prefillChunk` is shared by the rows of a group). */
const MIN_ROW_CHUNK = 16;

/**
 * `rows` in groups of similar prompt length, shortest first (see `PAD_SLACK`). `runs` is the length
 * a row's prefill runs: its prompt's, less what a prefix cache gives it.
 */
export function lengthGroups<T extends { req: { promptIds: readonly number[] } }>(
  rows: readonly T[],
  runs: (row: T) => number = (r) => r.req.promptIds.length,
): T[][] {
  const length = new Map(rows.map((r) => [r, runs(r)]));
  const sorted = [...rows].sort((a, b) => length.get(a)! - length.get(b)!);
  const groups: T[][] = [];
  let group: T[] = [];
  let real = 0;
  for (const r of sorted) {
    const n = length.get(r)!; // the longest so far: the group's width with it
    const padding = n * (group.length + 1) - (real + n);
    if (group.length > 0 && padding > Math.max(PAD_SLACK, PAD_SHARE * (real + n))) {
      groups.push(group);
      group = [];
      real = 0;
    }
    group.push(r);
    real += n;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/**
 * Continuous batching over one decoder session: rows are submitted at any time and join the running
 * batch at the next step (their prompts are prefilled together, with logits only for the last
 * position, and their cache is merged with the running one); each row leaves the batch when it stops
 * (EOS, stop string, token limit, abort), so finished rows cost nothing.
 */
export class DecodeEngine {
  private readonly pending: Row[] = [];
  private active: Row[] = [];
  private cache: KvCache | null = null;
  private running: Promise<void> | null = null;
  /** Set by `close`: every row ends, aborted, with this reason. */
  private closed: Error | null = null;
  /** Rows taken from `pending` whose prefill runs now (rejected with the others if it fails). */
  private admitting: Row[] = [];
  /** Steps decoded while rows waited for a group of free slots. */
  private waited = 0;
  /** A decoding step of the running batch failed (not a new rows' prefill): every row shares it. */
  private stepFailed = false;
  private row = new Float32Array(0);
  private submitted = 0;
  private base = new Float32Array(0);
  /** The processed logits of the rows reporting log-probs in this step (`choose`). */
  private kept = new Float32Array(0);
  /** Rows waiting to join the batch (for metrics). */
  get queued(): number {
    return this.pending.length;
  }
  /** Rows being decoded now. */
  get batchSize(): number {
    return this.active.length;
  }

  /**
   * Ends every row (each rejects with a `GenerationAbortedError` carrying `reason`) at the next step,
   * refuses new ones, and resolves once the loop has stopped: the session is free to release then.
   */
  async close(reason: Error): Promise<void> {
    this.closed = reason;
    this.kick(); // rows may wait with no loop running (none does once they are gone)
    while (this.running) await this.running;
  }

  /** `new`: the cache lives in the engine's buffers (see SlotCache); `present`: it is fed back whole. */
  private readonly fetch: 'new' | 'present';

  constructor(
    private readonly session: DecoderSession,
    private readonly tokenizer: EngineTokenizer,
    private readonly options: EngineOptions,
  ) {
    this.fetch = session.cacheMode === 'slots' ? 'new' : 'present';
  }

  /** Generates one row; resolves when it stops (rejects with GenerationAbortedError when aborted). */
  submit(req: RowRequest): Promise<RowResult> {
    return new Promise<RowResult>((resolve, reject) => {
      const row: Row = {
        id: this.submitted++,
        req,
        out: [],
        rules: req.rules
          ? new RulesProcessor(req.rules, {
              promptIds: req.promptIds,
              scopeStart: req.scopeStart,
              promptLength: req.promptIds.length,
            })
          : null,
        // the text goes on from the prompt: a SentencePiece first token keeps its space (" Paris")
        detok: this.tokenizer.createDetokenizer({ skipSpecialTokens: true, context: req.promptIds }),
        stop: new StopMatcher(req.stop),
        rng: createRng(req.sampling.seed ?? 0),
        logprobs: [],
        promptLogprobs: null,
        baseRanks: [],
        finish: null,
        nextPos: req.promptIds.length,
        mask: [],
        cached: 0,
        resolve,
        reject,
      };
      // nothing to generate, nor a prompt to score: nothing to run
      if (req.maxNewTokens <= 0 && req.promptLogprobs === null) {
        row.finish = 'length';
        this.settle(row);
        return;
      }
      if (this.closed) {
        reject(new GenerationAbortedError(this.closed));
        return;
      }
      this.pending.push(row);
      this.kick();
    });
  }

  /**
   * Starts the loop unless it runs. It starts in a microtask, after the caller's synchronous submits:
   * rows submitted together (one generate() call) are prefilled together instead of the first alone.
   * A row submitted while a finished loop is still winding down (e.g. by the callback of the row it
   * just settled) starts it again, once it is down.
   */
  private kick(): void {
    if (this.running) return;
    this.running = Promise.resolve()
      .then(() => this.loop())
      .finally(() => {
        this.running = null;
        if (this.pending.length > 0 || this.active.length > 0) this.kick();
      });
  }

  private async loop(): Promise<void> {
    while (this.pending.length > 0 || this.active.length > 0) {
      try {
        this.markAborted([...this.pending, ...this.active]);
        this.dropFinished();
        // admit waiting rows in groups: each prefill reads every weight once, so admitting rows one by
        // one as others finish costs a pass each; wait for a quarter of the batch to free up, unless
        // everything waiting fits (a lone request is admitted at once), but never more than
        // MAX_ADMISSION_WAIT steps (long generations must not hold new requests back)
        const room = this.options.maxBatchSize - this.active.length;
        const waiting = room > 0 && this.pending.length > 0;
        const group = Math.min(this.pending.length, Math.ceil(this.options.maxBatchSize / 4));
        if (waiting && (this.active.length === 0 || room >= group || this.waited >= MAX_ADMISSION_WAIT)) {
          this.waited = 0;
          this.admitting = this.pending.splice(0, room);
          try {
            await this.admitGroups(this.admitting);
          } finally {
            this.admitting = [];
          }
        } else if (this.active.length > 0) {
          if (waiting) this.waited++;
          await this.step();
        }
        this.dropFinished();
      } catch (error) {
        // a decoding step failed (out of memory...): every row of the batch shares it
        for (const r of [...this.active, ...this.admitting, ...this.pending]) r.reject(error);
        this.active = [];
        this.admitting = [];
        this.pending.length = 0;
        this.cache = null;
        this.stepFailed = false;
      }
    }
  }

  /**
   * Admits rows in groups of similar prefill length. With a prefix cache, rows whose prompts share a
   * beginning the cache does not hold yet (requests with one system prompt arriving together, a list
   * of prompts after one few-shot preamble) come in waves: one row per shared beginning first, then
   * the others, which find its prompt kept and prefill only what follows the shared part. The rest are
   * planned again once a wave is kept, as they may share more among themselves than with it (the
   * answers of a second question after one preamble: the preamble from the first wave, their question
   * from the second).
   */
  private async admitGroups(rows: Row[]): Promise<void> {
    const prefixes = this.options.prefixCache;
    for (let left = rows; left.length > 0; ) {
      const [wave, later = []] = prefixes ? sharedPrefixWaves(left, prefixes) : [left];
      left = later;
      for (const group of lengthGroups(wave!, this.runLength)) {
        // rows that want their prompt's log-probs run the LM head at every prompt position: apart
        // from the others, who need it at the last one only
        const scored = group.filter((r) => r.req.promptLogprobs !== null);
        if (scored.length > 0 && scored.length < group.length) {
          await this.admitOrFail(scored);
          await this.admitOrFail(group.filter((r) => r.req.promptLogprobs === null));
        } else await this.admitOrFail(group);
      }
    }
  }

  /**
   * The prompt positions a row's prefill would run now: less those the prefix cache would give it (to
   * a row that wants its prompt's log-probs, those kept with theirs).
   */
  private readonly runLength = (r: Row): number =>
    r.req.promptIds.length - (this.options.prefixCache?.peek(r.req.promptIds, r.req.promptLogprobs) ?? 0);

  /**
   * Prefills new rows (left-padded together) and merges them into the running batch. Rows with the
   * same prompt (a server request's `n` choices, repeated inputs) share one: each distinct prompt is
   * run once, and its cache and last logits are copied to every row that has it. With a prefix
   * cache, a prompt that begins as a kept one goes on from its keys/values and runs only the rest:
   * each row's cache is then [padding, reused prefix, padding, the rest], the mask hiding the padding.
   */
  private async admit(rows: Row[]): Promise<void> {
    for (const r of rows) if (r.finish !== null) this.settle(r);
    rows = rows.filter((r) => r.finish === null);
    if (rows.length === 0) return;
    // promptTop: the alternatives each distinct prompt's log-probs list, or null
    const { distinct, source, top: promptTop } = distinctPrompts(rows);
    const prefixes = this.options.prefixCache;
    // a prompt scored whole reuses only positions kept with their log-probs
    const hits = distinct.map((r, i) => prefixes?.lookup(r.req.promptIds, promptTop[i] ?? null) ?? null);
    const reused = hits.map((h) => h?.length ?? 0);
    const before = Math.max(...reused);
    // the positions each row runs now, left-padded to the longest
    const width = Math.max(...distinct.map((r, i) => r.req.promptIds.length - reused[i]!));
    const ids: number[] = [];
    const pos: number[] = [];
    const masks: { past: number[]; now: number[] }[] = [];
    for (const [i, r] of distinct.entries()) {
      const from = reused[i]!;
      const rest = r.req.promptIds.slice(from);
      const pad = width - rest.length;
      ids.push(...new Array(pad).fill(this.options.padId), ...rest);
      pos.push(...new Array(pad).fill(1), ...rest.map((_, j) => from + j));
      masks.push({
        past: [...new Array(before - from).fill(0), ...new Array(from).fill(1)],
        now: [...new Array(pad).fill(0), ...new Array(rest.length).fill(1)],
      });
    }
    for (const [b, r] of rows.entries()) {
      const m = masks[source[b]!]!;
      r.mask = [...m.past, ...m.now];
      r.cached = reused[source[b]!]!;
    }
    const limit = before + width + room(rows);
    const prompts = {
      batch: distinct.length,
      width,
      ids,
      mask: masks.flatMap((m) => m.now),
      positions: pos,
      ...(before > 0
        ? {
            past: {
              cache: SlotCache.fromRows(
                hits.map((h, i) => (h ? { pieces: h.pieces, length: reused[i]! } : null)),
                before,
                this.options.slidingWindow,
              ),
              mask: masks.flatMap((m) => m.past),
            },
          }
        : {}),
    };
    // prefillChunk positions per run over all the group's rows (a run blocks this thread: running
    // streams and other requests wait for it), at least MIN_ROW_CHUNK per row (or prefillChunk itself)
    const chunk = this.options.prefillChunk;
    // logits from the first position of the longest prompt scored (its first token predicts its
    // second), or from the last one only
    const scoredFrom = distinct
      .map((r, i) => (promptTop[i] === null ? width : width - (r.req.promptIds.length - reused[i]!)))
      .filter((from) => from < width);
    const plan = {
      chunk: chunk > 0 ? Math.max(Math.min(chunk, MIN_ROW_CHUNK), Math.floor(chunk / distinct.length)) : 0,
      logitsFrom: Math.min(width - 1, ...scoredFrom),
      fetch: this.fetch,
      window: this.options.slidingWindow,
      limit,
    };
    const promptLps = promptTop.map((k, i) =>
      k === null
        ? null
        : new PromptLogprobs(
            distinct[i]!.req.promptIds,
            k,
            this.tokenizer,
            this.options.tokenCount,
            reused[i]!,
            hits[i]?.logprobs ?? [],
          ),
    );
    let done: ChunkOutputs | null = null;
    for await (const run of runChunked(this.session, prompts, plan)) {
      done = run;
      for (const [i, lps] of promptLps.entries()) await lps?.read(run, i, width, this.session);
      if (run.at + run.n >= width) continue;
      // onnxruntime-node runs a chunk on this thread: let the event loop take the I/O that came in
      // meanwhile (a client that left, other requests) before the next one, and see its abort now
      await new Promise((resolve) => setImmediate(resolve));
      if (this.closed || rows.every((r) => r.req.signal?.aborted)) {
        // a long prompt comes in many chunks: stop as soon as nobody waits for it
        for (const r of rows) {
          r.finish = 'abort';
          this.settle(r);
        }
        return;
      }
      // the running rows go on between the chunks: a long prompt does not stall their streams
      this.markAborted(this.active);
      this.dropFinished();
      if (this.active.length > 0) {
        await this.step();
        this.dropFinished();
      }
      await this.admitShorter(width - (run.at + run.n));
    }
    if (prefixes) {
      // keep each prompt's keys/values, its real positions only (the reused prefix, then the rest)
      const cache = done!.cache as SlotCache;
      for (const [i, r] of distinct.entries()) {
        const n = r.req.promptIds.length;
        const from = reused[i]!;
        const runs: [number, number][] = [
          [before - from, from],
          [before + width - (n - from), n - from],
        ];
        const lps = promptLps[i];
        prefixes.store(
          r.req.promptIds,
          (skip) => cache.takeRow(i, runs, skip),
          lps ? { top: promptTop[i]!, list: lps.list(promptTop[i]!) } : null,
        );
      }
    }
    let out = done!.out;
    let cache: KvCache = done!.cache!;
    if (distinct.length < rows.length) {
      cache = cache.gather(source);
      out = copyLogitRows(out, source);
    }
    for (const [b, r] of rows.entries()) {
      const lps = promptLps[source[b]!];
      if (!lps || r.req.promptLogprobs === null) continue;
      r.promptLogprobs = lps.list(r.req.promptLogprobs);
      r.req.onPromptLogprobs?.(r.promptLogprobs);
      // a row that only scores its prompt ends here (settled by the next dropFinished, its prompt kept)
      if (r.req.maxNewTokens <= 0) r.finish = 'length';
    }
    await this.choose(rows, out);
    if (this.active.length === 0 || this.cache === null) {
      this.active = rows;
      this.cache = cache;
      return;
    }
    const length = Math.max(this.cache.length, before + width);
    for (const r of [...this.active, ...rows])
      if (r.mask.length < length) r.mask = [...new Array(length - r.mask.length).fill(0), ...r.mask];
    this.cache = this.cache.merge(cache, length + room([...this.active, ...rows]));
    this.active = [...this.active, ...rows];
  }

  /**
   * Between the chunks of a prefill with `remaining` positions still to run: requests that arrived
   * meanwhile with shorter prompts are prefilled now, as far as the batch has room, instead of
   * waiting for the whole of it. Their failure is theirs alone.
   */
  private async admitShorter(remaining: number): Promise<void> {
    const waiting = this.admitting.filter((r) => !this.active.includes(r)).length;
    const room = this.options.maxBatchSize - this.active.length - waiting;
    if (room <= 0 || this.pending.length === 0) return;
    const joining = this.pending.filter((r) => this.runLength(r) < remaining).slice(0, room);
    if (joining.length === 0) return;
    for (const r of joining) this.pending.splice(this.pending.indexOf(r), 1);
    this.admitting.push(...joining);
    await this.admitGroups(joining);
  }

  /**
   * `admit`, where a failed prefill (out of memory for these prompts' length...) fails these rows
   * alone: the running batch, its cache and the other groups go on. A failed decoding step of the
   * running batch (during the prefill's chunks) is everyone's: it is thrown on.
   */
  private async admitOrFail(rows: Row[]): Promise<void> {
    try {
      await this.admit(rows);
    } catch (error) {
      if (this.stepFailed) throw error;
      for (const r of rows) if (!this.active.includes(r)) r.reject(error);
    }
  }

  /** Marks the rows whose request was aborted (or all, once the engine is closed) to end. */
  private markAborted(rows: readonly Row[]): void {
    for (const r of rows) if (r.req.signal?.aborted || this.closed) r.finish = 'abort';
  }

  /** One decoding step for every running row; a failure is the whole batch's (`stepFailed`). */
  private async step(): Promise<void> {
    try {
      await this.decodeStep();
    } catch (error) {
      this.stepFailed = true;
      throw error;
    }
  }

  private async decodeStep(): Promise<void> {
    const rows = this.active;
    const cache = this.cache!;
    // each row's mask over the cache, then its free slots (hidden), then the token fed now
    const width = cache.width + 1;
    const mask = new BigInt64Array(rows.length * width);
    for (const [b, r] of rows.entries()) {
      for (let t = 0; t < r.mask.length; t++) if (r.mask[t] === 1) mask[b * width + t] = 1n;
      mask[b * width + width - 1] = 1n;
    }
    const out = await this.session.run({
      batch: rows.length,
      seq: 1,
      inputIds: I64(rows.map((r) => r.out[r.out.length - 1]!)),
      attentionMask: mask,
      positionIds: I64(rows.map((r) => r.nextPos - 1)),
      past: cache.feeds(),
      logitsFrom: -1,
      fetch: this.fetch,
    });
    for (const r of rows) r.mask.push(1);
    this.cache = cache.advance(out.kv, cache.length + room(rows));
    await this.choose(rows, out);
  }

  /**
   * Picks each row's next token from the last position's logits. Rows that report log-probs keep
   * their processed logits until the log-sum-exps of all of them are taken at once, by onnxruntime
   * (`DecoderSession.logSumExp`; in JS, 8 rows of 49,152 ids cost about 9 ms, a sixth of a batch-8 step).
   */
  private async choose(rows: Row[], step: StepOutputs): Promise<void> {
    const V = step.vocab;
    if (this.row.length !== V) {
      this.row = new Float32Array(V);
      this.base = new Float32Array(V);
    }
    let reporting = 0; // counted, not filtered: no array a step for generations without log-probs
    for (const r of rows) if (r.finish === null && r.req.logprobs !== null) reporting++;
    if (this.kept.length < reporting * V) this.kept = new Float32Array(reporting * V);
    // each picked row with, where it reports log-probs, its slot in `kept`
    const picked: { r: Row; event: TokenEvent; slot: number }[] = [];
    let slots = 0;
    for (const [b, r] of rows.entries()) {
      if (r.finish !== null) continue; // ended by its prefill (maxNewTokens 0)
      const slot = r.req.logprobs === null ? -1 : slots;
      const row = slot < 0 ? this.row : this.kept.subarray(slot * V, (slot + 1) * V);
      try {
        picked.push({ r, event: this.pick(b, r, step, row), slot });
        if (slot >= 0) slots++;
      } catch (error) {
        this.fail(r, error);
      }
    }
    const sums = slots > 0 ? await this.session.logSumExp(this.kept, V, 0, slots) : null;
    for (const { r, event, slot } of picked) {
      try {
        if (slot >= 0) {
          const row = this.kept.subarray(slot * V, (slot + 1) * V);
          event.logprob = tokenLogprob(row, event.id, r.req.logprobs!, sums![slot]!, this.tokenizer);
          r.logprobs.push(event.logprob);
        }
        this.emit(r, event);
      } catch (error) {
        this.fail(r, error);
      }
    }
  }

  /**
   * This row's own processing failed (a logits processor threw, or left no token to sample): it
   * alone ends, with that error; the rest of the batch goes on.
   */
  private fail(r: Row, error: unknown): void {
    r.finish = 'error';
    r.failure = error;
  }

  /** Row `b`'s logits processed into `row` (rules, bias, processors) and its next token drawn. */
  private pick(b: number, r: Row, step: StepOutputs, row: Float32Array): TokenEvent {
    const V = step.vocab;
    readLogitsRow(row, step.logits, b * step.kept + step.kept - 1, this.options.tokenCount);
    if (r.req.trace) this.base.set(row);
    if (r.req.logitBias) for (const [id, bias] of r.req.logitBias) if (id < V) row[id]! += bias;
    r.rules?.apply(row);
    if (r.req.processors.length > 0) {
      // frozen copies: a processor that sorts or pops the ids it is shown would otherwise change the
      // row's own (a response's ids out of step with its text, a prompt emptied)
      r.promptView ??= Object.freeze(r.req.promptIds.slice());
      const ctx = {
        row: b,
        request: r.id,
        input: r.req.input,
        step: r.out.length,
        promptIds: r.promptView,
        responseIds: Object.freeze(r.out.slice()),
      };
      for (const [i, p] of r.req.processors.entries()) synchronously(p.process(row, ctx), i);
      // an LM head padded wider than the tokenizer: the ids past it stay out of reach of a processor
      // too (`readLogitsRow` set them to -Infinity), as they have no text to decode
      if (this.options.tokenCount < V) row.fill(Number.NEGATIVE_INFINITY, this.options.tokenCount);
    }
    const id = sampleToken(row, r.req.sampling, r.rng);
    const event: TokenEvent = { id, text: '' };
    if (r.req.trace) {
      event.baseRank = rankOf(this.base, id);
      r.baseRanks.push(event.baseRank);
    }
    return event;
  }

  /** Appends a picked token to its row: the rules' state, the text, the stop conditions, `onToken`. */
  private emit(r: Row, event: TokenEvent): void {
    const { id } = event;
    r.rules?.append(id);
    r.out.push(id);
    r.nextPos++;
    if (this.options.eosIds.has(id) && !r.req.ignoreEos) {
      r.finish = 'stop';
      event.text = r.stop.push(r.detok.flush()).emit + r.stop.finish();
    } else {
      const pushed = r.stop.push(r.detok.push(id));
      event.text = pushed.emit;
      const max = this.options.maxPositions;
      if (pushed.stopped) r.finish = 'stop';
      else if (r.out.length >= r.req.maxNewTokens || (max !== undefined && r.nextPos >= max)) {
        // the text held back (an incomplete character, as U+FFFD) may complete a stop string: the
        // text is cut there, and the finish is the stop's, as OpenAI's is
        const flushed = r.stop.push(r.detok.flush());
        r.finish = flushed.stopped ? 'stop' : 'length';
        event.text += flushed.emit + r.stop.finish();
      }
    }
    r.req.onToken?.(event);
  }

  /** Settles finished rows and removes them from the batch and the cache. */
  private dropFinished(): void {
    const pendingLeft = this.pending.filter((r) => r.finish === null);
    for (const r of this.pending) if (r.finish !== null) this.settle(r);
    this.pending.splice(0, this.pending.length, ...pendingLeft);
    if (this.active.every((r) => r.finish === null)) return;
    const keep: number[] = [];
    for (const [b, r] of this.active.entries()) {
      if (r.finish === null) keep.push(b);
      else {
        // a reply stopped by its client is kept as far as it went: a chat's next turn re-sends it
        if (r.finish === 'stop' || r.finish === 'length' || (r.finish === 'abort' && !this.closed))
          this.keepSequence(b, r);
        this.settle(r);
      }
    }
    this.cache = keep.length > 0 && this.cache ? this.cache.gather(keep) : null;
    this.active = keep.map((b) => this.active[b]!);
    // the leading positions no row left sees (the prompts and tokens of rows gone): dropped once
    // they fill a chunk, or a batch that never empties (a busy server) would grow its cache, and
    // each step's attention, by a position a step for as long as it runs
    if (this.cache === null) return;
    let start = this.cache.length;
    for (const r of this.active) {
      const first = r.mask.indexOf(1);
      start = Math.min(start, first < 0 ? r.mask.length : first);
    }
    if (start < SLOT_CHUNK) return;
    this.cache = this.cache.trimLeft(start);
    for (const r of this.active) r.mask = r.mask.slice(start);
  }

  /**
   * Keeps a finished (or aborted) row's prompt and reply in the prefix cache (where there is one): the
   * next turn of a conversation re-sends both, so it goes on from the end of this reply, not from the
   * end of this prompt. Its keys/values are the positions its mask shows: the prompt, then every
   * generated token but the last (sampled, never fed).
   */
  private keepSequence(b: number, r: Row): void {
    const prefixes = this.options.prefixCache;
    const cache = this.cache;
    if (prefixes === null || !(cache instanceof SlotCache)) return;
    const ids = [...r.req.promptIds, ...r.out.slice(0, -1)];
    const runs = maskRuns(r.mask);
    const cached = runs.reduce((sum, [, n]) => sum + n, 0);
    if (cached !== ids.length)
      throw new Error(
        `internal: row ${r.id} has ${ids.length} tokens fed but ${cached} positions in its mask`,
      );
    prefixes.store(ids, (skip) => cache.takeRow(b, runs, skip));
  }

  private settle(r: Row): void {
    if (r.finish === 'abort') {
      r.reject(new GenerationAbortedError(r.req.signal?.aborted ? r.req.signal.reason : this.closed));
      return;
    }
    if (r.finish === 'error') {
      r.reject(r.failure);
      return;
    }
    r.resolve({
      text: r.stop.value,
      tokenIds: r.out,
      finishReason: r.finish ?? 'length',
      promptTokens: r.req.promptIds.length,
      completionTokens: r.out.length,
      ...(this.options.prefixCache ? { cachedTokens: r.cached } : {}),
      ...(r.req.logprobs !== null ? { logprobs: r.logprobs } : {}),
      ...(r.promptLogprobs !== null ? { promptLogprobs: r.promptLogprobs } : {}),
      ...(r.req.trace ? { baseRanks: r.baseRanks } : {}),
    });
  }
}

/** `topLogprobs`, each alternative with its text (`TokenLogprob.top`, `ScoreResult.top`). */
export function namedTopLogprobs(
  row: Float32Array,
  k: number,
  lse: number,
  tokenizer: Pick<EngineTokenizer, 'tokenText'>,
): TokenLogprob['top'] {
  return topLogprobs(row, k, lse).map(({ id, logprob }) => ({ id, token: tokenizer.tokenText(id), logprob }));
}

/**
 * The log-prob of `id` under softmax(`row`) with its `k` alternatives, given `sum`, the row's
 * log-sum-exp as onnxruntime took it (`DecoderSession.logSumExp`); a sum that is not finite (NaN or
 * infinite logits) is taken again in JS, which leaves NaN out and handles ids forced to +Infinity
 * (see `logProbAt`). Generation's and a prompt's log-probs.
 */
function tokenLogprob(
  row: Float32Array,
  id: number,
  k: number,
  sum: number,
  tokenizer: Pick<EngineTokenizer, 'tokenText'>,
): TokenLogprob {
  const lse = Number.isFinite(sum) ? sum : logSumExp(row);
  return {
    id,
    token: tokenizer.tokenText(id),
    logprob: logProbAt(row, id, lse),
    // alternatives the rules or a processor ruled out (-Infinity) are not listed
    top: namedTopLogprobs(row, k, lse, tokenizer),
  };
}

/**
 * A prompt's log-probs, read from the logits of its prefill's runs: each token's given those before
 * it, under the base model (the softmax over the tokenizer's ids, as generation's), with the top `k`
 * alternatives. The first token has none.
 */
class PromptLogprobs {
  private readonly entries: (TokenLogprob | null)[];
  private row = new Float32Array(0);

  constructor(
    private readonly ids: readonly number[],
    private readonly k: number,
    private readonly tokenizer: EngineTokenizer,
    private readonly tokenCount: number,
    /** Its first positions, not run: a kept prefix's keys/values (the prefix cache's) stand for them. */
    private readonly reused: number,
    /** The log-probs of its first `reused + 1` tokens, kept with those keys/values. */
    known: readonly (TokenLogprob | null)[],
  ) {
    if (reused > 0 && known.length !== reused + 1)
      throw new Error(`internal: ${known.length} kept log-probs for ${reused} reused positions`);
    // copies: the kept ones are frozen, and results are the caller's to change
    this.entries = ids.map((_, t) => {
      const e = known[t];
      return e ? { ...e, top: e.top.map((alt) => ({ ...alt })) } : null;
    });
  }

  /**
   * Reads the positions of `run` that predict a token of this prompt, row `b` of a batch `width` wide
   * (its prompt ends at the last column; the columns before its first position run are padding), with
   * their log-sum-exps computed at once by `session` (onnxruntime, float64).
   */
  async read(run: ChunkOutputs, b: number, width: number, session: DecoderSession): Promise<void> {
    const { out } = run;
    const V = out.vocab;
    const pad = width - this.ids.length;
    // position j of the prompt predicts its token j + 1: from the first not reused to the last but one
    const first = Math.max(0, this.reused + pad - run.logitsAt);
    const end = Math.min(out.kept, this.ids.length - 1 + pad - run.logitsAt);
    if (end <= first) return;
    const rowAt = b * out.kept;
    const sums = await session.logSumExp(out.logits, V, rowAt + first, rowAt + end, this.tokenCount);
    if (this.row.length !== V) this.row = new Float32Array(V);
    const row = this.row;
    for (let k = first; k < end; k++) {
      const j = run.logitsAt + k - pad;
      readLogitsRow(row, out.logits, rowAt + k, this.tokenCount);
      this.entries[j + 1] = tokenLogprob(row, this.ids[j + 1]!, this.k, sums[k - first]!, this.tokenizer);
    }
  }

  /** The log-probs, each with at most `k` alternatives (rows of one prompt may ask for fewer). */
  list(k: number): (TokenLogprob | null)[] {
    if (this.entries.some((e, t) => t > 0 && e === null))
      throw new Error('internal: a prompt position was prefilled without its logits');
    return this.entries.map((e) => (e && e.top.length > k ? { ...e, top: e.top.slice(0, k) } : e));
  }
}

/** The runs of 1s in an attention mask over the cache, as [start, length] pairs in order. */
export function maskRuns(mask: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (let t = 0; t < mask.length; t++) {
    if (mask[t] !== 1) continue;
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === t) last[1]++;
    else runs.push([t, 1]);
  }
  return runs;
}
