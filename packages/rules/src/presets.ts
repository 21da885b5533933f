import { HEWITT2024_UNIFORM, type RuleSetConfig } from './config.js';
import { RuleConfigError } from './errors.js';
import { meantOption, shownValue } from './option-names.js';
import { parseRuleSetConfig } from './validate.js';

const uniformText = () => HEWITT2024_UNIFORM.map(({ text, score }) => ({ text, score }));

/**
 * The name of one of `PRESETS`.
 *
 * @example
 * const preset: PresetName = 'hewitt2024-prose';
 */
export type PresetName = 'hewitt2024' | 'hewitt2024-llama2-ids' | 'hewitt2024-prose';

/**
 * Named rule sets. `hewitt2024` reproduces the released code that produced the paper's numbers;
 * `hewitt2024-llama2-ids` is the same with the reference code's Llama-2 ids given directly;
 * `hewitt2024-prose` follows the paper's prose where it differs from the code (What -3, the used-token
 * penalty over the response only, the EOS bonus held after the ramp).
 *
 * @example
 * Object.keys(PRESETS); // ['hewitt2024', 'hewitt2024-llama2-ids', 'hewitt2024-prose']
 * const config = PRESETS['hewitt2024-prose'](); // a fresh config each call, free to edit
 */
export const PRESETS: Readonly<Record<PresetName, () => RuleSetConfig>> = Object.freeze<
  Record<PresetName, () => RuleSetConfig>
>({
  hewitt2024: () => ({ eos: {}, uniform: { entries: uniformText() }, used: {} }),
  'hewitt2024-llama2-ids': () => ({
    eos: { ids: [2] },
    // each id with the text it has in Llama-2's vocabulary: compiled against another tokenizer's, the
    // ids would score unrelated tokens, and compileRules refuses them
    uniform: {
      entries: HEWITT2024_UNIFORM.map(({ llama2Id, score, text }) => ({ id: llama2Id, score, text })),
    },
    used: {},
  }),
  'hewitt2024-prose': () => ({
    eos: { afterRamp: 'hold' },
    uniform: { entries: uniformText().map((e) => (e.text === 'What' ? { ...e, score: -3 } : e)) },
    used: { scope: 'response' },
  }),
});

/**
 * The paper's ablation subsets, named as in the reference code's option string, plus `none`.
 *
 * @example
 * for (const name of ABLATIONS) compileRules(name, vocab).enabled; // ['eos', 'uniform', 'diversity'], ...
 */
export const ABLATIONS = Object.freeze([
  'eos-uniform-diversity',
  'uniform-diversity',
  'eos-uniform',
  'eos-diversity',
  'none',
] as const);

const SUBSET_PARTS: Record<string, 'eos' | 'uniform' | 'used' | 'start'> = {
  eos: 'eos',
  uniform: 'uniform',
  diversity: 'used',
  used: 'used',
  start: 'start',
};

/**
 * A rule set given by name, by subset string, or by config, or `false` for none.
 *
 * Names: a preset (`hewitt2024`, ...), or a subset of hewitt2024 written as rule names joined by `-`
 * (`eos-uniform-diversity`, `uniform-diversity`, `eos`, `eos-uniform-diversity-start`, ...; `used` is an
 * alias of `diversity`), or `none` / `off`.
 *
 * @example
 * const specs: RuleSpec[] = ['hewitt2024', 'uniform-diversity', false, { used: { scope: 'response' } }];
 */
export type RuleSpec =
  | PresetName
  | (typeof ABLATIONS)[number]
  | 'off'
  // any other subset string ('eos', 'eos-uniform-diversity-start'...); `string & {}` keeps the names above
  // offered by editors
  | (string & {})
  | false
  | RuleSetConfig;

/**
 * Resolves a `RuleSpec` to a validated `RuleSetConfig`.
 *
 * @example
 * resolveRuleSpec('eos-uniform'); // { eos: {}, uniform: { entries: [...] } }
 * resolveRuleSpec({ used: { penalty: -2 } });
 */
export function resolveRuleSpec(spec: RuleSpec): RuleSetConfig {
  if (spec === false) return {};
  if (typeof spec === 'string') {
    const name = spec.trim();
    // own keys only: 'constructor' or '__proto__' are not presets
    const preset = Object.hasOwn(PRESETS, name) ? PRESETS[name as PresetName] : undefined;
    if (preset) return preset();
    if (name === 'none' || name === 'off') return {};
    const parts = name.split('-');
    const base = PRESETS.hewitt2024!();
    const config: RuleSetConfig = {};
    for (const part of parts) {
      const rule = Object.hasOwn(SUBSET_PARTS, part) ? SUBSET_PARTS[part] : undefined;
      if (!rule) {
        // a misspelt name as a whole ('hewit2024', 'Hewitt2024'), else the misspelt part ('eos-uniformm')
        const whole = meantOption(name, [...Object.keys(PRESETS), ...ABLATIONS, 'off']);
        const meantPart = meantOption(part, Object.keys(SUBSET_PARTS));
        const meant =
          whole ??
          (meantPart === undefined ? undefined : parts.map((p) => (p === part ? meantPart : p)).join('-'));
        throw new RuleConfigError(
          '',
          `unknown rule set ${JSON.stringify(spec)}${meant === undefined ? '' : ` (did you mean "${meant}"?)`}: expected a preset (${Object.keys(PRESETS).join(', ')}), "none", or rule names joined by "-" from eos, uniform, diversity, start (e.g. ${ABLATIONS.slice(0, 4).join(', ')})`,
        );
      }
      if (config[rule] !== undefined)
        throw new RuleConfigError('', `rule set ${JSON.stringify(spec)} names ${part} twice`);
      config[rule] = rule === 'start' ? {} : base[rule];
    }
    return config;
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new RuleConfigError(
      '',
      `expected a rule-set name (a preset such as "hewitt2024", a subset such as "eos-uniform", or "none"), false, or a rule-set object, got ${shownValue(spec)}${(spec as unknown) === true ? ' (for the paper\'s rules, pass "hewitt2024")' : ''}`,
    );
  }
  return parseRuleSetConfig(spec);
}
