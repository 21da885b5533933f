import { meantOption } from '@implicit-it/rules';
import { ModelConfigError } from './errors.js';
import { shown } from './shown.js';

/**
 * Throws a {@link ModelConfigError} naming the first key of `options` that is not one of `known` (an
 * option left undefined, as a spread of optional fields leaves it, is no option given), with the
 * option meant where it is a misspelling of one: a silently ignored `dtype: 'q4'` or `hiddenSzie`
 * would write another model than the one asked for: `refuseUnknownOptions({ dtype: ['q4'] }, ['dtypes'],
 * 'createModel')` throws `dtype: not an option of createModel (did you mean dtypes?) ...`.
 */
export function refuseUnknownOptions(options: object, known: readonly string[], call: string): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ModelConfigError('options', `expected an object of ${call} options, got ${shown(options)}`);
  }
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || known.includes(key)) continue;
    const meant = meantOption(key, known);
    throw new ModelConfigError(
      key,
      `not an option of ${call}${meant ? ` (did you mean ${meant}?)` : ''}; its options are ${known.join(', ')}`,
    );
  }
}

/** Throws a {@link ModelConfigError} naming `field` unless `value` is undefined or one of `allowed`. */
export function checkOneOf(value: unknown, field: string, allowed: readonly unknown[]): void {
  if (value !== undefined && !allowed.includes(value)) {
    const list = allowed.map(shown);
    throw new ModelConfigError(
      field,
      `must be ${list.slice(0, -1).join(', ')} or ${list.at(-1)}, got ${shown(value)}`,
    );
  }
}

/** The decoder-graph and q4 options that `createModel` and `exportOnnx` share. */
export const GRAPH_OPTIONS = [
  'kvDtype',
  'repeatKv',
  'positionIds',
  'linear',
  'merged',
  'q4BlockSize',
  'q4AccuracyLevel',
] as const;
