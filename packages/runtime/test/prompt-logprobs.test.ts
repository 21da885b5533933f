// promptLogprobs: the prompt's own log-probs, read from the prefill's logits. They must be what
// teacher-forced scoring gives the same tokens, whatever the batch, the padding, the chunks or a
// prefix cache around them, and must not change what is generated.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GenerationResult,
  loadModel,
  loadModelInWorker,
  type Model,
  type StreamPart,
  type TokenLogprob,
  type WorkerModel,
} from '../src/index.js';
import { sharedLength } from '../src/prefix-cache.js';
import { diverseModelDir, PROMPTS, tinyModel } from './helpers.js';

let model: Model;
let chunked: Model;
let cached: Model;

beforeAll(async () => {
  model = await tinyModel();
  const dir = await diverseModelDir();
  chunked = await loadModel(dir, { log: () => {}, prefillChunk: 4 });
  cached = await loadModel(dir, { log: () => {}, prefixCache: 16 << 20 });
});

afterAll(async () => {
  await chunked?.dispose();
  await cached?.dispose();
});

/** score()'s log-probs and top-k alternatives of each token of `ids` after its first. */
async function scored(ids: readonly number[], top: number) {
  const [s] = await model.score([{ prompt: { promptIds: ids.slice(0, 1) }, continuation: ids.slice(1) }], {
    top,
  });
  return s!;
}

/** `lps` are the log-probs score() gives the prompt `ids`, to float32 rounding across batch shapes. */
async function expectScored(lps: readonly (TokenLogprob | null)[], ids: readonly number[], top: number) {
  const want = await scored(ids, top);
  expect(lps).toHaveLength(ids.length);
  expect(lps[0]).toBeNull();
  for (let t = 1; t < ids.length; t++) {
    const lp = lps[t]!;
    expect(lp.id).toBe(ids[t]);
    expect(lp.token).toBe(model.tokenizer.tokenText(ids[t]!));
    expect(lp.logprob).toBeCloseTo(want.logprobs[t - 1]!, 4);
    const alts = want.top?.[t - 1] ?? []; // none with top 0
    expect(lp.top.map((a) => a.id)).toEqual(alts.map((a) => a.id));
    for (const [k, alt] of lp.top.entries()) expect(alt.logprob).toBeCloseTo(alts[k]!.logprob, 4);
  }
}

const same = (a: GenerationResult, b: GenerationResult) => expect(a.tokenIds).toEqual(b.tokenIds);

