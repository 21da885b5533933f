import type { Tokenizer as InnerTokenizer } from '@huggingface/tokenizers';
import type { Detokenizer, DetokenizerOptions } from './detokenizer.js';
import type { Prompt, PromptInput, TextRange } from './prompt.js';
import type { PieceEncoding } from './surfaces.js';
import type { TokenizerVocabulary } from './vocabulary.js';

/**
 * Options of `Tokenizer.encode`.
 *
 * @example
 * const noBos: EncodeOptions = { addSpecialTokens: false };
 * tok.encode('Hello'); // [1, 15043] with Llama-2
 * tok.encode('Hello', noBos); // [15043]
 */
export interface EncodeOptions {
  /** Add the tokenizer's special tokens (Llama-2: BOS), as Hugging Face does by default. Default true. */
  addSpecialTokens?: boolean | undefined;
  /**
   * Character ranges `[start, end)` of `text` where special tokens are not recognised: a special
   * token's text there (`<|im_end|>`) is tokenized as ordinary text, as Hugging Face does with
   * `split_special_tokens=True`; elsewhere they are special tokens as usual. Used for message contents
   * by `buildPrompt` (see `PromptInput.specialTokensInContent`); `[[0, text.length]]` reads the whole
   * text literally.
   */
  literalRanges?: readonly TextRange[] | undefined;
}

/**
 * Options of `Tokenizer.decode`.
 *
 * @example
 * const options: DecodeOptions = { skipSpecialTokens: true };
 * tok.decode([1, 15043]); // '<s> Hello' with Llama-2
 * tok.decode([1, 15043], options); // 'Hello'
 */
export interface DecodeOptions {
  /** Leave special tokens (`</s>`, `<|im_end|>`) out of the text. Default false. */
  skipSpecialTokens?: boolean | undefined;
  /**
   * Apply Hugging Face's `clean_up_tokenization_spaces` (`"a ."` -> `"a."`). Default false, so that
   * streamed text (`createDetokenizer`) always equals `decode`: the clean-up can remove a space that
   * was already streamed.
   */
  cleanUpTokenizationSpaces?: boolean | undefined;
}

/**
 * A loaded Hugging Face tokenizer, adapted for implicit-it: encode/decode, the rules' vocabulary,
 * special ids, prompt building with the rules' scope start, and streaming detokenization.
 *
 * @example
 * import { compileRules } from '@implicit-it/rules';
 *
 * const tok = await loadTokenizer('./models/llama2');
 * const prompt = tok.buildPrompt({ format: 'tulu', instruction: 'Give me a recipe for tiramisu.' });
 * prompt.scopeStart; // 7
 * const rules = compileRules('hewitt2024', tok.vocabulary);
 */
