import { describe, expect, it, vi } from 'vitest';
import { createTokenizer, type Tokenizer, TokenizerInputError } from '../src/index.js';
import { byteLevelFiles, sentencePieceFiles } from './helpers/build-tokenizer.js';
import { joinedTokenBytes, STREAM_TEXTS, streamDeltas } from './helpers/stream.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const families: [string, () => Tokenizer][] = [
  ['byte-level', () => createTokenizer(byteLevelFiles())],
  ['sentencepiece', () => createTokenizer(sentencePieceFiles())],
];

describe.each(families)('streaming detokenizer, %s (built tokenizer)', (name, make) => {
  const tok = make();

  it.each(STREAM_TEXTS)('deltas join to decode(ids) exactly: %j', (text) => {
    for (const addSpecialTokens of [false, true]) {
      const ids = tok.encode(text, { addSpecialTokens });
      for (const skip of [false, true]) {
        const { text: streamed } = streamDeltas(tok, ids, skip);
        expect(streamed).toBe(tok.decode(ids, { skipSpecialTokens: skip }));
      }
    }
    // SentencePiece with legacy: false, exactly as Python transformers: no "▁" is prepended to a text
    // that starts with a space, and decode strips the first "▁", so one leading space is lost
    const lost = name === 'sentencepiece' && text.startsWith(' ');
    expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(lost ? text.slice(1) : text);
  });

  it('tokenBytes: the bytes of the tokens join to the text, split characters included', () => {
    let partial = 0;
    for (const text of STREAM_TEXTS) {
      const ids = tok.encode(text, { addSpecialTokens: false });
      const joined = joinedTokenBytes(tok, ids);
      // SentencePiece: one "▁" is prepended to a text that does not start with a space, and decode
      // drops the first one; the bytes keep its space
      const sentencePiece = text.startsWith(' ') ? text : ` ${text}`;
      expect(joined.text).toBe(name === 'sentencepiece' ? sentencePiece : tok.decode(ids));
      partial += joined.partial;
    }
    expect(partial).toBeGreaterThan(0); // emoji are split into byte tokens
    const eos = tok.eosIds[0]!;
    expect(new TextDecoder().decode(tok.tokenBytes(eos))).toBe(tok.decode([eos]));
    expect(() => tok.tokenBytes(-1)).toThrow(TokenizerInputError);
  });

  it('never emits a partial character: U+FFFD never appears for valid text', () => {
    const ids = tok.encode(STREAM_TEXTS.join(' '), { addSpecialTokens: false });
    const { deltas } = streamDeltas(tok, ids);
    expect(deltas.join('').includes('\uFFFD')).toBe(false);
  });

  it('holds an incomplete character back and flushes it as U+FFFD', () => {
    const ids = tok.encode('a 🎉', { addSpecialTokens: false });
    const detok = tok.createDetokenizer();
    const cut = ids.slice(0, -1); // the emoji without its last byte
    const out = cut.map((id) => detok.push(id)).join('');
    expect(out).toBe('a ');
    expect(detok.flush()).toBe('\uFFFD');
    expect(tok.decode(cut)).toBe('a \uFFFD');
  });

  it('decodes only a small window per token (O(1) amortized)', () => {
    const ids = tok.encode(STREAM_TEXTS.join('\n').repeat(20), { addSpecialTokens: false });
    const spy = vi.spyOn(tok.inner, 'decode');
    streamDeltas(tok, ids);
    const decodedIds = spy.mock.calls.reduce(
      (n: number, call: unknown[]) => n + (call[0] as number[]).length,
      0,
    );
    spy.mockRestore();
    expect(ids.length).toBeGreaterThan(1000);
    expect(decodedIds / ids.length).toBeLessThan(8);
  });

  it('genuine U+FFFD runs before an emoji: deltas join to decode(ids), no lone surrogate', () => {
    for (const n of [1, 3, 63, 64, 65, 127, 200]) {
      const text = `Bad bytes: ${'\uFFFD'.repeat(n)}🎉 done \uFFFD👩‍👩‍👧\uFFFD\uFFFD世`;
      const ids = tok.encode(text, { addSpecialTokens: false });
      for (const skip of [false, true]) {
        const { deltas, rest, text: streamed } = streamDeltas(tok, ids, skip);
        expect(streamed).toBe(tok.decode(ids, { skipSpecialTokens: skip }));
        expect([...deltas, rest].filter((d) => LONE_SURROGATE.test(d))).toEqual([]);
      }
      // a genuine U+FFFD is emitted with its token, not held back
      const { deltas } = streamDeltas(tok, tok.encode('a\uFFFD', { addSpecialTokens: false }));
      expect(deltas.join('')).toBe(tok.decode(tok.encode('a\uFFFD', { addSpecialTokens: false })));
    }
  });

  it('invalid byte runs longer than the window: exact, never cut inside a character', () => {
    const byteToken = (byte: number) => {
      for (let id = 0; id < tok.size; id++) {
        const b = tok.tokenBytes(id);
        if (b.length === 1 && b[0] === byte && !tok.isSpecial(id)) return id;
      }
      throw new Error(`no token for byte ${byte}`);
    };
    const [f0, x9f, x8e, x89, e2, x82] = [0xf0, 0x9f, 0x8e, 0x89, 0xe2, 0x82].map(byteToken) as number[];
    const emoji = [f0!, x9f!, x8e!, x89!];
    const eos = tok.eosIds[0]!;
    const cases = [
      [...Array<number>(200).fill(f0!), ...emoji],
      [...Array.from({ length: 100 }, () => [f0!, x9f!]).flat(), ...emoji, f0!, x9f!, x8e!],
      Array.from({ length: 50 }, () => [f0!, x9f!, x8e!, e2!, x82!, ...emoji]).flat(),
      [
        f0!,
        ...Array<number>(100).fill(eos),
        x9f!,
        x8e!,
        x89!,
        f0!,
        x9f!,
        ...Array<number>(70).fill(eos),
        x8e!,
        x89!,
      ],
    ];
    for (const ids of cases) {
      for (const skip of [false, true]) {
        const inner = tok.inner;
        const decode = inner.decode.bind(inner);
        let decodedIds = 0; // counted at each call: the detokenizer reuses its window array
        const spy = vi.spyOn(inner, 'decode').mockImplementation((...args: Parameters<typeof decode>) => {
          decodedIds += args[0].length;
          return decode(...args);
        });
        const { deltas, rest, text } = streamDeltas(tok, ids, skip);
        spy.mockRestore();
        expect(text).toBe(tok.decode(ids, { skipSpecialTokens: skip }));
        expect([...deltas, rest].filter((d) => LONE_SURROGATE.test(d))).toEqual([]);
        expect(decodedIds / ids.length).toBeLessThan(40); // the window was cut, not decoded whole
      }
    }
  });

  it('rejects ids outside the vocabulary', () => {
    const detok = tok.createDetokenizer();
    expect(() => detok.push(tok.vocabulary.size)).toThrow(TokenizerInputError);
    expect(() => detok.push(1.5)).toThrow(/detokenizer.push: token id 1.5 is not an integer in \[0, \d+\)/);
  });
});

