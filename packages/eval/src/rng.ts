import { createHash } from 'node:crypto';

/** A seeded pseudo-random generator (xoshiro128**), reproducible across platforms. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

/**
 * A seeded generator; the same seed gives the same sequence everywhere.
 *
 * @example
 * const rng = createRng('ranking:0');
 * rng.int(6); // 0..5
 */
export function createRng(seed: number | string): Rng {
  const h = createHash('sha256').update(String(seed)).digest();
  const s = new Uint32Array([h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12)]);
  if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
  const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;
  const nextU32 = () => {
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  };
  const next = () => nextU32() / 2 ** 32;
  return { next, int: (n) => Math.floor(next() * n) };
}
