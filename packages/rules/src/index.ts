export { canonicalRuleSet } from './canonical-rule-set.js';
export {
  type EosRuleOptions,
  HEWITT2024_UNIFORM,
  RULE_DEFAULTS,
  RULE_NAMES,
  type RuleName,
  type RuleSetConfig,
  type StartRuleOptions,
  type UniformEntry,
  type UniformRuleOptions,
  type UsedRuleOptions,
} from './config.js';
export { argmax, logSoftmax, productOfExperts, softmax } from './distribution.js';
export { ImplicitItError, RuleConfigError, RuleInputError } from './errors.js';
export { type ListsEveryKey, meantOption, shownValue } from './option-names.js';
export { ABLATIONS, PRESETS, type PresetName, type RuleSpec, resolveRuleSpec } from './presets.js';
export { pythonStrip } from './python-strip.js';
export {
  type CompileOptions,
  type CustomRule,
  compileRules,
  eosBonus,
  RuleSet,
  type StateInit,
  type UnresolvedEntry,
} from './rule-set.js';
export { scoreString } from './start.js';
export { type RuleContext, RuleState } from './state.js';
export { MAX_RULE_VALUE, parseRuleSetConfig, ruleSetJsonSchema } from './validate.js';
export { createVocabulary, idVocabulary, type Vocabulary } from './vocabulary.js';
