/**
 * A seeded pseudo-random generator (mulberry32) returning floats in [0, 1): the same seed gives the
 * same sequence on every platform.
 *
 * @example
 * const r = seededRandom(1); r(); // the same float in [0, 1) on every run
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A seeded Fisher-Yates shuffle of `0..n-1`.
 *
 * @example
 * shuffledIndices(5, 1); // a fixed permutation of [0, 1, 2, 3, 4]
 */
export function shuffledIndices(n: number, seed: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  const rand = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx;
}
