import type * as Ort from 'onnxruntime-node';
import { onnxruntime } from './onnxruntime.js';

type KvData = Float32Array | Uint16Array;
const kvData = (t: Ort.Tensor) => t.data as KvData;
const alloc = (like: KvData, n: number): KvData =>
  like instanceof Uint16Array ? new Uint16Array(n) : new Float32Array(n);
const tensor = (type: Ort.Tensor.Type, data: KvData, dims: number[]) =>
  new (onnxruntime().Tensor)(type as 'float32', data as Float32Array, dims);

/**
 * The key/value cache of the rows being decoded together, per layer (key, value, key, value...), each
 * [batch, kvHeads, positions, headDim]. Rows are right-aligned: a row shorter than the batch's longest
 * is left-padded with positions its attention mask hides, so all rows append at the same position.
 */
export interface KvCache {
  readonly batch: number;
  /** Positions cached per row (left padding included): the length of each row's attention mask. */
  readonly length: number;
  /** Past length fed to the graph: `length`, plus any free slots (the mask hides them). */
  readonly width: number;
  /** The `past_key_values.*` feeds of the next step. */
  feeds(): Ort.Tensor[];
  /**
   * The cache after a decoding step, given the step's cache outputs (whole `present.*` or the new
   * keys/values). `limit`: the most positions the batch can still come to hold (room beyond it is
   * never allocated).
   */
  advance(outputs: Ort.Tensor[], limit?: number): KvCache;
  /** Keeps the given rows, in that order. */
  gather(keep: readonly number[]): KvCache;
  /** This cache's rows followed by `other`'s, right-aligned to the longer of the two (`limit` as in `advance`). */
  merge(other: KvCache, limit?: number): KvCache;
  /**
   * Drops the first `start` positions, which every row's mask hides (rows that left the batch were
   * the last to see them): keys keep their rotary positions and the distances between cache
   * positions are unchanged, so no result changes. Free slots stay as many.
   */
  trimLeft(start: number): KvCache;
}

/**
 * The cache as onnxruntime returns it: `present.*` of the last step, fed back whole as the next step's
 * past. Every step copies the whole cache out of onnxruntime; used where the graph cannot be patched
 * to output only the new keys/values (see `SlotCache`).
 */
export class PresentCache implements KvCache {
  readonly batch: number;
  readonly length: number;
  get width(): number {
    return this.length;
  }

  constructor(private readonly tensors: Ort.Tensor[]) {
    const [batch, , length] = tensors[0]!.dims as number[];
    this.batch = batch!;
    this.length = length!;
  }

  feeds(): Ort.Tensor[] {
    return this.tensors;
  }

  advance(present: Ort.Tensor[]): KvCache {
    return new PresentCache(present);
  }

  gather(keep: readonly number[]): KvCache {
    return new PresentCache(
      this.tensors.map((t) => {
        const [, h, len, d] = t.dims as number[];
        return tensor(t.type, gatherRows(kvData(t), keep, h! * len! * d!), [keep.length, h!, len!, d!]);
      }),
    );
  }

  merge(other: KvCache): KvCache {
    const b = other.feeds();
    const length = Math.max(this.length, other.length);
    return new PresentCache(
      this.tensors.map((ta, i) => {
        const tb = b[i]!;
        const [, h, , d] = ta.dims as number[];
        const out = alloc(kvData(ta), (this.batch + other.batch) * h! * length * d!);
        copyRows(kvData(ta), this.batch, h!, d!, this.length, this.length, out, length, 0);
        copyRows(kvData(tb), other.batch, h!, d!, other.width, other.length, out, length, this.batch);
        return tensor(ta.type, out, [this.batch + other.batch, h!, length, d!]);
      }),
    );
  }

  trimLeft(start: number): KvCache {
    const length = this.length - start;
    return new PresentCache(
      this.tensors.map((t) => {
        const [, h, , d] = t.dims as number[];
        const out = alloc(kvData(t), this.batch * h! * length * d!);
        copyRows(kvData(t), this.batch, h!, d!, this.length, length, out, length, 0, 0, start);
        return tensor(t.type, out, [this.batch, h!, length, d!]);
      }),
    );
  }
}

/**
 * Positions of one row taken out of a cache, per layer tensor (key, value, key, value...), each
 * [kvHeads, length, headDim].
 */
export interface KvRows {
  type: Ort.Tensor.Type;
  heads: number;
  dim: number;
  length: number;
  data: KvData[];
}

/**
 * A row's first positions kept in pieces (a prefix shared with other kept rows, then its own): the
 * first `length` positions of each piece's `kv`, in order.
 */
