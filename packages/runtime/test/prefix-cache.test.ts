// The prefix cache: a prompt that begins as a kept one runs only the rest of it, and must generate
// what a fresh prefill of the whole prompt generates.
import { createTinyModel } from '@implicit-it/modelkit/test';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { sharedPrefixWaves } from '../src/decode-engine.js';
import { GenerationAbortedError, type GenerationResult, loadModel, type Model } from '../src/index.js';
import { SlotCache } from '../src/kv-cache.js';
import { PrefixCache } from '../src/prefix-cache.js';
import { diverseModelDir, streamInBackground } from './helpers.js';

/**
 * Stores `ids` as the keys/values of a prompt tagged `tag`: position `p`'s values are `tag * 1000 + p`
 * (one head of two values: 8 bytes a position), so that what a lookup hands back says where each
 * position came from. Returns the positions `take` was asked for.
 */
function keep(cache: PrefixCache, ids: readonly number[], tag: number): number | null {
  let from: number | null = null;
  cache.store(ids, (skip) => {
    from = skip;
    const length = ids.length - skip;
    const data = new Float32Array(length * 2).map((_, j) => tag * 1000 + skip + Math.floor(j / 2));
    return { type: 'float32', heads: 1, dim: 2, length, data: [data] };
  });
  return from;
}
/** The values of the positions a lookup of `ids` reuses, assembled as a prefill's cache would be. */
function reused(cache: PrefixCache, ids: readonly number[]): number[] | null {
  const hit = cache.lookup(ids);
  if (hit === null) return null;
  const [data] = SlotCache.fromRows([hit], hit.length).feeds();
  return [...(data!.data as Float32Array)].filter((_, j) => j % 2 === 0);
}
const seq = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);
/** `tag`'s positions `from` to `to` (excluded), as `reused` reads them. */
const positions = (tag: number, from: number, to: number) => seq(to - from, tag * 1000 + from);

