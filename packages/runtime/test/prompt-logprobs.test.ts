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

  it('a kept prefix is not reused for them (its positions have no logits), and is for others', async () => {
    const prompt = `${PROMPTS[0]} ${PROMPTS[3]}`;
    await cached.generate(prompt, { maxNewTokens: 2 });
    const [again] = await cached.generate(prompt, { maxNewTokens: 2, promptLogprobs: 0 });
    expect(again!.usage.cachedTokens).toBe(0);
    await expectScored(again!.promptLogprobs!, again!.prompt.ids, 0);
    const [reusing] = await cached.generate(prompt, { maxNewTokens: 2 });
    expect(reusing!.usage.cachedTokens).toBeGreaterThan(0);
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
