import {
  type EosRuleOptions,
  HEWITT2024_UNIFORM,
  RULE_DEFAULTS,
  RULE_NAMES,
  type RuleSetConfig,
} from './config.js';
import { RuleConfigError, RuleInputError } from './errors.js';
import { deepFreeze, type ListsEveryKey, shownValue, unknownKey } from './option-names.js';
import { type RuleSpec, resolveRuleSpec } from './presets.js';
import { hasRuleSetMark, RULE_SET_MARK } from './rule-set-mark.js';
import { scoreString, startText } from './start.js';
import { type RuleContext, RuleState } from './state.js';
import { eosOptions, parseRuleSetConfig } from './validate.js';
import type { Vocabulary } from './vocabulary.js';

/**
 * A rule of your own, applied after the built-in ones. `score` calls `add(id, score)` for each id it
 * scores at this step; ids outside the vocabulary are ignored.
 *
 * @example
 * const noDigitsFirst: CustomRule = {
 *   name: 'no-digit-start',
 *   score: (ctx, add) => { if (ctx.t === 0) for (const id of digitIds) add(id, -3); },
 * };
 */
export interface CustomRule {
  readonly name: string;
  score(ctx: RuleContext, add: (id: number, score: number) => void): void;
}

/**
 * A rule entry that could not be resolved to a vocabulary item; report it to the user.
 *
 * @example
 * for (const { rule, text, reason } of rules.unresolved) {
 *   console.warn(`rule ${rule}: ${JSON.stringify(text)} is not scored: ${reason}`);
 * }
 */
export interface UnresolvedEntry {
  rule: 'uniform' | 'start' | 'eos';
  text: string;
  reason: string;
}

/**
 * Options of `compileRules`.
 *
 * @example
 * const noEmptyReply: CustomRule = {
 *   name: 'no-empty-reply',
 *   score: (ctx, add) => {
 *     if (ctx.t === 0) for (const id of vocab.eosIds) add(id, -10);
 *   },
 * };
 * const options: CompileOptions = { custom: [noEmptyReply] };
 * compileRules('hewitt2024', vocab, options);
 */
export interface CompileOptions {
  /** Custom rules applied after the built-in ones, in order. */
  custom?: readonly CustomRule[] | undefined;
}

/**
 * Where a state's used-token scope starts: `RuleSet#createState`'s argument.
 *
 * @example
 * // the Tulu prompt "<s><|user|>\n{instruction}\n<|assistant|>\n": S is the index after "<|user|>\n"
 * const init: StateInit = { promptIds, scopeStart: 7 };
 * rules.createState(init);
 */
export interface StateInit {
  /**
   * The prompt's token ids (the whole chat-formatted prompt): an array or typed array; bigint ids (a
   * `BigInt64Array`, as onnxruntime and transformers.js hold `input_ids`) are read as numbers.
   */
  promptIds: ArrayLike<number> | ArrayLike<bigint>;
  /** Index of the first token of the last user message (S). */
  scopeStart: number;
  /** Prompt length P; default `promptIds.length`. */
  promptLength?: number | undefined;
}

const STATE_INIT = [
  'promptIds',
  'scopeStart',
  'promptLength',
] as const satisfies readonly (keyof StateInit)[];
const _allStateFieldsListed: ListsEveryKey<StateInit, typeof STATE_INIT> = true;
void _allStateFieldsListed;
const COMPILE_OPTIONS = ['custom'] as const satisfies readonly (keyof CompileOptions)[];
// every option is listed (a new one missing here would be refused as unknown)
const _allCompileOptionsListed: ListsEveryKey<CompileOptions, typeof COMPILE_OPTIONS> = true;
void _allCompileOptionsListed;

interface EosCompiled {
  ids: Int32Array;
  rampLength: number;
  maxBonus: number;
  hold: boolean;
}

/**
 * The EOS ramp's bonus for response length `t` (rules-spec.md, rule 1).
 *
 * @example
 * eosBonus(125); // 7.5
 * eosBonus(250); // 0 (afterRamp 'zero', as the reference code)
 */
