import { readFileSync } from 'node:fs';
import { compileRules, HEWITT2024_UNIFORM, type RuleSet, scoreString } from '@implicit-it/rules';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { beforeAll, expect, it } from 'vitest';
import { loadTokenizer, type Tokenizer, tuluParts } from '../src/index.js';
import { joinedTokenBytes, STREAM_TEXTS, streamDeltas } from './helpers/stream.js';

const fixture = (name: string) => sharedPath('fixtures/tokenizers', name);
const files = (name: string) => [`fixtures/tokenizers/${name}/tokenizer.json`];

/** rules-spec.md, "Verified exact ids": surface -> id per tokenizer (null: no such item). */
const SPEC_IDS: Record<string, Record<string, number | null>> = {
  llama2: Object.fromEntries(HEWITT2024_UNIFORM.map((e) => [e.text, e.llama2Id])),
  gpt2: {
    '<': 27,
    ' <': 1279,
    '|': 91,
    ' I': 314,
    I: 40,
    ' We': 775,
    What: 2061,
    ' should': 815,
    ' *': 1635,
    ' -': 532,
    '   ': null,
    ' #': 1303,
    ' ##': 22492,
    '\n': 198,
    '!': 0,
  },
  smollm: {
    '<': 44,
    ' <': 2067,
    '|': 108,
    ' I': 339,
    I: 57,
    ' We': 1046,
    What: 1780,
    ' should': 868,
    ' *': 1672,
    ' -': 731,
    '   ': 333,
    ' #': 907,
    ' ##': 15530,
    '\n': 198,
    '!': 17,
  },
  olmo: {
    '<': 29,
    ' <': 654,
    '|': 93,
    ' I': 309,
    I: 42,
    ' We': 844,
    What: 1276,
    ' should': 943,
    ' *': 475,
    ' -': 428,
    '   ': 341,
    ' #': 1852,
    ' ##': 20263,
    '\n': 187,
    '!': 2,
  },
};

const EXPECTED = {
  llama2: {
    size: 32000,
    eosIds: [2],
    bosId: 1,
    addsBos: true,
    padId: 0,
    encoding: 'sentencepiece',
    mergeStyle: 'pair',
  },
  gpt2: {
    size: 50257,
    eosIds: [50256],
    bosId: 50256,
    addsBos: false,
    padId: 50256,
    encoding: 'byte-level',
    mergeStyle: 'string',
  },
  smollm: {
    size: 49152,
    eosIds: [2],
    bosId: 1,
    addsBos: false,
    padId: 2,
    encoding: 'byte-level',
    mergeStyle: 'string',
  },
  olmo: {
    size: 50280,
    eosIds: [50279],
    bosId: undefined,
    addsBos: false,
    padId: 50279,
    encoding: 'byte-level',
    mergeStyle: 'string',
  },
} as const;

const TIRAMISU = 'Give me a recipe for tiramisu.';

