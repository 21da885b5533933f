import { builtinTrainingText } from './corpus.js';
import { tokenizerConfigJson, tokenizerJson } from './tokenizer-files.js';
import { type ByteLevelBpe, trainByteLevelBpe } from './train-bpe.js';

/**
 * The files of a tokenizer, by file name, ready to write into a model directory.
 *
 * @example
 * const tok: TokenizerFiles = tinyTokenizer();
 * [tok.bosTokenId, tok.eosTokenId, tok.padTokenId]; // [1, 2, 0]
 */
export interface TokenizerFiles {
  /** File name to its text, or to a file to copy. */
  files: Record<string, string | { path: string }>;
  /** Number of ids the tokenizer can produce (highest id + 1). */
  vocabSize: number;
  /** Ids of the tokenizer's BOS / EOS / PAD tokens, when it names them. */
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
  /**
   * The tokenizer has no BOS (`bos_token: null` in tokenizer_config.json, as OLMo's and Qwen2.5's
   * say, or none named nor added by its post-processor).
   */
  noBos?: boolean;
}

let cached: ByteLevelBpe | undefined;

/**
 * The tiny preset's tokenizer: byte-level BPE trained on {@link BUILTIN_CORPUS} plus Tulu chat turns,
 * 512 ids (`<|endoftext|>`=0, `<s>`=1 BOS, `</s>`=2 EOS, 256 bytes, 253 merges); `<|user|>` and
 * `<|assistant|>` are ordinary text. Trained once per process (a few milliseconds).
 *
 * @example
 * const { files, vocabSize } = tinyTokenizer(); // files['tokenizer.json'], vocabSize 512
 */
export function tinyTokenizer(modelMaxLength = 512): TokenizerFiles {
  cached ??= trainByteLevelBpe(builtinTrainingText());
  const bpe = cached;
  const roles = { bos: '<s>', eos: '</s>', pad: '<|endoftext|>', unk: '<|endoftext|>' };
  return {
    files: {
      'tokenizer.json': `${JSON.stringify(tokenizerJson(bpe), null, 2)}\n`,
      'tokenizer_config.json': `${JSON.stringify(tokenizerConfigJson(bpe, roles, modelMaxLength), null, 2)}\n`,
    },
    vocabSize: bpe.vocab.size,
    bosTokenId: bpe.vocab.get(roles.bos) ?? null,
    eosTokenId: bpe.vocab.get(roles.eos) ?? null,
    padTokenId: bpe.vocab.get(roles.pad) ?? null,
  };
}
