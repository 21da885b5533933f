import { describeShared, sharedPath } from '@implicit-it/testkit';
import { beforeAll, expect, it } from 'vitest';
import { loadTokenizer, type Tokenizer } from '../src/index.js';

/**
 * Property: for random id sequences drawn from the real vocabularies, biased towards the ids that
 * make streaming hard (lone UTF-8 lead and continuation bytes, pieces ending mid-character, pieces
 * starting with a space, special tokens), the joined deltas plus flush equal decode(ids), with and
 * without skipSpecialTokens, and no delta splits a surrogate pair.
 */
const NAMES = ['gpt2', 'llama2', 'olmo', 'smollm'] as const;

/** A small seeded generator (LCG): the same sequences on every run. */
function random(seed: number) {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x80000000;
  };
}

function pools(tok: Tokenizer) {
  const special: number[] = [];
  const lead: number[] = [];
  const continuation: number[] = [];
  const midCharacter: number[] = [];
  const space: number[] = [];
  for (let id = 0; id < tok.size; id++) {
    if (tok.isSpecial(id)) special.push(id);
    const bytes = tok.tokenBytes(id);
    const last = bytes[bytes.length - 1] ?? 0;
    if (bytes.length === 1 && last >= 0xc0) lead.push(id);
    else if (bytes.length === 1 && last >= 0x80) continuation.push(id);
    else if (last >= 0x80) midCharacter.push(id);
    if (bytes[0] === 0x20) space.push(id);
  }
  return { special, lead, continuation, midCharacter, space };
}

for (const name of NAMES) {
  describeShared(
    `streaming property, fixture ${name}`,
    [`fixtures/tokenizers/${name}/tokenizer.json`],
    () => {
      let tok: Tokenizer;
      beforeAll(async () => {
        tok = await loadTokenizer(sharedPath('fixtures/tokenizers', name));
      });

      it('deltas join to decode(ids) for random id sequences, skipping special tokens or not', () => {
        const p = pools(tok);
        expect(p.lead.length).toBeGreaterThan(0);
        expect(p.continuation.length).toBeGreaterThan(0);
        const rnd = random(name.length * 7919);
        const pick = (list: readonly number[]) => list[Math.floor(rnd() * list.length)]!;
        const failures: string[] = [];
        for (let trial = 0; trial < 150; trial++) {
          const n = 1 + Math.floor(rnd() * (trial % 10 === 0 ? 150 : 16));
          const ids: number[] = [];
          for (let k = 0; k < n; k++) {
            const r = rnd();
            ids.push(
              r < 0.08 && p.special.length
                ? pick(p.special)
                : r < 0.35
                  ? pick(p.continuation)
                  : r < 0.5
                    ? pick(p.lead)
                    : r < 0.65
                      ? pick(p.midCharacter)
                      : r < 0.8
                        ? pick(p.space)
                        : Math.floor(rnd() * tok.size),
            );
          }
          for (const skipSpecialTokens of [false, true]) {
            const detok = tok.createDetokenizer({ skipSpecialTokens });
            const deltas = ids.map((id) => detok.push(id));
            deltas.push(detok.flush());
            const expected = tok.decode(ids, { skipSpecialTokens });
            const splitPair = deltas.some((d) => /[\ud800-\udbff]$/.test(d) || /^[\udc00-\udfff]/.test(d));
            if (deltas.join('') !== expected || splitPair) {
              failures.push(`${JSON.stringify(ids)} skip=${skipSpecialTokens}: ${JSON.stringify(deltas)}`);
            }
          }
        }
        expect(failures).toEqual([]);
      });

      it('a context cut anywhere, inside a character too: its final text and the stream join to decode(all)', () => {
        const fatal = new TextDecoder('utf-8', { fatal: true });
        const failures: string[] = [];
        let midCharacter = 0;
        for (const text of [
          'Say 🎉 now',
          'Hi 世界 ok',
          '日本語のテキスト',
          '🎉🎉 👩‍👩‍👧 🇫🇷 x',
          'a\uFFFD🎉b',
        ]) {
          const ids = tok.encode(text, { addSpecialTokens: false });
          for (let k = 1; k < ids.length; k++) {
            const context = ids.slice(0, k);
            const detok = tok.createDetokenizer({ context });
            const stream =
              ids
                .slice(k)
                .map((id) => detok.push(id))
                .join('') + detok.flush();
            // the context's final text: decode(context) less the U+FFFD of an incomplete last character
            let final = tok.decode(context);
            try {
              fatal.decode(Uint8Array.from(context.flatMap((id) => [...tok.tokenBytes(id)])));
            } catch {
              final = final.slice(0, -1);
              midCharacter++;
            }
            if (final + stream !== tok.decode(ids))
              failures.push(`${JSON.stringify(text)} at ${k}: ${stream}`);
          }
        }
        expect(midCharacter).toBeGreaterThan(0);
        expect(failures).toEqual([]);
      });
    },
  );
}

describeShared(
  'context ending inside a character, fixture smollm',
  ['fixtures/tokenizers/smollm/tokenizer.json'],
  () => {
    it('the emoji a prompt begins arrives whole, not as U+FFFD', async () => {
      const tok = await loadTokenizer(sharedPath('fixtures/tokenizers', 'smollm'));
      const ids = tok.encode('Say 🎉 now', { addSpecialTokens: false });
      // " \xF0\x9F" is one token: a space and the first two bytes of 🎉
      expect(ids.map((id) => Array.from(tok.tokenBytes(id), (b) => b.toString(16)).join(' '))).toEqual([
        '53 61 79',
        '20 f0 9f',
        '8e',
        '89',
        '20 6e 6f 77',
      ]);
      expect(tok.decode(ids.slice(0, 2))).toBe('Say \uFFFD');
      const detok = tok.createDetokenizer({ context: ids.slice(0, 2) });
      expect([...ids.slice(2).map((id) => detok.push(id)), detok.flush()]).toEqual(['', '🎉', ' now', '']);
    });
  },
);
