import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { afterAll, expect, it } from 'vitest';
import { loadTokenizer, TokenizerLoadError } from '../src/index.js';

/**
 * transformers 4.x's Llama, CodeLlama, Gemma, Cohere and GPT-NeoX fast tokenizers end `__init__` with
 * `update_post_processor()`, which replaces tokenizer.json's post-processor with `<bos> $A` (where
 * `add_bos_token`, default true, GPT-NeoX's false) and raises `ValueError("add_bos_token = True but
 * bos_token = None")` where the BOS token is null. These directories are fixtures copied to a temporary
 * directory with tokenizer_config.json edited.
 */
const LLAMA2 = sharedPath('fixtures/tokenizers', 'llama2');
const OLMO = sharedPath('fixtures/tokenizers', 'olmo');

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A temporary directory with `from`'s tokenizer.json (`post_processor` replaced where given) and `config`. */
function tokenizerDir(from: string, config: Record<string, unknown>, postProcessor?: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'implicit-it-rebuilt-'));
  dirs.push(dir);
  if (postProcessor === undefined) copyFileSync(join(from, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  else {
    const json = JSON.parse(readFileSync(join(from, 'tokenizer.json'), 'utf8'));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...json, post_processor: postProcessor }));
  }
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

/** llama2's tokenizer_config.json (transformers 4.56's save: added_tokens_decoder, add_bos_token true) with `edit` applied. */
function llamaConfig(edit: Record<string, unknown>, drop: string[] = []): Record<string, unknown> {
  const config = { ...JSON.parse(readFileSync(join(LLAMA2, 'tokenizer_config.json'), 'utf8')), ...edit };
  for (const key of drop) delete config[key];
  return config;
}

async function loadError(dir: string): Promise<TokenizerLoadError> {
  const error = await loadTokenizer(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TokenizerLoadError);
  return error as TokenizerLoadError;
}

