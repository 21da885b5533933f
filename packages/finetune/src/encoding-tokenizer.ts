/**
 * The little the encoder needs from a tokenizer. `loadEncodingTokenizer` builds one from a Hugging
 * Face tokenizer directory; tests may pass their own.
 *
 * @example
 * const tok: EncodingTokenizer = { encode: (t) => [...t].map((c) => c.charCodeAt(0)), addsBos: false, eosToken: '\u0000' };
 */
export interface EncodingTokenizer {
  /**
   * Ids of `text` without added BOS/EOS; special-token text inside it (`</s>`) becomes the special
   * token's id, as `tokenizer(text, add_special_tokens=False)` does in Python.
   */
  encode(text: string): number[];
  /** Whether the tokenizer adds BOS when called with special tokens on (Llama: true; GPT-2, OLMo: false). */
  addsBos: boolean;
  /** The BOS id, required when `addsBos` is true. */
  bosId?: number | undefined;
  /** The BOS text (`<s>`), used when BOS is forced into the text (open-instruct's `--add_bos`). */
  bosToken?: string | undefined;
  /** The EOS text appended after every assistant message (`</s>`). */
  eosToken: string;
  /** A fingerprint of the tokenizer files (sha256 hex), recorded in shard manifests. */
  hash?: string | undefined;
  /** A display name, e.g. the directory's basename. */
  name?: string | undefined;
}
