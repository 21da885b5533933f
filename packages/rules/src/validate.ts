import type { EosRuleOptions, RuleSetConfig, UniformEntry } from './config.js';
import { RuleConfigError } from './errors.js';
import { deepFreeze, shownValue, unknownKey } from './option-names.js';
import { hasRuleSetMark } from './rule-set-mark.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const describe = (v: unknown): string =>
  v === null || v === undefined
    ? String(v)
    : Array.isArray(v)
      ? v.length === 0
        ? 'an empty array'
        : 'an array'
      : typeof v === 'string'
        ? `"${v}"`
        : typeof v === 'object'
          ? `an object ${shownValue(v)}`
          : `${typeof v} ${String(v)}`;

/** Hints for unknown fields that are names from elsewhere, not misspellings. */
const FIELD_HINTS: Readonly<Record<string, string>> = {
  diversity:
    'the used-token rule ("diversity" in the reference code and in subset names) is the field "used"',
  llama2Id:
    'HEWITT2024_UNIFORM lists each entry with its Llama-2 id; use `uniform: true` (its entries by text), the preset "hewitt2024-llama2-ids" (by id), or map each entry to { text, score } or { id, score }',
};

function expectKeys(obj: Json, path: string, allowed: readonly string[]): void {
  const unknown = unknownKey(obj, allowed);
  if (unknown === undefined) return;
  const { key, didYouMean } = unknown;
  const hint = Object.hasOwn(FIELD_HINTS, key) ? ` (${FIELD_HINTS[key]})` : didYouMean;
  throw new RuleConfigError(
    `${path}${path ? '.' : ''}${key}`,
    `unknown field; expected one of ${allowed.join(', ')}${hint}`,
  );
}

/**
 * The largest |score|, |bonus|, |penalty| or |weight| a rule-set config may give.
 *
 * @example
 * parseRuleSetConfig({ used: { penalty: -2 * MAX_RULE_VALUE } }); // throws RuleConfigError (used.penalty)
 */
export const MAX_RULE_VALUE = 1e6;

const ruleValue = { type: 'number', minimum: -MAX_RULE_VALUE, maximum: MAX_RULE_VALUE } as const;

type NumCheck = { min?: number; integer?: boolean; positive?: boolean };

function num(obj: Json, key: string, path: string, check?: NumCheck) {
  return numAt(obj[key], `${path}.${key}`, check);
}

/** Checks the number `v` found at `at` (the field's full path, e.g. `eos.ids[1]`). */
function numAt(v: unknown, at: string, check?: NumCheck) {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new RuleConfigError(at, `expected a finite number, got ${describe(v)}`);
  if (check?.integer && !Number.isInteger(v)) throw new RuleConfigError(at, `expected an integer, got ${v}`);
  // scores, bonuses, penalties and weights are added to float32 logits: beyond this they overflow
  // (1e39 is Infinity there) or swamp every other score, which a much smaller value already does
  if (!check?.integer && Math.abs(v) > MAX_RULE_VALUE)
    throw new RuleConfigError(
      at,
      `expected a number in [-1e6, 1e6] (it is added to float32 logits), got ${v}`,
    );
  if (check?.positive && v <= 0) throw new RuleConfigError(at, `expected a positive number, got ${v}`);
  if (check?.min !== undefined && v < check.min)
    throw new RuleConfigError(at, `expected at least ${check.min}, got ${v}`);
  return v;
}

function oneOf<T extends string>(obj: Json, key: string, path: string, values: readonly T[]): T | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !values.includes(v as T)) {
    throw new RuleConfigError(
      `${path}.${key}`,
      `expected one of ${values.map((x) => `"${x}"`).join(', ')}, got ${describe(v)}`,
    );
  }
  return v as T;
}

function ruleObject(value: unknown, path: string, keys: readonly string[]): Json | boolean {
  if (typeof value === 'boolean') return value;
  if (!isObject(value))
    throw new RuleConfigError(path, `expected true, false or an options object, got ${describe(value)}`);
  expectKeys(value, path, keys);
  return value;
}

