export { loadTokenizer } from './load-tokenizer.js';
export * from './portable.js';
export { readTokenizerFiles } from './read-files.js';
