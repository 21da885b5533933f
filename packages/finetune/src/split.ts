import { FinetuneOptionError } from './errors.js';
import { shuffledIndices } from './seeded-random.js';

/**
 * How to hold out a validation split: a fraction (0 < f < 1) or a count, and a seed.
 *
 * @example
 * const heldOut: SplitOptions = { count: 100, seed: 3 };
 * const { validation } = splitTrainValidation(examples, heldOut);
 */
export interface SplitOptions {
  /** Fraction of examples held out, e.g. 0.05 (rounded; one that rounds to 0 examples is refused). Exclusive with `count`. */
  fraction?: number | undefined;
  /** Number of examples held out. */
  count?: number | undefined;
  /** Seed of the shuffle that picks them (default 1). */
  seed?: number | undefined;
}

/**
 * Splits items into train and validation with a seeded draw; both keep the input order, and the
 * same seed always picks the same items.
 *
 * @example
 * const { train, validation } = splitTrainValidation(examples, { fraction: 0.1, seed: 1 });
 */
export function splitTrainValidation<T>(items: T[], options: SplitOptions): { train: T[]; validation: T[] } {
  const { fraction, count, seed = 1 } = options;
  if (fraction !== undefined && count !== undefined) {
    throw new FinetuneOptionError('split', 'give either fraction or count, not both');
  }
  let n = 0;
  if (fraction !== undefined) {
    if (!(fraction > 0 && fraction < 1))
      throw new FinetuneOptionError('split.fraction', `must be in (0, 1), got ${fraction}`);
    n = Math.round(items.length * fraction);
    if (n === 0 && items.length > 0)
      throw new FinetuneOptionError(
        'split.fraction',
        `${fraction} of ${items.length} examples rounds to 0 held out, an empty validation set; give a fraction of at least ${0.5 / items.length}, or a count`,
      );
  } else if (count !== undefined) {
    if (!Number.isInteger(count) || count < 0 || count > items.length) {
      throw new FinetuneOptionError(
        'split.count',
        `must be an integer in [0, ${items.length}], got ${count}`,
      );
    }
    n = count;
  }
  if (!Number.isInteger(seed)) throw new FinetuneOptionError('split.seed', `must be an integer, got ${seed}`);
  const held = new Set(shuffledIndices(items.length, seed).slice(0, n));
  const train: T[] = [];
  const validation: T[] = [];
  items.forEach((item, i) => {
    (held.has(i) ? validation : train).push(item);
  });
  return { train, validation };
}
