import {
  compileRules,
  ImplicitItError,
  RuleSet,
  type RuleSpec,
  resolveRuleSpec,
  type UnresolvedEntry,
} from '@implicit-it/rules';
import type { BaseModel } from '@implicit-it/runtime';
import type { ResolvedServedModel, ServedModel } from './options.js';

const RULE_CACHE_SIZE = 32;
/** Entries a log line names at most: a request's rule-set JSON may hold thousands. */
const LOGGED_ENTRIES = 5;

/**
 * The log line of a rule set whose entries match no token of a model's vocabulary (left out, never
 * guessed): `rules hewitt2024 on the model "smol": 1 entry matches no token of its vocabulary and is
 * left out (...): uniform "   " (...)`; at most `LOGGED_ENTRIES` are named.
 */
function unresolvedLine(model: string, name: string, unresolved: readonly UnresolvedEntry[]): string {
  const n = unresolved.length;
  const named = unresolved
    .slice(0, LOGGED_ENTRIES)
    .map((u) => `${u.rule} ${JSON.stringify(u.text)} (${u.reason})`)
    .join('; ');
  const more = n > LOGGED_ENTRIES ? `; and ${n - LOGGED_ENTRIES} more` : '';
  return `rules ${name} on the model "${model}": ${n} ${n === 1 ? 'entry matches' : 'entries match'} no token of its vocabulary and ${n === 1 ? 'is' : 'are'} left out (responses list them in rules_unresolved): ${named}${more}`;
}

/** What a log line calls a rule spec: its name, or `given` (a rule-set JSON), or `compiled` (a `RuleSet`). */
const specName = (spec: RuleSpec | RuleSet): string =>
  typeof spec === 'string' ? spec.trim() : RuleSet.isInstance(spec) ? 'compiled' : 'given';

/**
 * Compiles rule sets per model, at most `RULE_CACHE_SIZE` per model (least recently used dropped),
 * so that clients sending ever new rule-set JSON cannot grow the server's memory. A set with entries
 * that match no token is logged once, when it is compiled (again only if it was dropped since).
 */
export class RuleCache {
  private readonly cache = new WeakMap<BaseModel, Map<string, RuleSet>>();

  constructor(private readonly log: (line: string) => void) {}

  /** `spec` compiled for `served`'s vocabulary; a compiled `RuleSet` (a default, checked at start-up) as it is. */
  get(served: ServedModel, spec: RuleSpec | RuleSet): RuleSet {
    if (RuleSet.isInstance(spec)) return spec;
    const { model } = served;
    const config = resolveRuleSpec(spec);
    const key = JSON.stringify(config);
    let map = this.cache.get(model);
    if (!map) {
      map = new Map();
      this.cache.set(model, map);
    }
    let set = map.get(key);
    if (set !== undefined) {
      map.delete(key);
      map.set(key, set);
      return set;
    }
    set = compileRules(config, model.tokenizer.vocabulary);
    if (map.size >= RULE_CACHE_SIZE) map.delete(map.keys().next().value!);
    // kept before the line is logged: a `log` that throws fails this request, not the next ones
    map.set(key, set);
    if (set.unresolved.length > 0) this.log(unresolvedLine(served.id, specName(spec), set.unresolved));
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
    if (RuleSet.isInstance(served.rules) && set.unresolved.length > 0)
      this.log(unresolvedLine(served.id, specName(served.rules), set.unresolved));
  }
}
