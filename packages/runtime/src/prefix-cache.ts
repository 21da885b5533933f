import type { KvRows } from './kv-cache.js';

/** A prompt's keys/values (with its reply's, once generated), kept for prompts that begin the same way. */
interface Entry {
  ids: readonly number[];
  kv: KvRows;
  bytes: number;
}

/** What a `PrefixCache` holds and has saved. */
export interface PrefixCacheStats {
  /** Sequences kept (prompts, and prompts with their replies). */
  entries: number;
  /** Bytes their keys/values take. */
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
 * Bounded by bytes, least recently used dropped first. A kept sequence that begins another one is
 * dropped when the longer one is kept: the longer serves everything the shorter did.
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
   * The kept sequence sharing the longest prefix with `ids`, and how many of its positions to reuse:
   * the shared prefix, but never all of `ids` (its last position is run, for the next token's
   * logits). Null when no kept sequence shares `minTokens` or more. Counts a hit, and marks the
   * sequence used.
   */
  lookup(ids: readonly number[]): { kv: KvRows; length: number } | null {
    const found = this.longest(ids);
    if (found === null) return null;
    const { entry, length } = found;
    // most recently used last
    const key = keyOf(entry.ids);
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.hits++;
    this.reused += length;
    return { kv: entry.kv, length };
  }

  /** The positions `lookup(ids)` would reuse now (0 for none), counting nothing (to plan a batch). */
  peek(ids: readonly number[]): number {
    return this.longest(ids)?.length ?? 0;
  }

  private longest(ids: readonly number[]): { entry: Entry; length: number } | null {
    let best: Entry | null = null;
    let bestLength = 0;
    const most = ids.length - 1;
    for (const entry of this.entries.values()) {
      if (Math.min(entry.ids.length, most) <= bestLength) continue;
      const k = sharedLength(entry.ids, ids, most);
      if (k > bestLength) {
        best = entry;
        bestLength = k;
      }
    }
    return best === null || bestLength < this.minTokens ? null : { entry: best, length: bestLength };
  }

  /**
   * Keeps a sequence's keys/values (a prompt, or a prompt and its reply): `take` gives them (exactly
   * its `ids.length` positions), called only when it is kept, as copying them out of the batch's
   * cache costs about as much as they weigh.
   */
  store(ids: readonly number[], take: () => KvRows): void {
    if (ids.length < this.minTokens) return;
    // a kept sequence that begins with this one (or is it) serves it already: used, nothing new kept
    for (const [key, entry] of this.entries) {
      if (!startsWith(entry.ids, ids)) continue;
      this.entries.delete(key);
      this.entries.set(key, entry);
      return;
    }
    const kv = take();
    const bytes = kv.data.reduce((sum, d) => sum + d.byteLength, 0);
    if (bytes > this.maxBytes) return;
    // kept sequences this one begins with: it serves them
    for (const [key, entry] of this.entries) {
      if (!startsWith(ids, entry.ids)) continue;
      this.entries.delete(key);
      this.bytes -= entry.bytes;
    }
    this.entries.set(keyOf(ids), { ids: [...ids], kv, bytes });
    this.bytes += bytes;
    for (const [key, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.bytes -= entry.bytes;
    }
  }

  /** Drops every kept sequence (the counters stay). */
  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

const keyOf = (ids: readonly number[]) => ids.join(',');

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