for (const name of Object.keys(EXPECTED) as (keyof typeof EXPECTED)[]) {
  describeShared(`fixture tokenizer ${name}`, files(name), () => {
    let tok: Tokenizer;
    beforeAll(async () => {
      tok = await loadTokenizer(fixture(name));
    });
    const expected = EXPECTED[name];

    it('loads with the expected special ids and vocabulary size', () => {
      const json = JSON.parse(readFileSync(`${fixture(name)}/tokenizer.json`, 'utf8'));
      expect(Array.isArray(json.model.merges[0]) ? 'pair' : 'string').toBe(expected.mergeStyle);
      expect({
        size: tok.vocabulary.size,
        eosIds: tok.eosIds,
        bosId: tok.bosId,
        addsBos: tok.addsBos,
        padId: tok.padId,
        encoding: tok.pieceEncoding,
        mergeStyle: expected.mergeStyle,
      }).toEqual(expected);
    });

    it('resolves the hewitt2024 surfaces to exactly the spec ids', () => {
      const got = Object.fromEntries(
        HEWITT2024_UNIFORM.map((e) => {
          const ids = tok.vocabulary.idsOf(e.text);
          return [e.text, ids.length === 0 ? null : ids.length === 1 ? ids[0]! : [...ids]];
        }),
      );
      expect(got).toEqual(SPEC_IDS[name]);
      for (const [text, id] of Object.entries(SPEC_IDS[name]!)) {
        if (id !== null) expect(tok.vocabulary.surfaceOf(id)).toBe(text);
      }
      const rules = compileRules('hewitt2024', tok.vocabulary);
      expect(rules.unresolved).toEqual(
        name === 'gpt2'
          ? [{ rule: 'uniform', text: '   ', reason: 'no vocabulary item has the surface text "   "' }]
          : [],
      );
    });

    it('hewitt2024-llama2-ids compiles on Llama-2 alone, scoring what hewitt2024 scores', () => {
      if (name !== 'llama2') {
        // its Llama-2 ids name unrelated tokens of this vocabulary
        expect(() => compileRules('hewitt2024-llama2-ids', tok.vocabulary)).toThrow(
          /^uniform\.entries\[0\]: id 29966 is ".*" in this vocabulary, not "<" \("<" is id \d+ here\): the ids of "hewitt2024-llama2-ids" are Llama-2's/,
        );
        return;
      }
      const state = (set: RuleSet) => set.createState({ promptIds: [1], scopeStart: 0 });
      const byId = compileRules('hewitt2024-llama2-ids', tok.vocabulary);
      const byText = compileRules('hewitt2024', tok.vocabulary);
      expect([...byId.scores(state(byId))].sort((a, b) => a[0] - b[0])).toEqual(
        [...byText.scores(state(byText))].sort((a, b) => a[0] - b[0]),
      );
    });

    it('builds the Tulu prompt: whole-prompt ids, S at the instruction, P = length', () => {
      const p = tok.buildPrompt({ format: 'tulu', instruction: TIRAMISU });
      // BOS where the tokenizer adds it (Llama-2 only): the paper's pipeline writes the prompt without
      // BOS and tokenizes it with special tokens, so the ids are exactly what that gives
      const bos = expected.addsBos ? [expected.bosId!] : [];
      const body = `<|user|>\n${TIRAMISU}\n<|assistant|>\n`;
      expect(p.ids).toEqual([...bos, ...tok.encode(body, { addSpecialTokens: false })]);
      expect(p.ids).toEqual(tok.encode(body, { addSpecialTokens: true }));
      expect(tok.buildPrompt({ format: 'tulu', instruction: TIRAMISU, addBos: false }).ids).toEqual(
        tok.encode(body, { addSpecialTokens: false }),
      );
      expect(p.ids.slice(0, p.scopeStart)).toEqual([
        ...bos,
        ...tok.encode('<|user|>\n', { addSpecialTokens: false }),
      ]);
      expect(tok.decode(p.ids.slice(p.scopeStart), { skipSpecialTokens: true })).toBe(
        `${TIRAMISU}\n<|assistant|>\n`,
      );
      expect(p.promptLength).toBe(p.ids.length);
      // asked for a BOS, a tokenizer without one (OLMo) starts with its EOS, as the paper's OLMo prompts
      // and open-instruct (bos_token = eos_token) do; S and P move with it
      const withBos = tok.buildPrompt({ format: 'tulu', instruction: TIRAMISU, addBos: true });
      const first = expected.bosId ?? expected.eosIds[0];
      expect(withBos.ids).toEqual([first, ...tok.encode(body, { addSpecialTokens: false })]);
      expect([withBos.scopeStart, withBos.promptLength]).toEqual([
        p.scopeStart + 1 - bos.length,
        p.ids.length + 1 - bos.length,
      ]);
      expect(withBos.text).toBe(`${tok.idToToken(first)}${body}`);
      if (name === 'olmo') expect(withBos.ids[0]).toBe(50279);
      if (name === 'llama2') {
        expect(p.ids).toEqual([
          1, 529, 29989, 1792, 29989, 29958, 13, 29954, 573, 592, 263, 9522, 412, 363, 19493, 314, 28311,
          29889, 13, 29966, 29989, 465, 22137, 29989, 29958, 13,
        ]);
        expect([p.scopeStart, p.promptLength]).toEqual([7, 26]);
        expect(p.text).toBe(`<s>${body}`);
      }
    });

    it('tokenizing the Tulu pieces separately gives the whole-prompt ids (byte-level) or documents why not (SentencePiece)', () => {
      const messages = [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Hi!' },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: TIRAMISU },
      ];
      const p = tok.buildPrompt({ format: 'tulu', messages });
      const eos = tok.idToToken(tok.eosIds[0]!)!;
      const parts = tuluParts(messages, eos);
      const bos = expected.addsBos ? [expected.bosId!] : [];
      const pieces = [parts.before, parts.content, parts.after].map((s) =>
        tok.encode(s, { addSpecialTokens: false }),
      );
      expect(p.ids.slice(0, p.scopeStart)).toEqual([...bos, ...pieces[0]!]);
      if (expected.encoding === 'byte-level') {
        expect(p.ids).toEqual([...bos, ...pieces.flat()]);
      } else {
        // SentencePiece prepends ▁ to every separately encoded piece ('▁Give' vs 'G' 'ive' after a newline),
        // which is why the builder tokenizes the whole prompt once.
        expect(tok.idToToken(pieces[1]![0]!)).toBe('▁Give');
        expect(tok.idToToken(p.ids[p.scopeStart]!)).toBe('G');
      }
      expect(p.ids.slice(bos.length).filter((id) => id === tok.eosIds[0])).toHaveLength(1);
    });

    it('streams emoji, CJK and byte-fallback text with deltas that join to decode(ids)', () => {
      for (const text of STREAM_TEXTS) {
        const ids = tok.encode(text, { addSpecialTokens: false });
        const { deltas, text: streamed } = streamDeltas(tok, ids);
        expect(streamed).toBe(tok.decode(ids));
        expect(deltas.join('').includes('\uFFFD')).toBe(false);
      }
      const prompt = tok.buildPrompt({ format: 'tulu', instruction: STREAM_TEXTS[1]! }).ids;
      for (const skip of [false, true]) {
        expect(streamDeltas(tok, prompt, skip).text).toBe(tok.decode(prompt, { skipSpecialTokens: skip }));
      }
    });

    it('streams genuine U+FFFD runs before an emoji: deltas join to decode(ids), no lone surrogate', () => {
      const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
      // 64 (SmolLM), 124 (OLMo) and 127 (Llama-2) put the old 64-token cut inside the emoji
      for (const n of [1, 64, 124, 127, 300]) {
        const text = `Bad bytes: ${'\uFFFD'.repeat(n)}🎉 done`;
        for (const ids of [
          tok.encode(text, { addSpecialTokens: false }),
          tok.buildPrompt({ format: 'tulu', instruction: `${text} \uFFFD\uFFFD世界 👩‍👩‍👧` }).ids,
        ]) {
          for (const skip of [false, true]) {
            const { deltas, rest, text: streamed } = streamDeltas(tok, ids, skip);
            expect(streamed).toBe(tok.decode(ids, { skipSpecialTokens: skip }));
            expect([...deltas, rest].filter((d) => lone.test(d))).toEqual([]);
          }
        }
      }
    });

    it('tokenBytes: the bytes of the tokens join to the text, split characters included', () => {
      let partial = 0;
      for (const text of STREAM_TEXTS) {
        const ids = tok.encode(text, { addSpecialTokens: false });
        const joined = joinedTokenBytes(tok, ids);
        const decoded = tok.decode(ids);
        // SentencePiece: decode drops the first token's leading space; the bytes keep it
        expect(
          joined.text === decoded || joined.text === ` ${decoded}`,
          `${name}: ${JSON.stringify(text)}`,
        ).toBe(true);
        partial += joined.partial;
      }
      expect(partial).toBeGreaterThan(0);
    });
  });
}