const defined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

function uniformEntries(value: unknown, path: string): UniformEntry[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value))
    throw new RuleConfigError(
      path,
      `expected an array of {text, score} or {id, score}, got ${describe(value)}`,
    );
  // each id, and each text, once: the reference code assigns an id its score, so entries naming one
  // id twice would read as adding up here and as the last one winning there
  const ids = new Map<number, number>();
  const texts = new Map<string, number>();
  const once = <K>(seen: Map<K, number>, key: K, i: number, what: string) => {
    const first = seen.get(key);
    if (first !== undefined)
      throw new RuleConfigError(
        `${path}[${i}]`,
        `repeats ${what} from entries[${first}]: list each id and each text once`,
      );
    seen.set(key, i);
  };
  return value.map((entry, i) => {
    const at = `${path}[${i}]`;
    if (!isObject(entry))
      throw new RuleConfigError(at, `expected {text, score} or {id, score}, got ${describe(entry)}`);
    // a field left undefined (a spread of optional fields) is no field: { id, score, text: undefined } is by id
    const hasText = entry.text !== undefined;
    const hasId = entry.id !== undefined;
    if (!hasText && !hasId) {
      // a misspelt "text" or "id" ({ txt: " I", score: -5 }) is named, with what it probably means
      expectKeys(entry, at, ['text', 'id', 'score']);
      throw new RuleConfigError(at, 'expected "text" or "id"');
    }
    // an entry by id may give the text that id must have (checked against the vocabulary)
    expectKeys(entry, at, hasId ? ['id', 'score', 'text'] : ['text', 'score']);
    const score = num(entry, 'score', at);
    if (score === undefined) throw new RuleConfigError(`${at}.score`, 'required');
    if (hasText && (typeof entry.text !== 'string' || entry.text === '')) {
      throw new RuleConfigError(`${at}.text`, `expected a non-empty string, got ${describe(entry.text)}`);
    }
    const text = entry.text as string | undefined;
    if (!hasId) {
      once(texts, text, i, `text ${JSON.stringify(text)}`);
      return { text: text!, score };
    }
    const id = num(entry, 'id', at, { integer: true, min: 0 })!;
    once(ids, id, i, `id ${id}`);
    return text === undefined ? { id, score } : { id, score, text };
  });
}

/**
 * The EOS rule's field of a config (`true`, `false` or its options), checked; `path` names it.
 * @internal `parseRuleSetConfig` and `eosBonus` check it alike
 */
export function eosOptions(value: unknown, path: string): EosRuleOptions | boolean {
  const o = ruleObject(value, path, ['rampLength', 'maxBonus', 'afterRamp', 'ids']);
  if (typeof o === 'boolean') return o;
  let ids: number[] | undefined;
  if (o.ids !== undefined) {
    if (!Array.isArray(o.ids) || o.ids.length === 0) {
      throw new RuleConfigError(`${path}.ids`, `expected a non-empty array of ids, got ${describe(o.ids)}`);
    }
    ids = o.ids.map((id, i) => {
      const at = `${path}.ids[${i}]`;
      // numAt reads undefined as an option left out; in a list it is a missing id
      if (id === undefined) throw new RuleConfigError(at, 'expected an id, got undefined');
      return numAt(id, at, { integer: true, min: 0 })!;
    });
  }
  return defined({
    rampLength: num(o, 'rampLength', path, { integer: true, positive: true }),
    maxBonus: num(o, 'maxBonus', path),
    afterRamp: oneOf(o, 'afterRamp', path, ['zero', 'hold'] as const),
    ids,
  });
}

/**
 * Validates untrusted JSON (an HTTP body, a file) as a `RuleSetConfig`. Throws `RuleConfigError`
 * naming the field; unknown fields are errors (they are usually typos).
 *
 * @example
 * parseRuleSetConfig({ eos: { rampLength: 100 }, used: true });
 */
