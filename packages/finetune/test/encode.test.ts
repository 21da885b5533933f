import { describeShared, sharedPath } from '@implicit-it/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ChatExample,
  EncodeError,
  type EncodingTokenizer,
  encodeMessages,
  loadEncodingTokenizer,
} from '../src/index.js';

const M = -100;
const ex = (messages: ChatExample['messages'], id = 'x'): ChatExample => ({ dataset: 't', id, messages });

// One id per character, BOS = 1; special text '</s>' = 2. Enough to check the masking arithmetic.
const charTok: EncodingTokenizer = {
  encode: (text) =>
    text
      .split(/(<\/s>)/)
      .flatMap((part) => (part === '</s>' ? [2] : [...part].map((c) => 1000 + c.charCodeAt(0)))),
  addsBos: true,
  bosId: 1,
  bosToken: '<s>',
  eosToken: '</s>',
};

describe('encodeMessages (character tokenizer)', () => {
  it('masks the user turn and the following <|assistant|>\\n tag, trains on the reply and EOS', () => {
    const e = encodeMessages(
      ex([
        { role: 'user', content: ' hi ' },
        { role: 'assistant', content: 'yo\n' },
      ]),
      charTok,
      { maxSeqLength: 100 },
    );
    const masked = 1 + '<|user|>\nhi\n<|assistant|>\n'.length;
    expect(e.inputIds.length).toBe(masked + 3); // 'y', 'o', '</s>' (the trailing "\n" is stripped away)
    expect(e.labels.slice(0, masked).every((l) => l === M)).toBe(true);
    expect(e.labels.slice(masked)).toEqual([1000 + 121, 1000 + 111, 2]);
    expect(e.trainedTokens).toBe(3);
  });

  it('masks system turns too and truncates at maxSeqLength, BOS included', () => {
    const msgs: ChatExample['messages'] = [
      { role: 'system', content: 's' },
      { role: 'user', content: 'u' },
      { role: 'assistant', content: 'abcdef' },
    ];
    const full = encodeMessages(ex(msgs), charTok, { maxSeqLength: 1000 });
    const prefix = 1 + '<|system|>\ns\n<|user|>\nu\n<|assistant|>\n'.length;
    expect(full.labels.slice(0, prefix).every((l) => l === M)).toBe(true);
    expect(full.trainedTokens).toBe(7);
    const cut = encodeMessages(ex(msgs), charTok, { maxSeqLength: prefix + 2 });
    expect(cut.inputIds).toEqual(full.inputIds.slice(0, prefix + 2));
    expect(cut.truncated).toBe(true);
    expect(cut.trainedTokens).toBe(2);
  });

  it('leaves nothing trained when truncation cuts inside the prompt', () => {
    const e = encodeMessages(
      ex([
        { role: 'user', content: 'long prompt' },
        { role: 'assistant', content: 'a' },
      ]),
      charTok,
      { maxSeqLength: 5 },
    );
    expect(e.inputIds).toHaveLength(5);
    expect(e.trainedTokens).toBe(0);
  });

  it('with addBos, prefixes are counted without the forced BOS (open-instruct quirk): boundaries sit one token early', () => {
    const noBos: EncodingTokenizer = { ...charTok, addsBos: false };
    const e = encodeMessages(
      ex([
        { role: 'user', content: 'q' },
        { role: 'assistant', content: 'a' },
      ]),
      noBos,
      { maxSeqLength: 100, addBos: true },
    );
    expect(e.inputIds[0]).toBe(1000 + '<'.charCodeAt(0)); // '<s>' is plain text to this toy tokenizer
    const maskedByPrefix = '<|user|>\nq\n<|assistant|>\n'.length;
    expect(e.labels.filter((l) => l === M)).toHaveLength(maskedByPrefix);
  });

  it('rejects empty messages and unknown roles with EncodeError naming the example and field', () => {
    expect(() => encodeMessages(ex([], 'e1'), charTok, { maxSeqLength: 10 })).toThrow(EncodeError);
    const bad = ex([{ role: 'tool' as 'user', content: 'x' }], 'e2');
    expect(() => encodeMessages(bad, charTok, { maxSeqLength: 10 })).toThrow(
      /example e2, messages\[0\]\.role/,
    );
  });
});