describe('streaming detokenizer, exact deltas', () => {
  it('byte-level: an emoji split over four byte tokens arrives whole with the fourth', () => {
    const tok = createTokenizer(byteLevelFiles());
    const ids = tok.encode('hello 🎉!', { addSpecialTokens: false });
    expect(ids).toEqual([281, 32, 240, 159, 142, 137, 33]);
    expect(streamDeltas(tok, ids).deltas).toEqual(['hello', ' ', '', '', '', '🎉', '!']);
  });

  it('SentencePiece: leading spaces survive mid-stream; the first one is stripped as in decode', () => {
    const tok = createTokenizer(sentencePieceFiles());
    const ids = tok.encode('Hello the world 世', { addSpecialTokens: false });
    expect(ids.map((id) => tok.idToToken(id))).toEqual([
      '▁Hello',
      '▁the',
      '▁world',
      '▁',
      '<0xE4>',
      '<0xB8>',
      '<0x96>',
    ]);
    const { deltas, rest } = streamDeltas(tok, ids);
    expect(deltas).toEqual(['Hello', ' the', ' world', ' ', '', '', '世']);
    expect(rest).toBe('');
  });

  it('SentencePiece: skipping a special token keeps the next word’s space', () => {
    const tok = createTokenizer(sentencePieceFiles());
    const ids = [
      ...tok.encode('Hello', { addSpecialTokens: false }),
      2,
      ...tok.encode('the', { addSpecialTokens: false }),
    ];
    expect(streamDeltas(tok, ids, true).deltas).toEqual(['Hello', '', ' the']);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('Hello the');
    expect(streamDeltas(tok, ids, false).text).toBe(tok.decode(ids));
  });

  it('SentencePiece: a word after 64 or more skipped special tokens keeps its space', () => {
    const tok = createTokenizer(sentencePieceFiles());
    const hello = tok.encode('Hello the', { addSpecialTokens: false });
    for (const n of [1, 63, 64, 65, 200]) {
      const ids = [...hello, ...Array<number>(n).fill(2), ...hello];
      expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('Hello the Hello the');
      expect(streamDeltas(tok, ids, true).text).toBe('Hello the Hello the');
      expect(streamDeltas(tok, ids, false).text).toBe(tok.decode(ids));
    }
  });

  it('context: the text goes on from a prompt, as decode(context + ids) beyond decode(context)', () => {
    const tok = createTokenizer(sentencePieceFiles());
    const prompt = tok.encode('Hello the', { addSpecialTokens: false });
    const ids = tok.encode('world 世', { addSpecialTokens: false }); // ▁world ▁ <0xE4> <0xB8> <0x96>
    const stream = (context: readonly number[], skip = false) => {
      const detok = tok.createDetokenizer({ context, skipSpecialTokens: skip });
      return [...ids.map((id) => detok.push(id)), detok.flush()];
    };
    expect(stream([])).toEqual(['world', ' ', '', '', '世', '']); // the first space dropped, as in decode(ids)
    const want = tok.decode([...prompt, ...ids]).slice(tok.decode(prompt).length);
    expect(want).toBe(' world 世');
    expect(stream(prompt).join('')).toBe(want);
    expect(stream(prompt)).toEqual([' world', ' ', '', '', '世', '']);
    // special tokens after the prompt's last word are skipped over (with skipSpecialTokens) or are context
    expect(stream([...prompt, 2], true).join('')).toBe(' world 世');
    expect(stream([...prompt, 2]).join('')).toBe(
      tok.decode([...prompt, 2, ...ids]).slice(tok.decode([...prompt, 2]).length),
    );
    // a prompt ending inside a character: the stream goes on from decode(prompt) without the U+FFFD of
    // the incomplete character, which the ids do not complete here (▁world is no continuation byte)
    const cut = tok.encode('世', { addSpecialTokens: false }).slice(0, -1); // ▁ <0xE4> <0xB8>
    expect(tok.decode(cut)).toBe('\uFFFD');
    expect(tok.decode([...cut, ...ids])).toBe('\uFFFD world 世');
    expect(stream(cut)).toEqual(['\uFFFD world', ' ', '', '', '世', '']);
    expect(() => tok.createDetokenizer({ context: [tok.vocabulary.size] })).toThrow(
      /createDetokenizer: context id \d+ is outside \[0, \d+\)/,
    );
  });

  it('context ending inside a character: the ids complete it and it arrives whole', () => {
    const bl = createTokenizer(byteLevelFiles());
    const ids = bl.encode('hello 🎉!', { addSpecialTokens: false }); // hello, ' ', then 🎉 byte by byte, !
    for (const [k, deltas] of [
      [3, ['', '', '🎉', '!', '']], // the context holds F0
      [4, ['', '🎉', '!', '']], // F0 9F
      [5, ['🎉', '!', '']], // F0 9F 8E
    ] as const) {
      const detok = bl.createDetokenizer({ context: ids.slice(0, k) });
      expect([...ids.slice(k).map((id) => detok.push(id)), detok.flush()]).toEqual(deltas);
    }
    // not completed: the U+FFFD of the prompt's incomplete character is the stream's, at once or on flush
    const stop = bl.createDetokenizer({ context: ids.slice(0, 4) });
    expect([stop.push(ids[6]!), stop.flush()]).toEqual(['\uFFFD!', '']);
    expect(bl.createDetokenizer({ context: ids.slice(0, 4) }).flush()).toBe('\uFFFD');
    expect(bl.decode([...ids.slice(0, 4), ids[6]!])).toBe('hello \uFFFD!');

    const sp = createTokenizer(sentencePieceFiles());
    const prompt = sp.encode('Hello 世', { addSpecialTokens: false }); // ▁Hello ▁ <0xE4> <0xB8> <0x96>
    const [the] = sp.encode('the', { addSpecialTokens: false });
    for (const skipSpecialTokens of [false, true]) {
      // a skipped special token after the incomplete character leaves it incomplete
      const context = skipSpecialTokens ? [...prompt.slice(0, 4), 2] : prompt.slice(0, 4);
      const detok = sp.createDetokenizer({ context, skipSpecialTokens });
      expect([detok.push(prompt[4]!), detok.push(the!), detok.flush()]).toEqual(['世', ' the', '']);
    }
  });

  it('tokenText: the text a token adds after other text, its SentencePiece space kept', () => {
    const sp = createTokenizer(sentencePieceFiles());
    const [hello, , , space, e4] = sp.encode('Hello the world 世', { addSpecialTokens: false });
    expect(sp.idToToken(hello!)).toBe('▁Hello');
    expect([sp.tokenText(hello!), sp.decode([hello!])]).toEqual([' Hello', 'Hello']);
    expect([sp.tokenText(space!), sp.tokenText(e4!)]).toEqual([' ', '\uFFFD']);
    expect(sp.tokenText(2)).toBe(sp.decode([2])); // a special token: its content
    const bl = createTokenizer(byteLevelFiles());
    for (const id of bl.encode('hello 🎉!', { addSpecialTokens: false }))
      expect(bl.tokenText(id)).toBe(bl.decode([id]));
    expect(() => sp.tokenText(-1)).toThrow(/tokenText: id: token id -1 is outside/);
  });

  it('flush resets: the next push starts a new sequence', () => {
    const tok = createTokenizer(sentencePieceFiles());
    const detok = tok.createDetokenizer();
    const [hello, the] = tok.encode('Hello the', { addSpecialTokens: false });
    expect([detok.push(hello!), detok.push(the!), detok.flush()]).toEqual(['Hello', ' the', '']);
    expect([detok.push(the!), detok.flush()]).toEqual(['the', '']);
  });
});
