import { compileRules, ImplicitItError, RuleSet, type RuleSpec, resolveRuleSpec } from '@implicit-it/rules';
import type { BaseModel } from '@implicit-it/runtime';
import type { ResolvedServedModel, ServedModel } from './options.js';

const RULE_CACHE_SIZE = 32;

/**
 * Compiles rule sets per model, at most `RULE_CACHE_SIZE` per model (least recently used dropped),
 * so that clients sending ever new rule-set JSON cannot grow the server's memory.
 */
export class RuleCache {
  private readonly cache = new WeakMap<BaseModel, Map<string, RuleSet>>();

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
    map.set(key, set);
    return set;
  }

  /** Compiles `served`'s default rules at start-up: a spec the rules package refuses throws, its message naming the model. */
  defaults(served: ResolvedServedModel): void {
    try {
      this.get(served, served.rules);
    } catch (error) {
      if (ImplicitItError.isInstance(error))
        error.message = `rules of the model "${served.id}": ${error.message}`;
      throw error;
    }
  }
}