export function parseRuleSetConfig(input: unknown, path = ''): RuleSetConfig {
  if (!isObject(input)) throw new RuleConfigError(path, `expected a rule-set object, got ${describe(input)}`);
  // read as JSON, its own fields would be refused one by one ("vocabSize: unknown field"), which says
  // nothing of what was given
  if (hasRuleSetMark(input))
    throw new RuleConfigError(
      path,
      'got a compiled RuleSet where a rule spec is expected (a preset or subset name such as "hewitt2024", false, or a rule-set object such as {"eos":true}): pass the spec it was compiled from, or give the RuleSet where a compiled one is taken',
    );
  expectKeys(input, path, ['eos', 'uniform', 'used', 'start']);
  const p = (k: string) => (path ? `${path}.${k}` : k);
  const out: RuleSetConfig = {};
  if (input.eos !== undefined) out.eos = eosOptions(input.eos, p('eos'));
  if (input.uniform !== undefined) {
    const o = ruleObject(input.uniform, p('uniform'), ['entries']);
    out.uniform =
      typeof o === 'boolean' ? o : defined({ entries: uniformEntries(o.entries, `${p('uniform')}.entries`) });
  }
  if (input.used !== undefined) {
    const o = ruleObject(input.used, p('used'), ['penalty', 'scope']);
    out.used =
      typeof o === 'boolean'
        ? o
        : defined({
            penalty: num(o, 'penalty', p('used')),
            scope: oneOf(o, 'scope', p('used'), ['conversation', 'response'] as const),
          });
  }
  if (input.start !== undefined) {
    const o = ruleObject(input.start, p('start'), ['weight', 'exclamationBonus', 'newlinePenalty']);
    out.start =
      typeof o === 'boolean'
        ? o
        : defined({
            weight: num(o, 'weight', p('start')),
            exclamationBonus: num(o, 'exclamationBonus', p('start')),
            newlinePenalty: num(o, 'newlinePenalty', p('start')),
          });
  }
  return out;
}

const ruleOr = (properties: Json) => ({
  oneOf: [{ type: 'boolean' }, { type: 'object', additionalProperties: false, properties }],
});

/**
 * JSON Schema (draft 2020-12) of `RuleSetConfig`, for API documentation and other validators.
 *
 * @example
 * const body = JSON.stringify(ruleSetJsonSchema); // e.g. served at ruleSetJsonSchema.$id
 */
export const ruleSetJsonSchema = deepFreeze({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://implicit-it.dev/schemas/rule-set.json',
  title: 'implicit-it rule set',
  type: 'object',
  additionalProperties: false,
  properties: {
    eos: ruleOr({
      rampLength: { type: 'integer', exclusiveMinimum: 0, default: 250 },
      maxBonus: { ...ruleValue, default: 15 },
      afterRamp: { enum: ['zero', 'hold'], default: 'zero' },
      ids: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 },
    }),
    uniform: ruleOr({
      entries: {
        type: 'array',
        // JSON Schema cannot say "each id and each text once"; parseRuleSetConfig checks it
        description:
          'Fixed scores; each id, and each text, at most once (the scores of one id are not added).',
        uniqueItems: true,
        items: {
          oneOf: [
            {
              type: 'object',
              additionalProperties: false,
              required: ['text', 'score'],
              properties: { text: { type: 'string', minLength: 1 }, score: ruleValue },
            },
            {
              type: 'object',
              additionalProperties: false,
              required: ['id', 'score'],
              properties: {
                id: { type: 'integer', minimum: 0 },
                score: ruleValue,
                text: {
                  type: 'string',
                  minLength: 1,
                  description: 'The surface text the id must have (ids written for one tokenizer).',
                },
              },
            },
          ],
        },
      },
    }),
    used: ruleOr({
      penalty: { ...ruleValue, default: -1.5 },
      scope: { enum: ['conversation', 'response'], default: 'conversation' },
    }),
    start: ruleOr({
      weight: { ...ruleValue, default: 5 },
      exclamationBonus: { ...ruleValue, default: 15 },
      newlinePenalty: { ...ruleValue, default: -10 },
    }),
  },
});