export function eosBonus(t: number, options: EosRuleOptions = {}): number {
  if (typeof t !== 'number' || !Number.isFinite(t)) {
    throw new RuleInputError(`eosBonus: t must be a finite number, got ${shownValue(t)}`);
  }
  if (typeof options !== 'object' || options === null)
    throw new RuleInputError(`eosBonus: options must be an object, got ${shownValue(options)}`);
  // checked as a config's eos field (a compiled set's `config.eos` is one; its ids change no bonus)
  let checked: EosRuleOptions;
  try {
    checked = eosOptions(options, 'options') as EosRuleOptions;
  } catch (error) {
    if (RuleConfigError.isInstance(error)) throw new RuleInputError(`eosBonus: ${error.message}`);
    throw error;
  }
  const { rampLength, maxBonus, afterRamp } = { ...RULE_DEFAULTS.eos, ...checked };
  return rampBonus(t, rampLength, maxBonus, afterRamp === 'hold');
}

/** The EOS ramp itself, for options already checked: 0 at t <= 0, linear to `maxBonus`, then held or 0. */
function rampBonus(t: number, rampLength: number, maxBonus: number, hold: boolean): number {
  if (t <= 0) return 0;
  if (t < rampLength) return (maxBonus * t) / rampLength;
  return hold ? maxBonus : 0;
}

/** Names a custom rule may not take: the built-in rules', and `diversity`, the name `enabled` gives the used rule. */
/**
 * Refuses a uniform entry by id whose `text` the vocabulary gives another id: ids written for one
 * tokenizer (the Llama-2 ids of `hewitt2024-llama2-ids`) would score unrelated tokens of another. A
 * vocabulary that knows no text for the id (an `idVocabulary`) cannot be checked and is trusted.
 */
function checkIdText(vocab: Vocabulary, id: number, text: string, at: string): void {
  const holders = vocab.idsOf(text);
  if (Array.isArray(holders) && holders.includes(id)) return;
  const surface = vocab.surfaceOf(id);
  const piece = surface === undefined ? vocab.pieceOf?.(id) : undefined;
  if (surface === undefined && piece === undefined) return;
  const spelt =
    surface !== undefined
      ? `is ${JSON.stringify(surface)}`
      : `has no surface text (its piece is ${JSON.stringify(piece)})`;
  const here =
    Array.isArray(holders) && holders.length > 0
      ? ` (${JSON.stringify(text)} is id ${holders.join(', ')} here)`
      : '';
  const llama2 = HEWITT2024_UNIFORM.some((e) => e.llama2Id === id && e.text === text);
  throw new RuleConfigError(
    at,
    `id ${id} ${spelt} in this vocabulary, not ${JSON.stringify(text)}${here}: ` +
      (llama2
        ? 'the ids of "hewitt2024-llama2-ids" are Llama-2\'s; for another tokenizer use "hewitt2024", which finds the same tokens by their text'
        : "the ids were written for another tokenizer; give the entry by text, or this vocabulary's id"),
  );
}

const BUILT_IN_NAMES: readonly string[] = [...RULE_NAMES, 'diversity'];

/**
 * `apply`'s scratch: per-id sums of one step (float64), whether an id has a sum yet, and the ids that
 * do. One for every rule set (it grows to the largest vocabulary): `apply` runs to completion.
 */
interface Scratch {
  sums: Float64Array;
  summed: Uint8Array;
  ids: Int32Array;
  busy: boolean;
}
const newScratch = (): Scratch => ({
  sums: new Float64Array(0),
  summed: new Uint8Array(0),
  ids: new Int32Array(256),
  busy: false,
});
const shared = newScratch();

/**
 * The kind of a typed array (`'Float32Array'`...), undefined for anything else: TypedArray's own
 * `Symbol.toStringTag` getter reads the array's internal slot, so that, unlike `instanceof`, it holds
 * for arrays of another realm (a vm context, a test environment) and is not fooled by a look-alike.
 */
const typedArrayKind = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Int8Array.prototype) as object,
  Symbol.toStringTag,
)!.get! as (this: unknown) => string | undefined;

/**
 * A rule set compiled against a vocabulary: the sparse score vector of each step, per-sequence
 * states, and the entries that did not resolve. Build one with `compileRules`.
 *
 * @example
 * const rules = compileRules('hewitt2024', vocab);
 * const state = rules.createState({ promptIds, scopeStart });
 * rules.apply(logits, state); // logits += r, in place
 * state.append(argmax(logits));
 */