export type KvPieces = readonly { readonly kv: KvRows; readonly length: number }[];

/** The first `n` positions of `kv`, in new arrays. */
export function firstPositions(kv: KvRows, n: number): KvRows {
  const { heads, dim } = kv;
  const data = kv.data.map((d) => {
    const out = alloc(d, heads * n * dim);
    copyRows(d, 1, heads, dim, kv.length, n, out, n, 0);
    return out;
  });
  return { ...kv, length: n, data };
}

/** Free slots are added in multiples of this many positions when a `SlotCache` fills up. */
export const SLOT_CHUNK = 32;

/**
 * The cache in the engine's own buffers, with room to grow: each tensor is [batch, kvHeads, capacity,
 * headDim], positions [0, length) filled and the rest free (hidden by the attention mask, so they cost
 * attention reads but never change a result). A step feeds the buffers as they are and fetches only
 * the new keys/values (the graph patched with `implicit_it_new.*` outputs), which are written into
 * the next free slot: no step copies the whole cache, and nothing is allocated until the buffers are
 * full (then they grow by half, in whole chunks of SLOT_CHUNK positions, at most four at a time, but
 * never past the positions the batch can still reach: each free slot costs attention reads).
 *
 * Free slots sit between the cached positions and the token fed next, so they add to how far back the
 * graph sees each key. That is harmless unless the model has a sliding window (`window`: a query sees
 * the keys fewer than `window` cache positions back): there the capacity stays below `window` (no key
 * can then fall out of it), and once the cache reaches `window - 1` positions it has no free slots,
 * growing by one position a step (copying the cache, as feeding `present.*` back would) so that cache
 * positions are true distances again.
 */
export class SlotCache implements KvCache {
  private constructor(
    private rows: number,
    private readonly heads: number,
    private readonly dim: number,
    private readonly type: Ort.Tensor.Type,
    private capacity: number,
    private filled: number,
    private data: KvData[],
    private readonly window: number | null,
  ) {}

  get batch(): number {
    return this.rows;
  }
  get length(): number {
    return this.filled;
  }
  get width(): number {
    return this.capacity;
  }

  /**
   * A cache holding a prefill's keys/values ([batch, kvHeads, seq, headDim] per layer), for a model
   * whose attention sees `window` cache positions back (null: all of them).
   */
  static fromPrefill(outputs: Ort.Tensor[], window: number | null = null, limit?: number): SlotCache {
    const [batch, heads, seq, dim] = outputs[0]!.dims as number[];
    const capacity = promptCapacity(seq!, limit, window);
    const data = outputs.map((t) => {
      const out = alloc(kvData(t), batch! * heads! * capacity * dim!);
      copyRows(kvData(t), batch!, heads!, dim!, seq!, seq!, out, capacity, 0, 0);
      return out;
    });
    return new SlotCache(batch!, heads!, dim!, outputs[0]!.type, capacity, seq!, data, window);
  }

  /**
   * A cache of `rows.length` rows and `width` positions, no free slots (a prefill's chunks follow):
   * row `b` holds the first `rows[b].length` positions of `rows[b].pieces`, right-aligned, and zeros
   * before them (the mask hides them); a null row holds zeros only.
   */
  static fromRows(
    rows: readonly ({ pieces: KvPieces; length: number } | null)[],
    width: number,
    window: number | null = null,
  ): SlotCache {
    const first = rows.find((r) => r !== null)!.pieces[0]!.kv;
    const { heads, dim, type } = first;
    const data = first.data.map((like, i) => {
      const out = alloc(like, rows.length * heads * width * dim);
      for (const [b, row] of rows.entries()) {
        if (!row) continue;
        let at = width - row.length;
        for (const { kv, length } of row.pieces) {
          const n = Math.min(length, width - at);
          if (n <= 0) break;
          copyRows(kv.data[i]!, 1, heads, dim, kv.length, n, out, width, b, at);
          at += n;
        }
      }
      return out;
    });
    return new SlotCache(rows.length, heads, dim, type, width, width, data, window);
  }

  /**
   * Row `b`'s positions `runs` ([start, length] each, in order), less the first `skip` of them (kept
   * already), in new arrays.
   */
  takeRow(b: number, runs: readonly (readonly [number, number])[], skip = 0): KvRows {
    const taken: [number, number][] = [];
    for (const [start, n] of runs) {
      const drop = Math.min(skip, n);
      skip -= drop;
      if (n > drop) taken.push([start + drop, n - drop]);
    }
    const length = taken.reduce((sum, [, n]) => sum + n, 0);
    const { heads, dim, capacity } = this;
    const block = heads * capacity * dim;
    const data = this.data.map((all) => {
      const src = all.subarray(b * block, (b + 1) * block);
      const out = alloc(src, heads * length * dim);
      let at = 0;
      for (const [start, n] of taken) {
        copyRows(src, 1, heads, dim, capacity, n, out, length, 0, at, start);
        at += n;
      }
      return out;
    });
    return { type: this.type, heads, dim, length, data };
  }