describe('PrefixCache', () => {
  it('finds the kept prompt sharing the longest prefix, never all of the prompt', () => {
    const cache = new PrefixCache(1 << 20, 4);
    keep(cache, seq(10), 1);
    keep(cache, [...seq(6), 99, 98, 97], 2);
    expect(reused(cache, [...seq(10), 50])).toEqual(positions(1, 0, 10));
    // shares 8 with the second, whose first 6 are the first's (stored once)
    expect(reused(cache, [...seq(6), 99, 98, 5])).toEqual([...positions(1, 0, 6), ...positions(2, 6, 8)]);
    // the same prompt again: all but its last position (which is run for the next token's logits)
    expect(cache.lookup(seq(10))!.length).toBe(9);
    // fewer shared tokens than minTokens: a miss
    expect(cache.lookup([0, 1, 2, 7, 7, 7])).toBeNull();
    // peek says what a lookup would reuse, and counts nothing
    expect([cache.peek([...seq(6), 99, 98, 5]), cache.peek([0, 1, 2, 7])]).toEqual([8, 0]);
    expect(cache.stats).toEqual({ entries: 2, bytes: 13 * 8, maxBytes: 1 << 20, hits: 3, reusedTokens: 27 });
  });

  it('serves a prompt that wants its log-probs from one kept with theirs only, the last shared position run', () => {
    const cache = new PrefixCache(1 << 20, 4);
    /** Log-probs of `ids` with `top` alternatives, each telling its position. */
    const lps = (ids: readonly number[], top: number) => ({
      top,
      list: ids.map((id, t) =>
        t === 0
          ? null
          : {
              id,
              token: `<${id}>`,
              logprob: -t,
              top: seq(top).map((k) => ({ id: k, token: `<${k}>`, logprob: -k })),
            },
      ),
    });
    keep(cache, seq(10), 1); // without log-probs
    expect([cache.lookup([...seq(10), 5], 0), cache.peek([...seq(10), 5], 0)]).toEqual([null, 0]);
    // the same prompt, scored: kept already, it takes the log-probs without a copy
    cache.store(seq(10), () => expect.unreachable('copied again'), lps(seq(10), 2));
    expect(cache.stats.entries).toBe(1);
    // 8 tokens shared: 7 positions reused, the 8th run (its logits give the next token's log-prob);
    // the kept log-probs are those of the 7 positions' tokens and the 8th's
    const hit = cache.lookup([...seq(8), 50, 51], 1)!;
    expect(hit.length).toBe(7);
    expect(hit.logprobs).toEqual(lps(seq(10), 2).list.slice(0, 8));
    expect(Object.isFrozen(hit.logprobs![3]) && Object.isFrozen(hit.logprobs![3]!.top)).toBe(true);
    // the same prompt: all but its last position, as without log-probs
    expect(cache.peek(seq(10), 2)).toBe(9);
    // more alternatives than kept: a miss
    expect(cache.lookup(seq(10), 3)).toBeNull();
    // kept with its reply: the log-probs go with it, and serve the prompt's positions only
    expect(keep(cache, seq(20), 2)).toBe(10);
    expect(cache.stats.entries).toBe(1);
    expect([cache.peek(seq(21), 1), cache.peek(seq(21), null)]).toEqual([9, 20]);
    expect(() => cache.store(seq(4), () => expect.unreachable(), lps(seq(5), 0))).toThrow(
      'internal: 5 log-probs given to keep 4 tokens',
    );
  });

  it('keeps the longer of two prompts where one begins the other, and drops least recently used past its bytes', () => {
    const cache = new PrefixCache(100 * 8, 4);
    keep(cache, seq(10), 1);
    // the next turn of the same conversation: replaces the first, and holds only what it adds
    expect(keep(cache, seq(20), 2)).toBe(10);
    expect(cache.stats).toMatchObject({ entries: 1, bytes: 20 * 8 });
    expect(reused(cache, [...seq(20), 1])).toEqual([...positions(1, 0, 10), ...positions(2, 10, 20)]);
    // begins a kept one: nothing new (not even copied)
    expect(keep(cache, seq(15), 3)).toBeNull();
    expect(cache.stats).toMatchObject({ entries: 1, bytes: 20 * 8 });
    keep(cache, seq(50, 1000), 4);
    cache.lookup([...seq(20), 1]); // the first is used again: the second is now the least recent
    keep(cache, seq(40, 2000), 5);
    expect(cache.stats).toMatchObject({ entries: 2, bytes: 60 * 8 });
    expect(cache.lookup([...seq(50, 1000), 1])).toBeNull();
    expect(cache.lookup([...seq(40, 2000), 1])!.length).toBe(40);
    // shorter than minTokens, or larger than the whole budget: not kept
    keep(cache, seq(3, 5000), 6);
    keep(cache, seq(101, 6000), 7);
    expect(cache.stats.entries).toBe(2);
    cache.clear();
    expect(cache.stats).toMatchObject({ entries: 0, bytes: 0 });
  });

  it('keeps a beginning that sequences share once, and frees what none of them uses any more', () => {
    const cache = new PrefixCache(100 * 8, 4);
    const preamble = seq(30);
    keep(cache, [...preamble, ...seq(10, 100)], 1);
    // three more requests after the same preamble: each holds only its own 10 positions
    for (const tag of [2, 3, 4]) expect(keep(cache, [...preamble, ...seq(10, 100 * tag)], tag)).toBe(30);
    expect(cache.stats).toMatchObject({ entries: 4, bytes: (40 + 3 * 10) * 8 });
    expect(reused(cache, [...preamble, ...seq(10, 300), 7])).toEqual([
      ...positions(1, 0, 30),
      ...positions(3, 30, 40),
    ]);
    // the budget drops the least recently used (the first): its own 10 positions go, its preamble
    // stays for the others
    keep(cache, seq(40, 5000), 5);
    expect(cache.stats).toMatchObject({ entries: 4, bytes: (30 + 3 * 10 + 40) * 8 });
    expect(reused(cache, [...preamble, ...seq(10, 200), 7])).toEqual([
      ...positions(1, 0, 30),
      ...positions(2, 30, 40),
    ]);
    expect(cache.lookup([...preamble, ...seq(10, 100), 7])!.length).toBe(30);
    // the last users of the preamble gone, it is freed
    keep(cache, seq(90, 6000), 6);
    expect(cache.stats).toMatchObject({ entries: 1, bytes: 90 * 8 });
    expect(cache.peek([...preamble, 7])).toBe(0);
  });

  it('refuses a sequence that would not fit with the positions it shares, keeping what it shares them with', () => {
    for (const positionBytes of [8, 0]) {
      const cache = new PrefixCache(100 * 8, 4, positionBytes);
      keep(cache, seq(80), 1);
      // 70 positions shared with the first (which holds 80), 40 of its own: 120 in all
      expect(cache.keeps([...seq(70), ...seq(40, 500)])).toBe(positionBytes === 0);
      keep(cache, [...seq(70), ...seq(40, 500)], 2);
      expect(cache.stats).toMatchObject({ entries: 1, bytes: 80 * 8 });
      expect(reused(cache, [...seq(80), 1])).toEqual(positions(1, 0, 80));
      // 20 of its own fit
      expect(cache.keeps([...seq(70), ...seq(20, 500)])).toBe(true);
      expect(keep(cache, [...seq(70), ...seq(20, 500)], 3)).toBe(70);
      expect(cache.stats).toMatchObject({ entries: 2, bytes: 100 * 8 });
    }
  });
});

