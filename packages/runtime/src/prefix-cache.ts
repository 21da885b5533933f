import type { TokenLogprob } from './decode-engine.js';
import { firstPositions, type KvPieces, type KvRows } from './kv-cache.js';

/** Keys/values of consecutive positions, held once however many kept sequences begin with them. */
interface Segment {
  kv: KvRows;
  bytes: number;
  /** Kept sequences that use its first positions (some or all). */
  users: number;
}

/**
 * A kept sequence (a prompt, with its reply once generated): its tokens, and their keys/values as
 * the first `length` positions of each segment in turn. A sequence that begins as a kept one uses
 * that one's segments for the shared beginning and holds only the rest.
 */
interface Entry {
  ids: readonly number[];
  pieces: Piece[];
  /** Its first positions' log-probs, where it was kept from a prompt scored whole (`promptLogprobs`). */
  logprobs: KeptLogprobs | null;
}

/**
 * The log-probs of a kept sequence's first `list.length` tokens (each given those before it, the
 * first null), each with `top` alternatives: a prompt that begins the same way and wants its own
 * log-probs reads them for the shared positions instead of running the LM head there.
 */
export interface KeptLogprobs {
  top: number;
  list: readonly (TokenLogprob | null)[];
}

/** The first `length` positions of a segment. */
interface Piece {
  segment: Segment;
  length: number;
}

/**
 * What a `PrefixCache` holds and has saved.
 *
 * @example
 * const chat = await loadModel(modelDir, { prefixCache: 64 * 2 ** 20 });
 * // ... a conversation's turns later:
 * const stats: PrefixCacheStats | null = chat.prefixCacheStats;
 * if (stats) console.log(`${stats.hits} hits, ${stats.reusedTokens} positions not prefilled`);
 */
export interface PrefixCacheStats {
  /** Sequences kept (prompts, and prompts with their replies). */
  entries: number;
  /** Bytes their keys/values take (a beginning several of them share counted once). */
  bytes: number;
  /** The most it may take (`LoadOptions.prefixCache`). */
  maxBytes: number;
  /** Prompts that reused a kept prefix. */
  hits: number;
  /** Prompt positions not prefilled, thanks to those hits. */
  reusedTokens: number;
}

/**
 * The keys/values of recent sequences (prompts, then prompts with the replies generated to them), so
 * that a prompt that begins as one of them (a chat's next turn, a shared system prompt or few-shot
 * preamble) prefills only what follows. A key or value at position `t` depends on the tokens up to
 * `t` alone (causal attention; keys carry their rotary position), so the first `k` positions of a
 * kept sequence serve any prompt with the same first `k` tokens, exactly as a fresh prefill would
 * compute them (to float rounding: other kernel shapes).
 *
 * Kept sequences share storage where they begin the same way: a sequence stored after one it shares
 * `minTokens` or more first tokens with holds only what follows them (requests after one system
 * prompt keep it once, a conversation's turns each hold only what the turn added). Bounded by bytes,
 * least recently used sequences dropped first; positions no kept sequence uses any more are freed. A
 * kept sequence that begins another one is dropped when the longer one is kept: the longer serves
 * everything the shorter did.
 */
