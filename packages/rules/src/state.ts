import { RuleInputError } from './errors.js';
import { shownValue } from './option-names.js';

/**
 * What a rule sees of one sequence. Custom rules receive it; `RuleState` implements it.
 *
 * @example
 * // Llama-2: no "\n" (id 13) right after a "\n"
 * const rule: CustomRule = {
 *   name: 'no-blank-line',
 *   score: (ctx: RuleContext, add) => {
 *     const n = ctx.promptLength + ctx.t;
 *     if (ctx.t > 0 && ctx.tokenAt(n - 1) === 13) add(13, -5);
 *   },
 * };
 */
export interface RuleContext {
  /** Prompt length P (the whole chat-formatted prompt, BOS included). */
  readonly promptLength: number;
  /** Index S of the first token of the last user message. */
  readonly scopeStart: number;
  /** Number of response tokens so far (0 when predicting the first response token). */
  readonly t: number;
  /** Token `i` of the context (prompt then response), `0 <= i < promptLength + t`. */
  tokenAt(i: number): number;
  /**
   * Whether `id` is in the used-token scope of this state: the `used` rule's scope, or its default
   * (`'conversation'`) when the rule is off, so that a custom rule can read it in any rule set.
   */
  isUsed(id: number): boolean;
}

const INITIAL_CAPACITY = 256;

/**
 * A token id as a number: a bigint one (an int64 tensor's, as onnxruntime and transformers.js hold
 * ids) converted; one past 2^53 loses its exact value, and is refused as no token id anyway.
 */
const idNumber = (id: number | bigint): number => (typeof id === 'bigint' ? Number(id) : id);

/** Why `value` is no token id: ids are held as int32, so an integer from 2^31 on is none either. */
const notTokenId = (value: unknown): string =>
  `a token id is a non-negative integer below 2^31, got ${shownValue(value)}`;

/**
 * Per-sequence rule state: the context so far and the set of used ids, updated in O(1) per appended
 * token. Create it with `RuleSet.createState`; `fork()` copies it for batched or speculative decoding.
 *
 * @example
 * const state = rules.createState({ promptIds: [3, 1, 5, 3], scopeStart: 1 });
 * state.append(4);
 * state.t; // 1: response tokens so far
 * state.isUsed(5); // true: in the used-token scope (the conversation from scopeStart)
 * const draft = state.fork(); // appending to draft leaves state as it is
 */
export class RuleState implements RuleContext {
  /** @internal */ tokens: Int32Array;
  /** @internal */ length: number;
  /** @internal */ usedBits: Uint32Array;
  /** @internal */ usedIds: Int32Array;
  /** @internal */ usedCount: number;
  readonly promptLength: number;
  readonly scopeStart: number;
  /** @internal */ readonly owner: object;
  /** @internal */ readonly vocabSize: number;

  /** Use `RuleSet.createState`. */
  private constructor(
    owner: object,
    vocabSize: number,
    tokens: Int32Array,
    length: number,
    promptLength: number,
    scopeStart: number,
    usedBits: Uint32Array,
    usedIds: Int32Array,
    usedCount: number,
  ) {
    this.owner = owner;
    this.vocabSize = vocabSize;
    this.tokens = tokens;
    this.length = length;
    this.promptLength = promptLength;
    this.scopeStart = scopeStart;
    this.usedBits = usedBits;
    this.usedIds = usedIds;
    this.usedCount = usedCount;
  }

