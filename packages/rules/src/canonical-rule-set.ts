import {
  HEWITT2024_UNIFORM,
  RULE_DEFAULTS,
  type RuleSetConfig,
  type UniformEntry,
  type UniformRuleOptions,
} from './config.js';
import { type RuleSpec, resolveRuleSpec } from './presets.js';

/** A rule's field read as its options: `true` the defaults, `false` or absent off. */
const on = <T extends object>(v: T | boolean | undefined): T | undefined =>
  v === undefined || v === false ? undefined : v === true ? ({} as T) : v;

/** Entries by text first, in code-unit order of their texts, then entries by id, by id. */
function entryOrder(a: UniformEntry, b: UniformEntry): number {
  if ('id' in a || 'id' in b) return 'id' in a && 'id' in b ? a.id - b.id : 'id' in a ? 1 : -1;
  return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
}

function uniformEntries(uniform: UniformRuleOptions): UniformEntry[] {
  const entries = uniform.entries ?? HEWITT2024_UNIFORM;
  return entries
    .map(
      (e): UniformEntry =>
        'id' in e && e.id !== undefined
          ? e.text === undefined
            ? { id: e.id, score: e.score }
            : { id: e.id, score: e.score, text: e.text }
          : { text: e.text!, score: e.score },
    )
    .sort(entryOrder);
}

/**
 * A rule spec as one canonical `RuleSetConfig`: the rules it turns on, each with every option
 * spelled out (`true`, `{}` and left-out options read as their defaults; the uniform rule's entries,
 * when not given, hewitt2024's 15), its uniform entries in one order (by text, then by id) and its EOS
 * ids sorted, each once; rules that are off are left out. Two specs that compile to the same rule set
 * on every vocabulary give equal configs (equal JSON, its keys in one order), however they are
 * written: a preset or subset name or its JSON, fields in any order, defaults spelled out or not. It
 * compiles to the rule set the spec does. Throws `RuleConfigError` where `resolveRuleSpec` does.
 *
 * @example
 * canonicalRuleSet('diversity'); // { used: { penalty: -1.5, scope: 'conversation' } }
 * canonicalRuleSet({ used: { scope: 'conversation' }, eos: false }); // { used: { penalty: -1.5, scope: 'conversation' } }
 * canonicalRuleSet('eos').eos; // { rampLength: 250, maxBonus: 15, afterRamp: 'zero' }
 * canonicalRuleSet('none'); // {}
 */
export function canonicalRuleSet(spec: RuleSpec): RuleSetConfig {
  const config = resolveRuleSpec(spec);
  const out: RuleSetConfig = {};
  const eos = on(config.eos);
  if (eos) {
    const { rampLength, maxBonus, afterRamp } = { ...RULE_DEFAULTS.eos, ...eos };
    // an id named twice gets the bonus once, as compiled
    const ids = eos.ids && [...new Set(eos.ids)].sort((a, b) => a - b);
    out.eos = ids ? { rampLength, maxBonus, afterRamp, ids } : { rampLength, maxBonus, afterRamp };
  }
  const uniform = on(config.uniform);
  if (uniform) out.uniform = { entries: uniformEntries(uniform) };
  const used = on(config.used);
  if (used) {
    const { penalty, scope } = { ...RULE_DEFAULTS.used, ...used };
    out.used = { penalty, scope };
  }
  const start = on(config.start);
  if (start) {
    const { weight, exclamationBonus, newlinePenalty } = { ...RULE_DEFAULTS.start, ...start };
    out.start = { weight, exclamationBonus, newlinePenalty };
  }
  return out;
}