export class PrefixCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private hits = 0;
  private reused = 0;

  constructor(
    /** The most bytes of keys/values kept. */
    readonly maxBytes: number,
    /** Shorter shared prefixes are not worth a lookup's bookkeeping (and a prompt shorter is not kept). */
    readonly minTokens = 32,
    /** Bytes of keys/values a position takes (all layers), to tell what fits before it is copied; 0: not known. */
    readonly positionBytes = 0,
  ) {}

  get stats(): PrefixCacheStats {
    return {
      entries: this.entries.size,
      bytes: this.bytes,
      maxBytes: this.maxBytes,
      hits: this.hits,
      reusedTokens: this.reused,
    };
  }

  /**
   * The keys/values of the kept sequence sharing the longest prefix with `ids`, and how many of their
   * first positions to reuse: the shared prefix, but never all of `ids` (its last position is run,
   * for the next token's logits). Null when no kept sequence shares `minTokens` or more. Counts a
   * hit, and marks the sequence used.
   */
  lookup(ids: readonly number[]): { pieces: KvPieces; length: number } | null;
  /**
   * With `scored` (the alternatives a prompt's log-probs list): only kept sequences with their
   * log-probs (as many alternatives or more) serve, and `logprobs` holds those of the reused positions
   * and of the token after them (the last reused position's logits are not run again): a shared
   * prefix of `k` tokens reuses `k - 1` positions.
   */
  lookup(
    ids: readonly number[],
    scored: number | null,
  ): { pieces: KvPieces; length: number; logprobs?: readonly (TokenLogprob | null)[] } | null;
  lookup(ids: readonly number[], scored: number | null = null) {
    const found = this.longest(ids, ids.length - 1, scored);
    if (found === null) return null;
    const { entry, length } = found;
    this.touch(keyOf(entry.ids), entry);
    this.hits++;
    this.reused += length;
    return {
      pieces: entry.pieces.map(({ segment, length }) => ({ kv: segment.kv, length })),
      length,
      ...(scored !== null ? { logprobs: entry.logprobs!.list.slice(0, length + 1) } : {}),
    };
  }

  /** The positions `lookup(ids, scored)` would reuse now (0 for none), counting nothing (to plan a batch). */
  peek(ids: readonly number[], scored: number | null = null): number {
    return this.longest(ids, ids.length - 1, scored)?.length ?? 0;
  }

  /**
   * Whether `store(ids)` would keep `ids` now: long enough, and within the budget with the kept
   * positions it would share (whole blocks: they stay while it is kept).
   */
  keeps(ids: readonly number[]): boolean {
    return ids.length >= this.minTokens && this.fits(ids, this.lender(ids));
  }

  /** Whether `ids`, lent its beginning as `lender(ids)` says, is within the budget. */
  private fits(ids: readonly number[], { from, lentBytes }: { from: number; lentBytes: number }): boolean {
    return lentBytes + (ids.length - from) * this.positionBytes <= this.maxBytes;
  }

  /**
   * How `ids` would be kept: its first `from` positions lent by the kept sequence sharing the most
   * with it (`lent`), which hold `lentBytes` however few of their positions it uses (they stay while
   * it does).
   */
  private lender(ids: readonly number[]) {
    const shared = this.longest(ids, ids.length, null);
    const from = shared?.length ?? 0;
    const lent = shared ? firstPieces(shared.entry, from) : [];
    return {
      entry: shared?.entry ?? null,
      from,
      lent,
      lentBytes: lent.reduce((sum, { segment }) => sum + segment.bytes, 0),
    };
  }

  /**
   * The kept sequence sharing the most first tokens with `ids` (`most` at most), if `minTokens` or
   * more. With `scored`, among those kept with their log-probs (`scored` alternatives or more), the
   * one whose positions serve the most: those before the last shared token, whose log-prob must be
   * known too.
   */
  private longest(
    ids: readonly number[],
    most: number,
    scored: number | null,
  ): { entry: Entry; length: number } | null {
    let best: Entry | null = null;
    let bestLength = 0;
    for (const entry of this.entries.values()) {
      const lps = entry.logprobs;
      if (scored !== null && (lps === null || lps.top < scored)) continue;
      // scored: the shared positions whose next token's log-prob is kept too
      const limit = scored === null ? most : Math.min(most, lps!.list.length - 1, entry.ids.length - 1);
      if (Math.min(entry.ids.length, limit) <= bestLength) continue;
      const k =
        scored === null ? sharedLength(entry.ids, ids, most) : sharedLength(entry.ids, ids, limit + 1) - 1;
      if (k > bestLength) {
        best = entry;
        bestLength = k;
      }
    }
    return best === null || bestLength < this.minTokens ? null : { entry: best, length: bestLength };
  }

  /**
   * Keeps a sequence's keys/values (a prompt, or a prompt and its reply). `take(from)` gives those of
   * its positions `from` to the end (`from`: the beginning it shares with a kept sequence, whose
   * keys/values serve it). It is called only when the sequence is kept, as copying keys/values out of
   * the batch's cache costs about as much as they weigh.
   */
  store(ids: readonly number[], take: (from: number) => KvRows, logprobs: KeptLogprobs | null = null): void {
    if (ids.length < this.minTokens) return;
    if (logprobs !== null && logprobs.list.length > ids.length)
      throw new Error(`internal: ${logprobs.list.length} log-probs given to keep ${ids.length} tokens`);
    const lender = this.lender(ids);
    const { entry: longest, from, lent, lentBytes } = lender;
    // a kept sequence that begins with this one (or is it) serves it already: used, nothing new kept
    // (but the log-probs, if it has none as good)
    if (longest !== null && from === ids.length) {
      longest.logprobs = better(longest.logprobs, logprobs);
      this.touch(keyOf(longest.ids), longest);
      return;
    }
    // past the budget on its own (what it shares included): kept, it would be dropped at once, and
    // whatever it pushed out with it
    if (!this.fits(ids, lender)) return;
    const kv = take(from);
    if (kv.length !== ids.length - from)
      throw new Error(`internal: ${kv.length} positions given to keep ${ids.length - from}`);
    const bytes = byteSize(kv);
    if (this.positionBytes > 0 && bytes !== kv.length * this.positionBytes)
      throw new Error(`internal: ${bytes} bytes for ${kv.length} positions of ${this.positionBytes}`);
    if (lentBytes + bytes > this.maxBytes) return;
    const pieces = [...lent, { segment: { kv, bytes, users: 0 }, length: kv.length }];
    for (const { segment } of pieces) segment.users++;
    this.bytes += bytes;
    const kept = keyOf(ids);
    const added: Entry = { ids: [...ids], pieces, logprobs: frozen(logprobs) };
    this.entries.set(kept, added);
    // kept sequences this one begins with: it serves them (and takes their log-probs: a prompt scored,
    // then kept with its reply)
    for (const [key, entry] of this.entries)
      if (key !== kept && startsWith(ids, entry.ids)) {
        added.logprobs = better(added.logprobs, entry.logprobs);
        this.drop(key, entry);
      }
    for (const [key, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.drop(key, entry);
    }
  }

  /** Drops every kept sequence (the counters stay). */
  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  /** Marks a kept sequence used: most recently used last. */
  private touch(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
  }

  /**
   * Drops a kept sequence, and frees the positions no other kept sequence uses: a segment nobody
   * uses, and the end of one whose remaining users take only its first positions.
   */
  private drop(key: string, entry: Entry): void {
    this.entries.delete(key);
    for (const { segment } of entry.pieces) {
      if (--segment.users === 0) {
        this.bytes -= segment.bytes;
        continue;
      }
      let used = 0;
      for (const other of this.entries.values())
        for (const piece of other.pieces) if (piece.segment === segment) used = Math.max(used, piece.length);
      if (used === segment.kv.length) continue;
      // a new object, not the arrays changed: keys/values a lookup has handed out stay as they were
      segment.kv = firstPositions(segment.kv, used);
      const bytes = byteSize(segment.kv);
      this.bytes -= segment.bytes - bytes;
      segment.bytes = bytes;
    }
  }
}