describeShared('fixture chat templates', [...files('llama2'), ...files('smollm')], () => {
  it('smollm: ChatML from tokenizer_config.json', async () => {
    const tok = await loadTokenizer(fixture('smollm'));
    const p = tok.buildPrompt({
      format: 'chat-template',
      messages: [
        { role: 'system', content: 'Be nice.' },
        { role: 'user', content: 'Hi there' },
      ],
    });
    expect(p.text).toBe(
      '<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(p.ids).toEqual([
      1, 9690, 198, 6077, 9239, 30, 2, 198, 1, 4093, 198, 26843, 665, 2, 198, 1, 520, 9531, 198,
    ]);
    expect([p.scopeStart, p.promptLength]).toEqual([11, 19]);
  });

  it('smollm: a system-only conversation puts S at the system message content', async () => {
    const tok = await loadTokenizer(fixture('smollm'));
    const p = tok.buildPrompt({
      format: 'chat-template',
      messages: [{ role: 'system', content: 'Write a poem about tea.' }],
    });
    expect(p.text).toBe('<|im_start|>system\nWrite a poem about tea.<|im_end|>\n<|im_start|>assistant\n');
    expect(p.ids.slice(0, p.scopeStart)).toEqual([1, 9690, 198]);
    expect(tok.decode(p.ids.slice(p.scopeStart))).toBe(
      'Write a poem about tea.<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('llama2: TinyLlama chat_template.jinja (Zephyr-style), no BOS unless asked', async () => {
    const tok = await loadTokenizer(fixture('llama2'));
    const p = tok.buildPrompt({ format: 'chat-template', instruction: TIRAMISU });
    expect(p.text).toBe(`<|user|>\n${TIRAMISU}</s>\n<|assistant|>\n`);
    expect(p.ids.slice(0, p.scopeStart)).toEqual([529, 29989, 1792, 29989, 29958, 13]);
    expect(p.ids[p.scopeStart]).toBe(29954);
    const withBos = tok.buildPrompt({ format: 'chat-template', instruction: TIRAMISU, addBos: true });
    expect(withBos.ids).toEqual([1, ...p.ids]);
    expect(withBos.scopeStart).toBe(7);
  });

  it('llama2: byte-fallback deltas for an emoji arrive whole', async () => {
    const tok = await loadTokenizer(fixture('llama2'));
    const ids = tok.encode('Hi 🎉!', { addSpecialTokens: false });
    expect(ids.map((id) => tok.idToToken(id))).toEqual([
      '▁Hi',
      '▁',
      '<0xF0>',
      '<0x9F>',
      '<0x8E>',
      '<0x89>',
      '!',
    ]);
    expect(streamDeltas(tok, ids).deltas).toEqual(['Hi', ' ', '', '', '', '🎉', '!']);
  });
});

