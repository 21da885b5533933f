import {
  compileRules,
  RuleConfigError,
  type RuleSpec,
  type UnresolvedEntry,
  type Vocabulary,
} from '@implicit-it/rules';
import { unresolvedNote } from '@implicit-it/runtime';
import { note, usage } from './output.js';

/** The runtime's notes (`unresolvedNote`, logged with -v) of the rule sets this process has noted itself. */
const notedByCli = new Set<string>();

/**
 * Whether `line`, a line of the runtime's log, is its note of a rule set that {@link checkRules} has
 * checked (and noted on stderr): with -v it would say the same a second time.
 *
 * @example
 * notedByRuntime('prompts prefilled in chunks of 256 positions'); // false
 */
export function notedByRuntime(line: string): boolean {
  return notedByCli.has(line);
}

/** `uniform "a", " b"; start "!"`: unresolved entries by rule, each with its reason where it is not the usual one. */
function listed(unresolved: readonly UnresolvedEntry[]): string {
  const byRule = new Map<string, string[]>();
  for (const u of unresolved) {
    const usual = u.reason === `no vocabulary item has the surface text ${JSON.stringify(u.text)}`;
    const shown = `${JSON.stringify(u.text)}${usual ? '' : ` (${u.reason})`}`;
    byRule.set(u.rule, [...(byRule.get(u.rule) ?? []), shown]);
  }
  return [...byRule].map(([rule, texts]) => `${rule} ${texts.join(', ')}`).join('; ');
}

/**
 * Compiles `spec` against the vocabulary of the model it will run on, before any work, as the
 * runtime compiles it (whose notes are -v only), and refuses (usage error) a rule that the spec turns
 * on but that resolves nothing at all: a uniform rule none of whose entries is a token, or an EOS
 * ramp without an EOS id; it would change nothing, and a run under the rules' name would be the base
 * model's. Returns the note of the entries that match no token and are left out, for stderr (`note:
 * --rules hewitt2024: 8 entries do not resolve ...`; undefined where all resolve), which callers say
 * once, when the work begins, so that a refusal before it is said alone. `where` names the rules in
 * messages (`--rules hewitt2024`, `--subsets eos-uniform`).
 *
 * @example
 * import { createVocabulary } from '@implicit-it/rules';
 * const vocab = createVocabulary({ surfaces: ['</s>', ' I', '\n', ' Sure'], eosIds: [0] });
 * const line = checkRules('hewitt2024', vocab, '--rules hewitt2024');
 * // line is note: --rules hewitt2024: 13 entries do not resolve (...) and are left out: uniform "<", ...
 * checkRules({ uniform: { entries: [{ text: 'Sure!', score: 5 }] } }, vocab, '--rules custom JSON'); // throws CliError
 */
export function checkRules(spec: RuleSpec, vocabulary: Vocabulary, where: string): string | undefined {
  if (spec === false) return undefined;
  let rules: ReturnType<typeof compileRules>;
  try {
    rules = compileRules(spec, vocabulary);
  } catch (error) {
    // an id past this vocabulary, an id spelt otherwise in it: refused before anything runs
    if (RuleConfigError.isInstance(error)) throw usage(`${where}: ${error.message}`);
    throw error;
  }
  const { unresolved } = rules;
  if (unresolved.length === 0) return undefined;
  if (rules.inert.includes('uniform')) {
    const lost = unresolved.filter((u) => u.rule === 'uniform');
    const entries = lost.length;
    const texts = lost.map((u) => JSON.stringify(u.text)).join(', ');
    throw usage(
      `${where}: ${entries === 1 ? `the uniform rule's one entry, ${texts}, matches no token` : `none of the uniform rule's ${entries} entries (${texts}) matches a token`} ` +
        'of this vocabulary, so the rule would change nothing (a run with it would be a run without it)',
      'give each entry the exact text of one token (a leading space is part of it: " Sure"), or its id ({"id": 42, "score": 5}), or leave the rule out; `implicit-it model inspect MODEL --rules SPEC` lists which entries resolve',
    );
  }
  if (rules.inert.includes('eos')) {
    throw usage(
      `${where}: the eos rule has no id to raise, as the tokenizer names no EOS id, so the rule would change nothing`,
      'give the ids to raise ({"eos": {"ids": [2]}}), or leave the rule out (--rules uniform-diversity)',
    );
  }
  // the runtime's own note of this set (-v) would say it again
  notedByCli.add(unresolvedNote(spec, unresolved));
  const n = unresolved.length;
  return n === 1
    ? `note: ${where}: ${unresolved[0]!.rule} entry ${JSON.stringify(unresolved[0]!.text)} does not resolve (no vocabulary item has its exact text) and is left out`
    : `note: ${where}: ${n} entries do not resolve (no vocabulary item has their exact text) and are left out: ${listed(unresolved)}`;
}

/**
 * {@link checkRules}, its note said on stderr now: for commands whose work begins at once
 * (`generate`, `chat`, `serve`).
 */
export function checkAndNoteRules(spec: RuleSpec, vocabulary: Vocabulary, where: string): void {
  const line = checkRules(spec, vocabulary, where);
  if (line !== undefined) note(line);
}