/** Of two kept log-prob lists of one sequence, the one with more alternatives, then more positions. */
function better(a: KeptLogprobs | null, b: KeptLogprobs | null): KeptLogprobs | null {
  if (a === null || b === null) return a ?? frozen(b);
  if (b.top !== a.top) return b.top > a.top ? frozen(b) : a;
  return b.list.length > a.list.length ? frozen(b) : a;
}

/**
 * Kept log-probs are read by every prompt that reuses them: a frozen copy, so that neither the result
 * they came from nor one they are read into can change them.
 */
function frozen(lps: KeptLogprobs | null): KeptLogprobs | null {
  if (lps === null || Object.isFrozen(lps)) return lps;
  const list = lps.list.map((e) =>
    e ? Object.freeze({ ...e, top: Object.freeze(e.top.map((t) => Object.freeze({ ...t }))) }) : null,
  );
  return Object.freeze({ top: lps.top, list: Object.freeze(list) }) as KeptLogprobs;
}

/** The pieces holding `entry`'s first `n` positions. */
function firstPieces(entry: Entry, n: number): Piece[] {
  const pieces: Piece[] = [];
  for (const { segment, length } of entry.pieces) {
    if (n <= 0) break;
    pieces.push({ segment, length: Math.min(length, n) });
    n -= length;
  }
  return pieces;
}

const byteSize = (kv: KvRows) => kv.data.reduce((sum, d) => sum + d.byteLength, 0);
/** A sequence's key among kept ones (and among a batch's prompts). */
export const keyOf = (ids: readonly number[]) => ids.join(',');

/** How many first tokens `a` and `b` share, `limit` at most. */
export function sharedLength(
  a: readonly number[],
  b: readonly number[],
  limit = Number.POSITIVE_INFINITY,
): number {
  const n = Math.min(a.length, b.length, limit);
  let k = 0;
  while (k < n && a[k] === b[k]) k++;
  return k;
}

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  return prefix.length <= ids.length && sharedLength(ids, prefix) === prefix.length;
}