export interface Tokenizer {
  /** The directory (or label) the tokenizer was loaded from. */
  readonly source: string;
  /** How vocabulary pieces spell text: `sentencepiece`, `byte-level` or `plain`. */
  readonly pieceEncoding: PieceEncoding;
  /** The rules' `Vocabulary` (built on first access); `size` counts every id, added tokens included. */
  readonly vocabulary: TokenizerVocabulary;
  /**
   * How many ids the tokenizer has (`vocabulary.size`, without building the vocabulary): ids are
   * `[0, size)`. A model's LM head may be wider (OLMo's 50304 logits for 50280 ids).
   */
  readonly size: number;
  /**
   * EOS ids: generation_config.json, else the `eos_token` of tokenizer_config.json or
   * special_tokens_map.json, else the EOS of a Llama, Gemma, Cohere or GPT-NeoX `tokenizer_class`,
   * else a conventional special token. Where both files name a special token,
   * they are read as transformers reads them: a tokenizer_config.json with `added_tokens_decoder`
   * (transformers 4.34 or later) alone, an older one with special_tokens_map.json's entries in place of its own.
   */
  readonly eosIds: readonly number[];
  /** Where `eosIds` came from (e.g. `generation_config.json eos_token_id`), or undefined when none was found. */
  readonly eosSource: string | undefined;
  /**
   * BOS id: `bos_token` of tokenizer_config.json or special_tokens_map.json (read as for `eosIds`),
   * else the BOS of a Llama, Gemma, Cohere or GPT-NeoX `tokenizer_class` (Llama's `<s>`), else the
   * token tokenizer.json's post-processor adds first, else generation_config.json's
   * `bos_token_id`. Undefined when the tokenizer has none: `bos_token: null` (OLMo, Qwen2.5) wins over
   * generation_config.json.
   */
  readonly bosId: number | undefined;
  /**
   * Whether encoding with special tokens (`addSpecialTokens`, as Hugging Face's `tokenizer(text)`)
   * puts `bosId` first: the post-processor of tokenizer.json adds it (Llama-2, Llama-3: true;
   * GPT-2, SmolLM2, OLMo, Qwen2.5: false), or tokenizer_config.json says `add_bos_token: true`. For a
   * `tokenizer_class` of Llama, CodeLlama, Gemma, Cohere or GPT-NeoX, `add_bos_token` alone decides
   * (default true, GPT-NeoX's false) and `add_eos_token: true` makes `encode` append the EOS token, as
   * those Python tokenizers rebuild their post-processor when they load. The `tulu` prompt starts with BOS by default
   * where it does, as the paper's pipeline (a prompt written without BOS, tokenized with special
   * tokens) gets.
   */
  readonly addsBos: boolean;
  /**
   * Padding id: generation_config.json's `pad_token_id` (-1 meaning none), else the `pad_token` of the
   * tokenizer files, else the first of `eosIds` (the `eosIds` option where given), else 0.
   */
  readonly padId: number;
  /**
   * The jinja chat template (the `chatTemplate` option, else chat_template.jinja, else
   * tokenizer_config.json's `chat_template`), if any. Where that field is a list of named templates,
   * the one named `default`; none when no template is so named (as Hugging Face's
   * `apply_chat_template`, which then asks for a name: pass `template` to `buildPrompt`).
   */
  readonly chatTemplate: string | undefined;
  /**
   * The names of tokenizer_config.json's named chat templates (`chat_template` as a list of
   * `{ name, template }`), `[]` for a single template. The `chatTemplate` option and `buildPrompt`'s
   * `template` accept a name as well as a template, as `apply_chat_template(chat_template=...)` does.
   */
  readonly chatTemplateNames: readonly string[];
  /** The contents of the special added tokens (`</s>`, `<|im_end|>`), in tokenizer.json's order. */
  readonly specialTokenTexts: readonly string[];
  /**
   * The underlying `@huggingface/tokenizers` `Tokenizer` (the one transformers.js wraps), for
   * anything this adapter does not cover.
   */
  readonly inner: InnerTokenizer;

  /** Token ids of `text`. */
  encode(text: string, options?: EncodeOptions): number[];
  /** The text of `ids` (validated: integers in `[0, vocabulary.size)`). */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  /** The vocabulary piece of `id` (`▁I`, `ĠI`, `</s>`), or undefined. */
  idToToken(id: number): string | undefined;
  /** The id of a vocabulary piece or added token, or undefined. */
  tokenToId(token: string): number | undefined;
  /** Whether `id` is a special added token (skipped by `skipSpecialTokens`). */
  isSpecial(id: number): boolean;
  /**
   * The UTF-8 bytes token `id` stands for: exact also for a token that holds part of a multi-byte
   * character, whose `decode([id])` is U+FFFD. Added tokens give their content's bytes.
   */
  tokenBytes(id: number): Uint8Array;
  /**
   * The text token `id` adds where it follows other text, as log-probs and traces show a token: its
   * bytes as UTF-8, so SentencePiece's `▁Hello` is " Hello" (`decode([id])` drops that space, as it
   * does for the first token of any text) and part of a character is U+FFFD. An id with no piece (a
   * gap in tokenizer.json's ids) gives `decode([id])`.
   */
  tokenText(id: number): string;
  /** Prompt ids with the rules' scope start S and prompt length P (see `PromptInput`). */
  buildPrompt(input: PromptInput): Prompt;
  /** A streaming detokenizer whose deltas join to `decode(ids, options)`. */
  createDetokenizer(options?: DetokenizerOptions): Detokenizer;
}
