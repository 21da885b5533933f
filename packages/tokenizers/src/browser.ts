// The package's entry point in browsers (the `browser` export condition): what src/index.ts exports,
// with loadTokenizer and readTokenizerFiles, which read the file system, rejecting with a message that
// says to fetch the files and call createTokenizer. Nothing here imports a Node built-in;
// test/browser.test.ts bundles it for a browser and runs it in Chromium, and holds its exports to
// src/index.ts's.

export { loadTokenizer, readTokenizerFiles } from './browser-files.js';
export { createTokenizer, type TokenizerOptions } from './create-tokenizer.js';
export {
  continuesSequence,
  type Detokenizer,
  type DetokenizerOptions,
  incompleteTail,
} from './detokenizer.js';
export { PromptError, TokenizerInputError, TokenizerLoadError } from './errors.js';
export { type JsonObject, TOKENIZER_FILE_NAMES, type TokenizerFiles } from './files.js';
export type {
  Conversation,
  ConversationFormat,
  Prompt,
  PromptFormat,
  PromptInput,
  SpecialTokensInContent,
  TextRange,
} from './prompt.js';
export { CONVERSATION_FORMATS, documentStartId, PROMPT_FORMATS } from './prompt.js';
export { CONVENTIONAL_EOS_TOKENS } from './special-tokens.js';
export {
  byteLevelDecoder,
  detectPieceEncoding,
  type PieceEncoding,
  pieceBytes,
  pieceSurface,
} from './surfaces.js';
export type { DecodeOptions, EncodeOptions, Tokenizer } from './tokenizer.js';
export { type ChatMessage, tuluParts } from './tulu.js';
export { type AddedTokenInfo, TokenizerVocabulary } from './vocabulary.js';
