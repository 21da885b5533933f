/**
 * Summary statistics of a list of lengths.
 *
 * @example
 * const { stats } = await buildDataset({ recipe: 'lima' });
 * const s: LengthStats = stats.assistantChars;
 * console.log(`responses: median ${s.p50} characters, 95% within ${s.p95}`);
 */
export interface LengthStats {
  count: number;
  min: number;
  max: number;
  mean: number;
  p50: number;
  p95: number;
}

/**
 * Min, max, mean and nearest-rank percentiles of `values` (all zero when empty).
 *
 * @example
 * lengthStats([1, 2, 3, 10]); // { count: 4, min: 1, max: 10, mean: 4, p50: 2, p95: 10 }
 */
export function lengthStats(values: number[]): LengthStats {
  if (values.length === 0) return { count: 0, min: 0, max: 0, mean: 0, p50: 0, p95: 0 };
  const s = [...values].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return {
    count: s.length,
    min: s[0]!,
    max: s[s.length - 1]!,
    mean: Math.round(mean * 100) / 100,
    p50: rank(50),
    p95: rank(95),
  };
}
