// The prefix cache under a server's mix of requests, seeded: conversations going on from earlier
// prompts and replies, prompts sharing a beginning arriving together, unrelated prompts, requests
// aborted mid-way, arrivals spread over time, a cache small enough to evict, prompts that want their
// own log-probs. Every reply must be the one a model without a cache gives (greedy; the tiny model's
// logits are far from ties), and every prompt's log-probs its own, to float rounding.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../src/index.js';
import { diverseModelDir } from './helpers.js';

/** A seeded LCG in [0, 1). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('a prefix cache under a mix of requests', () => {
  /** Prompt positions reused by rows that wanted their prompt's log-probs, over all seeds. */
  let scoredReused = 0;
  let plain: Model;
  beforeAll(async () => {
    plain = await loadModel(await diverseModelDir(), { log: () => {}, maxBatchSize: 32 });
  });
  afterAll(() => plain.dispose());

  it.each(Array.from({ length: 8 }, (_, seed) => seed))(
    'seed %i: every reply is what a model without a cache gives',
    async (seed) => {
      // prompts in chunks of 16 or whole, a budget of 256 KiB (evicting) or 8 MiB, a batch of 5 rows
      const cached = await loadModel(await diverseModelDir(), {
        log: () => {},
        prefixCache: seed % 3 === 0 ? 1 << 18 : 8 << 20,
        prefillChunk: seed % 2 === 0 ? 16 : 256,
        maxBatchSize: 5,
      });
      const r = random(seed + 1);
      const tokens = (n: number) => Array.from({ length: n }, () => 5 + Math.floor(r() * 300));
      const eos = plain.info.eosIds[0]!;
      const opts = (max: number) => ({ maxNewTokens: max, rules: 'hewitt2024', logitBias: { [eos]: -3 } });
      /** Prompts and replies so far, to go on from. */
      const seen: number[][] = [tokens(120)];
      let compared = 0;
      let reused = 0;
      for (let round = 0; round < 4; round++) {
        const requests = Array.from({ length: 3 + Math.floor(r() * 8) }, () => {
          const earlier = seen[Math.floor(r() * seen.length)]!;
          const kind = r();
          const ids =
            kind < 0.5
              ? [...earlier, ...tokens(1 + Math.floor(r() * 20))] // a conversation's next turn
              : kind < 0.8 // a shared beginning, then something else
                ? [
                    ...earlier.slice(0, Math.max(1, Math.floor(earlier.length * r()))),
                    ...tokens(1 + Math.floor(r() * 40)),
                  ]
                : tokens(2 + Math.floor(r() * 90));
          const max = 1 + Math.floor(r() * 16);
          const abort = r() < 0.08;
          const delay = Math.floor(r() * 30);
          // a third of them want their prompt's log-probs, with 0 to 2 alternatives
          const scored = r() < 0.33 ? Math.floor(r() * 3) : undefined;
          return { ids, max, abort, delay, scored };
        });
        const outs = await Promise.all(
          requests.map(async (q) => {
            await new Promise((resolve) => setTimeout(resolve, q.delay));
            const abort = new AbortController();
            if (q.abort) setTimeout(() => abort.abort(), 3);
            try {
              const input = { promptIds: q.ids, scopeStart: 0 };
              const options = { ...opts(q.max), signal: abort.signal, promptLogprobs: q.scored };
              return (await cached.generate(input, options))[0]!;
            } catch (error) {
              if (!q.abort) throw error;
              return null; // aborted before it finished
            }
          }),
        );
        for (const [i, q] of requests.entries()) {
          const out = outs[i];
          if (!out) continue;
          seen.push([...q.ids, ...out.tokenIds]);
          const [want] = await plain.generate(
            { promptIds: q.ids, scopeStart: 0 },
            { ...opts(q.max), promptLogprobs: q.scored },
          );
          const where = `round ${round}, request ${i}: ${out.usage.cachedTokens} of ${q.ids.length} reused`;
          expect(out.tokenIds, where).toEqual(want!.tokenIds);
          if (q.scored !== undefined) {
            const [got, exact] = [out.promptLogprobs!, want!.promptLogprobs!];
            expect(
              got.map((e) => e && [e.id, e.top.map((a) => a.id)]),
              where,
            ).toEqual(exact.map((e) => e && [e.id, e.top.map((a) => a.id)]));
            for (const [t, e] of got.entries())
              if (e) expect(e.logprob, where).toBeCloseTo(exact[t]!.logprob, 4);
            scoredReused += out.usage.cachedTokens ?? 0;
          }
          reused += out.usage.cachedTokens ?? 0;
          compared++;
        }
      }
      // the mix did reuse: conversations went on from kept prompts and replies
      expect(compared).toBeGreaterThan(12);
      expect(reused).toBeGreaterThan(500);
      await cached.dispose();
    },
    120_000,
  );

  it('prompts that want their log-probs did go on from prompts kept with theirs', () => {
    expect(scoredReused).toBeGreaterThan(200);
  });
});
