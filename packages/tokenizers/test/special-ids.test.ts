import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createTokenizer,
  loadTokenizer,
  readTokenizerFiles,
  type TokenizerFiles,
  TokenizerLoadError,
} from '../src/index.js';

const SMOLLM = sharedPath('fixtures/tokenizers', 'smollm');
const LLAMA2 = sharedPath('fixtures/tokenizers', 'llama2');

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * A directory with llama2's tokenizer.json and its tokenizer_config.json / special_tokens_map.json
 * without a pad token (as a LLaMA-1 conversion ships them), and `generation` as generation_config.json.
 */
function llamaOneDir(generation: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'implicit-it-tok-'));
  dirs.push(dir);
  copyFileSync(join(LLAMA2, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  for (const name of ['tokenizer_config.json', 'special_tokens_map.json']) {
    const { pad_token: _, ...json } = JSON.parse(readFileSync(join(LLAMA2, name), 'utf8'));
    writeFileSync(join(dir, name), JSON.stringify(json));
  }
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(generation));
  return dir;
}

/** The `bos_token` a chat template sees (transformers passes the special tokens it has), or "none". */
const BOS_TEMPLATE =
  '{% if bos_token is defined %}{{ bos_token }}{% else %}none{% endif %}|{{ messages[0].content }}';
const templateBos = (files: TokenizerFiles) =>
  createTokenizer(files, { chatTemplate: BOS_TEMPLATE })
    .buildPrompt({ format: 'chat-template', instruction: 'Hi' })
    .text.replace(/\|Hi$/, '');