  /** @internal */
  static create(
    owner: object,
    vocabSize: number,
    promptIds: ArrayLike<number | bigint>,
    scopeStart: number,
    promptLength: number,
    trackFrom: number,
  ): RuleState {
    const n = promptIds.length;
    if (!Number.isInteger(promptLength) || promptLength < 0) {
      throw new RuleInputError(
        `promptLength must be a non-negative integer, got ${shownValue(promptLength)}`,
      );
    }
    if (promptLength > n) {
      throw new RuleInputError(`promptLength ${promptLength} is larger than the ${n} prompt ids given`);
    }
    if (!Number.isInteger(scopeStart) || scopeStart < 0 || scopeStart > promptLength) {
      throw new RuleInputError(
        `scopeStart must be an integer in [0, promptLength=${promptLength}], got ${shownValue(scopeStart)}`,
      );
    }
    const tokens = new Int32Array(Math.max(INITIAL_CAPACITY, n * 2));
    const state = new RuleState(
      owner,
      vocabSize,
      tokens,
      0,
      promptLength,
      scopeStart,
      new Uint32Array((vocabSize + 31) >>> 5),
      new Int32Array(INITIAL_CAPACITY),
      0,
    );
    for (let i = 0; i < n; i++) {
      const id = idNumber(promptIds[i]!);
      if ((id | 0) !== id || id < 0) throw new RuleInputError(`promptIds[${i}]: ${notTokenId(promptIds[i])}`);
      if (id >= vocabSize) {
        // a response id past the vocabulary is one a padded logits row gave (as `append` takes it);
        // a prompt id past it comes from another tokenizer than the one the rules were compiled for
        if (i >= promptLength) {
          tokens[i] = id;
          continue;
        }
        throw new RuleInputError(
          `promptIds[${i}] = ${id} is outside the vocabulary [0, ${vocabSize}): tokenize the prompt with the tokenizer whose vocabulary the rules were compiled against`,
        );
      }
      tokens[i] = id;
      if (i >= trackFrom) state.markUsed(id);
    }
    // ids after promptLength (a prompt given with part of the response) count as response tokens,
    // checked as `append` checks them
    state.length = n;
    return state;
  }

  get t(): number {
    return this.length - this.promptLength;
  }

  tokenAt(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.length)
      throw new RuleInputError(
        `tokenAt(${shownValue(i)}): expected an index in [0, ${this.length}), the context so far`,
      );
    return this.tokens[i]!;
  }

  /** The response ids so far (a copy). */
  responseIds(): number[] {
    return Array.from(this.tokens.subarray(this.promptLength, this.length));
  }

  isUsed(id: number): boolean {
    return (
      Number.isInteger(id) &&
      id >= 0 &&
      id < this.vocabSize &&
      (this.usedBits[id >>> 5]! & (1 << (id & 31))) !== 0
    );
  }

  /** Number of distinct ids in the used-token scope. */
  get usedSize(): number {
    return this.usedCount;
  }

  /**
   * Appends one generated token: O(1) amortized. Ids at or beyond the vocabulary size (a logits row
   * wider than the vocabulary, padded embeddings) are recorded in the context but never scored nor
   * counted as used. Prompt ids are stricter: `createState` refuses one past the vocabulary (a prompt
   * from another tokenizer).
   */
  append(token: number | bigint): void {
    const id = idNumber(token);
    if ((id | 0) !== id || id < 0) throw new RuleInputError(`append: ${notTokenId(token)}`);
    if (this.length === this.tokens.length) {
      const grown = new Int32Array(this.tokens.length * 2);
      grown.set(this.tokens);
      this.tokens = grown;
    }
    this.tokens[this.length++] = id;
    if (id < this.vocabSize) this.markUsed(id);
  }

  /** An independent copy (O(vocabulary / 32 + context) words). */
  fork(): RuleState {
    return new RuleState(
      this.owner,
      this.vocabSize,
      this.tokens.slice(),
      this.length,
      this.promptLength,
      this.scopeStart,
      this.usedBits.slice(),
      this.usedIds.slice(),
      this.usedCount,
    );
  }

  /** @internal */
  markUsed(id: number): void {
    const word = id >>> 5;
    const bit = 1 << (id & 31);
    const bits = this.usedBits;
    if ((bits[word]! & bit) !== 0) return;
    bits[word] = bits[word]! | bit;
    if (this.usedCount === this.usedIds.length) {
      const grown = new Int32Array(this.usedIds.length * 2);
      grown.set(this.usedIds);
      this.usedIds = grown;
    }
    this.usedIds[this.usedCount++] = id;
  }
}
