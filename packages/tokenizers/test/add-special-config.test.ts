import { describeShared, sharedPath } from '@implicit-it/testkit';
import { beforeAll, expect, it } from 'vitest';
import { createTokenizer, readTokenizerFiles, type TokenizerFiles } from '../src/index.js';

/**
 * Python's Llama, CodeLlama, Gemma and GPT-NeoX fast tokenizers rebuild tokenizer.json's
 * post-processor from tokenizer_config.json's `add_bos_token` and `add_eos_token` when they load
 * (`update_post_processor`, transformers PR #23855): `add_bos_token: false` drops the BOS the file's
 * post-processor adds, `add_eos_token: true` appends the EOS token.
 */
describeShared(
  'add_bos_token / add_eos_token of a Llama tokenizer_config.json',
  ['fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    let files: TokenizerFiles;
    beforeAll(async () => {
      files = await readTokenizerFiles(sharedPath('fixtures/tokenizers', 'llama2'));
    });
    const withConfig = (extra: Record<string, unknown>): TokenizerFiles => ({
      ...files,
      tokenizerConfig: { ...files.tokenizerConfig, ...extra },
    });

    it('as shipped (add_bos_token: true, add_eos_token: false): BOS first, no EOS', () => {
      const tok = createTokenizer(files);
      expect(tok.encode('Hello')).toEqual([1, 15043]);
      expect(tok.addsBos).toBe(true);
    });

    it('add_bos_token: false drops the BOS, in encode, addsBos and the tulu prompt', () => {
      const tok = createTokenizer(withConfig({ add_bos_token: false }));
      expect(tok.encode('Hello')).toEqual([15043]);
      expect(tok.encode('<s>Hello')).toEqual([1, 10994]); // a BOS written in the text stays (legacy: false: no ▁ after it)
      expect(tok.addsBos).toBe(false);
      const prompt = tok.buildPrompt({ format: 'tulu', instruction: 'Hi' });
      expect(prompt.ids[0]).not.toBe(1);
      expect(tok.buildPrompt({ format: 'raw', text: 'Hello' }).ids).toEqual([15043]);
    });

    it('add_eos_token: true appends the EOS token when encoding with special tokens', () => {
      const tok = createTokenizer(withConfig({ add_eos_token: true }));
      expect(tok.encode('Hello')).toEqual([1, 15043, 2]);
      expect(tok.encode('Hello', { addSpecialTokens: false })).toEqual([15043]);
      expect(tok.encode('')).toEqual([1, 2]);
      const both = createTokenizer(withConfig({ add_bos_token: false, add_eos_token: true }));
      expect(both.encode('Hello')).toEqual([15043, 2]);
      expect(both.addsBos).toBe(false);
    });
  },
);
