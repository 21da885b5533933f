import {
  canonicalRuleSet,
  compileRules,
  ImplicitItError,
  RuleSet,
  type RuleSpec,
  resolveRuleSpec,
  type UnresolvedEntry,
} from '@implicit-it/rules';
import type { BaseModel } from '@implicit-it/runtime';
import { ApiError } from './errors.js';
import type { ResolvedServedModel, ServedModel } from './options.js';

const RULE_CACHE_SIZE = 32;
/** Entries a log line names at most: a request's rule-set JSON may hold thousands. */
const LOGGED_ENTRIES = 5;

/** Whose rules a rule set is: a model's default (`rules` of the app or of its `models[]` entry), or a request's own. */
export type RulesOf = 'default' | 'request';

/**
 * The log line of a rule set whose entries match no token of a model's vocabulary (left out, never
 * guessed): `rules hewitt2024 on the model "smol": 1 entry matches no token of its vocabulary and is
 * left out (...): uniform "   " (...)` for a model's default, `rules given by a request on the model
 * "smol": ...` for a request's own; at most `LOGGED_ENTRIES` are named.
 */
function unresolvedLine(
  model: string,
  spec: RuleSpec | RuleSet,
  of: RulesOf,
  unresolved: readonly UnresolvedEntry[],
): string {
  const n = unresolved.length;
  const named = unresolved
    .slice(0, LOGGED_ENTRIES)
    .map((u) => `${u.rule} ${JSON.stringify(u.text)} (${u.reason})`)
    .join('; ');
  const more = n > LOGGED_ENTRIES ? `; and ${n - LOGGED_ENTRIES} more` : '';
  return `rules ${specName(spec, of)} on the model "${model}": ${n} ${n === 1 ? 'entry matches' : 'entries match'} no token of its vocabulary and ${n === 1 ? 'is' : 'are'} left out (responses list them in rules_unresolved): ${named}${more}`;
}

/**
 * What a log line calls a rule spec: its name, or `given` (a rule-set JSON), or `compiled` (a
 * `RuleSet`); a request's, `given by a request` (its name first: `hewitt2024 given by a request`).
 */
function specName(spec: RuleSpec | RuleSet, of: RulesOf): string {
  const name = typeof spec === 'string' ? spec.trim() : RuleSet.isInstance(spec) ? 'compiled' : '';
  if (of === 'request') return name ? `${name} given by a request` : 'given by a request';
  return name || 'given';
}

/** The texts of `entries`, as a message lists them: at most `LOGGED_ENTRIES`, then how many more. */
function texts(entries: readonly UnresolvedEntry[]): string {
  const shown = entries.slice(0, LOGGED_ENTRIES).map((u) => JSON.stringify(u.text));
  const more = entries.length - shown.length;
  return `${shown.join(', ')}${more > 0 ? `, and ${more} more` : ''}`;
}

/**
 * A request's rule set with a rule that resolves nothing on the model's vocabulary (`RuleSet#inert`),
 * as a 400: the rule would change nothing, so the request would be answered as one without it. Its
 * entries that do not resolve, in a rule that does, are no error (`rules_unresolved`).
 */
function inertRules(model: string, spec: RuleSpec, set: RuleSet): ApiError {
  const reasons = set.inert.map((rule) => {
    if (rule === 'eos')
      return `the eos rule has no id to raise, as the tokenizer of the model "${model}" names no EOS id`;
    const lost = set.unresolved.filter((u) => u.rule === 'uniform');
    return lost.length === 1
      ? `the uniform rule's one entry, ${texts(lost)}, matches no token of the model "${model}"`
      : `none of the uniform rule's ${lost.length} entries (${texts(lost)}) matches a token of the model "${model}"`;
  });
  const fixes = set.inert.map((rule) =>
    rule === 'eos'
      ? 'give the eos rule the ids to raise ({"eos": {"ids": [2]}})'
      : 'give each uniform entry the exact text of one token (a leading space is part of it: " Sure") or its id ({"id": 42, "score": 5})',
  );
  const one = set.inert.length === 1;
  return new ApiError(
    400,
    `rules: ${reasons.join('; ')}, so ${one ? 'the rule' : 'these rules'} would change nothing (the request would be answered as one without ${one ? 'it' : 'them'}): ${fixes.join(', ')}, or leave ${one ? 'the rule' : 'them'} out`,
    {
      // a rule-set JSON has the field; a name does not
      param: one && typeof spec === 'object' && spec !== null ? `rules.${set.inert[0]}` : 'rules',
      code: 'invalid_rules',
    },
  );
}

