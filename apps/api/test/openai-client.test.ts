import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, serve } from '../src/index.js';
import { json, slowed, tinyModel } from './helpers.js';

// The official client, unchanged: only baseURL and apiKey point it at our server on loopback.
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  const model = await tinyModel();
  server = await serve({
    models: [{ id: 'tiny', model }],
    port: 0,
    hostname: '127.0.0.1',
    apiKey: 'sk-local',
    log: () => {},
  });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-local', maxRetries: 0, timeout: 30_000 });
});

afterAll(async () => {
  await server?.close();
});

describe('the openai client against the server', () => {
  it('lists models', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['tiny']);
  });

  it('chat completion', async () => {
    const res = await client.chat.completions.create({
      model: 'tiny',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Name three colors.' },
      ],
      max_tokens: 10,
    });
    expect(res.object).toBe('chat.completion');
    expect(res.choices[0]!.message.role).toBe('assistant');
    expect(typeof res.choices[0]!.message.content).toBe('string');
    expect(res.usage!.completion_tokens).toBeGreaterThan(0);
    expect(res.usage!.completion_tokens).toBeLessThanOrEqual(10);
    // the response's X-Request-Id, as OpenAI's responses carry one
    expect(res._request_id).toMatch(/^req_[0-9a-f]{32}$/);
  });

  it('every response names its request, errors included, and a valid X-Request-Id sent is kept', async () => {
    const sent = await fetch(`${server.url}/v1/models`, {
      headers: { Authorization: 'Bearer sk-local', 'X-Request-Id': 'trace-42' },
    });
    expect(sent.headers.get('x-request-id')).toBe('trace-42');
    const unauthorized = await fetch(`${server.url}/v1/models`);
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{32}$/);
    const error = await client.chat.completions
      .create({ model: 'nope', messages: [{ role: 'user', content: 'Hi' }] })
      .catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(error.requestID).toMatch(/^req_[0-9a-f]{32}$/);
    const stream = await client.chat.completions
      .create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, stream: true })
      .withResponse();
    expect(stream.request_id).toMatch(/^req_[0-9a-f]{32}$/);
    for await (const _ of stream.data);
  });

  it('streamed chat completion with usage, same text as without streaming', async () => {
    const params = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'Write a haiku about rain.' }],
      max_tokens: 16,
    };
    const stream = await client.chat.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += choice.delta.content ?? '';
      finish = choice.finish_reason ?? finish;
    }
    expect(finish).toMatch(/^(stop|length)$/);
    expect(usage!.completion_tokens).toBeGreaterThan(0);
    const whole = await client.chat.completions.create(params);
    expect(text).toBe(whole.choices[0]!.message.content);
  });

  it('chat log-probs', async () => {
    const res = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 5,
      logprobs: true,
      top_logprobs: 2,
    });
    const content = res.choices[0]!.logprobs!.content!;
    expect(content.length).toBe(res.usage!.completion_tokens);
    expect(content[0]!.top_logprobs).toHaveLength(2);
    expect(content[0]!.logprob).toBeLessThanOrEqual(0);
  });

  it('completion, streamed and not, with legacy log-probs', async () => {
    const res = await client.completions.create({
      model: 'tiny',
      prompt: 'Once upon a time',
      max_tokens: 8,
      logprobs: 1,
    });
    expect(res.object).toBe('text_completion');
    expect(res.choices[0]!.logprobs!.tokens!.length).toBe(res.usage!.completion_tokens);
    const stream = await client.completions.create({
      model: 'tiny',
      prompt: 'Once upon a time',
      max_tokens: 8,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(res.choices[0]!.text);
  });

  it('n and a list of prompts: choices by index, streamed and not', async () => {
    const params = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'Name three colors.' }],
      max_tokens: 6,
      n: 2,
      temperature: 1,
      seed: 5,
    };
    const chat = await client.chat.completions.create(params);
    expect(chat.choices.map((c) => c.index)).toEqual([0, 1]);
    const stream = await client.chat.completions.create({ ...params, stream: true });
    const texts = ['', ''];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.delta.content ?? '';
    expect(texts).toEqual(chat.choices.map((c) => c.message.content));

    const list = await client.completions.create({
      model: 'tiny',
      prompt: ['Once upon a time', 'The end'],
      max_tokens: 6,
    });
    expect(list.choices.map((c) => c.index)).toEqual([0, 1]);
    const alone = await client.completions.create({ model: 'tiny', prompt: 'The end', max_tokens: 6 });
    expect(list.choices[1]!.text).toBe(alone.choices[0]!.text);

    // best_of: the client's own parameter, answered with n choices
    const best = await client.completions.create({
      model: 'tiny',
      prompt: 'Once upon a time',
      max_tokens: 6,
      temperature: 1,
      best_of: 3,
    });
    expect(best.choices.map((c) => c.index)).toEqual([0]);
    const streamed = await client.completions
      .create({ model: 'tiny', prompt: 'x', best_of: 3, stream: true })
      .catch((e) => e);
    expect(streamed).toBeInstanceOf(OpenAI.BadRequestError);
    expect(streamed.param).toBe('best_of');
  });

  it('the prompt-cache hints the client types are accepted, and unused', async () => {
    const messages = [{ role: 'user' as const, content: 'Hi' }];
    const plain = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 3 });
    for (const prompt_cache_retention of ['in_memory', '24h'] as const) {
      const hinted = await client.chat.completions.create({
        model: 'tiny',
        messages,
        max_tokens: 3,
        prompt_cache_key: 'greeting',
        prompt_cache_retention,
      });
      expect(hinted.choices[0]!.message.content).toBe(plain.choices[0]!.message.content);
    }
  });

  it('the rules extension passes through the client', async () => {
    const body = { model: 'tiny', messages: [{ role: 'user' as const, content: 'Hi' }], max_tokens: 8 };
    const off = await client.chat.completions.create({
      ...body,
      rules: false,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(off.choices[0]!.message.content).toBeTypeOf('string');
    expect(off).not.toHaveProperty('rules_unresolved');
  });

  it("rules_unresolved reaches the client, in a response and in a stream's first chunk", async () => {
    const rules = {
      uniform: {
        entries: [
          { text: 'Sure!', score: 5 },
          { id: 5, score: 1 },
        ],
      },
    };
    const unresolved = [
      { rule: 'uniform', text: 'Sure!', reason: 'no vocabulary item has the surface text "Sure!"' },
    ];
    const body = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'Hi' }],
      max_tokens: 4,
      rules,
    };
    const res = await client.chat.completions.create(body as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(res.object).toBe('chat.completion');
    expect((res as unknown as { rules_unresolved: unknown }).rules_unresolved).toEqual(unresolved);
    const stream = await client.completions.create({
      model: 'tiny',
      prompt: 'Once upon a time',
      max_tokens: 4,
      stream: true,
      rules,
    } as OpenAI.CompletionCreateParamsStreaming);
    const chunks: Record<string, unknown>[] = [];
    for await (const chunk of stream) chunks.push(chunk as unknown as Record<string, unknown>);
    expect(chunks[0]!.rules_unresolved).toEqual(unresolved);
    expect(chunks.slice(1).some((c) => 'rules_unresolved' in c)).toBe(false);
  });

  it('a stream committed before its first token parses as any other; a failure after is the error thrown', async () => {
    const model = await tinyModel();
    const params = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'Write a haiku about rain.' }],
      max_tokens: 8,
    };
    // the first token after 300 ms, a keep-alive comment each 30 ms until it comes
    const { model: slow } = slowed(model, { first: 300 });
    const { model: failing } = slowed(model, {
      first: 300,
      fail: new Error('the session broke (simulated)'),
    });
    const kept = await serve({
      models: [
        { id: 'tiny', model: slow },
        { id: 'failing', model: failing },
      ],
      port: 0,
      hostname: '127.0.0.1',
      log: () => {},
      streamKeepAlive: 30,
    });
    try {
      const raw = await (
        await fetch(`${kept.url}/v1/chat/completions`, json({ ...params, stream: true }))
      ).text();
      expect(raw.startsWith(': keep-alive\n\n: keep-alive\n\n: keep-alive\n\n')).toBe(true);
      const keptClient = new OpenAI({ baseURL: `${kept.url}/v1`, apiKey: 'none', maxRetries: 0 });
      let text = '';
      let finish: string | null = null;
      for await (const chunk of await keptClient.chat.completions.create({ ...params, stream: true })) {
        text += chunk.choices[0]?.delta.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      expect(finish).toBe('length');
      expect(text).toBe((await client.chat.completions.create(params)).choices[0]!.message.content);

      const stream = await keptClient.chat.completions.create({ ...params, model: 'failing', stream: true });
      const error = await (async () => {
        for await (const _ of stream);
      })().catch((e) => e);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect(error.message).toBe('the server could not complete the request (see its log)');
      expect(error.code).toBe('internal_error');
    } finally {
      await kept.close();
    }
  });

  it("errors arrive as the client's typed errors", async () => {
    const notFound = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e) => e);
    expect(notFound).toBeInstanceOf(OpenAI.NotFoundError);
    expect(notFound.status).toBe(404);
    expect(notFound.code).toBe('model_not_found');

    const bad = await client.chat.completions
      .create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], temperature: 5 })
      .catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.param).toBe('temperature');

    const wrongKey = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    const auth = await wrongKey.models.list().catch((e) => e);
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError);
  });
});
