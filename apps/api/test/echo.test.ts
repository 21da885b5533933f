// Completions' `echo`: the prompt returned before the completion, with its tokens' log-probs. The
// prompt's log-probs come from its prefill (the runtime's promptLogprobs); they must agree with what
// decoding reports for the same tokens, and they are what lm-evaluation-harness's `local-completions`
// reads.
import { loadModel, type Model } from '@implicit-it/runtime';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { documentStartId, loadTokenizer } from '@implicit-it/tokenizers';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiApp, createApp, type RunningServer, serve } from '../src/index.js';
import { echoOffsets } from '../src/openai-format.js';
import { json, parseSse, tinyModel, tinyModelDir } from './helpers.js';

let model: Model;
let app: ApiApp;

beforeAll(async () => {
  model = await tinyModel();
  app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, concurrency: 8 });
});

async function post(body: Record<string, unknown>) {
  const res = await app.request('/v1/completions', json({ model: 'tiny', ...body }));
  const text = await res.text();
  return { res, text, body: res.headers.get('Content-Type')?.includes('json') ? JSON.parse(text) : null };
}

interface Legacy {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

const PROMPT = 'The capital of France is';
const ids = (text: string) => model.prompt({ text }, 'raw').ids;

describe('echo: the prompt before the completion', () => {
  it("max_tokens 0 returns the prompt, each token's log-prob after those before it (the first null)", async () => {
    const { res, body } = await post({ prompt: PROMPT, echo: true, max_tokens: 0, logprobs: 2 });
    expect(res.status).toBe(200);
    const [choice] = body.choices;
    expect(choice.text).toBe(PROMPT);
    expect(choice.finish_reason).toBe('length');
    const prompt = ids(PROMPT);
    expect(body.usage).toEqual({
      prompt_tokens: prompt.length,
      completion_tokens: 0,
      total_tokens: prompt.length,
    });
    const lp = choice.logprobs as Legacy;
    expect(lp.tokens).toEqual(prompt.map((id) => model.tokenizer.tokenText(id)));
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    // each offset is where the token's text starts in the prompt
    expect(lp.text_offset).toEqual(prompt.map((_, t) => model.tokenizer.decode(prompt.slice(0, t)).length));
    for (let t = 1; t < prompt.length; t++) {
      const top = lp.top_logprobs[t]!;
      // the 2 most likely, and the token itself where it is not one of them
      expect(Object.keys(top).length).toBeGreaterThanOrEqual(2);
      expect(Object.keys(top).length).toBeLessThanOrEqual(3);
      expect(top[lp.tokens[t]!]).toBeGreaterThanOrEqual(lp.token_logprobs[t]!);
      const values = Object.values(top);
      expect(values[0]).toBeGreaterThanOrEqual(values[values.length - 1]!);
      expect(lp.token_logprobs[t]!).toBeLessThanOrEqual(values[0]!);
      expect(lp.token_logprobs[t]!).toBeLessThan(0);
    }
  });

  it("a generated text sent back as the prompt gets decoding's own log-probs and alternatives", async () => {
    // greedy, base model: decoding reports the same distribution the echo scores
    const plain = { prompt: PROMPT, max_tokens: 8, logprobs: 3, rules: false, temperature: 0 };
    const generated = await post(plain);
    const [r] = await model.generate({ text: PROMPT }, { format: 'raw', maxNewTokens: 8, rules: false });
    const sent = [...ids(PROMPT), ...r!.tokenIds];
    const echoed = await post({ prompt: sent, echo: true, max_tokens: 0, logprobs: 3 });
    const lp = echoed.body.choices[0].logprobs as Legacy;
    const tail = sent.length - r!.tokenIds.length;
    const want = generated.body.choices[0].logprobs as Legacy;
    expect(lp.tokens.slice(tail)).toEqual(want.tokens);
    for (const [k, logprob] of want.token_logprobs.entries()) {
      expect(lp.token_logprobs[tail + k]).toBeCloseTo(logprob!, 4);
      const top = lp.top_logprobs[tail + k]!;
      expect(Object.keys(top)).toEqual(Object.keys(want.top_logprobs[k]!));
      for (const [name, v] of Object.entries(want.top_logprobs[k]!)) expect(top[name]).toBeCloseTo(v, 4);
    }
    // the rules act on what follows a prompt: the prompt's log-probs are the base model's either way
    const withRules = await post({
      prompt: sent,
      echo: true,
      max_tokens: 0,
      logprobs: 3,
      rules: 'hewitt2024',
    });
    expect(withRules.body.choices[0].logprobs).toEqual(lp);
  });

  it('with a completion: the text is prompt + completion, its offsets shifted by the prompt', async () => {
    const request = { prompt: PROMPT, max_tokens: 6, logprobs: 1 };
    const alone = (await post(request)).body.choices[0];
    const echoed = (await post({ ...request, echo: true })).body.choices[0];
    expect(echoed.text).toBe(PROMPT + alone.text);
    const n = ids(PROMPT).length;
    const lp = echoed.logprobs as Legacy;
    expect(lp.tokens.slice(n)).toEqual(alone.logprobs.tokens);
    expect(lp.token_logprobs.slice(n)).toEqual(alone.logprobs.token_logprobs);
    expect(lp.text_offset.slice(n)).toEqual(alone.logprobs.text_offset.map((o: number) => o + PROMPT.length));
    // without logprobs, the echo is the text alone
    const bare = (await post({ ...request, logprobs: undefined, echo: true })).body.choices[0];
    expect([bare.text, bare.logprobs]).toEqual([PROMPT + alone.text, null]);
  });

  it("streams the prompt first, in each choice's own chunk, then the completion", async () => {
    const request = { prompt: ['Once upon a time', PROMPT], n: 2, max_tokens: 5, logprobs: 1, echo: true };
    const whole = (await post(request)).body;
    const { text } = await post({ ...request, stream: true });
    const events = parseSse(text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    // the first chunk of each choice is its prompt, log-probs included
    const firsts = new Map<number, { text: string; logprobs: Legacy }>();
    const texts = new Map<number, string>();
    const offsets = new Map<number, number[]>();
    for (const chunk of chunks) {
      const [c] = chunk.choices;
      if (!firsts.has(c.index)) firsts.set(c.index, c);
      texts.set(c.index, (texts.get(c.index) ?? '') + c.text);
      offsets.set(c.index, [...(offsets.get(c.index) ?? []), ...(c.logprobs?.text_offset ?? [])]);
    }
    for (const [i, choice] of whole.choices.entries()) {
      const prompt = request.prompt[Math.floor(i / 2)]!;
      expect(firsts.get(i)!.text).toBe(prompt);
      expect(firsts.get(i)!.logprobs.token_logprobs[0]).toBeNull();
      expect(choice.text.startsWith(prompt)).toBe(true);
      expect(texts.get(i)).toBe(choice.text);
      expect(offsets.get(i)).toEqual(choice.logprobs.text_offset);
    }
  });

  it('token ids echo with their special tokens; the empty prompt echoes itself', async () => {
    const start = documentStartId(model.tokenizer)!;
    const sent = [start, ...ids(PROMPT)];
    const { body } = await post({ prompt: sent, echo: true, max_tokens: 0, logprobs: 0 });
    const choice = body.choices[0];
    expect(choice.text).toBe(model.tokenizer.decode(sent));
    expect(choice.text.endsWith(PROMPT)).toBe(true);
    expect(choice.text.length).toBeGreaterThan(PROMPT.length);
    expect(choice.logprobs.text_offset[1]).toBe(choice.text.length - PROMPT.length);
    // logprobs 0: no alternatives, only each token itself (OpenAI: "up to logprobs+1 elements")
    expect(choice.logprobs.top_logprobs.slice(1)).toEqual(
      sent
        .slice(1)
        .map((_, t) => ({ [choice.logprobs.tokens[t + 1]]: choice.logprobs.token_logprobs[t + 1] })),
    );
    const empty = (await post({ prompt: '', echo: true, max_tokens: 0, logprobs: 1 })).body.choices[0];
    expect(empty.text).toBe('');
    expect(empty.logprobs).toEqual({
      tokens: [model.tokenizer.tokenText(start)],
      token_logprobs: [null],
      top_logprobs: [null],
      text_offset: [0],
    });
  });

  it('lm-evaluation-harness loglikelihood: sum and greediness of a continuation, as it reads them', async () => {
    // local-completions sends context + continuation ids, echo, max_tokens 1, logprobs 1, and reads
    // token_logprobs[ctxlen:-1] (the last entry is the token generated after the prompt)
    const context = ids('Question: what color is the sky? Answer:');
    const [greedy] = await model.generate({ promptIds: context }, { maxNewTokens: 3, rules: false });
    const cases = [greedy!.tokenIds, ids(' purple banana')];
    // each prompt is run once: its prefill gives its log-probs and the one token generated
    const run = model.session.run.bind(model.session);
    let runs = 0;
    model.session.run = (step) => {
      runs++;
      return run(step);
    };
    const { body } = await post({
      prompt: cases.map((c) => [...context, ...c]),
      echo: true,
      max_tokens: 1,
      logprobs: 1,
      temperature: 0,
      seed: 1234,
    }).finally(() => {
      model.session.run = run;
    });
    expect(runs).toBe(1);
    const scored = await model.score(
      cases.map((continuation) => ({ prompt: { promptIds: context }, continuation })),
    );
    for (const [i, choice] of body.choices.entries()) {
      const lp = choice.logprobs as Legacy;
      expect(lp.token_logprobs).toHaveLength(context.length + cases[i]!.length + 1);
      const logprobs = lp.token_logprobs.slice(context.length, -1) as number[];
      const sum = logprobs.reduce((a, x) => a + x, 0);
      expect(sum).toBeCloseTo(scored[i]!.sumLogprob, 4);
      const isGreedy = logprobs.every(
        (x, k) => x === Math.max(...Object.values(lp.top_logprobs[context.length + k]!)),
      );
      expect(isGreedy).toBe(i === 0);
    }
  });

  it("with a prefix cache, a question's answers after the first run only their own tokens (same log-probs)", async () => {
    const cachedModel = await loadModel(await tinyModelDir(), { log: () => {}, prefixCache: 16 << 20 });
    const cachedApp = createApp({ models: [{ id: 'tiny', model: cachedModel }], log: () => {} });
    try {
      const context = ids('Question: which of these is a color, and which one is a fruit? Answer:');
      expect(context.length).toBeGreaterThan(32); // the prefix cache's least
      // as lm-eval sends them with its default batch size: one request per answer
      for (const [i, answer] of [' red', ' apple', ' blue', ' pear'].entries()) {
        const request = {
          prompt: [...context, ...ids(answer)],
          echo: true,
          max_tokens: 1,
          logprobs: 1,
          temperature: 0,
        };
        const res = await cachedApp.request('/v1/completions', json({ model: 'tiny', ...request }));
        const body = await res.json();
        expect(body.usage.prompt_tokens_details).toEqual({ cached_tokens: i === 0 ? 0 : context.length - 1 });
        const want = (await post(request)).body.choices[0].logprobs as Legacy;
        const got = body.choices[0].logprobs as Legacy;
        expect(got.tokens).toEqual(want.tokens);
        expect(got.token_logprobs[0]).toBeNull();
        for (let t = 1; t < want.tokens.length; t++)
          expect(got.token_logprobs[t]).toBeCloseTo(want.token_logprobs[t]!, 4);
        expect(got.top_logprobs.map((top) => top && Object.keys(top))).toEqual(
          want.top_logprobs.map((top) => top && Object.keys(top)),
        );
      }
    } finally {
      await cachedModel.dispose();
    }
  });

  it('a prompt that fills the context is scored with max_tokens 0; with a completion asked, 400 says how', async () => {
    const max = model.info.maxPositions!;
    const full = Array.from({ length: max }, (_, t) => 5 + ((t * 7) % 300));
    const scored = await post({ prompt: full, echo: true, max_tokens: 0, logprobs: 0 });
    expect(scored.res.status).toBe(200);
    expect(scored.body.choices[0].logprobs.token_logprobs).toHaveLength(max);
    const asked = await post({ prompt: full, echo: true, max_tokens: 1, logprobs: 0 });
    expect(asked.res.status).toBe(400);
    expect(asked.body.error).toEqual({
      message: `This model's maximum context length is ${max} tokens; the prompt has ${max}, which leaves no room for the completion. Shorten the prompt, or score it with echo and max_tokens 0.`,
      type: 'invalid_request_error',
      param: 'prompt',
      code: 'context_length_exceeded',
    });
    const over = await post({ prompt: [...full, 5], echo: true, max_tokens: 0 });
    expect(over.body.error).toMatchObject({
      message: `This model's maximum context length is ${max} tokens; the prompt has ${max + 1}. Shorten the prompt.`,
      code: 'context_length_exceeded',
    });
  });

  it('refuses max_tokens 0 without echo, and an echo that is not a boolean', async () => {
    const zero = await post({ prompt: PROMPT, max_tokens: 0 });
    expect(zero.res.status).toBe(400);
    expect(zero.body.error).toMatchObject({
      param: 'max_tokens',
      message: expect.stringMatching(/only allowed with echo: true/),
    });
    const bad = await post({ prompt: PROMPT, echo: 'yes' });
    expect(bad.res.status).toBe(400);
    expect(bad.body.error).toMatchObject({
      param: 'echo',
      message: expect.stringMatching(/expected true or false/),
    });
    const chat = await app.request(
      '/v1/chat/completions',
      json({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 0 }),
    );
    expect(chat.status).toBe(400);
  });
});

describeShared(
  "echoOffsets: each prompt token's start in the text echoed",
  ['fixtures/tokenizers/gpt2/tokenizer.json', 'fixtures/tokenizers/olmo/tokenizer.json'],
  () => {
    const offsetsOf = async (name: string, text: string) => {
      const tok = await loadTokenizer(sharedPath('fixtures', 'tokenizers', name));
      const { ids, scopeStart } = tok.buildPrompt({ format: 'raw', text });
      return [ids.map((id) => tok.tokenText(id)), echoOffsets(tok, ids, scopeStart, text)];
    };

    it('a byte-level text: where each token starts, the tokens of a split character at its start', async () => {
      const [b, e] = ['\ufffd', ' \ufffd'];
      expect(await offsetsOf('gpt2', 'héllo 世界 😀')).toEqual([
        ['h', 'é', 'llo', ' ', b, b, b, b, e, b],
        [0, 1, 2, 5, 6, 6, 7, 7, 8, 9],
      ]);
    });

    it('a text its tokens do not spell back (OLMo normalizes it to NFC) keeps its offsets in it', async () => {
      // "a" + a combining accent reads as one "á"; " ﬁ" (its space at 2) starts after both
      expect(await offsetsOf('olmo', 'a\u0301 ﬁ')).toEqual([
        ['á', ' \ufffd', '\ufffd', '\ufffd'],
        [0, 2, 3, 3],
      ]);
    });

    it('an offset inside a part that differs never splits a character', async () => {
      const tok = await loadTokenizer(sharedPath('fixtures', 'tokenizers', 'gpt2'));
      const ids = ['a', 'b', 'c', 'd'].flatMap((c) => tok.encode(c, { addSpecialTokens: false }));
      expect(tok.decode(ids)).toBe('abcd');
      // "c" would fall between the emoji's surrogates: it points at the emoji
      expect(echoOffsets(tok, ids, 0, 'a😀d')).toEqual([0, 1, 1, 3]);
    });
  },
);

describe('echo through the official openai client', () => {
  let server: RunningServer;
  afterAll(async () => {
    await server?.close();
  });

  it('scores a prompt with completions.create({ echo: true, max_tokens: 0, logprobs: 1 })', async () => {
    server = await serve({ models: [{ id: 'tiny', model }], port: 0, hostname: '127.0.0.1', log: () => {} });
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });
    const res = await client.completions.create({
      model: 'tiny',
      prompt: PROMPT,
      echo: true,
      max_tokens: 0,
      logprobs: 1,
    });
    expect(res.choices[0]!.text).toBe(PROMPT);
    expect(res.choices[0]!.logprobs!.token_logprobs).toHaveLength(ids(PROMPT).length);
  });
});
