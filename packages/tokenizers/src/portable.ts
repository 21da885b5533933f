// Everything the package exports that reads no file (no Node built-in anywhere below it): the Node
// entry (index.ts) adds loadTokenizer and readTokenizerFiles, the browser entry (browser.ts) adds the
// same two names rejecting with a message that says to fetch the files and call createTokenizer.

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
