import { describeShared, sharedPath } from '@implicit-it/testkit';
import { beforeAll, expect, it } from 'vitest';
import { createTokenizer, readTokenizerFiles, type TokenizerFiles } from '../src/index.js';

const SMOLLM = sharedPath('fixtures/tokenizers', 'smollm');

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
  },
);