describeShared(
  'special token ids as transformers reads the tokenizer files (fixtures)',
  ['fixtures/tokenizers/smollm/tokenizer.json'],
  () => {
    let smollm: TokenizerFiles;
    beforeAll(async () => {
      smollm = await readTokenizerFiles(SMOLLM);
    });
    /** smollm's files with `config` merged into its tokenizer_config.json, and no generation_config.json. */
    const withConfig = (config: Record<string, unknown>, drop: string[] = []): TokenizerFiles => {
      const own = { ...smollm.tokenizerConfig, ...config };
      for (const key of drop) delete own[key];
      return { ...smollm, tokenizerConfig: own, generationConfig: undefined };
    };

    it('bos_token: null in a tokenizer_config.json with added_tokens_decoder means no BOS, whatever special_tokens_map.json says', () => {
      // smollm's tokenizer_config.json has added_tokens_decoder (transformers >= 4.34 saves it), and
      // special_tokens_map.json names <|im_start|> as BOS: transformers then reads tokenizer_config.json alone
      expect(smollm.tokenizerConfig?.added_tokens_decoder).toBeDefined();
      expect(smollm.specialTokensMap?.bos_token).toBe('<|im_start|>');
      const files = withConfig({ bos_token: null });
      const tok = createTokenizer(files);
      expect([tok.bosId, tok.addsBos]).toEqual([undefined, false]);
      expect(templateBos(files)).toBe('none');
      // as shipped: <|im_start|> (id 1)
      expect(createTokenizer(withConfig({})).bosId).toBe(1);
      expect(templateBos(withConfig({}))).toBe('<|im_start|>');
    });

    it('an older tokenizer_config.json (no added_tokens_decoder) has its special tokens replaced by special_tokens_map.json', () => {
      // transformers < 4.34 and the legacy branch of later ones set every key of special_tokens_map.json
      const legacyNull = withConfig({ bos_token: null }, ['added_tokens_decoder']);
      expect(createTokenizer(legacyNull).bosId).toBe(1);
      expect(templateBos(legacyNull)).toBe('<|im_start|>');
      // a conflict: special_tokens_map.json's <|im_end|> wins over tokenizer_config.json's <|endoftext|>
      const legacy = withConfig({ eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' }, [
        'added_tokens_decoder',
      ]);
      const old = createTokenizer(legacy);
      expect([old.eosIds, old.eosSource, old.padId]).toEqual([[2], 'special_tokens_map.json eos_token', 2]);
      // with added_tokens_decoder, tokenizer_config.json's
      const modern = createTokenizer(withConfig({ eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' }));
      expect([modern.eosIds, modern.eosSource, modern.padId]).toEqual([
        [0],
        'tokenizer_config.json eos_token',
        0,
      ]);
      // a key tokenizer_config.json leaves out is special_tokens_map.json's either way
      const without = createTokenizer(withConfig({}, ['eos_token']));
      expect([without.eosIds, without.eosSource]).toEqual([[2], 'special_tokens_map.json eos_token']);
    });

    it("a Sequence post-processor's TemplateProcessing names the BOS (a Llama-3 style tokenizer.json alone)", () => {
      // Llama-3: post_processor Sequence [ByteLevel, TemplateProcessing <|begin_of_text|> $A]; here
      // smollm's tokenizer.json with <|im_start|> (id 1) in that place, and no other file naming a BOS
      const template = {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [
          { SpecialToken: { id: '<|im_start|>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '<|im_start|>', type_id: 1 } },
          { Sequence: { id: 'B', type_id: 1 } },
        ],
        special_tokens: { '<|im_start|>': { id: '<|im_start|>', ids: [1], tokens: ['<|im_start|>'] } },
      };
      const byteLevel = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
      const files: TokenizerFiles = {
        source: 'built:smollm-llama3-post-processor',
        tokenizerJson: {
          ...smollm.tokenizerJson,
          post_processor: { type: 'Sequence', processors: [byteLevel, template] },
        },
      };
      const tok = createTokenizer(files);
      const plain = tok.encode('Hello', { addSpecialTokens: false });
      expect(tok.encode('Hello')).toEqual([1, ...plain]);
      expect([tok.bosId, tok.addsBos]).toEqual([1, true]);
      const tulu = tok.buildPrompt({ format: 'tulu', instruction: 'Hi' });
      expect(tulu.ids[0]).toBe(1);
      expect(tulu.ids.slice(1)).toEqual(
        tok.encode('<|user|>\nHi\n<|assistant|>\n', { addSpecialTokens: false }),
      );
      // a bare TemplateProcessing gives the same
      const bare = createTokenizer({
        ...files,
        tokenizerJson: { ...files.tokenizerJson, post_processor: template },
      });
      expect([bare.bosId, bare.addsBos]).toEqual([1, true]);
    });
  },
);

describeShared(
  'generation_config.json pad_token_id (fixtures)',
  ['fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    it('pad_token_id -1 (LLaMA-1 conversions) means no pad token: padId falls back to the EOS', async () => {
      const minusOne = await loadTokenizer(
        llamaOneDir({ bos_token_id: 1, eos_token_id: 2, pad_token_id: -1 }),
      );
      const missing = await loadTokenizer(llamaOneDir({ bos_token_id: 1, eos_token_id: 2 }));
      expect([minusOne.padId, minusOne.eosIds, minusOne.bosId]).toEqual([2, [2], 1]);
      expect(missing.padId).toBe(2);
      // a real pad id still wins
      expect((await loadTokenizer(llamaOneDir({ eos_token_id: 2, pad_token_id: 0 }))).padId).toBe(0);
    });

    it("with no pad token named, padId is the first of the caller's eosIds, as the tokenizer's eosIds", async () => {
      const dir = llamaOneDir({ bos_token_id: 1, eos_token_id: 2, pad_token_id: -1 });
      const tok = await loadTokenizer(dir, { eosIds: [13, 2] });
      expect([tok.eosIds, tok.eosSource, tok.padId]).toEqual([[13, 2], 'options.eosIds', 13]);
      // a pad id the files name still wins: llama2's generation_config.json pad_token_id 0, else its
      // tokenizer_config.json pad_token </s>
      expect((await loadTokenizer(LLAMA2, { eosIds: [13] })).padId).toBe(0);
      const files = { ...(await readTokenizerFiles(LLAMA2)), generationConfig: undefined };
      expect(createTokenizer(files, { eosIds: [13] }).padId).toBe(2);
    });

    it('another negative pad_token_id is still refused, naming the file and field', async () => {
      const dir = llamaOneDir({ eos_token_id: 2, pad_token_id: -2 });
      const error = await loadTokenizer(dir).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TokenizerLoadError);
      expect((error as TokenizerLoadError).message).toBe(
        `${join(dir, 'generation_config.json')} (field pad_token_id): must be a token id or a list of token ids in [0, 32000), found -2`,
      );
    });
  },
);