/** The cache's key of rules: one for every spelling of the same rules ("eos-uniform", "uniform-eos", their JSON). */
const ruleKey = (config: ReturnType<typeof resolveRuleSpec>) => JSON.stringify(canonicalRuleSet(config));

/**
 * Compiles rule sets per model, at most `RULE_CACHE_SIZE` per model (least recently used dropped),
 * so that clients sending ever new rule-set JSON cannot grow the server's memory; specs written
 * otherwise that compile alike (`canonicalRuleSet`) share one. A model's default rules (`defaults`)
 * are kept apart and never dropped: clients cycling through many rule sets cost no recompiling of
 * the rules most requests use. A set with entries that match no token is logged once, when it is
 * compiled (again only if it was dropped since).
 */
export class RuleCache {
  private readonly cache = new WeakMap<BaseModel, Map<string, RuleSet>>();
  /** Each model's default rules compiled, by key, outside the least-recently-used entries. */
  private readonly pinned = new WeakMap<BaseModel, Map<string, RuleSet>>();

  constructor(private readonly log: (line: string) => void) {}

  /**
   * `spec` compiled for `served`'s vocabulary; a compiled `RuleSet` (a default, checked at start-up)
   * as it is. `of`: whose rules they are, for the log line; a request's whose rule resolves nothing
   * at all (`RuleSet#inert`) is refused (`ApiError` 400), a model's default is served as it is.
   */
  get(served: ServedModel, spec: RuleSpec | RuleSet, of: RulesOf = 'default'): RuleSet {
    if (RuleSet.isInstance(spec)) return spec;
    const { model } = served;
    const config = resolveRuleSpec(spec);
    const key = ruleKey(config);
    let map = this.cache.get(model);
    if (!map) {
      map = new Map();
      this.cache.set(model, map);
    }
    let set = this.pinned.get(model)?.get(key) ?? map.get(key);
    const compiled = set === undefined;
    if (set !== undefined) {
      // most recently used (a default's is in `pinned`, never dropped)
      if (map.delete(key)) map.set(key, set);
    } else {
      set = compileRules(config, model.tokenizer.vocabulary);
      if (map.size >= RULE_CACHE_SIZE) map.delete(map.keys().next().value!);
      // kept before the line is logged: a `log` that throws fails this request, not the next ones
      map.set(key, set);
    }
    const refused = of === 'request' && set.inert.length > 0;
    // a request refused for it is answered, not logged: nothing of it is left out of a response
    if (compiled && set.unresolved.length > 0 && !refused)
      this.log(unresolvedLine(served.id, spec, of, set.unresolved));
    if (refused) throw inertRules(served.id, spec, set);
    return set;
  }

  /**
   * Compiles `served`'s default rules at start-up (a spec the rules package refuses throws, its
   * message naming the model), logging entries that match no token, a given `RuleSet`'s too.
   */
  defaults(served: ResolvedServedModel): void {
    let set: RuleSet;
    try {
      set = this.get(served, served.rules);
    } catch (error) {
      if (ImplicitItError.isInstance(error))
        error.message = `rules of the model "${served.id}": ${error.message}`;
      throw error;
    }
    if (!RuleSet.isInstance(served.rules)) {
      // moved out of the least-recently-used entries: never dropped
      const key = ruleKey(resolveRuleSpec(served.rules));
      this.cache.get(served.model)?.delete(key);
      const pinned = this.pinned.get(served.model) ?? new Map<string, RuleSet>();
      pinned.set(key, set);
      this.pinned.set(served.model, pinned);
    }
    if (RuleSet.isInstance(served.rules) && set.unresolved.length > 0)
      this.log(unresolvedLine(served.id, served.rules, 'default', set.unresolved));
  }
}