  feeds(): Ort.Tensor[] {
    const dims = [this.batch, this.heads, this.capacity, this.dim];
    const n = this.batch * this.heads * this.capacity * this.dim;
    // after an in-place gather the buffers hold rows beyond the batch: a view of the batch's rows
    return this.data.map((d) => tensor(this.type, d.length === n ? d : d.subarray(0, n), dims));
  }

  advance(fresh: Ort.Tensor[], limit?: number): KvCache {
    const needed = this.filled + fresh[0]!.dims[2]!;
    this.write(
      fresh,
      needed > this.capacity ? sized(grow(this.capacity), needed, limit, this.window) : this.capacity,
    );
    return this;
  }

  /**
   * Adds a chunk of prompt keys/values ([batch, kvHeads, n, headDim]). While `more` chunks follow,
   * the cache keeps no free slots (the next chunk's attention would read each one); after the last,
   * it has the room a whole-prompt prefill would have (see `fromPrefill`).
   */
  extend(fresh: Ort.Tensor[], more: boolean, limit?: number): SlotCache {
    const needed = this.filled + fresh[0]!.dims[2]!;
    this.write(fresh, more ? needed : promptCapacity(needed, limit, this.window));
    return this;
  }

  /**
   * Writes `fresh` ([batch, kvHeads, n, headDim]: one position a decoding step, more for a prompt
   * chunk) after the filled positions, first moving the cache into buffers of `capacity` positions
   * when that differs from the current one.
   */
  private write(fresh: Ort.Tensor[], capacity: number): void {
    if (capacity !== this.capacity) this.resize(capacity);
    const n = fresh[0]!.dims[2]!;
    const { heads, dim, filled } = this;
    const blocks = this.batch * heads;
    const span = n * dim;
    for (let i = 0; i < fresh.length; i++) {
      const src = kvData(fresh[i]!);
      const dst = this.data[i]!;
      // plain loops: 60 tensors x (batch x heads) blocks of n x headDim values, no subarrays
      for (let bh = 0; bh < blocks; bh++) {
        const from = bh * span;
        const to = (bh * capacity + filled) * dim;
        for (let j = 0; j < span; j++) dst[to + j] = src[from + j]!;
      }
    }
    this.filled += n;
  }

  /**
   * Keeps the rows `keep`. Rows kept in their order (the engine's case: finished rows leave) move
   * down in place, each row after the first one gone copied once, and nothing is allocated: rows
   * leave a continuous batch one or a few at a time, and copying the whole cache into new buffers at
   * each departure (then collecting the old ones) cost about a sixth of the evaluation workload's
   * time. The buffers keep their size until the cache next grows, merges or trims.
   */
  gather(keep: readonly number[]): KvCache {
    const block = this.heads * this.capacity * this.dim;
    if (keep.every((b, i) => (i === 0 ? b >= 0 : b > keep[i - 1]!) && b < this.rows)) {
      for (const d of this.data)
        for (const [i, b] of keep.entries()) if (b !== i) d.copyWithin(i * block, b * block, (b + 1) * block);
      this.rows = keep.length;
      return this;
    }
    const data = this.data.map((src) => gatherRows(src, keep, block));
    return new SlotCache(
      keep.length,
      this.heads,
      this.dim,
      this.type,
      this.capacity,
      this.filled,
      data,
      this.window,
    );
  }

