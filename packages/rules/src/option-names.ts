/** Optimal-string-alignment distance (a swap of two neighbours counts once): `hiddenSzie` is 1 from `hiddenSize`. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The option `key` is probably a misspelling of, for "did you mean" in errors: another case or
 * snake_case of one of `known`, else the nearest one or two edits away (one for keys of up to four
 * characters), else undefined. Shared by the packages that refuse unknown option names.
 *
 * @example
 * meantOption('learning_rate', ['learningRate', 'epochs']); // 'learningRate'
 * meantOption('epoch', ['learningRate', 'epochs']); // 'epochs'
 */
export function meantOption(key: string, known: readonly string[]): string | undefined {
  const squash = (k: string) => k.replace(/[_-]/g, '').toLowerCase();
  const same = known.find((k) => squash(k) === squash(key));
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestDistance = key.length <= 4 ? 1 : 2;
  for (const k of known) {
    const dist = distance(squash(key), squash(k));
    if (dist <= bestDistance && (best === undefined || dist < bestDistance)) [best, bestDistance] = [k, dist];
  }
  return best;
}

/**
 * The first key of `options` that `known` does not list (one whose value is undefined is no key given), with the "did you mean" that follows it in an
 * error (` (did you mean "rampLength"?)`, or `''` when {@link meantOption} finds none); undefined when
 * every key is known. The rules package's refusals of unknown option and field names share it.
 */
export function unknownKey(
  options: object,
  known: readonly string[],
): { key: string; didYouMean: string } | undefined {
  // a key left undefined (as a spread of optional fields leaves it) is no option given
  const key = Object.entries(options).find(([k, v]) => v !== undefined && !known.includes(k))?.[0];
  if (key === undefined) return undefined;
  const meant = meantOption(key, known);
  return { key, didYouMean: meant === undefined ? '' : ` (did you mean "${meant}"?)` };
}

/**
 * `true` when the list `L` names every key of `T`, else the keys it misses: a compile-time check
 * that a list of option names kept for refusing unknown options (with {@link meantOption}) is
 * complete, so that a new option is not refused as unknown.
 *
 * @example
 * const OPTIONS = ['a', 'b'] as const;
 * const listed: ListsEveryKey<{ a?: 1; b?: 2 }, typeof OPTIONS> = true; // compiles: the list is complete
 * // @ts-expect-error Type 'true' is not assignable to type '"b"': the list misses b
 * const incomplete: ListsEveryKey<{ a?: 1; b?: 2 }, readonly ['a']> = true;
 */
export type ListsEveryKey<T, L extends readonly unknown[]> = [Exclude<keyof T, L[number]>] extends [never]
  ? true
  : Exclude<keyof T, L[number]>;

/**
 * A value as an error message shows it: its JSON (strings quoted, so that `"2"` is not read as 2), or
 * `String(value)` where JSON has no such value (NaN, Infinity, undefined, functions, cycles); a bigint
 * with its `n`.
 *
 * @example
 * shownValue('2'); // '"2"'
 * shownValue(Number.NaN); // 'NaN'
 * shownValue(2n); // '2n'
 */
export function shownValue(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return `${value}n`; // not 1, which reads as the number
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value); // a cycle
  }
}

/**
 * `value` frozen with everything it holds (objects and arrays), for the constants and configs this
 * package hands out: an edit to one would change nothing, or change every later use.
 * @internal
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