describe('a model with a prefix cache', () => {
  let plain: Model;
  let cached: Model;
  let chunked: Model;
  /** Token ids of a long text, to cut prompts from (the tiny model reads any ids below its vocabulary). */
  let text: number[];

  beforeAll(async () => {
    const dir = await diverseModelDir();
    plain = await loadModel(dir, { log: () => {} });
    cached = await loadModel(dir, { log: () => {}, prefixCache: 64 << 20 });
    chunked = await loadModel(dir, { log: () => {}, prefixCache: 64 << 20, prefillChunk: 16 });
    text = plain.tokenizer.encode(
      'Tiramisu is a coffee-flavoured Italian dessert. It is made of ladyfingers dipped in coffee, layered with a whipped mixture of eggs, sugar and mascarpone cheese, flavoured with cocoa. The recipe has been adapted into many varieties of cakes and other desserts. Its origin is often disputed among Italian regions. Poems about the sea are as old as writing: Homer calls it wine-dark, and sailors sang of it long before.',
      { addSpecialTokens: false },
    );
    expect(text.length).toBeGreaterThan(100);
  });
  beforeEach(() => {
    cached.clearPrefixCache();
    chunked.clearPrefixCache();
  });
  afterAll(async () => {
    await Promise.all([plain, cached, chunked].map((m) => m.dispose()));
  });

  const opts = { maxNewTokens: 12, rules: 'hewitt2024', logprobs: 1 } as const;
  const input = (ids: number[]) => ({ promptIds: ids, scopeStart: 0 });
  /** Same tokens as a fresh prefill; log-probs to float32 rounding (other kernel shapes). */
  function expectSame(got: GenerationResult, want: GenerationResult) {
    expect(got.tokenIds).toEqual(want.tokenIds);
    expect(got.text).toBe(want.text);
    for (const [j, lp] of got.logprobs!.entries())
      expect(lp.logprob).toBeCloseTo(want.logprobs![j]!.logprob, 4);
  }

  it("a conversation's next turn reuses the last one's prompt and generates what a fresh prefill does", async () => {
    const turn1 = text.slice(0, 60);
    const turn2 = text.slice(0, 100);
    const [first] = await cached.generate(input(turn1), opts);
    expect(first!.usage.cachedTokens).toBe(0);
    expectSame(first!, (await plain.generate(input(turn1), opts))[0]!);
    const run = vi.spyOn(cached.session, 'run');
    const [second] = await cached.generate(input(turn2), opts);
    // only the 40 new positions were prefilled, on top of the 60 kept ones
    const prefill = run.mock.calls[0]![0];
    expect([prefill.seq, prefill.past?.[0]?.dims[2]]).toEqual([40, 60]);
    run.mockRestore();
    expect(second!.usage).toEqual({
      promptTokens: 100,
      completionTokens: 12,
      totalTokens: 112,
      cachedTokens: 60,
    });
    expectSame(second!, (await plain.generate(input(turn2), opts))[0]!);
    // the same prompt again: all but its last position
    const [again] = await cached.generate(input(turn2), opts);
    expect(again!.usage.cachedTokens).toBe(99);
    expectSame(again!, second!);
    expect(plain.prefixCacheStats).toBeNull();
    // each prompt kept with its reply (the second turn's did not go on as the first reply)
    expect(cached.prefixCacheStats).toMatchObject({ entries: 2, hits: 2, reusedTokens: 159 });
  });

  it("a conversation's next turn goes on from the end of the last reply, rows of a batch each from its own", async () => {
    for (const model of [cached, chunked]) {
      const firsts = [text.slice(0, 60), text.slice(20, 50), text.slice(40, 110)];
      // different lengths, left-padded together, and replies of different lengths (EOS held off
      // for some): each row's keys/values are runs of its mask, with padding between
      const eos = model.info.eosIds[0]!;
      const replies = await Promise.all(
        firsts.map((ids, i) =>
          model.generate(input(ids), { ...opts, maxNewTokens: 6 + 4 * i, logitBias: { [eos]: -100 } }),
        ),
      );
      const nexts = firsts.map((ids, i) => [
        ...ids,
        ...replies[i]![0]!.tokenIds,
        ...text.slice(110 - 10 * i, 120),
      ]);
      const seconds = await model.generate(nexts.map(input), opts);
      // every token of the last turn but the reply's last (sampled, never fed) is reused
      expect(seconds.map((r) => r.usage.cachedTokens)).toEqual(
        firsts.map((ids, i) => ids.length + 6 + 4 * i - 1),
      );
      for (const [i, ids] of nexts.entries())
        expectSame(seconds[i]!, (await plain.generate(input(ids), opts))[0]!);
      model.clearPrefixCache();
    }
  });

  it('a reply its client stopped is kept as far as it went: the next turn re-sends it', async () => {
    const prompt = text.slice(0, 60);
    const eos = cached.info.eosIds[0]!;
    const abort = new AbortController();
    const received: number[] = [];
    const stream = cached.stream(input(prompt), {
      ...opts,
      maxNewTokens: 200,
      logitBias: { [eos]: -100 },
      signal: abort.signal,
    });
    await expect(
      (async () => {
        for await (const part of stream) {
          if (part.type !== 'token') continue;
          received.push(part.id);
          if (received.length === 8) abort.abort();
        }
      })(),
    ).rejects.toThrow(GenerationAbortedError);
    expect(received.length).toBeGreaterThanOrEqual(8);
    const next = [...prompt, ...received, ...text.slice(100, 120)];
    const [second] = await cached.generate(input(next), opts);
    // the prompt and every reply token the engine fed (all it sent but the last, at least)
    expect(second!.usage.cachedTokens).toBeGreaterThanOrEqual(prompt.length + received.length - 1);
    expectSame(second!, (await plain.generate(input(next), opts))[0]!);
  });

  it('rows prefilled together each go on from their own prefix (or none), in chunks too', async () => {
    for (const model of [cached, chunked]) {
      await model.generate(input(text.slice(10, 50)), opts); // kept: 40 tokens from position 10
      await model.generate(input(text.slice(0, 90)), opts); // kept: 90 tokens from the start
      const prompts = [
        text.slice(10, 100), // 40 reused, 50 run
        text.slice(0, 95), // 90 reused, 5 run
        text.slice(60, 110), // no kept prompt begins so: 50 run
        text.slice(0, 95), // the same prompt as a row before: shares its prefill
      ];
      const together = await model.generate(prompts.map(input), opts);
      expect(together.map((r) => r.usage.cachedTokens)).toEqual([40, 90, 0, 90]);
      for (const [i, ids] of prompts.entries())
        expectSame(together[i]!, (await plain.generate(input(ids), opts))[0]!);
      model.clearPrefixCache();
    }
  });

  it('rows admitted together are grouped by what their prefill runs, less what the cache gives', async () => {
    await cached.generate(input(text.slice(0, 90)), { ...opts, maxNewTokens: 1 });
    const prompts = [
      text.slice(0, 95), // 90 reused: runs 5
      text.slice(5, 100), // nothing kept begins so: runs 95
      text.slice(100, 110), // runs 10
    ];
    const run = vi.spyOn(cached.session, 'run');
    const together = await cached.generate(prompts.map(input), { ...opts, maxNewTokens: 1 });
    const prefills = run.mock.calls.map(([f]) => [f.batch, f.seq]).filter(([, seq]) => seq! > 1);
    run.mockRestore();
    // by prompt length the 95-token prompts would share a pass, the reused one padded from 5 to 95
    expect(prefills).toEqual([
      [2, 10],
      [1, 95],
    ]);
    expect(together.map((r) => r.usage.cachedTokens)).toEqual([90, 0, 0]);
    for (const [i, ids] of prompts.entries())
      expectSame(together[i]!, (await plain.generate(input(ids), { ...opts, maxNewTokens: 1 }))[0]!);
  });

  it('prompts arriving together that share a beginning prefill it once: one first, the others after it', async () => {
    const a = text.slice(0, 80);
    const prompts = [
      a,
      [...text.slice(0, 70), ...text.slice(100, 110)], // shares 70 positions with the first
      text.slice(120, 150), // shares nothing
      a, // the same prompt as the first: shares its prefill
    ];
    const run = vi.spyOn(cached.session, 'run');
    const together = await cached.generate(prompts.map(input), { ...opts, maxNewTokens: 1 });
    const prefills = run.mock.calls.map(([f]) => [f.batch, f.seq, f.past?.[0]?.dims[2] ?? 0]);
    run.mockRestore();
    expect(prefills).toEqual([
      [2, 80, 0], // the first wave: the first prompt (and its copy) with the unrelated one
      [1, 10, 70], // then the second goes on from the first's 70 shared positions
    ]);
    expect(together.map((r) => r.usage.cachedTokens)).toEqual([0, 70, 0, 0]);
    for (const [i, ids] of prompts.entries())
      expectSame(together[i]!, (await plain.generate(input(ids), { ...opts, maxNewTokens: 1 }))[0]!);
  });

  it('sharedPrefixWaves: a second wave only for rows that gain minTokens over what the cache gives', () => {
    const row = (ids: number[]) => ({ req: { promptIds: ids } });
    const [p, q, r, same] = [row(seq(10)), row([...seq(6), 50, 51]), row(seq(8, 100)), row(seq(10))];
    // the shortest lead: q first; p shares 6 positions with it, and goes second with its copy
    const rows = [q, p, r, same];
    const waves = sharedPrefixWaves(rows, new PrefixCache(8 * 8, 4, 8));
    expect(waves).toEqual([
      [q, r],
      [p, same],
    ]);
    expect(waves[1]![1]).toBe(same);
    // the cache gives p 3 already: 6 shared is not minTokens more
    expect(sharedPrefixWaves(rows, { minTokens: 4, peek: () => 3, keeps: () => true })).toEqual([rows]);
    expect(sharedPrefixWaves([r, row(seq(8, 200))], new PrefixCache(1 << 20, 4, 8))).toHaveLength(1);
    // a lead past the budget would not be kept, so its followers would find nothing after it
    const lead = row([...seq(6), 50, 51, 52, 53, 54, 55]);
    const follower = row([...lead.req.promptIds, 99]);
    const small = new PrefixCache(11 * 8, 4, 8);
    expect(small.keeps(lead.req.promptIds)).toBe(false);
    expect(sharedPrefixWaves([lead, follower], small)).toEqual([[lead, follower]]);
    const fits = new PrefixCache(12 * 8, 4, 8);
    expect(fits.keeps(lead.req.promptIds)).toBe(true);
    expect(sharedPrefixWaves([lead, follower], fits)).toEqual([[lead], [follower]]);
    // rows that want their prompt's log-probs follow a lead that wants as many alternatives or more
    // (kept with them); the others follow any lead
    const scored = (ids: number[], k: number) => ({ req: { promptIds: ids, promptLogprobs: k } });
    const [a, b, c, d] = [
      scored(seq(10), 1),
      scored([...seq(9), 50], 1),
      scored([...seq(9), 51], 2),
      row([...seq(9), 52]),
    ];
    expect(sharedPrefixWaves([a, b, c, d], new PrefixCache(1 << 20, 4, 8))).toEqual([
      [a, c],
      [b, d],
    ]);
  });

  it('a row that reuses a prefix joins a running batch as a fresh one does', async () => {
    const eos = cached.info.eosIds[0]!;
    await cached.generate(input(text.slice(0, 70)), opts);
    const long = { ...opts, maxNewTokens: 40, logitBias: { [eos]: -100 } };
    const running = streamInBackground(cached, input(text.slice(30, 60)), long, 5);
    running.ids.catch(() => {}); // awaited below; a failed expectation before must not leave it unhandled
    await running.started;
    expect(cached.load.decoding).toBe(1);
    const [joined] = await cached.generate(input(text.slice(0, 80)), opts);
    expect(joined!.usage.cachedTokens).toBe(70);
    expectSame(joined!, (await plain.generate(input(text.slice(0, 80)), opts))[0]!);
    expect(await running.ids).toEqual((await plain.generate(input(text.slice(30, 60)), long))[0]!.tokenIds);
  });

  it.each([
    ['no position_ids input (positions from the mask)', { positionIds: false }],
    ['repeat_kv as optimum exports it', { linear: 'matmul', repeatKv: 'expand' }],
    ['a float16 cache', { kvDtype: 'float16' }],
  ] as const)('goes on from a kept prompt on other graphs too (%s)', async (_, graph) => {
    const { dir } = await createTinyModel({ seed: 1, initScale: 10, ...graph });
    const fresh = await loadModel(dir, { log: () => {} });
    const reusing = await loadModel(dir, { log: () => {}, prefixCache: 16 << 20 });
    await reusing.generate(input(text.slice(0, 60)), opts);
    const [got] = await reusing.generate(input(text.slice(0, 100)), opts);
    expect(got!.usage.cachedTokens).toBe(60);
    expectSame(got!, (await fresh.generate(input(text.slice(0, 100)), opts))[0]!);
    await Promise.all([fresh.dispose(), reusing.dispose()]);
  });

  it('is refused out of range, and off where prompts cannot go on from a cache', async () => {
    await expect(loadModel(await diverseModelDir(), { prefixCache: -1 })).rejects.toThrow(
      'loadModel: prefixCache must be a whole number of bytes (0: none), got -1',
    );
    const windowed = await createTinyModel({ seed: 3, modelType: 'qwen2', slidingWindow: 40 });
    const lines: string[] = [];
    const model = await loadModel(windowed.dir, { log: (l) => lines.push(l), prefixCache: 1 << 20 });
    expect(lines).toContain('no prefix cache with a sliding window');
    expect(model.prefixCacheStats).toBeNull();
    const [out] = await model.generate(input(seq(40, 3)), { maxNewTokens: 2 });
    expect(out!.usage.cachedTokens).toBeUndefined();
    await model.dispose();
  });
});