describeShared(
  'a tokenizer class that rebuilds its post-processor, as transformers 4.x loads it (fixtures)',
  ['fixtures/tokenizers/llama2/tokenizer.json', 'fixtures/tokenizers/olmo/tokenizer.json'],
  () => {
    it('Llama with bos_token null and add_bos_token true (or left out) is refused, as Python raises', async () => {
      const dir = tokenizerDir(LLAMA2, llamaConfig({ bos_token: null }));
      const error = await loadError(dir);
      expect(error.code).toBe('tokenizers.malformed_file');
      expect(error.field).toBe('bos_token');
      expect(error.message).toBe(
        `${join(dir, 'tokenizer_config.json')} (field bos_token): is null, and LlamaTokenizer adds the BOS token ` +
          `(add_bos_token is true): Python's transformers refuses to load it ("add_bos_token = True but ` +
          'bos_token = None"); name the BOS token in bos_token, or set add_bos_token to false in tokenizer_config.json',
      );
      const byDefault = tokenizerDir(LLAMA2, llamaConfig({ bos_token: null }, ['add_bos_token']));
      expect((await loadError(byDefault)).message).toContain(
        'is null, and LlamaTokenizer adds the BOS token (add_bos_token is true by default for LlamaTokenizer)',
      );
      const gemma = tokenizerDir(
        LLAMA2,
        llamaConfig({ bos_token: null, tokenizer_class: 'GemmaTokenizerFast' }, ['add_bos_token']),
      );
      expect((await loadError(gemma)).message).toContain(
        'is null, and GemmaTokenizer adds the BOS token (add_bos_token is true by default for GemmaTokenizer)',
      );
    });

    it('Llama with bos_token null and add_bos_token false: no BOS, though the file template adds <s>', async () => {
      const tok = await loadTokenizer(
        tokenizerDir(LLAMA2, llamaConfig({ bos_token: null, add_bos_token: false })),
      );
      expect(tok.encode('Hello')).toEqual([15043]);
      expect([tok.bosId, tok.addsBos]).toEqual([undefined, false]);
      expect(tok.buildPrompt({ format: 'tulu', instruction: 'Hi' }).ids[0]).not.toBe(1);
    });

    it("GPT-NeoX's add_bos_token defaults to false: a file template's <s> is dropped unless the config says true", async () => {
      const neox = { tokenizer_class: 'GPTNeoXTokenizer' };
      const tok = await loadTokenizer(tokenizerDir(LLAMA2, llamaConfig(neox, ['add_bos_token'])));
      expect(tok.encode('Hello')).toEqual([15043]);
      expect([tok.bosId, tok.addsBos]).toEqual([1, false]);
      const on = await loadTokenizer(tokenizerDir(LLAMA2, llamaConfig({ ...neox, add_bos_token: true })));
      expect(on.encode('Hello')).toEqual([1, 15043]);
      expect(on.addsBos).toBe(true);
      // bos_token null: nothing to refuse where the class adds none
      const none = await loadTokenizer(
        tokenizerDir(LLAMA2, llamaConfig({ ...neox, bos_token: null }, ['add_bos_token'])),
      );
      expect(none.encode('Hello')).toEqual([15043]);
      expect([none.bosId, none.addsBos]).toEqual([undefined, false]);
      const refused = tokenizerDir(LLAMA2, llamaConfig({ ...neox, bos_token: null, add_bos_token: true }));
      expect((await loadError(refused)).message).toContain(
        'is null, and GPTNeoXTokenizer adds the BOS token (add_bos_token is true)',
      );
    });

    it('a GPT-NeoX tokenizer.json template that appends <|endoftext|> (OLMo-7B-hf) adds nothing unless add_eos_token', async () => {
      const appendsEos = {
        type: 'TemplateProcessing',
        single: [
          { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '<|endoftext|>', type_id: 0 } },
        ],
        pair: [
          { Sequence: { id: 'A', type_id: 0 } },
          { Sequence: { id: 'B', type_id: 1 } },
          { SpecialToken: { id: '<|endoftext|>', type_id: 1 } },
        ],
        special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [50279], tokens: ['<|endoftext|>'] } },
      };
      const config = {
        tokenizer_class: 'GPTNeoXTokenizer',
        bos_token: null,
        eos_token: '<|endoftext|>',
        pad_token: '<|padding|>',
        add_bos_token: false,
        add_eos_token: false,
        added_tokens_decoder: {},
      };
      const tok = await loadTokenizer(tokenizerDir(OLMO, config, appendsEos));
      const plain = tok.encode('Hello world', { addSpecialTokens: false });
      expect(plain).toEqual([12092, 1533]);
      expect(tok.encode('Hello world')).toEqual(plain);
      const withEos = await loadTokenizer(tokenizerDir(OLMO, { ...config, add_eos_token: true }, appendsEos));
      expect(withEos.encode('Hello world')).toEqual([12092, 1533, 50279]);
      // another class keeps the file's template, as Python's PreTrainedTokenizerFast does
      const other = await loadTokenizer(
        tokenizerDir(OLMO, { ...config, tokenizer_class: 'PreTrainedTokenizerFast' }, appendsEos),
      );
      expect(other.encode('Hello world')).toEqual([12092, 1533, 50279]);
    });

    it("the class's own BOS and EOS where the files name none, and a default tokenizer.json lacks refused", async () => {
      const tok = await loadTokenizer(tokenizerDir(LLAMA2, llamaConfig({}, ['bos_token', 'eos_token'])));
      expect([tok.bosId, tok.eosIds, tok.eosSource]).toEqual([1, [2], 'LlamaTokenizer default eos_token']);
      const template = '{{ bos_token }}|{{ eos_token }}|{{ messages[0].content }}';
      expect(
        tok.buildPrompt({ format: 'chat-template', instruction: 'Hi', template, addBos: false }).text,
      ).toBe('<s>|</s>|Hi');
      const dir = tokenizerDir(
        LLAMA2,
        llamaConfig({ tokenizer_class: 'GPTNeoXTokenizer', add_bos_token: true }, ['bos_token']),
      );
      expect((await loadError(dir)).message).toBe(
        `${join(dir, 'tokenizer_config.json')} (field bos_token): names no BOS token, and GPTNeoXTokenizer's default ` +
          '"<|endoftext|>" that add_bos_token adds is not a token of tokenizer.json; name the BOS token in ' +
          'bos_token, or set add_bos_token to false',
      );
    });

    it('an add_bos_token that is not true or false is refused, naming the field', async () => {
      const dir = tokenizerDir(LLAMA2, llamaConfig({ add_bos_token: 'yes' }));
      expect((await loadError(dir)).message).toBe(
        `${join(dir, 'tokenizer_config.json')} (field add_bos_token): must be true or false, found "yes"`,
      );
    });
  },
);
