import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Journal, readDoneRecord } from '@implicit-it/eval';
import { canonicalRuleSet, type RuleSpec, resolveRuleSpec } from '@implicit-it/rules';
import { NO_RULES_NAMES, rulesFile } from './flags.js';

// How eval commands record the rules of a run, and name its outputs after them: a run's record holds
// the rules compiled alike however they were written (`canonicalRuleSet`), so a rerun with
// `{"used":true}` finds the run of `--rules diversity`; records of older versions, which held the spec
// as written, are read the same way.

/** The model part of a default generator name (`generatorName`): the model's id, its slashes made `_`. */
export const modelPart = (id: string): string => id.replace(/[/\\]+/g, '_');

/** The canonical config of `rules` as JSON (`canonicalRuleSet`: equal for rules that compile alike). */
const canonical = (rules: RuleSpec) => JSON.stringify(canonicalRuleSet(rules));

/**
 * Six hex digits of a hash of the rules `rules` compile to, the same however they are written: what
 * tells the default names of two inline rule sets apart.
 *
 * @example
 * rulesHash({ used: true }) === rulesHash('diversity'); // true
 * rulesHash({ used: { penalty: -2 } }) === rulesHash({ used: true }); // false
 */
export function rulesHash(rules: RuleSpec): string {
  return createHash('sha256').update(canonical(rules)).digest('hex').slice(0, 6);
}

/**
 * The default generator name of outputs of the model `id` under `rules`: `MODEL-RULES`, RULES being
 * the preset or subset name as given (`tiny-hewitt2024`), a rule-set file's name without its extension
 * (`tiny-variant` for `--rules @variant.json`; `file-` before one that reads as rules' name:
 * `tiny-file-hewitt2024` for `@hewitt2024.json`), or `custom-` and `rulesHash` for inline JSON
 * (`tiny-custom-1a2b3c`, the same for JSON that compiles alike); MODEL alone with `--rules off`.
 *
 * @example
 * generatorName('models/tiny', 'hewitt2024'); // 'models_tiny-hewitt2024'
 * generatorName('tiny', false); // 'tiny'
 * generatorName('tiny', { used: true }) === `tiny-custom-${rulesHash('diversity')}`; // true
 */
export function generatorName(id: string, rules: RuleSpec): string {
  const model = modelPart(id);
  if (rules === false) return model;
  if (typeof rules === 'string') return `${model}-${rules}`;
  const file = rulesFile(rules);
  const stem = file === undefined ? '' : basename(file, extname(file));
  if (!stem) return `${model}-custom-${rulesHash(rules)}`;
  // a file named as rules are (`@hewitt2024.json`, `@eos.json`, `@off.json`, `@custom-1a2b3c.json`)
  // would take their name, which says other rules than the file may hold
  return `${model}-${readsAsRuleName(stem) ? `file-${stem}` : stem}`;
}

/** Whether `name` is one `--rules` takes as a name (a preset, a subset, off and its synonyms) or a default name's `custom`. */
function readsAsRuleName(name: string): boolean {
  if (NO_RULES_NAMES.includes(name) || /^custom(-|$)/.test(name)) return true;
  try {
    resolveRuleSpec(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * What was recorded of the run whose result is `out`: its pending journal's header, where there is
 * one (a run resumes it), else its `OUT.done` record; undefined without either.
 *
 * @example
 * const rules = (recordedRun('run/outputs/rules.json')?.fingerprint as { rules?: unknown } | undefined)?.rules;
 */
export function recordedRun(out: string): Record<string, unknown> | undefined {
  const journal = `${out}.journal.jsonl`;
  return existsSync(journal) ? Journal.header(journal) : readDoneRecord(out);
}

/** The rules a record holds (`fingerprint.rules`), as it holds them. */
const rulesOf = (recorded: Record<string, unknown> | undefined): unknown =>
  (recorded?.fingerprint as { rules?: unknown } | null | undefined)?.rules;

/**
 * Whether `recorded` (a record's `fingerprint.rules`: a canonical config, or the spec as an older
 * version wrote it) compiles as `rules` do. Anything the rules package refuses does not.
 *
 * @example
 * sameRules('diversity', { used: { penalty: -1.5 } }); // true
 * sameRules('diversity', { used: { penalty: -2 } }); // false
 */
export function sameRules(recorded: unknown, rules: RuleSpec): boolean {
  if (recorded === undefined || recorded === null) return false;
  try {
    return canonical(recorded as RuleSpec) === canonical(rules);
  } catch {
    return false;
  }
}

/**
 * The `fingerprint.rules` a run with `rules` records: their canonical config (`canonicalRuleSet`);
 * or, where the run recorded for its output (`recordedRun`) holds rules that compile alike (written
 * otherwise, or recorded as written by an older version), those, as they are there: the rerun is
 * then found the same run, finished or to resume.
 *
 * @example
 * fingerprintRules('diversity', undefined); // { used: { penalty: -1.5, scope: 'conversation' } }
 * fingerprintRules({ used: true }, { fingerprint: { rules: 'diversity' } }); // 'diversity'
 */
export function fingerprintRules(rules: RuleSpec, recorded: Record<string, unknown> | undefined): unknown {
  const theirs = rulesOf(recorded);
  return sameRules(theirs, rules) ? theirs : canonicalRuleSet(rules);
}

/**
 * Whether `name` is a default generator name (`generatorName`) that the model `id` and rules compiling
 * as `rules` do get, written some way: as a preset or subset name, as inline JSON (`custom-` and its
 * hash, or `custom` as older versions named all JSON), or off. A rule-set file's name is not known
 * here, so it is not one.
 */
function defaultNameOf(name: string, id: string, rules: RuleSpec): boolean {
  const model = modelPart(id);
  if (name === model) return canonical(rules) === canonical(false);
  if (!name.startsWith(`${model}-`)) return false;
  const part = name.slice(model.length + 1);
  if (part === 'custom' || part === `custom-${rulesHash(rules)}`) return true;
  return sameRules(part, rules);
}

/**
 * The generator name of a run of the model `id` under `rules` whose output has `recorded`
 * (`recordedRun`): `--name` where given (`given`); else the default (`generatorName`), unless the run
 * recorded there has rules that compile alike under another default name of theirs (`MODEL-diversity`
 * for `{"used":true}`, `MODEL-custom` of an older version): that name, `kept`, so that the rerun finds
 * its outputs rather than being refused for a name.
 *
 * @example
 * runName('tiny', { used: true }, undefined, { generator: 'tiny-diversity', fingerprint: { rules: 'diversity' } });
 * // { name: 'tiny-diversity', kept: true }
 */
export function runName(
  id: string,
  rules: RuleSpec,
  given: string | undefined,
  recorded: Record<string, unknown> | undefined,
): { name: string; kept: boolean } {
  if (given !== undefined) return { name: given, kept: false };
  const name = generatorName(id, rules);
  const theirs = recorded?.generator;
  if (
    typeof theirs === 'string' &&
    theirs !== name &&
    sameRules(rulesOf(recorded), rules) &&
    defaultNameOf(theirs, id, rules)
  )
    return { name: theirs, kept: true };
  return { name, kept: false };
}
