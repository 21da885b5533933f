import {
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
} from '@implicit-it/rules';
import type { PlaygroundConfig } from './page.js';

/** How many uniform entries a box's text spells out before `...`. */
const SHOWN_ENTRIES = 4;

/** A score as the rules add it: `+1`, `-5`. */
const signed = (n: number) => (n > 0 ? `+${n}` : String(n));
/** A token's text with its quotes, its spaces and its `\n` visible: `" I"`, `"\n"`. */
const quoted = (text: string) => JSON.stringify(text);
/** A rule's options: `true` (or an object) its defaults for the fields it leaves out. */
const optionsOf = <T extends object>(value: T | boolean | undefined): Partial<T> =>
  typeof value === 'object' ? value : {};
const on = (value: unknown) => value !== undefined && value !== false;

function eosText(o: EosRuleOptions): string {
  const rampLength = o.rampLength ?? RULE_DEFAULTS.eos.rampLength;
  const maxBonus = o.maxBonus ?? RULE_DEFAULTS.eos.maxBonus;
  const afterRamp = o.afterRamp ?? RULE_DEFAULTS.eos.afterRamp;
  const ids = o.ids === undefined ? '' : ` (id${o.ids.length === 1 ? '' : 's'} ${o.ids.join(', ')})`;
  return `end-of-sequence${ids} score ${maxBonus < 0 ? 'falls' : 'rises'} from 0 to ${maxBonus} over ${rampLength} tokens, then ${afterRamp === 'hold' ? `stays ${maxBonus}` : '0'}`;
}

/** `" I" -5`; by id `id 306 -5`, or `id 306 " I" -5` with the text the id must have. */
function entryText(entry: UniformEntry): string {
  const id = 'id' in entry && entry.id !== undefined ? `id ${entry.id}` : '';
  const text = entry.text === undefined ? '' : quoted(entry.text);
  return [id, text, signed(entry.score)].filter(Boolean).join(' ');
}

function uniformText(o: UniformRuleOptions): string {
  const entries: readonly UniformEntry[] =
    o.entries ?? HEWITT2024_UNIFORM.map(({ text, score }) => ({ text, score }));
  if (entries.length === 0) return 'no fixed scores (an empty list)';
  const shown = entries.slice(0, SHOWN_ENTRIES).map(entryText).join(', ');
  return `${entries.length} fixed score${entries.length === 1 ? '' : 's'}: ${shown}${entries.length > SHOWN_ENTRIES ? ', ...' : ''}`;
}

function usedText(o: UsedRuleOptions): string {
  const penalty = o.penalty ?? RULE_DEFAULTS.used.penalty;
  const scope = o.scope ?? RULE_DEFAULTS.used.scope;
  const where = scope === 'response' ? 'the answer' : 'the instruction or the answer';
  return `${signed(penalty)} for each token already used in ${where} (scope ${scope})`;
}

function startText(o: StartRuleOptions): string {
  const weight = o.weight ?? RULE_DEFAULTS.start.weight;
  const exclamation = o.exclamationBonus ?? RULE_DEFAULTS.start.exclamationBonus;
  const newline = o.newlinePenalty ?? RULE_DEFAULTS.start.newlinePenalty;
  return `favours words at the first steps: the first token's word score x${weight}, "!" ${signed(exclamation)} as the second, ${quoted('\n')} ${signed(newline)} as the third`;
}

/** What one rule does with `value`'s options (`true`, `false` or none: its defaults). */
function ruleText(rule: RuleName, value: RuleSetConfig[RuleName]): string {
  switch (rule) {
    case 'eos':
      return eosText(optionsOf(value as RuleSetConfig['eos']));
    case 'uniform':
      return uniformText(optionsOf(value as RuleSetConfig['uniform']));
    case 'used':
      return usedText(optionsOf(value as RuleSetConfig['used']));
    case 'start':
      return startText(optionsOf(value as RuleSetConfig['start']));
  }
}

/**
 * The text beside each rule's box on the playground: what ticking the box sends. A rule the
 * server's rule set has on, with its options there; a rule it leaves off, said so, with what ticking
 * it adds (`ruleDefaults`'s options; the rule's `RULE_DEFAULTS` for the fields they leave out, as the
 * rules package reads them).
 */
export function ruleHelp(
  config: Pick<PlaygroundConfig, 'rules' | 'rulesName' | 'ruleDefaults'>,
): Record<RuleName, string> {
  const off = RULE_NAMES.some((rule) => on(config.rules[rule]))
    ? `off in ${config.rulesName}`
    : 'off on this server';
  return Object.fromEntries(
    RULE_NAMES.map((rule) => [
      rule,
      on(config.rules[rule])
        ? ruleText(rule, config.rules[rule])
        : `${off}; ticking adds: ${ruleText(rule, config.ruleDefaults[rule])}`,
    ]),
  ) as Record<RuleName, string>;
}
