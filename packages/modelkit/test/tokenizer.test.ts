import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AutoTokenizer, env } from '@huggingface/transformers';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { loadTokenizer } from '@implicit-it/tokenizers';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  createModel,
  ModelConfigError,
  ModelTokenizerError,
  readModel,
  readTokenizerDir,
  referenceForward,
  tinyTokenizer,
  trainByteLevelBpe,
} from '../src/index.js';
import { emptyPast, maxAbsDiff, step } from './ort-helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'modelkit-tok-'));

describe('byte-level BPE training', () => {
  it('is deterministic and merges the most frequent pairs first', () => {
    const text = 'low lower lowest low low newer newest';
    const a = trainByteLevelBpe(text, { merges: 6 });
    const b = trainByteLevelBpe(text, { merges: 6 });
    expect(a.merges).toEqual(b.merges);
    expect(a.merges[0]).toEqual(['l', 'o']);
    expect(a.vocab.get('<|endoftext|>')).toBe(0);
    expect(a.vocab.get('Ġ')).toBeGreaterThan(2);
    expect(a.vocab.size).toBe(3 + 256 + 6);
  });

  it('stops early when no pair repeats', () => {
    expect(trainByteLevelBpe('abc', { merges: 50 }).merges).toEqual([]);
  });

  it('the tiny tokenizer has 512 ids, </s> as EOS and <|user|> as ordinary text', () => {
    const tok = tinyTokenizer();
    expect(tok.vocabSize).toBe(512);
    expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId]).toEqual([1, 2, 0]);
    const json = JSON.parse(tok.files['tokenizer.json'] as string);
    expect(json.added_tokens.map((t: { content: string }) => t.content)).toEqual([
      '<|endoftext|>',
      '<s>',
      '</s>',
    ]);
    expect(json.model.merges).toHaveLength(253);
    expect(json.model.vocab).toHaveProperty('user');
    const config = JSON.parse(tok.files['tokenizer_config.json'] as string);
    expect(config.chat_template).toContain('<|assistant|>');
    expect(config.eos_token).toBe('</s>');
  });
});

describeShared(
  'a given tokenizer directory (smollm fixture)',
  ['fixtures/tokenizers/smollm/tokenizer.json'],
  () => {
    const smollm = sharedPath('fixtures', 'tokenizers', 'smollm');

    it('is copied in, sets token ids, and a 1-layer smollm2-135m-shaped model matches the reference', async () => {
      const created = await createModel({
        preset: 'smollm2-135m',
        numHiddenLayers: 1,
        seed: 2,
        tokenizerDir: smollm,
        out: tmp(),
      });
      for (const file of [
        'tokenizer.json',
        'tokenizer_config.json',
        'vocab.json',
        'merges.txt',
        'special_tokens_map.json',
      ]) {
        expect(readFileSync(join(created.dir, file)).equals(readFileSync(join(smollm, file)))).toBe(true);
      }
      expect(created.config).toMatchObject({ vocabSize: 49152, bosTokenId: 1, eosTokenId: 2, padTokenId: 2 });
      const session = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
      const ids = [1, 4093, 314, 2];
      const out = await step(
        session,
        created.config,
        [ids],
        [ids.map(() => 1)],
        [ids.map((_, i) => i)],
        emptyPast(created.config, 1),
      );
      const expected = referenceForward(readModel(created.dir), ids);
      expect(maxAbsDiff(out.logits[0]![3]!, expected[3]!)).toBeLessThan(1e-4);
    }, 60_000);

    it('rejects a vocabSize smaller than the tokenizer, naming vocabSize', async () => {
      await expect(createModel({ preset: 'tiny', tokenizerDir: smollm, out: tmp() })).rejects.toThrow(
        ModelConfigError,
      );
      await expect(createModel({ preset: 'tiny', tokenizerDir: smollm, out: tmp() })).rejects.toThrow(
        /vocabSize: 512 is smaller than the tokenizer's 49152 ids/,
      );
    });
  },
);