  /**
   * This cache's rows, then `other`'s, right-aligned. Where the joiners' prompts are no longer than
   * the positions cached and the buffers have room for their rows (rows that left since the buffers
   * were last allocated: see `gather`), they are written into those rows in place; otherwise both go
   * into new buffers. A continuous batch's rows leave and join one by one: copying the whole cache
   * at each join cost about 400 ms at 32 rows x 1,024 positions of smollm2-135m, in place about 3.
   */
  merge(other: KvCache, limit?: number): KvCache {
    const length = Math.max(this.filled, other.length);
    const b = other.feeds();
    const rows = this.rows + other.batch;
    const block = this.heads * this.capacity * this.dim;
    // the joiners' rows of tensor i, after this cache's rows of `out`, from position `at`
    const join = (i: number, out: KvData, width: number, at: number) =>
      copyRows(
        kvData(b[i]!),
        other.batch,
        this.heads,
        this.dim,
        other.width,
        other.length,
        out,
        width,
        this.rows,
        at,
      );
    if (other.length <= this.filled && this.data.every((d) => d.length >= rows * block)) {
      const pad = this.filled - other.length;
      this.data.forEach((d, i) => {
        join(i, d, this.capacity, pad);
        // the joiners' left padding: zeros, as in new buffers (hidden by the mask either way)
        for (let rh = this.rows * this.heads; rh < rows * this.heads; rh++)
          d.fill(0, rh * this.capacity * this.dim, (rh * this.capacity + pad) * this.dim);
      });
      this.rows = rows;
      return this;
    }
    const capacity = promptCapacity(length, limit, this.window);
    const data = this.data.map((da, i) => {
      const out = alloc(da, (this.batch + other.batch) * this.heads * capacity * this.dim);
      copyRows(
        da,
        this.batch,
        this.heads,
        this.dim,
        this.capacity,
        this.filled,
        out,
        capacity,
        0,
        length - this.filled,
      );
      join(i, out, capacity, length - other.length);
      return out;
    });
    return new SlotCache(
      this.batch + other.batch,
      this.heads,
      this.dim,
      this.type,
      capacity,
      length,
      data,
      this.window,
    );
  }

  trimLeft(start: number): KvCache {
    const capacity = this.capacity - start;
    const filled = this.filled - start;
    const data = this.data.map((src) => {
      const out = alloc(src, this.batch * this.heads * capacity * this.dim);
      copyRows(src, this.batch, this.heads, this.dim, this.capacity, filled, out, capacity, 0, 0, start);
      return out;
    });
    return new SlotCache(this.batch, this.heads, this.dim, this.type, capacity, filled, data, this.window);
  }

  private resize(capacity: number): void {
    // the batch's rows only: rows that left stop holding memory once the cache grows (a burst of
    // rows would otherwise size every later resize of a long-running row)
    this.data = this.data.map((src) => {
      const out = alloc(src, this.batch * this.heads * capacity * this.dim);
      copyRows(src, this.batch, this.heads, this.dim, this.capacity, this.filled, out, capacity, 0, 0);
      return out;
    });
    this.capacity = capacity;
  }
}

const roundUp = (n: number) => Math.ceil(n / SLOT_CHUNK) * SLOT_CHUNK;
/**
 * The next capacity of a full cache: half again, between one and four chunks (each resize copies the
 * whole cache; each free slot costs attention reads until it is filled).
 */
const grow = (capacity: number) =>
  capacity + Math.min(4 * SLOT_CHUNK, Math.max(SLOT_CHUNK, roundUp(capacity / 2)));

/**
 * The capacity to allocate for `needed` positions: `wanted`, but no room beyond the `limit` positions
 * the batch can still come to hold (rows stop at their token limits). Under a sliding window it stays
 * below `window` (the token fed next sits `capacity` positions after the first slot, so every slot is
 * then inside the window), or else has no free slots beyond `needed`.
 */
function sized(wanted: number, needed: number, limit: number | undefined, window: number | null): number {
  const capacity = Math.max(needed, Math.min(wanted, limit ?? wanted));
  return window === null || capacity < window ? capacity : Math.max(window - 1, needed);
}

/** The capacity of a cache that has just taken in a prompt of `filled` positions: room for the next token, in whole chunks. */
const promptCapacity = (filled: number, limit: number | undefined, window: number | null) =>
  sized(roundUp(filled + 1), filled, limit, window);

/** The rows `keep` (each `block` values long) of `src`, in that order, in a new array. */
function gatherRows(src: KvData, keep: readonly number[], block: number): KvData {
  const dst = alloc(src, keep.length * block);
  for (const [i, b] of keep.entries()) dst.set(src.subarray(b * block, (b + 1) * block), i * block);
  return dst;
}

/**
 * Copies `len` positions of `rows` rows ([rows, heads, srcWidth, dim]), from position `srcAt` on
 * (default: the first), into `out` ([*, heads, outWidth, dim]) at row `rowOffset`, starting at
 * position `at` (default: right-aligned).
 */
function copyRows(
  src: KvData,
  rows: number,
  heads: number,
  dim: number,
  srcWidth: number,
  len: number,
  out: KvData,
  outWidth: number,
  rowOffset: number,
  at = outWidth - len,
  srcAt = 0,
): void {
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < heads; k++) {
      const from = ((r * heads + k) * srcWidth + srcAt) * dim;
      const to = (((rowOffset + r) * heads + k) * outWidth + at) * dim;
      out.set(src.subarray(from, from + len * dim), to);
    }
  }
}