export class RuleSet {
  /** @internal the mark `isInstance` reads */
  readonly [RULE_SET_MARK] = true;

  /**
   * Whether `value` is a compiled rule set, from this copy of the package or another one (an app may
   * hold two versions, one nested under a package that pins another): unlike `instanceof`, it reads a
   * `Symbol.for` mark that every copy sets.
   */
  static isInstance(value: unknown): value is RuleSet {
    return hasRuleSetMark(value);
  }
  readonly vocabSize: number;
  /** The validated config this set was compiled from (frozen: an edit would change nothing). */
  readonly config: Readonly<RuleSetConfig>;
  /** Entries without an exact vocabulary item (reported, never guessed). */
  readonly unresolved: readonly UnresolvedEntry[];
  /**
   * Names of the enabled rules, built-in then custom. The used-token rule (config key `used`) is
   * listed as `diversity`, its name in the reference code and in subset names (`eos-uniform-diversity`).
   */
  readonly enabled: readonly string[];
  /**
   * The built-in rules this set turns on that resolved nothing on its vocabulary, so that they change
   * no score: `uniform` when none of its entries (one at least) is a token of it (each is in
   * `unresolved`), `eos` when there is no EOS id to raise (no `eos.ids`, and the vocabulary names
   * none). A run with such a rule is a run without it: the CLI and the API refuse it where it was
   * asked for.
   *
   * @example
   * compileRules({ uniform: { entries: [{ text: 'Sure!', score: 5 }] } }, vocab).inert; // ['uniform']
   */
  readonly inert: readonly ('eos' | 'uniform')[];

  private readonly eos: EosCompiled | null;
  private readonly uniformIds: Int32Array;
  private readonly uniformScores: Float64Array;
  /**
   * The ids the EOS or uniform rule scores (each once), with their uniform score and whether they are
   * an EOS id, and a bitset of them: `apply` sums an id's scores before adding them to its logit.
   */
  private readonly fixedIds: Int32Array;
  private readonly fixedUniform: Float64Array;
  private readonly fixedFlags: Uint8Array; // 1: has a uniform score, 2: an EOS id
  private readonly fixedBits: Uint32Array;
  private readonly usedPenalty: number | null;
  private readonly usedScope: 'conversation' | 'response';
  private readonly startDense: Float64Array | null;
  private readonly startT1: Int32Array;
  private readonly startT2: Int32Array;
  private readonly startOptions: { exclamationBonus: number; newlinePenalty: number };
  private readonly custom: readonly CustomRule[];
  /**
   * What this set read of its vocabulary beyond the size: each text it looked up with the ids found,
   * and the EOS ids where it took the vocabulary's (`vocabularyMismatch` compares them).
   */
  private readonly readTexts = new Map<string, readonly number[]>();
  private readonly vocabularyEos: readonly number[] | null;