describeShared(
  'a tokenizer with its chat template in chat_template.jinja (llama2 fixture)',
  ['fixtures/tokenizers/llama2/chat_template.jinja'],
  () => {
    it('copies chat_template.jinja with the other files', async () => {
      const llama2 = sharedPath('fixtures', 'tokenizers', 'llama2');
      const created = await createModel({
        preset: 'tiny',
        vocabSize: 32000,
        numHiddenLayers: 1,
        tokenizerDir: llama2,
        out: tmp(),
      });
      expect(created.files).toContain('chat_template.jinja');
      expect(readFileSync(join(created.dir, 'chat_template.jinja'), 'utf8')).toBe(
        readFileSync(join(llama2, 'chat_template.jinja'), 'utf8'),
      );
    });
  },
);

describeShared(
  "a tokenizer that says it has no BOS (olmo fixture with OLMo-hf's tokenizer_config.json)",
  ['fixtures/tokenizers/olmo/tokenizer.json'],
  () => {
    it('leaves no BOS in config.json and generation_config.json; one that names nothing gets its special <|endoftext|> as EOS', async () => {
      const olmo = tmp();
      cpSync(sharedPath('fixtures', 'tokenizers', 'olmo', 'tokenizer.json'), join(olmo, 'tokenizer.json'));
      const options = { preset: 'tiny', vocabSize: 50280, numHiddenLayers: 1, tokenizerDir: olmo } as const;
      // the fixture alone names nothing: the preset's ids 1/2/0 were kept, unrelated tokens of OLMo's
      const silent = await createModel({ ...options, out: join(tmp(), 'olmo') });
      expect(silent.config).toMatchObject({ bosTokenId: null, eosTokenId: 50279, padTokenId: 50279 });
      // and it gets a tokenizer_config.json naming them, which transformers.js needs
      expect(silent.files).toContain('tokenizer_config.json');
      expect(JSON.parse(readFileSync(join(silent.dir, 'tokenizer_config.json'), 'utf8'))).toMatchObject({
        bos_token: null,
        eos_token: '<|endoftext|>',
        pad_token: '<|endoftext|>',
        model_max_length: 512,
      });
      env.allowRemoteModels = false;
      env.useFSCache = false;
      env.localModelPath = dirname(silent.dir);
      const tokenizer = await AutoTokenizer.from_pretrained('olmo');
      expect(tokenizer.eos_token_id).toBe(50279);
      expect(tokenizer.decode(tokenizer.encode('Hello world'))).toBe('Hello world');
      writeFileSync(
        join(olmo, 'tokenizer_config.json'),
        JSON.stringify({ bos_token: null, eos_token: '<|endoftext|>', pad_token: '<|padding|>' }),
      );
      const created = await createModel({ ...options, out: tmp() });
      expect(created.config).toMatchObject({ bosTokenId: null, eosTokenId: 50279, padTokenId: 1 });
      const json = (file: string) => JSON.parse(readFileSync(join(created.dir, file), 'utf8'));
      expect(json('config.json').bos_token_id).toBeNull();
      expect(json('generation_config.json').bos_token_id).toBeNull();
      // given explicitly, an id still wins
      const given = await createModel({ ...options, bosTokenId: 50279, out: tmp() });
      expect(given.config.bosTokenId).toBe(50279);
    }, 60_000);
  },
);

