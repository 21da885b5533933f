/**
 * The mark of a compiled `RuleSet`, shared by every copy of this package (a `Symbol.for` key): what
 * `RuleSet.isInstance` reads, and what the config checks read to tell a compiled set given where a
 * spec is expected from a config (without importing the class, which imports them).
 */
export const RULE_SET_MARK = Symbol.for('implicit-it.rule-set');

/** Whether `value` carries the mark of a compiled `RuleSet`. */
export const hasRuleSetMark = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[RULE_SET_MARK] === true;