  /**
   * Compiles `config` (checked as `parseRuleSetConfig` checks it) against `vocab`. `compileRules` does
   * the same from a preset or subset name too.
   */
  constructor(config: RuleSetConfig, vocab: Vocabulary, options: CompileOptions = {}) {
    if (
      typeof vocab !== 'object' ||
      vocab === null ||
      typeof vocab.idsOf !== 'function' ||
      typeof vocab.surfaceOf !== 'function' ||
      !Array.isArray(vocab.eosIds)
    ) {
      throw new RuleConfigError(
        'vocabulary',
        `expected a Vocabulary { size, eosIds, idsOf, surfaceOf } (createVocabulary, idVocabulary, or @implicit-it/tokenizers), got ${vocab === undefined ? 'none' : shownValue(vocab)}`,
      );
    }
    if (typeof options !== 'object' || options === null)
      throw new RuleConfigError('options', `expected { custom? }, got ${shownValue(options)}`);
    const unknown = unknownKey(options, COMPILE_OPTIONS);
    if (unknown !== undefined)
      throw new RuleConfigError(
        `options.${unknown.key}`,
        `unknown option${unknown.didYouMean}; expected ${COMPILE_OPTIONS.join(', ')}`,
      );
    const size = vocab.size;
    if (!Number.isInteger(size) || size <= 0) {
      throw new RuleConfigError('vocabulary.size', `expected a positive integer, got ${shownValue(size)}`);
    }
    this.vocabSize = size;
    // a checked copy (compileRules' configs are checked already; the check costs microseconds), frozen:
    // behaviour is compiled from it, so an edit to it would change nothing
    const checked = deepFreeze(parseRuleSetConfig(config));
    this.config = checked;
    const unresolved: UnresolvedEntry[] = [];
    const enabled: string[] = [];
    const inert: ('eos' | 'uniform')[] = [];
    let vocabularyEos: number[] | null = null;
    const checkId = (id: number, path: string) => {
      if (!Number.isInteger(id) || id < 0 || id >= size) {
        throw new RuleConfigError(path, `id ${shownValue(id)} is outside the vocabulary [0, ${size})`);
      }
    };
    const lookup = (rule: UnresolvedEntry['rule'], text: string): readonly number[] => {
      const ids = vocab.idsOf(text);
      if (Array.isArray(ids)) this.readTexts.set(text, [...ids]);
      if (!Array.isArray(ids))
        throw new RuleConfigError(
          'vocabulary',
          `idsOf(${JSON.stringify(text)}) returned ${shownValue(ids)}: expected an array of ids (empty when no item has the text)`,
        );
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= size) {
          throw new RuleConfigError(
            'vocabulary',
            `idsOf(${JSON.stringify(text)}) returned id ${shownValue(id)}, outside the vocabulary [0, ${size})`,
          );
        }
      }
      if (ids.length === 0) {
        unresolved.push({
          rule,
          text,
          reason: `no vocabulary item has the surface text ${JSON.stringify(text)}`,
        });
      }
      return ids;
    };

    const on = <T extends object>(v: T | boolean | undefined): T | null =>
      v === undefined || v === false ? null : v === true ? ({} as T) : v;

    const eos = on(checked.eos);
    if (eos) {
      enabled.push('eos');
      const ids = eos.ids ?? [...vocab.eosIds];
      if (!eos.ids) vocabularyEos = [...new Set(ids)];
      // the vocabulary's ids are blamed on it, not on an eos.ids the config does not have
      const where = eos.ids ? 'eos.ids' : 'vocabulary.eosIds';
      for (const [i, id] of ids.entries()) checkId(id, `${where}[${i}]`);
      if (ids.length === 0) {
        unresolved.push({ rule: 'eos', text: '<eos>', reason: 'the vocabulary names no EOS id' });
        inert.push('eos');
      }
      const { rampLength, maxBonus, afterRamp } = { ...RULE_DEFAULTS.eos, ...eos };
      // an id named twice gets the bonus once
      this.eos = { ids: Int32Array.from(new Set(ids)), rampLength, maxBonus, hold: afterRamp === 'hold' };
    } else this.eos = null;

    const uniform = on(checked.uniform);
    const merged = new Map<number, number>();
    if (uniform) {
      enabled.push('uniform');
      const entries = uniform.entries ?? HEWITT2024_UNIFORM.map(({ text, score }) => ({ text, score }));
      const scoredBy = new Map<number, number>(); // id -> the entry that scores it
      for (const [i, entry] of entries.entries()) {
        if ('id' in entry) {
          checkId(entry.id, `uniform.entries[${i}].id`);
          if (entry.text !== undefined) checkIdText(vocab, entry.id, entry.text, `uniform.entries[${i}]`);
        }
        const ids = 'id' in entry ? [entry.id] : lookup('uniform', entry.text);
        for (const id of new Set(ids)) {
          // parseRuleSetConfig refuses an id or a text named twice; a text and an id meet only here
          const first = scoredBy.get(id);
          if (first !== undefined) {
            const what = 'id' in entry ? `id ${id}` : `id ${id} (text ${JSON.stringify(entry.text)})`;
            throw new RuleConfigError(
              `uniform.entries[${i}]`,
              `repeats ${what} from entries[${first}]: list each id and each text once`,
            );
          }
          scoredBy.set(id, i);
          merged.set(id, entry.score);
        }
      }
      if (entries.length > 0 && merged.size === 0) inert.push('uniform');
    }
    this.uniformIds = Int32Array.from(merged.keys());
    this.uniformScores = Float64Array.from(merged.values());
    const fixed = [...new Set([...(this.eos?.ids ?? []), ...merged.keys()])];
    this.fixedIds = Int32Array.from(fixed);
    this.fixedUniform = Float64Array.from(fixed, (id) => merged.get(id) ?? 0);
    this.fixedFlags = Uint8Array.from(
      fixed,
      (id) => (merged.has(id) ? 1 : 0) | (this.eos?.ids.includes(id) ? 2 : 0),
    );
    this.fixedBits = new Uint32Array((size + 31) >>> 5);
    for (const id of fixed) this.fixedBits[id >>> 5]! |= 1 << (id & 31);

    const used = on(checked.used);
    if (used) enabled.push('diversity');
    this.usedPenalty = used ? (used.penalty ?? RULE_DEFAULTS.used.penalty) : null;
    this.usedScope = used?.scope ?? RULE_DEFAULTS.used.scope;

    const start = on(checked.start);
    this.startOptions = { ...RULE_DEFAULTS.start, ...(start ?? {}) };
    if (start) {
      enabled.push('start');
      const weight = start.weight ?? RULE_DEFAULTS.start.weight;
      const dense = new Float64Array(size);
      let texts = 0;
      for (let id = 0; id < size; id++) {
        const text = startText(vocab, id);
        if (text === undefined) continue;
        texts++;
        dense[id] = weight * scoreString(text);
      }
      // without token texts the rule would score nothing at t = 0, silently
      if (texts === 0) {
        throw new RuleConfigError(
          'start',
          "the start rule scores token texts, and this vocabulary has none (an idVocabulary knows only ids): compile it against a tokenizer's vocabulary (createVocabulary, or @implicit-it/tokenizers) or turn the rule off",
        );
      }
      this.startDense = dense;
      this.startT1 = Int32Array.from(lookup('start', '!'));
      this.startT2 = Int32Array.from(lookup('start', '\n'));
    } else {
      this.startDense = null;
      this.startT1 = new Int32Array(0);
      this.startT2 = new Int32Array(0);
    }

    this.custom = options.custom ?? [];
    if (!Array.isArray(this.custom)) {
      throw new RuleConfigError('custom', 'expected a list of { name: string, score(ctx, add) }');
    }
    const builtIn = enabled.length;
    this.custom.forEach((rule, i) => {
      if (typeof rule?.name !== 'string' || typeof rule.score !== 'function') {
        throw new RuleConfigError(`custom[${i}]`, 'expected { name: string, score(ctx, add) }');
      }
      // `enabled` names each rule once: a trace or a log that lists it must tell the rules apart
      const earlier = enabled.indexOf(rule.name, builtIn);
      if (earlier >= 0 || BUILT_IN_NAMES.includes(rule.name)) {
        throw new RuleConfigError(
          `custom[${i}].name`,
          `${JSON.stringify(rule.name)} is ${earlier >= 0 ? `the name of custom[${earlier - builtIn}]` : 'the name of a built-in rule'}: give each custom rule a name of its own`,
        );
      }
      enabled.push(rule.name);
    });
    this.unresolved = Object.freeze(unresolved.map((entry) => Object.freeze(entry)));
    this.enabled = Object.freeze(enabled);
    this.inert = Object.freeze(inert);
    this.vocabularyEos = vocabularyEos;
  }

  /**
   * The ids the EOS rule raises, each once: the config's `eos.ids`, else the vocabulary's EOS ids;
   * empty with the rule off.
   *
   * @example
   * compileRules({ eos: { ids: [5, 5] } }, vocab).eosIds; // [5]
   */
  get eosIds(): readonly number[] {
    return this.eos ? [...this.eos.ids] : [];
  }

  /**
   * Why this set does not fit `vocab` (another tokenizer's vocabulary than the one it was compiled
   * for), or undefined where it fits: a size of its own, a text it looked up that `vocab` gives other
   * ids (the uniform entries, the start rule's `!` and newline), or EOS ids other than those it took
   * from its vocabulary. Two tokenizers of one size (Llama-2's and Mistral's 32,000 ids) differ so.
   * Cheap: one lookup per text.
   *
   * @example
   * compileRules('hewitt2024', vocab).vocabularyMismatch(vocab); // undefined
   */
  vocabularyMismatch(vocab: Vocabulary): string | undefined {
    if (vocab.size !== this.vocabSize)
      return `it was compiled for a vocabulary of ${this.vocabSize} ids, and this one has ${vocab.size}`;
    for (const [text, ids] of this.readTexts) {
      const now = vocab.idsOf(text);
      if (now.length !== ids.length || now.some((id, i) => id !== ids[i]))
        return `it found ${JSON.stringify(text)} at ${ids.length ? `id ${ids.join(', ')}` : 'no id'}, and this vocabulary has it at ${now.length ? `id ${now.join(', ')}` : 'no id'}`;
    }
    const eos = this.vocabularyEos;
    if (eos && (new Set(vocab.eosIds).size !== eos.length || !eos.every((id) => vocab.eosIds.includes(id))))
      return `its EOS ids are ${JSON.stringify(eos)}, and this vocabulary's are ${JSON.stringify([...vocab.eosIds])}`;
    return undefined;
  }

  /**
   * A new per-sequence state for a prompt. Every prompt id (before `promptLength`) must be in the
   * vocabulary: one past it means the prompt was tokenized with another tokenizer, and is refused.
   * Ids after `promptLength` (part of the response given with the prompt) are taken as `append`
   * takes them: one past the vocabulary (from a logits row wider than it) is kept, never scored.
   *
   * @example
   * const state = rules.createState({ promptIds, scopeStart: 7 });
   */
  createState(init: StateInit): RuleState {
    if (init === null || typeof init !== 'object' || Array.isArray(init)) {
      throw new RuleInputError(
        `createState: expected { promptIds, scopeStart, promptLength? }, got ${Array.isArray(init) ? 'an array (pass it as { promptIds: [...], scopeStart })' : shownValue(init)}`,
      );
    }
    // a prompt as @implicit-it/tokenizers' buildPrompt returns it: { ids, scopeStart, promptLength, text }
    if (init.promptIds === undefined && 'ids' in init) {
      throw new RuleInputError(
        'createState: got { ids, ... } (a built prompt?): the ids are promptIds, as in { promptIds: prompt.ids, scopeStart: prompt.scopeStart }',
      );
    }
    // a misspelt promptLength would otherwise leave the EOS ramp and the used scope silently wrong
    const unknown = unknownKey(init, STATE_INIT);
    if (unknown !== undefined)
      throw new RuleInputError(
        `createState: unknown field ${JSON.stringify(unknown.key)}${unknown.didYouMean}; expected ${STATE_INIT.join(', ')}`,
      );
    if (init.promptIds === undefined)
      throw new RuleInputError(
        'createState: expected { promptIds, scopeStart, promptLength? }, got no promptIds',
      );
    if (typeof init.promptIds !== 'object' || typeof init.promptIds?.length !== 'number') {
      throw new RuleInputError(
        `createState: promptIds must be a list of token ids (an array or typed array), got ${shownValue(init.promptIds)}`,
      );
    }
    // bigint ids (int64 input_ids, or a list holding some) are read as numbers where each id is read
    const promptIds = init.promptIds as ArrayLike<number | bigint>;
    // left out (undefined) is the default; null is no length, refused as such
    const promptLength = init.promptLength === undefined ? promptIds.length : init.promptLength;
    // tracked whether or not the used rule is on: custom rules read `isUsed` (with the rule off, in
    // the default scope)
    const trackFrom = this.usedScope === 'conversation' ? init.scopeStart : promptLength;
    return RuleState.create(this, this.vocabSize, promptIds, init.scopeStart, promptLength, trackFrom);
  }

  /** Checks `apply`'s arguments: a float row at least as wide as the vocabulary, and a state of this set. */
  private check(logits: unknown, state: RuleState): asserts logits is Float32Array | Float64Array {
    if (logits instanceof RuleState) {
      throw new RuleInputError('the arguments are (logits, state): the logits row comes first');
    }
    // an integer row would round each score away (an Int32Array), a plain array is no row either
    const kind = typedArrayKind.call(logits);
    if (kind !== 'Float32Array' && kind !== 'Float64Array') {
      const what =
        kind ??
        (typeof logits === 'object' && logits !== null
          ? (logits.constructor?.name ?? 'an object')
          : shownValue(logits));
      throw new RuleInputError(`expected a logits row (Float32Array or Float64Array), got ${what}`);
    }
    this.checkState(state, 'the second argument');
    const { length } = logits as Float32Array | Float64Array;
    if (length < this.vocabSize) {
      throw new RuleInputError(
        `logits row has ${length} entries, fewer than the vocabulary size ${this.vocabSize}`,
      );
    }
  }

  private checkState(state: RuleState, argument: 'the argument' | 'the second argument'): void {
    if (!(state instanceof RuleState)) {
      throw new RuleInputError(
        `expected a rule state as ${argument} (from ruleSet.createState), got ${state === undefined ? 'none' : typeof state}`,
      );
    }
    if (state.owner !== this) {
      throw new RuleInputError('state was not created by this rule set (use ruleSet.createState)');
    }
  }

  /** The EOS rule's bonus at response length `t` (0 when the rule is off). */
  private eosBonusAt(t: number): number {
    const eos = this.eos;
    return eos === null ? 0 : rampBonus(t, eos.rampLength, eos.maxBonus, eos.hold);
  }

  /**
   * Calls `add(id, score)` for every score of this step; the same ids may come more than once. With
   * `dense` (`denseScores`' vector), the start rule's dense vector at t = 0 is added to it directly.
   */
  private visit(state: RuleState, add: (id: number, score: number) => void, dense?: Float64Array): void {
    const t = state.length - state.promptLength;
    const eos = this.eos;
    const bonus = this.eosBonusAt(t);
    if (eos !== null && bonus !== 0) for (let i = 0; i < eos.ids.length; i++) add(eos.ids[i]!, bonus);
    const uIds = this.uniformIds;
    const uScores = this.uniformScores;
    for (let i = 0; i < uIds.length; i++) add(uIds[i]!, uScores[i]!);
    const penalty = this.usedPenalty;
    if (penalty !== null) {
      const used = state.usedIds;
      for (let i = 0, n = state.usedCount; i < n; i++) add(used[i]!, penalty);
    }
    this.visitExtra(state, t, add, dense);
  }

  /**
   * Adds this step's rule scores to `logits` in place: O(number of scored ids). The row may be
   * wider than the vocabulary (padded embeddings); extra ids get no score. An id that several rules
   * score gets their sum, added once, so that the row is `base + r` rounded once per entry, the
   * same as adding `scores(state)` (rounding after each rule's add can land an ulp away).
   *
   * @example
   * rules.apply(logitsRow, state);
   * const next = argmax(logitsRow);
   * state.append(next);
   */
  apply(logits: Float32Array | Float64Array, state: RuleState): void {
    this.check(logits, state);
    const t = state.length - state.promptLength;
    if (this.startDense !== null && t === 0) {
      // the start rule at t = 0: r is dense (one O(V) pass, once per sequence)
      const r = this.denseScores(state);
      for (let id = 0; id < r.length; id++) logits[id]! += r[id]!;
    } else if (this.custom.length === 0 && (this.startDense === null || t > 2))
      this.applyBuiltIn(logits, state, t);
    else this.applySummed(logits, state);
  }

  /**
   * `apply` for the EOS, uniform and used rules alone (the hot path): each EOS or uniform id gets its
   * scores summed in the order `scores` sums them, each other used id the penalty. No scratch.
   */
  private applyBuiltIn(logits: Float32Array | Float64Array, state: RuleState, t: number): void {
    const bonus = this.eosBonusAt(t);
    const penalty = this.usedPenalty;
    const used = state.usedBits;
    const ids = this.fixedIds;
    const flags = this.fixedFlags;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      let sum = 0;
      let scored = false;
      if ((flags[i]! & 2) !== 0 && bonus !== 0) {
        sum = bonus;
        scored = true;
      }
      if ((flags[i]! & 1) !== 0) {
        sum += this.fixedUniform[i]!;
        scored = true;
      }
      if (penalty !== null && (used[id >>> 5]! & (1 << (id & 31))) !== 0) {
        sum += penalty;
        scored = true;
      }
      if (scored) logits[id]! += sum;
    }
    if (penalty === null) return;
    const fixed = this.fixedBits;
    const usedIds = state.usedIds;
    for (let i = 0, n = state.usedCount; i < n; i++) {
      const id = usedIds[i]!;
      if ((fixed[id >>> 5]! & (1 << (id & 31))) === 0) logits[id]! += penalty;
    }
  }

  /** `apply` with custom rules or the start rule's sparse steps: any id, summed in scratch first. */
  private applySummed(logits: Float32Array | Float64Array, state: RuleState): void {
    const size = this.vocabSize;
    // a custom rule that applies a rule set from inside `score` gets scratch of its own
    const own = !shared.busy;
    const scratch = own ? shared : newScratch();
    if (scratch.sums.length < size) {
      scratch.sums = new Float64Array(size);
      scratch.summed = new Uint8Array(size);
    }
    const { sums, summed } = scratch;
    let n = 0;
    scratch.busy = true;
    try {
      this.visit(state, (id, score) => {
        if (summed[id] === 0) {
          summed[id] = 1;
          sums[id] = score;
          if (n === scratch.ids.length) {
            const grown = new Int32Array(n * 2);
            grown.set(scratch.ids);
            scratch.ids = grown;
          }
          scratch.ids[n++] = id;
        } else sums[id]! += score;
      });
      const ids = scratch.ids;
      for (let i = 0; i < n; i++) logits[ids[i]!]! += sums[ids[i]!]!;
    } finally {
      for (let i = 0; i < n; i++) summed[scratch.ids[i]!] = 0; // clean for the next step, even after a throw
      scratch.busy = false;
    }
  }

  /**
   * The sparse score vector of this step: id -> total score, zero totals left out, ids ascending.
   * For tracing what the rules do; `apply` is the fast path.
   */
  scores(state: RuleState): Map<number, number> {
    this.checkState(state, 'the argument');
    const totals = new Map<number, number>();
    this.visit(state, (id, score) => totals.set(id, (totals.get(id) ?? 0) + score));
    return new Map([...totals].filter(([, s]) => s !== 0).sort((a, b) => a[0] - b[0]));
  }

  /** The dense score vector r of this step (length = vocabulary size). */
  denseScores(state: RuleState): Float64Array {
    this.checkState(state, 'the argument');
    const r = new Float64Array(this.vocabSize);
    this.visit(
      state,
      (id, score) => {
        r[id]! += score;
      },
      r,
    );
    return r;
  }

  /** The start rule and custom rules. */
  private visitExtra(
    state: RuleState,
    t: number,
    add: (id: number, score: number) => void,
    row: Float64Array | undefined,
  ): void {
    if (this.startDense !== null) {
      if (t === 0) {
        const dense = this.startDense;
        // a loop over the row, not one add() call per vocabulary item
        if (row !== undefined) for (let id = 0; id < dense.length; id++) row[id]! += dense[id]!;
        else for (let id = 0; id < dense.length; id++) if (dense[id] !== 0) add(id, dense[id]!);
      } else if (t === 1) {
        for (const id of this.startT1) add(id, this.startOptions.exclamationBonus);
      } else if (t === 2) {
        for (const id of this.startT2) add(id, this.startOptions.newlinePenalty);
      }
    }
    const size = this.vocabSize;
    for (const rule of this.custom) {
      rule.score(state, (id, score) => {
        if (typeof score !== 'number' || !Number.isFinite(score)) {
          throw new RuleInputError(
            `custom rule "${rule.name}" scored id ${shownValue(id)} with ${shownValue(score)}: a score is a finite number`,
          );
        }
        if (typeof id !== 'number' || !Number.isInteger(id)) {
          throw new RuleInputError(
            `custom rule "${rule.name}" scored ${shownValue(id)}: an id is an integer (ids outside the vocabulary are ignored)`,
          );
        }
        if (id >= 0 && id < size) add(id, score);
      });
    }
  }
}

/**
 * Compiles a rule set (preset name, subset name, config JSON, or `false`) against a vocabulary.
 *
 * @example
 * import { compileRules, createVocabulary } from '@implicit-it/rules';
 * const rules = compileRules('hewitt2024', vocab);
 * if (rules.unresolved.length) console.warn(rules.unresolved);
 * const state = rules.createState({ promptIds, scopeStart });
 * rules.apply(logits, state);
 */
export function compileRules(spec: RuleSpec, vocab: Vocabulary, options?: CompileOptions): RuleSet {
  return new RuleSet(resolveRuleSpec(spec), vocab, options);
}
