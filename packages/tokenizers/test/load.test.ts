import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ImplicitItError } from '@implicit-it/rules';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createTokenizer,
  loadTokenizer,
  readTokenizerFiles,
  TokenizerInputError,
  TokenizerLoadError,
} from '../src/index.js';
import {
  byteLevelFiles,
  CHATML_TEMPLATE,
  sentencePieceFiles,
  writeTokenizerDir,
} from './helpers/build-tokenizer.js';

const dirs: string[] = [];
const tempDir = (files = sentencePieceFiles()) => {
  const dir = writeTokenizerDir(files);
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function loadError(dir: string): Promise<TokenizerLoadError> {
  try {
    await loadTokenizer(dir);
  } catch (error) {
    expect(error).toBeInstanceOf(TokenizerLoadError);
    expect(ImplicitItError.isInstance(error)).toBe(true);
    return error as TokenizerLoadError;
  }
  throw new Error(`loading ${dir} did not fail`);
}

describe('loadTokenizer from a directory (built tokenizers)', () => {
  it('loads a SentencePiece dir and a byte-level dir with chat_template.jinja', async () => {
    const sp = await loadTokenizer(tempDir());
    expect(sp.encode('Hello world')).toEqual([1, 330, 335]);
    const files = byteLevelFiles('pair');
    delete files.tokenizerConfig!.chat_template;
    files.chatTemplate = CHATML_TEMPLATE;
    const bl = await loadTokenizer(tempDir(files));
    expect(bl.chatTemplate).toBe(CHATML_TEMPLATE);
    expect(bl.encode(' the world')).toEqual([258, 286]);
  });

  it('EOS order: generation_config.json (a list), then tokenizer_config.json, then special_tokens_map.json', async () => {
    const files = sentencePieceFiles();
    files.generationConfig = { eos_token_id: [2, 0], bos_token_id: 1, pad_token_id: 0 };
    const a = await loadTokenizer(tempDir(files));
    expect([a.eosIds, a.eosSource, a.bosId, a.padId]).toEqual([
      [2, 0],
      'generation_config.json eos_token_id',
      1,
      0,
    ]);
    expect(a.vocabulary.eosIds).toEqual([2, 0]);

    const b = sentencePieceFiles();
    b.tokenizerConfig = { tokenizer_class: 'LlamaTokenizer' };
    b.specialTokensMap = { eos_token: { content: '</s>', lstrip: false }, bos_token: '<s>' };
    const loaded = await loadTokenizer(tempDir(b));
    expect([loaded.eosIds, loaded.eosSource, loaded.bosId]).toEqual([
      [2],
      'special_tokens_map.json eos_token',
      1,
    ]);

    const c = sentencePieceFiles();
    delete c.tokenizerConfig;
    const bare = createTokenizer(c);
    // No config at all: a conventional special token; BOS from the post-processor template.
    expect([bare.eosIds, bare.eosSource, bare.bosId, bare.padId]).toEqual([
      [2],
      'tokenizer.json special token </s>',
      1,
      2,
    ]);
    expect(createTokenizer(c, { eosIds: [0, 2] }).eosIds).toEqual([0, 2]);
  });

  it("bos_token: null in tokenizer_config.json wins over generation_config.json's bos_token_id (a Qwen2.5 directory)", async () => {
    // Qwen2.5: bos_token null in tokenizer_config.json, bos_token_id in generation_config.json (and
    // config.json); Python's tokenizer has no BOS and tokenizer(prompt) adds none
    const files = byteLevelFiles();
    const endoftext = (files.tokenizerJson.added_tokens as { id: number }[])[0]!.id;
    files.tokenizerConfig = {
      ...files.tokenizerConfig,
      bos_token: null,
      eos_token: '<|endoftext|>',
      add_bos_token: false,
    };
    files.generationConfig = { bos_token_id: endoftext, eos_token_id: endoftext };
    const tok = await loadTokenizer(tempDir(files));
    expect([tok.bosId, tok.eosIds]).toEqual([undefined, [endoftext]]);
    const tulu = tok.buildPrompt({ format: 'tulu', instruction: 'the world' });
    expect(tulu.ids).toEqual(tok.encode('<|user|>\nthe world\n<|assistant|>\n', { addSpecialTokens: false }));
    // asked for, the BOS stand-in is the EOS, as for OLMo
    const asked = tok.buildPrompt({ format: 'tulu', instruction: 'the world', addBos: true });
    expect(asked.ids).toEqual([endoftext, ...tulu.ids]);
  });

  it('a missing directory or tokenizer.json names the path and the fix', async () => {
    const missing = join(tmpdir(), 'implicit-it-no-such-dir');
    const e1 = await loadError(missing);
    expect(e1.code).toBe('tokenizers.missing_file');
    expect(e1.message).toBe(
      `${missing}: the tokenizer directory does not exist; pass a local Hugging Face model or tokenizer directory`,
    );
    const empty = mkdtempSync(join(tmpdir(), 'implicit-it-empty-'));
    dirs.push(empty);
    const e2 = await loadError(empty);
    expect(e2.file).toBe(join(empty, 'tokenizer.json'));
    expect(e2.message).toMatch(/tokenizer\.json: is missing; only fast-tokenizer directories are supported/);
    const file = join(empty, 'not-a-dir.txt');
    writeFileSync(file, 'x');
    expect((await loadError(file)).message).toBe(
      `${file}: is a file, not a directory; pass the directory that holds tokenizer.json`,
    );
  });

  it('a dir that is no string is refused as such, not reported as a directory that does not exist', async () => {
    for (const [dir, shown] of [
      [undefined, 'undefined'],
      [42, '42'],
      [{ dir: 'x' }, '{"dir":"x"}'],
    ] as const) {
      await expect(loadTokenizer(dir as never)).rejects.toThrow(
        new TokenizerInputError(
          `loadTokenizer: dir must be a path to a tokenizer directory (a string), got ${shown}`,
        ),
      );
    }
    const url = pathToFileURL(tempDir());
    await expect(loadTokenizer(url as never)).rejects.toThrow(
      new TokenizerInputError(
        `loadTokenizer: dir must be a path (a string), got the URL ${url.href}: pass fileURLToPath(url) (from node:url)`,
      ),
    );
    await expect(readTokenizerFiles(undefined as never)).rejects.toThrow(
      new TokenizerInputError(
        'readTokenizerFiles: dir must be a path to a tokenizer directory (a string), got undefined',
      ),
    );
    expect((await loadTokenizer(fileURLToPath(url))).size).toBe(352);
  });

  it('eosIds and chatTemplate options of the wrong type are refused, naming the option', () => {
    const files = sentencePieceFiles();
    // a lone id used to fail as "options.eosIds is not iterable"
    expect(() => createTokenizer(files, { eosIds: 2 as never })).toThrow(
      new TokenizerInputError('eosIds: must be an array of token ids (e.g. [2]), got 2'),
    );
    // a string used to be read character by character ("2" refused as a token id)
    expect(() => createTokenizer(files, { eosIds: '2' as never })).toThrow(
      new TokenizerInputError('eosIds: must be an array of token ids (e.g. [2]), got "2"'),
    );
    expect(() => createTokenizer(files, { chatTemplate: 5 as never })).toThrow(
      new TokenizerInputError(
        "chatTemplate: must be a jinja template or the name of one of tokenizer_config.json's named templates (a string), got 5",
      ),
    );
    expect(createTokenizer(files, { eosIds: [2, 1] }).eosIds).toEqual([2, 1]);
  });

  it('malformed JSON names the file and the parse error', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tokenizer_config.json'), '{"eos_token": ');
    const e = await loadError(dir);
    expect(e.code).toBe('tokenizers.malformed_file');
    expect(e.file).toBe(join(dir, 'tokenizer_config.json'));
    expect(e.message).toMatch(/tokenizer_config\.json: is not valid JSON \(.+\); restore the file/);
    writeFileSync(join(dir, 'tokenizer_config.json'), '[1, 2]');
    expect((await loadError(dir)).message).toBe(
      `${join(dir, 'tokenizer_config.json')}: must hold a JSON object, found an array`,
    );
  });

  it('malformed fields name the file and the field', async () => {
    const cases: [(f: ReturnType<typeof sentencePieceFiles>) => void, string, string][] = [
      [
        (f) => delete f.tokenizerJson.model,
        'model',
        'must be an object (the tokenizer model: type, vocab, merges)',
      ],
      [
        (f) => ((f.tokenizerJson.model as { merges: unknown[] }).merges[3] = 42),
        'model.merges[3]',
        'must be "a b" or ["a", "b"], found 42',
      ],
      [
        (f) => ((f.tokenizerJson.added_tokens as unknown[])[1] = { id: 'x' }),
        'added_tokens[1]',
        'must be { id: integer, content: string }, found {"id":"x"}',
      ],
      [
        (f) => (f.generationConfig = { eos_token_id: 99999 }),
        'eos_token_id',
        'must be a token id or a list of token ids in [0, 352), found 99999',
      ],
      [
        (f) => (f.tokenizerConfig!.eos_token = '<|end|>'),
        'eos_token',
        'names "<|end|>", which is not a token of tokenizer.json; fix the field or remove it',
      ],
      [
        (f) => (f.tokenizerConfig!.chat_template = 7),
        'chat_template',
        'must be a jinja template string or a list of { name, template }, found number',
      ],
    ];
    for (const [mutate, field, message] of cases) {
      const files = sentencePieceFiles();
      mutate(files);
      const dir = tempDir(files);
      const e = await loadError(dir);
      expect([e.code, e.field]).toEqual(['tokenizers.malformed_file', field]);
      expect(e.message.endsWith(`(field ${field}): ${message}`)).toBe(true);
    }
  });

  it('a tokenizer model @huggingface/tokenizers cannot build is reported as unsupported', () => {
    const files = sentencePieceFiles();
    files.tokenizerJson.normalizer = { type: 'NoSuchNormalizer' };
    try {
      createTokenizer(files);
      expect.unreachable();
    } catch (error) {
      expect((error as TokenizerLoadError).code).toBe('tokenizers.unsupported');
      expect((error as Error).message).toBe(
        'built:sentencepiece-pair/tokenizer.json: @huggingface/tokenizers cannot build this tokenizer ' +
          '(Unknown Normalizer type: NoSuchNormalizer); re-save it with a recent Python transformers (tokenizer.save_pretrained)',
      );
    }
  });

  it('an unknown model.type is unsupported, naming the field (it used to encode to undefined ids)', () => {
    const files = sentencePieceFiles();
    (files.tokenizerJson.model as { type: string }).type = 'Foo';
    try {
      createTokenizer(files);
      expect.unreachable();
    } catch (error) {
      const e = error as TokenizerLoadError;
      expect([e.code, e.field]).toEqual(['tokenizers.unsupported', 'model.type']);
      expect(e.message).toBe(
        'built:sentencepiece-pair/tokenizer.json (field model.type): "Foo" is not a tokenizer model @huggingface/tokenizers builds (BPE, Unigram, WordPiece)',
      );
    }
  });

  it('a tokenizer.json without normalizer, pre_tokenizer, post_processor or decoder reads them as null', () => {
    const full = createTokenizer(byteLevelFiles());
    const files = byteLevelFiles();
    const json = files.tokenizerJson as Record<string, unknown>;
    const withNulls = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'].filter(
      (k) => json[k] === null,
    );
    expect(withNulls.length).toBeGreaterThan(0);
    for (const k of withNulls) delete json[k];
    const tok = createTokenizer(files);
    expect(tok.encode(' the .')).toEqual(full.encode(' the .'));
    expect(tok.decode([258, 32, 46])).toBe(full.decode([258, 32, 46]));
  });

  it('decode(null) / decode(undefined) throw TokenizerInputError', () => {
    const tok = createTokenizer(sentencePieceFiles());
    for (const ids of [null, undefined, 42, 'abc']) {
      expect(() => tok.decode(ids as never)).toThrow(TokenizerInputError);
    }
    expect(() => tok.decode(null as never)).toThrow('decode: ids must be an array of token ids, got null');
  });

  it('createTokenizer without tokenizerJson throws TokenizerLoadError naming it', () => {
    for (const files of [{ source: 'x' }, { source: 'x', tokenizerJson: null }, null]) {
      try {
        createTokenizer(files as never);
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(TokenizerLoadError);
        expect((error as TokenizerLoadError).code).toBe('tokenizers.missing_file');
        expect((error as Error).message).toMatch(/tokenizerJson/);
      }
    }
  });

  it('createTokenizer refuses files it would misread: no source, a JSON file as text, a field it does not take', () => {
    const files = sentencePieceFiles();
    const config = JSON.stringify(files.tokenizerConfig);
    const refused = (given: object) => {
      try {
        createTokenizer(given as never);
      } catch (error) {
        const e = error as TokenizerLoadError;
        return [e.name, e.code, e.message];
      }
      throw new Error('createTokenizer did not fail');
    };
    // used to fail with "Cannot read properties of undefined (reading 'includes')"
    expect(refused({ ...files, source: undefined })).toEqual([
      'TokenizerInputError',
      'tokenizers.invalid_input',
      'createTokenizer: files.source must be a string naming where the files came from (a directory, a URL or any label: errors name it), got undefined',
    ]);
    expect(refused({ ...files, tokenizerJson: JSON.stringify(files.tokenizerJson) })).toEqual([
      'TokenizerLoadError',
      'tokenizers.malformed_file',
      "built:sentencepiece-pair/tokenizer.json (field tokenizerJson): files.tokenizerJson must be the parsed JSON object, got a string: JSON.parse the file's text first",
    ]);
    // a config given as text was read as no config at all (legacy: false, the chat template... lost)
    expect(refused({ ...files, tokenizerConfig: config })).toEqual([
      'TokenizerLoadError',
      'tokenizers.malformed_file',
      "built:sentencepiece-pair/tokenizer_config.json (field tokenizerConfig): files.tokenizerConfig must be the parsed JSON object, got a string: JSON.parse the file's text first",
    ]);
    expect(refused({ ...files, generationConfig: [2] })).toEqual([
      'TokenizerLoadError',
      'tokenizers.malformed_file',
      'built:sentencepiece-pair/generation_config.json (field generationConfig): files.generationConfig must be the parsed JSON object (or undefined where there is no such file), got [2]',
    ]);
    expect(refused({ ...files, chatTemplate: { template: '{{ x }}' } })).toEqual([
      'TokenizerLoadError',
      'tokenizers.malformed_file',
      'built:sentencepiece-pair/chat_template.jinja (field chatTemplate): files.chatTemplate must be the text of chat_template.jinja (a string), got {"template":"{{ x }}"}',
    ]);
    expect(refused({ ...files, tokenizer_config: files.tokenizerConfig })).toEqual([
      'TokenizerInputError',
      'tokenizers.invalid_input',
      'createTokenizer: tokenizer_config: not a field of the files createTokenizer takes (did you mean tokenizerConfig?); they are source, tokenizerJson, tokenizerConfig, specialTokensMap, generationConfig, chatTemplate',
    ]);
    expect(createTokenizer({ ...files, specialTokensMap: undefined }).size).toBe(352);
  });

  it("encode, decode and createDetokenizer refuse options they do not take (Hugging Face's snake_case names were ignored)", () => {
    const tok = createTokenizer(sentencePieceFiles());
    expect(tok.encode('Hello', { addSpecialTokens: false })).toEqual([330]);
    expect(() => tok.encode('Hello', { add_special_tokens: false } as never)).toThrow(
      new TokenizerInputError(
        'encode: add_special_tokens: not an option (did you mean addSpecialTokens?); they are addSpecialTokens, literalRanges',
      ),
    );
    expect(() => tok.encode('Hello', false as never)).toThrow(
      new TokenizerInputError(
        'encode: options must be an object such as { addSpecialTokens: false }, got false',
      ),
    );
    expect(() => tok.decode([1, 330], { skip_special_tokens: true } as never)).toThrow(
      new TokenizerInputError(
        'decode: skip_special_tokens: not an option (did you mean skipSpecialTokens?); they are skipSpecialTokens, cleanUpTokenizationSpaces',
      ),
    );
    expect(() => tok.decode([1, 330], true as never)).toThrow(
      new TokenizerInputError(
        'decode: options must be an object such as { skipSpecialTokens: true }, got true',
      ),
    );
    expect(() => tok.createDetokenizer({ skip_special_tokens: true } as never)).toThrow(
      new TokenizerInputError(
        'createDetokenizer: skip_special_tokens: not an option (did you mean skipSpecialTokens?); they are skipSpecialTokens, context',
      ),
    );
    // an option left undefined (a spread of optional settings) is no option given
    expect(tok.decode([1, 330], { skipSpecialTokens: true, cleanUpTokenizationSpaces: undefined })).toBe(
      'Hello',
    );
  });

  it('encode/decode validate their input', () => {
    const tok = createTokenizer(sentencePieceFiles());
    expect(() => tok.decode([1, -1])).toThrow(
      new TokenizerInputError('decode: ids[1]: token id -1 is outside [0, 352) of built:sentencepiece-pair'),
    );
    expect(() => tok.encode(42 as never)).toThrow('encode: text must be a string, got number');
    // a string or a fraction is no token id at all, not one out of range
    expect(() => tok.decode(['3'] as never)).toThrow(
      new TokenizerInputError(
        'decode: ids[0]: token id "3" is not an integer in [0, 352) of built:sentencepiece-pair',
      ),
    );
    // transformers.js's ids are bigints: named as such (JSON.stringify, which showed the others, throws
    // on a bigint: "Do not know how to serialize a BigInt")
    const bigintIds =
      'token id 330n is not an integer in [0, 352) of built:sentencepiece-pair (a bigint: convert the ids with Number)';
    expect(() => tok.decode([330n, 335n] as never)).toThrow(
      new TokenizerInputError(`decode: ids[0]: ${bigintIds}`),
    );
    expect(() => tok.decode(BigInt64Array.of(330n) as never)).toThrow(
      new TokenizerInputError(`decode: ids[0]: ${bigintIds}`),
    );
    expect(() => tok.createDetokenizer().push(330n as never)).toThrow(
      new TokenizerInputError(`detokenizer.push: ${bigintIds}`),
    );
    expect(() => tok.decode([Number.NaN])).toThrow(
      new TokenizerInputError(
        'decode: ids[0]: token id NaN is not an integer in [0, 352) of built:sentencepiece-pair',
      ),
    );
    expect(tok.decode([])).toBe('');
    expect(tok.decode(Int32Array.from([330, 335]))).toBe('Hello world');
    expect(tok.decode([1, 330, 2], { skipSpecialTokens: true })).toBe('Hello');
    expect(createTokenizer(byteLevelFiles()).decode([258, 32, 46])).toBe(' the .');
    expect(createTokenizer(byteLevelFiles()).decode([258, 32, 46], { cleanUpTokenizationSpaces: true })).toBe(
      ' the.',
    );
  });
});
