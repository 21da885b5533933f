import type { RuleSet, RuleState } from '@implicit-it/rules';
import { GenerationError } from './errors.js';

/**
 * What a logits processor sees of the row it processes.
 *
 * @example
 * // end the response after its third period
 * const eos = model.tokenizer.eosIds[0]!;
 * const periods = new Set(model.tokenizer.vocabulary.idsOf('.'));
 * const threeSentences: LogitsProcessor = {
 *   process(logits, ctx: ProcessorContext) {
 *     if (ctx.responseIds.filter((id) => periods.has(id)).length >= 3) logits[eos] = Number.POSITIVE_INFINITY;
 *   },
 * };
 */
export interface ProcessorContext {
  /**
   * The row's position in the batch decoded at this step. It changes as rows join and leave the
   * batch (and follows the engine's order, not the inputs'): key per-request state on `request`.
   */
  readonly row: number;
  /** The request's id: the same at every step of one generation, distinct across a model's requests. */
  readonly request: number;
  /** Index of the input in the `generate()` call that made the request (0 for `stream()`). */
  readonly input: number;
  /** Number of tokens generated so far for this row. */
  readonly step: number;
  readonly promptIds: readonly number[];
  /** The response ids so far. */
  readonly responseIds: readonly number[];
}

/**
 * The logits-processor hook: called on every row's logits (float32, length = vocabulary of the
 * graph) before sampling, after the logit bias and the rules. Modify `logits` in place.
 *
 * @example
 * const noDigits: LogitsProcessor = { process: (logits) => { for (const id of digitIds) logits[id] = -Infinity; } };
 */
export interface LogitsProcessor {
  /**
   * Runs synchronously: the batch waits for it between two steps. A `process` that returns a
   * promise (an `async` one) fails its request with a `runtime.bad_option` error (param `processors`):
   * what it would change after an `await` comes too late for the token already drawn.
   */
  process(logits: Float32Array, ctx: ProcessorContext): void;
}

/**
 * Refuses what processor `index`'s `process` returned where it is a promise (an `async` processor):
 * its changes would land after the token is drawn, and a rejection would go unhandled (and end the
 * process). The rejection is handled here, so that the request's error is the only one said.
 */
export function synchronously(returned: unknown, index: number): void {
  if (typeof (returned as PromiseLike<unknown> | undefined)?.then !== 'function') return;
  (returned as PromiseLike<unknown>).then(undefined, () => {});
  throw new GenerationError(
    'runtime.bad_option',
    `processors[${index}]: process() returned a promise (an async function?); logits processors run synchronously between two steps, so what it changes after an await would come after the token is drawn: compute what it needs before generate() and change the logits in process() itself`,
    'processors',
  );
}

/**
 * `rules.apply(logits, state)`, also where the rules cover more ids than there are logits: a
 * tokenizer whose added tokens lie past the LM head (a pad or chat token added to the tokenizer
 * without resizing the model's `vocab_size`). Those ids have no logit: they count as -Infinity, and
 * what the rules add to them is dropped. That case needs a scratch row of the rules' size: give back
 * the one returned (undefined until then) to reuse it, as in
 * `for (const row of rows) scratch = applyRules(rules, row, state, scratch);`. Internal (not exported
 * by the package, so without a type-checked example).
 */
export function applyRules(
  rules: RuleSet,
  logits: Float32Array,
  state: RuleState,
  scratch?: Float32Array,
): Float32Array | undefined {
  if (logits.length >= rules.vocabSize) {
    rules.apply(logits, state);
    return scratch;
  }
  // allocated here only, never on the common path (a default parameter would allocate a row of the
  // vocabulary's size at every call: 196 KB a step and row for SmolLM's 49152 ids)
  const wide = scratch ?? new Float32Array(rules.vocabSize);
  wide.set(logits);
  wide.fill(Number.NEGATIVE_INFINITY, logits.length);
  rules.apply(wide, state);
  logits.set(wide.subarray(0, logits.length));
  return wide;
}

/** The rules as a per-row processor: one `RuleState` per row, advanced with every token. */
export class RulesProcessor {
  readonly state: RuleState;
  /** `applyRules`' scratch, where the rules cover more ids than the logits. */
  private wide: Float32Array | undefined;
  constructor(
    readonly rules: RuleSet,
    init: { promptIds: readonly number[]; scopeStart: number; promptLength: number },
  ) {
    this.state = rules.createState(init);
  }
  apply(logits: Float32Array): void {
    this.wide = applyRules(this.rules, logits, this.state, this.wide);
  }
  append(id: number): void {
    this.state.append(id);
  }
}
