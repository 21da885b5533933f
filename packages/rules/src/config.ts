/**
 * Options of the EOS ramp (rules-spec.md, rule 1).
 *
 * @example
 * const eos: EosRuleOptions = { rampLength: 100, maxBonus: 10, afterRamp: 'hold' };
 * compileRules({ eos, uniform: true, used: true }, vocab);
 */
export interface EosRuleOptions {
  /**
   * Response length at which the ramp ends: the bonus is `maxBonus * t / rampLength` for
   * 0 < t < rampLength. Default 250.
   */
  rampLength?: number | undefined;
  /**
   * The bonus the ramp rises towards, never reached on it (14.94 at t = 249 with the defaults);
   * `afterRamp: 'hold'` gives it from `rampLength` on. Default 15.
   */
  maxBonus?: number | undefined;
  /** `'zero'` (reference code, hewitt2024): no bonus from `rampLength` on; `'hold'`: keep `maxBonus`. */
  afterRamp?: 'zero' | 'hold' | undefined;
  /** EOS ids to score; default: the vocabulary's EOS ids. */
  ids?: readonly number[] | undefined;
}

/**
 * One fixed score, on a surface text or on an id. An entry by id may also give `text`, the surface
 * text that id must have: compiling against a vocabulary that spells the id otherwise (ids written
 * for another tokenizer) is a `RuleConfigError`, where the vocabulary knows its texts.
 *
 * @example
 * const entries: UniformEntry[] = [{ text: ' I', score: -5 }, { id: 13, score: 1, text: '\n' }];
 */
export type UniformEntry =
  | { text: string; score: number }
  | { id: number; score: number; text?: string | undefined };

/**
 * Options of the uniform token changes (rule 2).
 *
 * @example
 * const uniform: UniformRuleOptions = { entries: [{ text: ' should', score: -6 }] };
 * compileRules({ uniform }, vocab);
 */
export interface UniformRuleOptions {
  /**
   * Default: the 15 entries of hewitt2024. Each id, and each text, at most once (as the reference
   * code assigns each id one score): a second entry for an id is a `RuleConfigError` naming both.
   */
  entries?: readonly UniformEntry[] | undefined;
}

/**
 * Options of the used-token penalty (rule 3, `diversity` in the reference code).
 *
 * @example
 * const used: UsedRuleOptions = { penalty: -1.5, scope: 'response' }; // the paper's prose
 * compileRules({ eos: true, uniform: true, used }, vocab);
 */
export interface UsedRuleOptions {
  /** Added once to every id already used. Default -1.5. */
  penalty?: number | undefined;
  /**
   * `'conversation'` (reference code, hewitt2024): ids from the start of the last user message on;
   * `'response'` (the paper's prose): only ids of the response so far.
   */
  scope?: 'conversation' | 'response' | undefined;
}

/**
 * Options of the optional start rule (rule 4; off in hewitt2024).
 *
 * @example
 * const start: StartRuleOptions = { weight: 5, exclamationBonus: 15, newlinePenalty: -10 };
 * compileRules({ ...resolveRuleSpec('hewitt2024'), start }, vocab);
 */
export interface StartRuleOptions {
  /** Weight of `scoreString` at t = 0. Default 5. */
  weight?: number | undefined;
  /** Bonus for `!` at t = 1. Default 15. */
  exclamationBonus?: number | undefined;
  /** Score for `\n` at t = 2. Default -10. */
  newlinePenalty?: number | undefined;
}

/**
 * A serializable rule set: plain JSON. A rule that is absent or `false` is off; `true` turns it on
 * with its defaults.
 *
 * @example
 * const config: RuleSetConfig = { eos: { afterRamp: 'hold' }, uniform: true, used: { scope: 'response' } };
 */
export interface RuleSetConfig {
  eos?: EosRuleOptions | boolean | undefined;
  uniform?: UniformRuleOptions | boolean | undefined;
  used?: UsedRuleOptions | boolean | undefined;
  start?: StartRuleOptions | boolean | undefined;
}

/**
 * The built-in rule names, as `RuleSetConfig` keys.
 *
 * @example
 * RULE_NAMES.filter((name) => resolveRuleSpec('eos-diversity')[name]); // ['eos', 'used']
 */
export const RULE_NAMES = Object.freeze(['eos', 'uniform', 'used', 'start'] as const);
/**
 * One of `RULE_NAMES`: a built-in rule, as a `RuleSetConfig` key.
 *
 * @example
 * const off: RuleName[] = RULE_NAMES.filter((name) => !rules.config[name]);
 */
export type RuleName = (typeof RULE_NAMES)[number];

/**
 * The uniform token changes of hewitt2024 (rules-spec.md, rule 2), on surface text. `What` is -5 as in
 * the reference code (the paper's table prints -3).
 *
 * @example
 * HEWITT2024_UNIFORM.length; // 15
 * HEWITT2024_UNIFORM.find((e) => e.text === 'What'); // { text: 'What', score: -5, llama2Id: 5618 }
 */
export const HEWITT2024_UNIFORM: readonly Readonly<{ text: string; score: number; llama2Id: number }>[] =
  Object.freeze(
    [
      { text: '<', score: -4, llama2Id: 29966 },
      { text: ' <', score: -4, llama2Id: 529 },
      { text: '|', score: -4, llama2Id: 29989 },
      { text: ' I', score: -5, llama2Id: 306 },
      { text: 'I', score: -5, llama2Id: 29902 },
      { text: ' We', score: -3, llama2Id: 1334 },
      { text: 'What', score: -5, llama2Id: 5618 },
      { text: ' should', score: -6, llama2Id: 881 },
      { text: ' *', score: 1, llama2Id: 334 },
      { text: ' -', score: 1, llama2Id: 448 },
      { text: '   ', score: 1, llama2Id: 1678 },
      { text: ' #', score: 1, llama2Id: 396 },
      { text: ' ##', score: 1, llama2Id: 444 },
      { text: '\n', score: 1, llama2Id: 13 },
      { text: '!', score: 1, llama2Id: 29991 },
    ].map((entry) => Object.freeze(entry)), // frozen entries: the presets and `uniform: true` read them
  );

/**
 * Defaults of each rule (hewitt2024's values).
 *
 * @example
 * RULE_DEFAULTS.eos.rampLength; // 250
 * RULE_DEFAULTS.used.penalty; // -1.5
 */
export const RULE_DEFAULTS = Object.freeze({
  eos: Object.freeze({ rampLength: 250, maxBonus: 15, afterRamp: 'zero' as const }),
  used: Object.freeze({ penalty: -1.5, scope: 'conversation' as const }),
  start: Object.freeze({ weight: 5, exclamationBonus: 15, newlinePenalty: -10 }),
});
