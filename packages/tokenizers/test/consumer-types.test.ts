import { resolve } from 'node:path';
import { typecheckConsumer } from '@implicit-it/testkit';
import { expect, it } from 'vitest';

// A TypeScript consumer with exactOptionalPropertyTypes hands on its own optional settings
// (`T | undefined`): every option type the package takes must accept them, as the functions do.
it('optional options and prompt fields take undefined under exactOptionalPropertyTypes', () => {
  const source = `
import {
  createTokenizer,
  type DecodeOptions,
  type DetokenizerOptions,
  type EncodeOptions,
  loadTokenizer,
  type PromptInput,
  type TokenizerFiles,
  type TokenizerOptions,
} from '@implicit-it/tokenizers';

declare const settings: {
  addBos: boolean | undefined;
  template: string | undefined;
  special: boolean | undefined;
  mode: 'text' | 'parse' | undefined;
  eosIds: number[] | undefined;
  chatTemplate: string | undefined;
  config: Record<string, unknown> | undefined;
  context: number[] | undefined;
};
const instruction = 'Name a color.';
const loading: TokenizerOptions = { eosIds: settings.eosIds, chatTemplate: settings.chatTemplate };
const tok = await loadTokenizer('dir', loading);
const files: TokenizerFiles = {
  source: 'inline',
  tokenizerJson: {},
  tokenizerConfig: settings.config,
  specialTokensMap: undefined,
  generationConfig: undefined,
  chatTemplate: settings.chatTemplate,
};
createTokenizer(files, { eosIds: undefined, chatTemplate: undefined });
tok.buildPrompt({ format: 'tulu', instruction, addBos: settings.addBos });
tok.buildPrompt({ format: 'tulu', instruction, addBos: undefined, specialTokensInContent: settings.mode, messages: undefined });
const chat: PromptInput = {
  format: 'chat-template',
  messages: [{ role: 'user', content: instruction }],
  instruction: undefined,
  addGenerationPrompt: settings.special,
  template: settings.template,
  addBos: settings.addBos,
  specialTokensInContent: settings.mode,
};
tok.buildPrompt(chat);
tok.buildPrompt({ format: 'raw', text: instruction, addSpecialTokens: settings.special });
const encoding: EncodeOptions = { addSpecialTokens: settings.special, literalRanges: undefined };
const ids = tok.encode(instruction, encoding);
const decoding: DecodeOptions = { skipSpecialTokens: settings.special, cleanUpTokenizationSpaces: undefined };
tok.decode(ids, decoding);
const streaming: DetokenizerOptions = { skipSpecialTokens: settings.special, context: settings.context };
tok.createDetokenizer(streaming).push(ids[0] ?? 0);
`;
  expect(typecheckConsumer(resolve(import.meta.dirname, '..'), source)).toBe('');
}, 120_000);