describe('promptLogprobs', () => {
  it("are score()'s, under the base model, and leave the generation as it was", async () => {
    const options = { maxNewTokens: 8, rules: 'hewitt2024' as const, logitBias: { 77: 2 } };
    const [r] = await model.generate(PROMPTS[0]!, { ...options, promptLogprobs: 3 });
    await expectScored(r!.promptLogprobs!, r!.prompt.ids, 3);
    const [plain] = await model.generate(PROMPTS[0]!, options);
    same(r!, plain!);
    expect(plain).not.toHaveProperty('promptLogprobs');
    // true: no alternatives
    const [bare] = await model.generate(PROMPTS[0]!, { ...options, promptLogprobs: true });
    expect(bare!.promptLogprobs!.slice(1).every((lp) => lp!.top.length === 0)).toBe(true);
  });

  it('prompts of different lengths in one batch, each with its own padding, one repeated', async () => {
    const prompts = [...PROMPTS, PROMPTS[1]!];
    const results = await model.generate(prompts, { maxNewTokens: 4, promptLogprobs: 2 });
    for (const r of results) await expectScored(r.promptLogprobs!, r.prompt.ids, 2);
    const alone = await Promise.all(prompts.map((p) => model.generate(p, { maxNewTokens: 4 })));
    for (const [i, r] of results.entries()) same(r, alone[i]![0]!);
  });

  it('a row without them admitted alongside is prefilled apart and answers as alone', async () => {
    const [withLps, without] = await Promise.all([
      model.generate(PROMPTS[3]!, { maxNewTokens: 6, promptLogprobs: 1 }),
      model.generate(PROMPTS[1]!, { maxNewTokens: 6, logprobs: 1 }),
    ]);
    await expectScored(withLps[0]!.promptLogprobs!, withLps[0]!.prompt.ids, 1);
    expect(without[0]).not.toHaveProperty('promptLogprobs');
    const [alone] = await model.generate(PROMPTS[1]!, { maxNewTokens: 6, logprobs: 1 });
    same(without[0]!, alone!);
  });

  it('a prompt prefilled in chunks gets every position, chunk boundaries included', async () => {
    const [r] = await chunked.generate(PROMPTS[3]!, { maxNewTokens: 4, promptLogprobs: 2 });
    expect(r!.prompt.ids.length).toBeGreaterThan(8);
    await expectScored(r!.promptLogprobs!, r!.prompt.ids, 2);
  });

  it('maxNewTokens 0 runs the prompt for them alone; repeated prompts share one prefill', async () => {
    const results = await model.generate([PROMPTS[2]!, PROMPTS[2]!], { maxNewTokens: 0, promptLogprobs: 1 });
    for (const r of results) {
      expect([r.tokenIds, r.text, r.finishReason, r.usage.completionTokens]).toEqual([[], '', 'length', 0]);
      await expectScored(r.promptLogprobs!, r.prompt.ids, 1);
    }
    expect(results[1]!.promptLogprobs).toEqual(results[0]!.promptLogprobs);
  });

  it('a prompt kept with its log-probs serves the next one that begins as it does; one kept without does not', async () => {
    cached.clearPrefixCache();
    const prompt = `${PROMPTS[0]} ${PROMPTS[3]}`;
    await cached.generate(prompt, { maxNewTokens: 2 }); // kept, and its reply, without log-probs
    const [first] = await cached.generate(prompt, { maxNewTokens: 2, promptLogprobs: 1 });
    expect(first!.usage.cachedTokens).toBe(0);
    await expectScored(first!.promptLogprobs!, first!.prompt.ids, 1);
    // kept with them now (a copy: the caller may change its results): the same prompt reruns its last
    // position only, to the same log-probs
    const n = first!.prompt.ids.length;
    const kept = structuredClone(first!.promptLogprobs!);
    first!.promptLogprobs![1]!.logprob = 0;
    first!.promptLogprobs![1]!.top[0]!.id = -1;
    const [again] = await cached.generate(prompt, { maxNewTokens: 2, promptLogprobs: 1 });
    expect(again!.usage.cachedTokens).toBe(n - 1);
    await expectScored(again!.promptLogprobs!, again!.prompt.ids, 1);
    expect(again!.promptLogprobs!.slice(0, n - 1)).toEqual(kept.slice(0, n - 1));
    again!.promptLogprobs![1]!.top.pop(); // and so may the next one's caller
    const [third] = await cached.generate(prompt, { maxNewTokens: 0, promptLogprobs: 1 });
    expect(third!.promptLogprobs!.slice(0, n - 1)).toEqual(kept.slice(0, n - 1));
    // with fewer alternatives too; not with more than were kept
    const [fewer] = await cached.generate(prompt, { maxNewTokens: 0, promptLogprobs: 0 });
    expect(fewer!.usage.cachedTokens).toBe(n - 1);
    await expectScored(fewer!.promptLogprobs!, fewer!.prompt.ids, 0);
    const [more] = await cached.generate(prompt, { maxNewTokens: 0, promptLogprobs: 3 });
    expect(more!.usage.cachedTokens).toBe(0);
    await expectScored(more!.promptLogprobs!, more!.prompt.ids, 3);
    // the prompt with its reply and a question (a conversation's next turn): the reply was generated,
    // not scored, so the prompt's positions serve, not the reply's
    const ids = [...first!.prompt.ids, ...first!.tokenIds, 65, 66, 67];
    const [turn] = await cached.generate(
      { promptIds: ids, scopeStart: 0 },
      { maxNewTokens: 1, promptLogprobs: 2 },
    );
    expect(turn!.usage.cachedTokens).toBe(n - 1);
    await expectScored(turn!.promptLogprobs!, ids, 2);
    // and rows that do not score reuse it whole
    const [plain] = await cached.generate({ promptIds: ids, scopeStart: 0 }, { maxNewTokens: 1 });
    expect(plain!.usage.cachedTokens).toBe(ids.length - 1);
  });

  it("choices after one context, as lm-eval's loglikelihood requests send them, prefill the context once", async () => {
    cached.clearPrefixCache();
    const hits = cached.prefixCacheStats!.hits;
    const context = cached.tokenizer.encode(`${PROMPTS[3]}\nQuestion: ${PROMPTS[2]}\nAnswer:`);
    const choices = [65, 66, 67, 68].map((id) => [...context, id]);
    const results = await cached.generate(
      choices.map((promptIds) => ({ promptIds, scopeStart: 0 })),
      { maxNewTokens: 0, promptLogprobs: 1 },
    );
    // the first runs it all; the others, the context's last position and their own
    expect(results.map((r) => r.usage.cachedTokens)).toEqual(
      [0, 1, 2, 3].map((i) => (i ? context.length - 1 : 0)),
    );
    for (const [i, r] of results.entries()) {
      await expectScored(r.promptLogprobs!, choices[i]!, 1);
      expect(r.promptLogprobs!.slice(0, context.length)).toEqual(
        results[0]!.promptLogprobs!.slice(0, context.length),
      );
    }
    expect(cached.prefixCacheStats!.hits - hits).toBe(3);
    // one more choice, prefilled with another prompt that runs whole: padded to it, it reads the
    // log-probs of its own positions only
    const other = cached.tokenizer.encode(PROMPTS[1]!);
    const mixed = await cached.generate(
      [[...context, 69], other].map((promptIds) => ({ promptIds, scopeStart: 0 })),
      { maxNewTokens: 0, promptLogprobs: 1 },
    );
    expect(mixed.map((r) => r.usage.cachedTokens)).toEqual([context.length - 1, 0]);
    await expectScored(mixed[0]!.promptLogprobs!, [...context, 69], 1);
    await expectScored(mixed[1]!.promptLogprobs!, other, 1);
  });

  it('the answers of two questions after one preamble, in one call, each run only what the cache lacks', async () => {
    cached.clearPrefixCache();
    const preamble = cached.tokenizer.encode(`${PROMPTS[3]} ${PROMPTS[0]}`);
    const contexts = [PROMPTS[1]!, PROMPTS[2]!].map((q) => [
      ...preamble,
      ...cached.tokenizer.encode(`\nQuestion: ${q} ${q} ${q}\nAnswer:`),
    ]);
    expect(contexts[0]!.length).toBeLessThan(contexts[1]!.length); // the first leads: shortest first
    const prompts = contexts.flatMap((c) => [65, 66, 67, 68].map((id) => [...c, id]));
    const results = await cached.generate(
      prompts.map((promptIds) => ({ promptIds, scopeStart: 0 })),
      { maxNewTokens: 0, promptLogprobs: 1 },
    );
    // first the first answer of the first question; then its other answers, and the first of the second
    // question, which goes on from what it shares with the first (the preamble and then some); then the
    // second's other answers
    const [a, b] = contexts.map((c) => c.length - 1);
    const shared = sharedLength(contexts[0]!, contexts[1]!);
    expect(shared).toBeGreaterThan(preamble.length - 2);
    expect(results.map((r) => r.usage.cachedTokens)).toEqual([0, a, a, a, shared - 1, b, b, b]);
    for (const [i, r] of results.entries()) await expectScored(r.promptLogprobs!, prompts[i]!, 1);
  });

  it('a prompt that fills the context is scored with maxNewTokens 0, and refused where a token is asked', async () => {
    const max = model.info.maxPositions!;
    const ids = Array.from({ length: max }, (_, t) => 5 + ((t * 7) % 300));
    const [r] = await model.generate(
      { promptIds: ids, scopeStart: 0 },
      { maxNewTokens: 0, promptLogprobs: 1 },
    );
    expect([r!.finishReason, r!.tokenIds]).toEqual(['length', []]);
    await expectScored(r!.promptLogprobs!, ids, 1);
    await expect(model.generate({ promptIds: ids, scopeStart: 0 }, { maxNewTokens: 1 })).rejects.toThrow(
      `the prompt has ${max} tokens; this model's context is ${max} (max_position_embeddings), which leaves no room for a token (maxNewTokens 0 scores it whole)`,
    );
    await expect(
      model.generate({ promptIds: [...ids, 5], scopeStart: 0 }, { maxNewTokens: 0, promptLogprobs: 1 }),
    ).rejects.toThrow(
      `the prompt has ${max + 1} tokens; this model's context is ${max} (max_position_embeddings)`,
    );
    // one token less leaves room for one
    const [one] = await model.generate({ promptIds: ids.slice(1), scopeStart: 0 }, { maxNewTokens: 5 });
    expect([one!.finishReason, one!.tokenIds.length]).toEqual(['length', 1]);
  });

  it('a stream sends them first, before any token', async () => {
    const parts: StreamPart[] = [];
    for await (const part of model.stream(PROMPTS[1]!, { maxNewTokens: 3, promptLogprobs: 1 }))
      parts.push(part);
    expect(parts[0]!.type).toBe('prompt-logprobs');
    expect(parts.filter((p) => p.type === 'prompt-logprobs')).toHaveLength(1);
    const [r] = await model.generate(PROMPTS[1]!, { maxNewTokens: 3, promptLogprobs: 1 });
    expect((parts[0] as { logprobs: unknown }).logprobs).toEqual(r!.promptLogprobs);
  });

  it('cross to a worker thread, in results and in streams', async () => {
    const there: WorkerModel = await loadModelInWorker(await diverseModelDir(), { log: () => {} });
    try {
      const options = { maxNewTokens: 3, promptLogprobs: 2 };
      const [r] = await there.generate(PROMPTS[0]!, options);
      const [here] = await model.generate(PROMPTS[0]!, options);
      expect(r!.promptLogprobs).toEqual(here!.promptLogprobs);
      const first = await there.stream(PROMPTS[0]!, options).next();
      expect(first.value).toEqual({ type: 'prompt-logprobs', logprobs: here!.promptLogprobs });
    } finally {
      await there.dispose();
    }
  });

  it('is checked as logprobs is', async () => {
    await expect(model.generate('Hi', { promptLogprobs: '2' as never })).rejects.toThrow(
      /^promptLogprobs: expected true, false or a number of alternatives \(0-20\), got "2"/,
    );
    await expect(model.generate('Hi', { promptLogprobs: 21 })).rejects.toThrow(
      /^promptLogprobs: expected an integer in \[0, 20\], got 21/,
    );
  });
});