describeShared(
  'encodeMessages on the Llama-2 fixture tokenizer (ids checked by hand)',
  ['fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    let tok: EncodingTokenizer;
    beforeAll(async () => {
      tok = await loadEncodingTokenizer(sharedPath('fixtures/tokenizers/llama2'));
    });
    // Pieces: 1 <s> | 529 ▁< | 29989 | | 1792 user | 29958 > | 13 <0x0A> | 29966 < | 465 ass | 22137 istant
    const USER_TAG = [529, 29989, 1792, 29989, 29958, 13]; // "<|user|>\n" at the start of the text
    const ASSISTANT_TAG = [29966, 29989, 465, 22137, 29989, 29958, 13]; // "<|assistant|>\n" after a newline

    it('two-turn example: ids and mask', () => {
      const e = encodeMessages(
        ex([
          { role: 'user', content: 'Hello there' },
          { role: 'assistant', content: 'Hi!' },
        ]),
        tok,
        { maxSeqLength: 2048 },
      );
      // 10994 Hello | 727 ▁there | 18567 Hi | 29991 ! | 2 </s>
      const ids = [1, ...USER_TAG, 10994, 727, 13, ...ASSISTANT_TAG, 18567, 29991, 2];
      expect(e.inputIds).toEqual(ids);
      expect(e.labels).toEqual([...Array(17).fill(M), 18567, 29991, 2]);
    });

    it('response-tuning example (empty user turn): ids and mask', () => {
      const e = encodeMessages(
        ex([
          { role: 'user', content: '' },
          { role: 'assistant', content: 'Hi!' },
        ]),
        tok,
        { maxSeqLength: 2048 },
      );
      expect(e.inputIds).toEqual([1, ...USER_TAG, 13, ...ASSISTANT_TAG, 18567, 29991, 2]);
      expect(e.labels).toEqual([...Array(15).fill(M), 18567, 29991, 2]);
    });

    it('multi-turn: no space after </s> (legacy=false), and the "\\n" after </s> is trained (open-instruct quirk)', () => {
      const e = encodeMessages(
        ex([
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'A' },
          { role: 'user', content: 'B' },
          { role: 'assistant', content: 'C' },
        ]),
        tok,
        { maxSeqLength: 2048 },
      );
      // 29909 A | 29933 B | 29907 C; these ids match transformers' Python tokenizer on this fixture.
      const ids = [
        1,
        ...USER_TAG,
        18567,
        13,
        ...ASSISTANT_TAG,
        29909,
        2,
        13,
        29966,
        29989,
        1792,
        29989,
        29958,
        13,
        29933,
        13,
        ...ASSISTANT_TAG,
        29907,
        2,
      ];
      expect(e.inputIds).toEqual(ids);
      const trained = e.labels.map((l, i) => (l === M ? -1 : i)).filter((i) => i >= 0);
      expect(trained).toEqual([16, 17, 18, 34, 35]);
    });
  },
);

describeShared(
  'addBos on a tokenizer without BOS (OLMo)',
  ['fixtures/tokenizers/olmo/tokenizer.json'],
  () => {
    it("prepends the EOS token, as open-instruct's OLMo setup does", async () => {
      const olmo = await loadEncodingTokenizer(sharedPath('fixtures/tokenizers/olmo'));
      expect(olmo.bosId).toBeUndefined();
      expect(olmo.bosToken).toBe(olmo.eosToken);
      const e = encodeMessages(
        ex([
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Yo' },
        ]),
        olmo,
        { maxSeqLength: 64, addBos: true },
      );
      expect(e.inputIds[0]).toBe(olmo.encode(olmo.eosToken)[0]);
    });
  },
);
