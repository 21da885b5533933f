import { RuleInputError } from './errors.js';
import { shownValue, unknownKey } from './option-names.js';

/**
 * What the rules need to know about a tokenizer. Rules are written on surface text (the string a
 * token stands for, a leading space written as `" "`); a `Vocabulary` resolves that text to ids.
 * `@implicit-it/tokenizers` implements it for Hugging Face tokenizers.
 *
 * @example
 * const surfaces = ['</s>', ' I', '\n'];
 * const vocab: Vocabulary = {
 *   size: surfaces.length,
 *   eosIds: [0],
 *   idsOf: (surface) => surfaces.flatMap((s, id) => (s === surface ? [id] : [])),
 *   surfaceOf: (id) => surfaces[id],
 * };
 */
export interface Vocabulary {
  /** Number of token ids (ids are `0 .. size - 1`). */
  readonly size: number;
  /** End-of-sequence id(s); the EOS rule scores each of them. */
  readonly eosIds: readonly number[];
  /** Every id whose surface text is exactly `surface` (empty when there is none). */
  idsOf(surface: string): readonly number[];
  /** The surface text of `id`, or `undefined` when the id has none (unknown id, special token). */
  surfaceOf(id: number): string | undefined;
  /**
   * Optional: the piece of `id` as the tokenizer's vocabulary spells it (`▁I`, `<0x0A>`, `</s>`). The
   * start rule scores it where a token has no surface text, and for byte-fallback pieces, as the
   * reference code scores its vocabulary's raw pieces.
   */
  pieceOf?: ((id: number) => string | undefined) | undefined;
}

const VOCABULARY_OPTIONS = ['surfaces', 'eosIds', 'pieceOf'] as const;

/**
 * Builds a `Vocabulary` from the surface text of every id, and optionally `pieceOf` (see `Vocabulary`).
 *
 * @example
 * const vocab = createVocabulary({ surfaces: ['<eos>', ' I', 'I', '\n'], eosIds: [0] });
 * vocab.idsOf(' I'); // [1]
 */
export function createVocabulary(options: {
  surfaces: readonly (string | null | undefined)[];
  eosIds: readonly number[];
  /** The piece of each id as the tokenizer spells it; the start rule reads it (see `Vocabulary.pieceOf`). */
  pieceOf?: ((id: number) => string | undefined) | undefined;
}): Vocabulary {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new RuleInputError(
      `createVocabulary: expected { surfaces, eosIds }, got ${Array.isArray(options) ? 'an array (pass it as { surfaces: [...], eosIds: [...] })' : shownValue(options)}`,
    );
  }
  const unknown = unknownKey(options, VOCABULARY_OPTIONS);
  if (unknown !== undefined)
    throw new RuleInputError(
      `createVocabulary: unknown option ${JSON.stringify(unknown.key)}${unknown.didYouMean}; expected ${VOCABULARY_OPTIONS.join(', ')}`,
    );
  const { surfaces, eosIds, pieceOf } = options;
  if (!Array.isArray(surfaces)) {
    throw new RuleInputError(
      `createVocabulary: surfaces must be an array of each id's surface text (string, or null for none), got ${shownValue(surfaces)}`,
    );
  }
  if (pieceOf !== undefined && typeof pieceOf !== 'function')
    throw new RuleInputError(
      `createVocabulary: pieceOf must be a function (id) => piece, got ${shownValue(pieceOf)}`,
    );
  checkEosIds('createVocabulary', eosIds, surfaces.length);
  const index = new Map<string, number[]>();
  surfaces.forEach((surface: unknown, id) => {
    if (surface === null || surface === undefined) return; // no surface (null in JSON vocab lists)
    if (typeof surface !== 'string')
      throw new RuleInputError(
        `createVocabulary: surfaces[${id}] must be a string, or null for none, got ${shownValue(surface)}`,
      );
    const ids = index.get(surface);
    if (ids) ids.push(id);
    else index.set(surface, [id]);
  });
  return {
    size: surfaces.length,
    eosIds: [...eosIds],
    idsOf: (surface) => index.get(surface) ?? [],
    surfaceOf: (id) => surfaces[id] ?? undefined,
    ...(pieceOf ? { pieceOf } : {}),
  };
}

/** Checks a vocabulary's EOS ids: a list of integers in [0, size). */
function checkEosIds(fn: string, eosIds: unknown, size: number): asserts eosIds is readonly number[] {
  if (!Array.isArray(eosIds)) {
    throw new RuleInputError(
      `${fn}: eosIds must be an array of token ids (e.g. [2]), got ${shownValue(eosIds)}`,
    );
  }
  eosIds.forEach((id: unknown, i) => {
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      throw new RuleInputError(`${fn}: eosIds[${i}] must be an integer token id, got ${shownValue(id)}`);
    }
    if (id < 0 || id >= size) {
      throw new RuleInputError(`${fn}: eos id ${id} is outside the vocabulary [0, ${size})`);
    }
  });
}

/**
 * A vocabulary that knows only its size and EOS ids: for rule sets whose entries name ids directly
 * (e.g. the Llama-2 ids of the reference code). Surface lookups find nothing.
 *
 * @example
 * const llama2 = idVocabulary({ size: 32000, eosIds: [2] });
 */
export function idVocabulary(options: { size: number; eosIds: readonly number[] }): Vocabulary {
  if (typeof options !== 'object' || options === null) {
    throw new RuleInputError(`idVocabulary: expected { size, eosIds }, got ${shownValue(options)}`);
  }
  const { size, eosIds } = options;
  if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0) {
    throw new RuleInputError(`idVocabulary: size must be a positive integer, got ${shownValue(size)}`);
  }
  checkEosIds('idVocabulary', eosIds, size);
  return { size, eosIds: [...eosIds], idsOf: () => [], surfaceOf: () => undefined };
}