describeShared(
  'a tokenizer directory that names no special tokens (gpt2 fixture)',
  ['fixtures/tokenizers/gpt2/tokenizer.json'],
  () => {
    it("takes <|endoftext|> as BOS, EOS and PAD from its generation_config.json (the preset's 1/2/0 were other tokens)", async () => {
      const gpt2 = sharedPath('fixtures', 'tokenizers', 'gpt2');
      const created = await createModel({
        preset: 'tiny',
        vocabSize: 50257,
        numHiddenLayers: 1,
        tokenizerDir: gpt2,
        out: tmp(),
      });
      // bos_token_id and eos_token_id 50256 in generation_config.json, as @implicit-it/tokenizers reads
      // them (the BOS was null: generation_config.json was not read)
      expect(created.config).toMatchObject({ bosTokenId: 50256, eosTokenId: 50256, padTokenId: 50256 });
      // its own tokenizer_config.json is copied as it is
      expect(readFileSync(join(created.dir, 'tokenizer_config.json'), 'utf8')).toBe(
        readFileSync(join(gpt2, 'tokenizer_config.json'), 'utf8'),
      );
    }, 60_000);

    it('into a smaller vocabSize is refused naming vocabSize, not its EOS id 50256 beyond it', async () => {
      // the EOS id was checked first: "eosTokenId: 50256 is not an id below vocabSize 512; use null or
      // a valid id", an id the tokenizer chose, and the CLI read that error as a tokenizer without an EOS
      const gpt2 = sharedPath('fixtures', 'tokenizers', 'gpt2');
      const error = await createModel({ preset: 'tiny', tokenizerDir: gpt2, out: tmp() }).catch((e) => e);
      expect(error).toBeInstanceOf(ModelConfigError);
      expect(error.field).toBe('vocabSize');
      expect(error.message).toBe(
        "vocabSize: 512 is smaller than the tokenizer's 50257 ids; set vocabSize to at least 50257",
      );
    });
  },
);