describeShared('llama2 start rule: the reference scores raw pieces', files('llama2'), () => {
  it('t = 0 scores every id as 5 * score_string(piece with one leading ▁ stripped)', async () => {
    const tok = await loadTokenizer(fixture('llama2'));
    // the pieces as the reference's inverse_map has them: tokenizer.json's model vocab and added tokens
    const json = JSON.parse(readFileSync(`${fixture('llama2')}/tokenizer.json`, 'utf8'));
    const pieces: string[] = [];
    for (const [piece, id] of Object.entries<number>(json.model.vocab)) pieces[id] = piece;
    for (const t of json.added_tokens as { id: number; content: string }[]) pieces[t.id] = t.content;
    const set = compileRules({ start: true }, tok.vocabulary);
    const row = new Float32Array(tok.vocabulary.size);
    set.apply(row, set.createState({ promptIds: [1], scopeStart: 0 }));
    const want = pieces.map((p) => 5 * scoreString(p.startsWith('\u2581') ? p.slice(1) : p));
    expect(Array.from(row)).toEqual(want);
    expect([row[2], row[13], row[68]]).toEqual([-5, -5, -5]); // '</s>', '<0x0A>', '<0x41>'
  });
});

describeShared('llama2 legacy: false matches Python transformers', files('llama2'), () => {
  // ids from Python transformers 5 (LlamaTokenizer and LlamaTokenizerFast agree), add_special_tokens=False
  it.each([
    ['</s>\n<|user|>\nHi', [2, 13, 29966, 29989, 1792, 29989, 29958, 13, 18567]],
    ['Hello</s>\nWorld', [15043, 2, 13, 14058]],
    ['</s>', [2]],
    ['a\n</s>b', [263, 13, 2, 29890]],
    ['<s>Hi', [1, 18567]],
    ['  two spaces', [29871, 1023, 8162]],
    [' one', [697]],
    ['x  y   z', [921, 29871, 343, 259, 503]],
    ['', []],
  ])('%j', async (text, ids) => {
    const tok = await loadTokenizer(fixture('llama2'));
    expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids);
  });

  // ids from Python transformers 5 (AutoTokenizer), and the Metaspace prepend_scheme "first" tokenizer
  // its LlamaConverter builds for legacy=False: only the "▁" the encoder prepends itself is dropped
  it('a leading space or ▁ before a special token is kept', async () => {
    const tok = await loadTokenizer(fixture('llama2'));
    const cases: [string, number[]][] = [
      [' </s>', [29871, 2]],
      [' <s>hi', [29871, 1, 2918]],
      [' <unk>\t', [29871, 0, 12]],
      ['\u2581</s>', [29871, 2]],
      ['x </s>', [921, 29871, 2]],
      ['</s>', [2]],
    ];
    for (const [text, ids] of cases) {
      expect(tok.encode(text, { addSpecialTokens: false }), JSON.stringify(text)).toEqual(ids);
      expect(tok.encode(text), JSON.stringify(text)).toEqual([1, ...ids]);
    }
  });

  it('streaming with skipSpecialTokens: a word after 64 or more special tokens keeps its space', async () => {
    const tok = await loadTokenizer(fixture('llama2'));
    const hw = tok.encode('Hello world', { addSpecialTokens: false });
    for (const n of [63, 64, 65, 130]) {
      const ids = [...hw, ...Array<number>(n).fill(0), ...hw];
      expect(streamDeltas(tok, ids, true).text).toBe('Hello world Hello world');
      expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('Hello world Hello world');
    }
  });
});

describeShared('olmo byte-level surfaces', files('olmo'), () => {
  it('a piece holding U+FEFF keeps it as its surface (TextDecoder ignoreBOM)', async () => {
    const tok = await loadTokenizer(fixture('olmo'));
    expect(tok.decode([41497])).toBe('\uFEFF');
    expect(tok.vocabulary.surfaceOf(41497)).toBe('\uFEFF');
    expect(tok.vocabulary.idsOf('\uFEFF')).toContain(41497);
    expect(tok.vocabulary.idsOf('')).toEqual([]);
  });
});
