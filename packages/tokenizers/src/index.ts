export { createTokenizer, type TokenizerOptions } from './create-tokenizer.js';
export {
  continuesSequence,
  type Detokenizer,
  type DetokenizerOptions,
  incompleteTail,
} from './detokenizer.js';
export { PromptError, TokenizerInputError, TokenizerLoadError } from './errors.js';
export { type JsonObject, TOKENIZER_FILE_NAMES, type TokenizerFiles } from './files.js';
export { loadTokenizer } from './load-tokenizer.js';
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
export { readTokenizerFiles } from './read-files.js';
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