describe('special tokens of a tokenizer directory, read as @implicit-it/tokenizers reads them', () => {
  /** The tiny tokenizer (`<|endoftext|>` 0, `<s>` 1, `</s>` 2) with these files beside it. */
  const dirWith = (files: Record<string, unknown>, postProcessor: unknown = null) => {
    const dir = tmp();
    const json = JSON.parse(tinyTokenizer().files['tokenizer.json'] as string);
    json.post_processor = postProcessor;
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    for (const [name, content] of Object.entries(files))
      writeFileSync(join(dir, name), JSON.stringify(content));
    return dir;
  };
  const template = (token: string) => ({
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: token, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: token, type_id: 0 } },
      { Sequence: { id: 'A', type_id: 0 } },
      { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { [token]: { id: token, ids: [token === '<s>' ? 1 : 0], tokens: [token] } },
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const saved = { added_tokens_decoder: {} }; // what transformers 4.34 and later save

  it.each([
    [
      'an old tokenizer_config.json: special_tokens_map.json replaces its entries',
      {
        'tokenizer_config.json': { eos_token: '<|endoftext|>', bos_token: null },
        'special_tokens_map.json': { eos_token: '</s>', bos_token: '<s>' },
      },
      null,
      { bos: 1, eos: 2 },
    ],
    [
      'a tokenizer_config.json with added_tokens_decoder is read alone: null means none',
      {
        'tokenizer_config.json': { ...saved, eos_token: '<|endoftext|>', bos_token: null },
        'special_tokens_map.json': { eos_token: '</s>', bos_token: '<s>' },
      },
      null,
      { bos: null, eos: 0 },
    ],
    [
      "a key the config leaves out is the map's",
      {
        'tokenizer_config.json': { ...saved },
        'special_tokens_map.json': { eos_token: '</s>', pad_token: '<|endoftext|>' },
      },
      null,
      { bos: null, eos: 2, pad: 0 },
    ],
    [
      "the BOS of a TemplateProcessing inside a Sequence post-processor (Llama-3's)",
      { 'tokenizer_config.json': { eos_token: '</s>' } },
      { type: 'Sequence', processors: [byteLevel, template('<s>')] },
      { bos: 1, eos: 2 },
    ],
    [
      "generation_config.json's eos_token_id (the first of a list) wins over eos_token",
      {
        'tokenizer_config.json': { eos_token: '</s>' },
        'generation_config.json': { eos_token_id: [0, 2] },
      },
      null,
      { bos: null, eos: 0 },
    ],
    [
      "generation_config.json's pad_token_id wins over pad_token; its bos_token_id comes last",
      {
        'tokenizer_config.json': { eos_token: '</s>', pad_token: '</s>' },
        'generation_config.json': { bos_token_id: 1, pad_token_id: 0 },
      },
      null,
      { bos: 1, eos: 2, pad: 0 },
    ],
    [
      "generation_config.json's pad_token_id -1 means none; bos_token null wins over its bos_token_id",
      {
        'tokenizer_config.json': { ...saved, eos_token: '<|endoftext|>', bos_token: null, pad_token: '</s>' },
        'generation_config.json': { bos_token_id: 1, pad_token_id: -1 },
      },
      null,
      { bos: null, eos: 0, pad: 2 },
    ],
    [
      "a LlamaTokenizerFast's <s> and </s> where its files name no BOS or EOS",
      { 'tokenizer_config.json': { tokenizer_class: 'LlamaTokenizerFast' } },
      template('<|endoftext|>'),
      { bos: 1, eos: 2 },
    ],
    [
      'a GPTNeoXTokenizer whose files name no EOS gets its <|endoftext|>, not the conventional </s>',
      { 'tokenizer_config.json': { tokenizer_class: 'GPTNeoXTokenizer', bos_token: '<s>' } },
      null,
      { bos: 1, eos: 0 },
    ],
  ])('%s', async (_, files, post, want) => {
    const dir = dirWith(files, post);
    const read = readTokenizerDir(dir);
    const loaded = await loadTokenizer(dir);
    const pad = 'pad' in want ? want.pad : want.eos;
    expect({ bos: read.bosTokenId, eos: read.eosTokenId, pad: read.padTokenId }).toEqual({
      bos: want.bos,
      eos: want.eos,
      pad,
    });
    expect({ bos: loaded.bosId ?? null, eos: loaded.eosIds[0], pad: loaded.padId }).toEqual({
      bos: want.bos,
      eos: want.eos,
      pad,
    });
  });
});

describe('tokenizer directory errors', () => {
  /** The tiny tokenizer's tokenizer.json in a directory of its own, edited. */
  const tinyTokenizerDir = (edit: (json: { added_tokens: { special: boolean }[] }) => void) => {
    const dir = tmp();
    const json = JSON.parse(tinyTokenizer().files['tokenizer.json'] as string);
    edit(json);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    return dir;
  };

  it('a tokenizer with no EOS, named or conventional, is refused naming eosTokenId', async () => {
    const dir = tinyTokenizerDir((json) => {
      for (const added of json.added_tokens) added.special = false;
    });
    const out = join(tmp(), 'never');
    await expect(createModel({ tokenizerDir: dir, out })).rejects.toThrow(ModelConfigError);
    await expect(createModel({ tokenizerDir: dir, out })).rejects.toThrow(
      /^eosTokenId: the tokenizer in .* names no EOS token .* give eosTokenId explicitly/,
    );
    expect((await createModel({ tokenizerDir: dir, eosTokenId: 2, out })).config.eosTokenId).toBe(2);
  });

  it('a special token the config names that tokenizer.json lacks is refused, naming the file', async () => {
    const dir = tinyTokenizerDir(() => {});
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|eot|>' }));
    await expect(createModel({ tokenizerDir: dir, out: tmp() })).rejects.toThrow(
      /tokenizer_config\.json: eos_token "<\|eot\|>" is not a token of tokenizer\.json/,
    );
  });

  it('names the missing file', async () => {
    await expect(createModel({ tokenizerDir: tmp(), out: tmp() })).rejects.toThrow(ModelTokenizerError);
    await expect(createModel({ tokenizerDir: tmp(), out: tmp() })).rejects.toThrow(
      /tokenizer\.json: not found/,
    );
  });
  it('a Git LFS pointer in place of tokenizer.json is named as one, with the fix', async () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'tokenizer.json'),
      'version https://git-lfs.github.com/spec/v1\noid sha256:4a5b\nsize 2104556\n',
    );
    await expect(createModel({ tokenizerDir: dir, out: tmp() })).rejects.toThrow(
      `${join(dir, 'tokenizer.json')}: is a Git LFS pointer (to a file of 2104556 bytes), not the file itself; fetch it (git lfs pull in the clone, or download it from the model repository)`,
    );
  });

  it('a tokenizer.json with a byte order mark is named as such', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'tokenizer.json'), '\ufeff{}');
    await expect(createModel({ tokenizerDir: dir, out: tmp() })).rejects.toThrow(
      `${join(dir, 'tokenizer.json')}: starts with a UTF-8 byte order mark, which JSON readers (Python's json, Rust's serde_json) refuse; save it as UTF-8 without BOM`,
    );
  });

  it('a tokenizer.json that is not an object, or whose added_tokens is not a list, is refused naming the field', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'tokenizer.json'), '[1, 2]');
    await expect(createModel({ tokenizerDir: dir, out: tmp() })).rejects.toThrow(
      `${join(dir, 'tokenizer.json')}: must hold a JSON object, found [1,2]`,
    );
    const objectAdded = tinyTokenizerDir((json) => {
      (json as { added_tokens: unknown }).added_tokens = {};
    });
    // was a TypeError: "object is not iterable"
    await expect(createModel({ tokenizerDir: objectAdded, out: tmp() })).rejects.toThrow(
      `${join(objectAdded, 'tokenizer.json')}: added_tokens must be a list of { id, content, special } entries, found {}`,
    );
    const noId = tinyTokenizerDir((json) => {
      (json.added_tokens[0] as { id?: number }).id = undefined;
    });
    await expect(createModel({ tokenizerDir: noId, out: tmp() })).rejects.toThrow(
      /added_tokens entries must have a string content and an integer id, found \{"content":"<\|endoftext\|>"/,
    );
  });

  it('a tokenizerDir that is a file, and an out that is or lies under a file, are refused before any work', async () => {
    const file = join(tmp(), 'weights.bin');
    writeFileSync(file, 'x');
    await expect(createModel({ tokenizerDir: file, out: tmp() })).rejects.toThrow(
      `${file}: is a file; tokenizerDir must be a directory holding a Hugging Face tokenizer.json`,
    );
    // were a bare ENOTDIR from mkdir, after the weights were made
    await expect(createModel({ out: file })).rejects.toThrow(
      new ModelConfigError(
        'out',
        `${file} is a file, not a directory; name a directory to write the model into`,
      ),
    );
    await expect(createModel({ out: join(file, 'tiny') })).rejects.toThrow(
      `out: ${join(file, 'tiny')} lies under ${file}, which is a file, not a directory; name another directory`,
    );
  });
});

describeShared(
  'the shared tokenizer fixtures: the ids readTokenizerDir gives the model are those @implicit-it/tokenizers loads',
  ['fixtures/tokenizers/gpt2/tokenizer.json', 'fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    it.each([
      ['gpt2', { bos: 50256, eos: 50256, pad: 50256 }],
      ['llama2', { bos: 1, eos: 2, pad: 0 }], // pad_token_id 0 in generation_config.json (was 2)
      ['olmo', { bos: null, eos: 50279, pad: 50279 }],
      ['smollm', { bos: 1, eos: 2, pad: 2 }],
    ])('%s', async (name, want) => {
      const dir = sharedPath('fixtures', 'tokenizers', name);
      const read = readTokenizerDir(dir);
      const loaded = await loadTokenizer(dir);
      expect({ bos: read.bosTokenId, eos: read.eosTokenId, pad: read.padTokenId }).toEqual(want);
      expect({ bos: loaded.bosId ?? null, eos: loaded.eosIds[0], pad: loaded.padId }).toEqual(want);
    });
  },
);
