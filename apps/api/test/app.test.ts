import { basename } from 'node:path';
import type { Model } from '@implicit-it/runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ApiApp, createApp } from '../src/index.js';
import { ResponseWriter, TextOffsets } from '../src/openai-format.js';
import type { Plan } from '../src/plan.js';
import { json, parseSse, tinyModel } from './helpers.js';

const user = (content: string) => [{ role: 'user', content }];
const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'tiny',
  messages: user('Give me a recipe for tiramisu.'),
  max_tokens: 12,
  ...extra,
});

let model: Model;
let app: ApiApp;

beforeAll(async () => {
  model = await tinyModel();
  app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, maxTokens: 40 });
});

/** The id of the tokenizer's token that is the lone byte `b` (a lead byte: part of a character). */
const byteToken = (model: Model, b: number) =>
  Array.from({ length: model.tokenizer.size }, (_, id) => id).find((id) => {
    const bytes = model.tokenizer.tokenBytes(id);
    return bytes.length === 1 && bytes[0] === b;
  })!;

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await app.request(path, json(body, headers));
  const text = await res.text();
  return { res, text, body: res.headers.get('Content-Type')?.includes('json') ? JSON.parse(text) : null };
}

describe('GET routes', () => {
  it('lists the served models with their context length', async () => {
    const res = await app.request('/v1/models');
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.object).toBe('list');
    expect(body.data).toEqual([
      expect.objectContaining({ id: 'tiny', object: 'model', owned_by: 'implicit-it', context_length: 512 }),
    ]);
    expect((await app.request('/v1/models/tiny')).status).toBe(200);
    expect((await app.request('/v1/models/other')).status).toBe(404);
  });

  it('answers /health without a key', async () => {
    const res = await app.request('/health');
    expect(await res.json()).toEqual({ status: 'ok', models: ['tiny'], active: 0, queued: 0 });
  });

  it('serves Prometheus text at /metrics', async () => {
    await post('/v1/chat/completions', chat());
    const text = await (await app.request('/metrics')).text();
    expect(text).toMatch(/^# HELP implicit_it_requests_total/m);
    expect(text).toMatch(/^implicit_it_requests_total\{route="\/v1\/chat\/completions",status="200"\} \d+$/m);
    expect(text).toMatch(/^implicit_it_completion_tokens_total\{model="tiny"\} [1-9]\d*$/m);
    expect(text).toMatch(
      /^implicit_it_time_to_first_token_seconds_bucket\{model="tiny",le="\+Inf"\} [1-9]\d*$/m,
    );
    expect(text).toMatch(
      /^implicit_it_request_duration_seconds_bucket\{route="\/v1\/chat\/completions",le="\+Inf"\} \d+$/m,
    );
    expect(text).toMatch(/^implicit_it_queue_depth 0$/m);
    expect(text).toMatch(/^implicit_it_active_generations 0$/m);
  });

  it('exposes the event counters at 0 before their first event, for rate() and absent() alerts', async () => {
    const fresh = createApp({ models: [{ id: 'tiny', model }], log: () => {} });
    const text = await (await fresh.request('/metrics')).text();
    for (const name of ['implicit_it_client_aborts_total', 'implicit_it_stream_stalls_total']) {
      expect(text).toMatch(new RegExp(`^# TYPE ${name} counter$`, 'm'));
      expect(text).toMatch(new RegExp(`^${name} 0$`, 'm'));
    }
    // those of each served model, labelled by it
    for (const name of [
      'implicit_it_prompt_tokens_total',
      'implicit_it_completion_tokens_total',
      'implicit_it_rejected_total',
    ]) {
      expect(text).toMatch(new RegExp(`^# TYPE ${name} counter$`, 'm'));
      expect(text).toMatch(new RegExp(`^${name}\\{model="tiny"\\} 0$`, 'm'));
    }
  });

  it('/metrics reports how long the event loop was held since the last scrape', async () => {
    const lag = async () => {
      const text = await (await app.request('/metrics')).text();
      const max = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text);
      expect(text).toMatch(/^# TYPE nodejs_eventloop_lag_p99_seconds gauge$/m);
      return Number(max?.[1]);
    };
    await lag(); // from here on (the monitor's first tick after a reset only starts its clock)
    await new Promise((r) => setTimeout(r, 30));
    const until = performance.now() + 150;
    while (performance.now() < until); // a long onnxruntime step holds the thread like this
    await new Promise((r) => setTimeout(r, 40)); // the monitor's timer records the delay
    expect(await lag()).toBeGreaterThanOrEqual(0.12);
    await new Promise((r) => setTimeout(r, 40));
    expect(await lag()).toBeLessThan(0.12); // reset at each scrape
  });

  it('answers unknown URLs with a JSON 404', async () => {
    const res = await app.request('/v1/engines');
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('unknown_url');
  });

  it('answers a known URL asked with another method 405, with the methods it takes', async () => {
    for (const [method, path, allow] of [
      ['PUT', '/v1/completions', 'POST'],
      ['GET', '/v1/chat/completions', 'POST'],
      ['POST', '/v1/models', 'GET, HEAD'],
      ['DELETE', '/v1/models/tiny', 'GET, HEAD'],
      ['POST', '/health', 'GET, HEAD'],
    ] as const) {
      const body = method === 'GET' ? {} : { body: '{}', headers: { 'Content-Type': 'application/json' } };
      const res = await app.request(path, { method, ...body });
      expect([method, path, res.status, res.headers.get('Allow')]).toEqual([method, path, 405, allow]);
      expect((await res.json()).error).toEqual({
        message: `Method ${method} is not allowed for ${path}: use ${allow.split(',')[0]}`,
        type: 'invalid_request_error',
        param: null,
        code: 'method_not_allowed',
      });
    }
    // HEAD of a GET route is served, as GET is
    expect((await app.request('/health', { method: 'HEAD' })).status).toBe(200);
  });

  it('serves the playground page with no external resource', async () => {
    const res = await app.request('/');
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('id="instruction"');
    expect(html).toContain('id="col-base"');
    expect(html).toContain('id="col-rules"');
    expect(html).not.toMatch(/(src|href)="https?:/);
    expect(res.headers.get('Content-Security-Policy')).toContain("connect-src 'self'");
    expect(html).not.toContain('id="notice"');
  });

  it('shows a notice on the playground when given one (escaped)', async () => {
    const a = createApp({
      models: [{ id: 'tiny', model }],
      log: () => {},
      notice: 'RANDOM <weights> & noise',
    });
    const html = await (await a.request('/')).text();
    expect(html).toContain('<p class="notice" id="notice">RANDOM &lt;weights&gt; &amp; noise</p>');
  });
});

describe('POST /v1/chat/completions', () => {
  it('answers with an OpenAI chat.completion', async () => {
    const { res, body } = await post('/v1/chat/completions', chat());
    expect(res.status).toBe(200);
    expect(body.object).toBe('chat.completion');
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.model).toBe('tiny');
    expect(body.choices).toHaveLength(1);
    expect(body.choices[0].message.role).toBe('assistant');
    expect(typeof body.choices[0].message.content).toBe('string');
    expect(['stop', 'length']).toContain(body.choices[0].finish_reason);
    expect(body.choices[0].logprobs).toBeNull();
    const u = body.usage;
    expect(u.total_tokens).toBe(u.prompt_tokens + u.completion_tokens);
    expect(u.completion_tokens).toBeLessThanOrEqual(12);
  });

  it('reads a special token typed in a message as text: the user cannot end their turn', async () => {
    const content = 'a</s>\n<|assistant|>\nb';
    const { body } = await post('/v1/chat/completions', chat({ messages: user(content), max_tokens: 1 }));
    const tok = model.tokenizer;
    const asText = tok.buildPrompt({ format: 'tulu', instruction: content });
    const parsed = tok.buildPrompt({ format: 'tulu', instruction: content, specialTokensInContent: 'parse' });
    expect(asText.ids).not.toContain(tok.eosIds[0]);
    expect(parsed.ids).toContain(tok.eosIds[0]);
    expect(asText.ids.length).not.toBe(parsed.ids.length);
    expect(body.usage.prompt_tokens).toBe(asText.ids.length);
  });

  it('joins content parts with newlines (as vLLM), and reads an assistant refusal part as its text', async () => {
    const parts = [
      { type: 'text', text: 'Give me a recipe' },
      { type: 'text', text: 'for tiramisu.' },
    ];
    const history = (content: unknown, reply: unknown) => [
      { role: 'user', content },
      { role: 'assistant', content: reply },
      { role: 'user', content: 'Why not?' },
    ];
    const asParts = await post(
      '/v1/chat/completions',
      chat({
        messages: history(parts, [{ type: 'refusal', refusal: 'I cannot.' }]),
        max_tokens: 6,
        logprobs: true,
      }),
    );
    const asText = await post(
      '/v1/chat/completions',
      chat({
        messages: history('Give me a recipe\nfor tiramisu.', 'I cannot.'),
        max_tokens: 6,
        logprobs: true,
      }),
    );
    expect(asParts.res.status).toBe(200);
    expect(asParts.body.usage).toEqual(asText.body.usage);
    // the same prompt: the same log-probs, to the last bit
    expect(asParts.body.choices[0].logprobs).toEqual(asText.body.choices[0].logprobs);
    const refusedUser = await post(
      '/v1/chat/completions',
      chat({ messages: [{ role: 'user', content: [{ type: 'refusal', refusal: 'no' }] }] }),
    );
    expect(refusedUser.res.status).toBe(400);
    expect(refusedUser.body.error).toMatchObject({
      message: 'messages[0].content[0]: only an assistant message may have a refusal part',
      param: 'messages[0].content[0]',
    });
  });

  it('matches the runtime (greedy, server default rules hewitt2024)', async () => {
    const { body } = await post('/v1/chat/completions', chat({ max_tokens: 20 }));
    const [direct] = await model.generate('Give me a recipe for tiramisu.', {
      maxNewTokens: 20,
      rules: 'hewitt2024',
    });
    expect(body.choices[0].message.content).toBe(direct!.text);
    expect(body.usage.completion_tokens).toBe(direct!.tokenIds.length);
  });

  it('takes rules per request: false is the base model, names and JSON are validated', async () => {
    const base = (await post('/v1/chat/completions', chat({ max_tokens: 30, rules: false }))).body;
    const [direct] = await model.generate('Give me a recipe for tiramisu.', {
      maxNewTokens: 30,
      rules: false,
    });
    expect(base.choices[0].message.content).toBe(direct!.text);
    const subset = await post('/v1/chat/completions', chat({ rules: 'uniform-diversity' }));
    expect(subset.res.status).toBe(200);
    const custom = await post('/v1/chat/completions', chat({ rules: { used: { penalty: -3 } } }));
    expect(custom.res.status).toBe(200);
    const bad = await post('/v1/chat/completions', chat({ rules: { used: { penalty: 'high' } } }));
    expect(bad.res.status).toBe(400);
    expect(bad.body.error.param).toBe('rules.used.penalty');
  });

  it('reports log-probs with top alternatives', async () => {
    const { body } = await post('/v1/chat/completions', chat({ logprobs: true, top_logprobs: 3 }));
    const content = body.choices[0].logprobs.content;
    expect(content).toHaveLength(body.usage.completion_tokens);
    for (const item of content) {
      expect(item.logprob).toBeLessThanOrEqual(0);
      expect(item.top_logprobs).toHaveLength(3);
      expect(item.top_logprobs[0].logprob).toBeGreaterThanOrEqual(item.top_logprobs[2].logprob);
    }
    // the tokens' bytes join to the content (an end-of-sequence token, if any, is not part of it)
    const shown = body.choices[0].finish_reason === 'stop' ? content.slice(0, -1) : content;
    const joined = new TextDecoder().decode(
      Uint8Array.from(shown.flatMap((t: { bytes: number[] }) => t.bytes)),
    );
    expect(joined).toBe(body.choices[0].message.content);
  });

  it('gives the raw bytes of a token that holds part of a character (OpenAI `bytes`), and text offsets that count it once', async () => {
    const tok = model.tokenizer;
    const fatal = new TextDecoder('utf-8', { fatal: true });
    const partial = Array.from({ length: tok.vocabulary.size }, (_, id) => id).find((id) => {
      try {
        fatal.decode(tok.tokenBytes(id));
        return false;
      } catch {
        return tok.tokenBytes(id)[0]! >= 0xf0; // the lead byte of a 4-byte character
      }
    })!;
    expect(partial).toBeDefined();
    const { body } = await post(
      '/v1/chat/completions',
      chat({ max_tokens: 1, rules: false, logprobs: true, top_logprobs: 1, logit_bias: { [partial]: 100 } }),
    );
    const item = body.choices[0].logprobs.content[0];
    // named by its bytes escaped, as OpenAI's chat API names such a token ("\xf0\x9f\x92"), not U+FFFD
    const escaped = [...tok.tokenBytes(partial)].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
    expect(escaped).toMatch(/^\\xf[0-7]$/);
    expect(tok.decode([partial])).toBe('\uFFFD');
    expect(item.token).toBe(escaped);
    expect(item.bytes).toEqual([...tok.tokenBytes(partial)]);
    expect(item.top_logprobs[0]).toEqual({ token: escaped, logprob: item.logprob, bytes: item.bytes });
    // legacy text_offset: where each token starts in the text, a split character counted once
    const text = 'a世x🎉y';
    const ids = tok.encode(text, { addSpecialTokens: false });
    const offsets = new TextOffsets(tok, new Set(model.info.eosIds));
    const starts = ids.map((id) => offsets.next(id));
    const at = (piece: string) => starts[ids.findIndex((id) => tok.decode([id]) === piece)];
    expect(ids.length).toBeGreaterThan(5); // 世 and 🎉 are split into byte tokens
    expect([at('a'), at('x'), at('y')]).toEqual([0, text.indexOf('x'), text.indexOf('y')]);
  });

  it("reports each token's base-model rank with the trace extension", async () => {
    const { body } = await post('/v1/chat/completions', chat({ trace: true, max_tokens: 30 }));
    const trace = body.choices[0].trace;
    expect(trace).toHaveLength(body.usage.completion_tokens);
    for (const t of trace) expect(t.base_rank).toBeGreaterThanOrEqual(1);
    const [direct] = await model.generate('Give me a recipe for tiramisu.', {
      maxNewTokens: 30,
      rules: 'hewitt2024',
      trace: true,
    });
    expect(trace.map((t: { base_rank: number }) => t.base_rank)).toEqual(direct!.baseRanks);
  });

  it('caps max_tokens at the server limit and honours max_completion_tokens', async () => {
    const big = await post('/v1/chat/completions', chat({ max_tokens: 100_000, logit_bias: { 2: -100 } }));
    expect(big.res.status).toBe(200);
    expect(big.body.usage.completion_tokens).toBe(40);
    expect(big.body.choices[0].finish_reason).toBe('length');
    const mct = await post(
      '/v1/chat/completions',
      chat({ max_completion_tokens: 3, logit_bias: { 2: -100 } }),
    );
    expect(mct.body.usage.completion_tokens).toBe(3);
  });

  it('applies logit_bias and stop', async () => {
    const forced = await post(
      '/v1/chat/completions',
      chat({ logit_bias: { 65: 100 }, max_tokens: 4, rules: false }),
    );
    expect(forced.body.choices[0].logprobs).toBeNull();
    const [direct] = await model.generate('x', { maxNewTokens: 1, logitBias: { 65: 100 }, format: 'raw' });
    expect(forced.body.choices[0].message.content).toBe(direct!.text.repeat(4));
    const base = (await post('/v1/chat/completions', chat({ max_tokens: 30, rules: false }))).body.choices[0]
      .message.content as string;
    const stopAt = base.slice(5, 7);
    const stopped = await post(
      '/v1/chat/completions',
      chat({ max_tokens: 30, rules: false, stop: [stopAt] }),
    );
    expect(stopped.body.choices[0].message.content).toBe(base.slice(0, base.indexOf(stopAt)));
    expect(stopped.body.choices[0].finish_reason).toBe('stop');
    // lm-eval's local-completions sends a task's whole until list and the EOS text (humaneval's: 6)
    const until = ['\nclass', '\ndef', '\n#', '\nif', '\nprint', '</s>', stopAt];
    const many = await post('/v1/chat/completions', chat({ max_tokens: 30, rules: false, stop: until }));
    expect(many.body.choices[0].message.content).toBe(stopped.body.choices[0].message.content);
    const tooMany = await post(
      '/v1/chat/completions',
      chat({ max_tokens: 3, stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }),
    );
    expect(tooMany.res.status).toBe(400);
    expect(tooMany.body.error).toMatchObject({
      param: 'stop',
      message: expect.stringMatching(/at most 16 strings/),
    });
  });

  it("streams with a stop string: each chunk's log-probs are the tokens that made its text", async () => {
    // the runtime holds back text that may begin a stop string and releases it with a later token's
    const base = { max_tokens: 12, rules: false, logprobs: true };
    const whole = (await post('/v1/chat/completions', chat(base))).body.choices[0];
    const tokens = whole.logprobs.content.map((c: { token: string }) => c.token) as string[];
    // a stop string that never matches but whose first character ends a token: held there
    const held = tokens.findIndex((t, i) => i < tokens.length - 1 && /^[a-z]$/i.test(t.slice(-1)));
    const stop = `${tokens[held]!.slice(-1)}\u0000`;
    const chunks = parseSse((await post('/v1/chat/completions', chat({ ...base, stop, stream: true }))).text)
      .filter((e) => e !== '[DONE]')
      .map((e) => JSON.parse(e).choices[0])
      .filter((c) => c.delta.content);
    expect(chunks.map((c) => c.delta.content).join('')).toBe(whole.message.content);
    const utf8 = new TextDecoder();
    for (const c of chunks) {
      const bytes = c.logprobs.content.flatMap((t: { bytes: number[] }) => t.bytes);
      expect(utf8.decode(Uint8Array.from(bytes))).toBe(c.delta.content);
    }
    // the held token's chunk carries the next one too, with its text
    const sent = chunks.map((c) => c.logprobs.content.map((t: { token: string }) => t.token));
    expect(sent.flat()).toEqual(tokens);
    const ends = sent.map((_, k) => sent.slice(0, k + 1).flat().length);
    expect(ends.find((end) => end > held)).toBeGreaterThan(held + 1);
    // a stop string inside a token: the part of it shown goes out at the finish, with that token
    const cutAt = tokens.findIndex((t, i) => i > 0 && /^[a-z]{3,}$/i.test(t));
    const cut = (
      await post('/v1/chat/completions', chat({ ...base, stop: tokens[cutAt]!.slice(1), stream: true }))
    ).text;
    const [last, finish] = parseSse(cut)
      .filter((e) => e !== '[DONE]')
      .map((e) => JSON.parse(e).choices[0])
      .slice(-2);
    expect(last.delta.content.endsWith(tokens[cutAt]![0]!)).toBe(true);
    expect(last.logprobs.content.at(-1).token).toBe(tokens[cutAt]);
    expect([finish.finish_reason, finish.logprobs.content]).toEqual(['stop', []]);
    // completions: each chunk's text starts where its first token does (legacy text_offset)
    const request = { model: 'tiny', prompt: 'Once upon a time', max_tokens: 12, rules: false, logprobs: 0 };
    const text = (await post('/v1/completions', request)).body.choices[0];
    const parts = parseSse(
      (await post('/v1/completions', { ...request, stop: 'a\u0000', stream: true })).text,
    )
      .filter((e) => e !== '[DONE]')
      .map((e) => JSON.parse(e).choices[0]);
    expect(parts.flatMap((c) => c.logprobs.text_offset)).toEqual(text.logprobs.text_offset);
    expect(parts.some((c) => c.text.length > 0 && c.logprobs.tokens.length > 1)).toBe(true);
    let streamed = 0;
    for (const c of parts.filter((c) => c.text.length > 0)) {
      expect(c.logprobs.text_offset[0]).toBe(streamed);
      streamed += c.text.length;
    }
  });

  it('reads a logit_bias key as an integer, as OpenAI does ("0504" is 504), and refuses two for one token', async () => {
    const forced = async (logit_bias: Record<string, number>) => {
      const { res, body } = await post(
        '/v1/chat/completions',
        chat({ logit_bias, max_tokens: 3, rules: false }),
      );
      expect(res.status).toBe(200);
      return body.choices[0].message.content;
    };
    const [direct] = await model.generate('x', { maxNewTokens: 3, logitBias: { 65: 100 }, format: 'raw' });
    expect(await forced({ '065': 100 })).toBe(direct!.text);
    expect(await forced({ 65: 100 })).toBe(direct!.text);
    expect(await forced({ '00': 100 })).toBe(await forced({ 0: 100 }));
    const twice = await post('/v1/chat/completions', chat({ logit_bias: { 65: 1, '0065': 2 } }));
    expect(twice.res.status).toBe(400);
    expect(twice.body.error).toEqual({
      message: 'logit_bias: the keys "65" and "0065" both name token 65; give it one bias',
      type: 'invalid_request_error',
      param: 'logit_bias',
      code: 'invalid_value',
    });
  });

  it('accepts the no-op values OpenAI clients send for features it lacks, refuses the rest with why', async () => {
    const ok = await post(
      '/v1/chat/completions',
      chat({
        max_tokens: 3,
        tools: null,
        tool_choice: null,
        parallel_tool_calls: null,
        functions: null,
        function_call: null,
        modalities: ['text'],
        audio: null,
        prediction: null,
        safety_identifier: 'user-1234',
        prompt_cache_key: 'tiramisu',
        prompt_cache_retention: '24h',
        verbosity: 'medium',
        // the previous reply sent back whole, as a client's model_dump() of it has it
        messages: [
          { role: 'user', content: 'Hi.' },
          {
            role: 'assistant',
            content: 'Hello.',
            refusal: null,
            tool_calls: null,
            function_call: null,
            audio: null,
            annotations: [],
          },
          { role: 'user', content: 'Give me a recipe for tiramisu.' },
        ],
      }),
    );
    expect(ok.res.status).toBe(200);
    // the deprecated function_call's "none" is its documented default without functions
    const noneCall = await post('/v1/chat/completions', chat({ max_tokens: 1, function_call: 'none' }));
    expect(noneCall.res.status).toBe(200);
    const history = (assistant: Record<string, unknown>) => ({
      messages: [
        { role: 'user', content: 'Hi.' },
        { role: 'assistant', content: 'Hello.', ...assistant },
      ],
    });
    for (const [field, body, message] of [
      [
        'messages[1].tool_calls',
        history({ tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }),
        'messages[1].tool_calls: tool calls are not supported by this server',
      ],
      [
        'messages[1].annotations',
        history({ annotations: [{ type: 'url_citation' }] }),
        'messages[1].annotations: annotations (web-search citations) are not supported',
      ],
      [
        'verbosity',
        { verbosity: 'low' },
        'verbosity: this server does not tune answer length by a verbosity hint',
      ],
      [
        'seed',
        { seed: 2 ** 53 + 2 },
        'seed: expected an integer in [-(2^53 - 1), 2^53 - 1] (larger ones do not survive JSON parsing exactly)',
      ],
      ['seed', { seed: 1.5 }, 'seed: expected an integer'],
      // an integer past the bound is told the bound, whether or not it is a safe integer
      ['max_tokens', { max_tokens: 1e308 }, 'max_tokens: expected at most 2147483647'],
      ['max_tokens', { max_tokens: 3e9 }, 'max_tokens: expected at most 2147483647'],
      ['max_tokens', { max_tokens: 2.5 }, 'max_tokens: expected an integer'],
    ] as const) {
      const bad = await post('/v1/chat/completions', chat(body));
      expect(bad.res.status, field).toBe(400);
      expect(bad.body.error).toMatchObject({ message, param: field });
    }
    for (const [field, value, message] of [
      ['modalities', ['text', 'audio'], 'modalities: only text is supported'],
      [
        'tools',
        [{ type: 'function', function: { name: 'f' } }],
        'tools: tool calls are not supported by this server',
      ],
      // OpenAI refuses these two without tools, whatever their value
      [
        'tool_choice',
        'auto',
        'tool_choice: only allowed with tools, and tool calls are not supported by this server',
      ],
      [
        'tool_choice',
        'none',
        'tool_choice: only allowed with tools, and tool calls are not supported by this server',
      ],
      [
        'parallel_tool_calls',
        false,
        'parallel_tool_calls: only allowed with tools, and tool calls are not supported by this server',
      ],
      [
        'parallel_tool_calls',
        true,
        'parallel_tool_calls: only allowed with tools, and tool calls are not supported by this server',
      ],
      ['function_call', 'auto', 'function_call: function calls are not supported by this server'],
      ['max_tokens', 0, 'max_tokens: expected at least 1'],
      ['max_completion_tokens', 0, 'max_completion_tokens: expected at least 1'],
    ] as const) {
      const bad = await post('/v1/chat/completions', chat({ [field]: value }));
      expect(bad.res.status, field).toBe(400);
      expect(bad.body.error).toMatchObject({ message, param: field });
    }
  });

  it('samples reproducibly with a seed', async () => {
    const a = await post('/v1/chat/completions', chat({ temperature: 1, seed: 7, max_tokens: 20 }));
    const b = await post('/v1/chat/completions', chat({ temperature: 1, seed: 7, max_tokens: 20 }));
    expect(a.body.choices[0].message.content).toBe(b.body.choices[0].message.content);
  });

  it('top_k 0 and -1 (vLLM) are off; top_k 1 is greedy', async () => {
    const request = chat({ temperature: 1, seed: 7, max_tokens: 20, rules: false });
    const text = async (extra: Record<string, unknown>) =>
      (await post('/v1/chat/completions', { ...request, ...extra })).body.choices[0].message.content;
    const off = await text({});
    expect(await text({ top_k: 0 })).toBe(off);
    expect(await text({ top_k: -1 })).toBe(off);
    const greedy = await text({ temperature: 0 });
    expect(await text({ top_k: 1 })).toBe(greedy);
    expect(off).not.toBe(greedy);
  });

  it('samples anew on every request without a seed, as OpenAI does', async () => {
    const texts = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await post('/v1/chat/completions', chat({ temperature: 1.5, max_tokens: 20, rules: false }));
      texts.add(r.body.choices[0].message.content);
    }
    expect(texts.size).toBeGreaterThan(1);
  });

  it('streams OpenAI chunks ending with [DONE], usage last when asked', async () => {
    const { res, text } = await post(
      '/v1/chat/completions',
      chat({ stream: true, stream_options: { include_usage: true }, trace: true }),
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toMatch(/^text\/event-stream/);
    const events = parseSse(text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const ids = new Set(chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    for (const c of chunks) expect(c.object).toBe('chat.completion.chunk');
    const usage = chunks.at(-1);
    expect(usage.choices).toEqual([]);
    expect(usage.usage.completion_tokens).toBeGreaterThan(0);
    const finish = chunks.at(-2);
    expect(['stop', 'length']).toContain(finish.choices[0].finish_reason);
    const text2 = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    const whole = (await post('/v1/chat/completions', chat())).body.choices[0].message.content;
    expect(text2).toBe(whole);
    const traced = chunks.flatMap((c) => c.choices[0]?.trace ?? []);
    expect(traced).toHaveLength(usage.usage.completion_tokens);
  });
});

describe('concurrent requests', () => {
  it('are decoded together and each gets the answer it gets alone', async () => {
    const prompts = ['Give me a recipe for tiramisu.', 'Write a poem about the sea.', 'What is 2 + 2?', 'Hi'];
    const ask = (content: string, extra: Record<string, unknown> = {}) =>
      post('/v1/chat/completions', chat({ messages: user(content), max_tokens: 24, ...extra }));
    const alone: string[] = [];
    for (const p of prompts) alone.push((await ask(p)).body.choices[0].message.content);
    const together = await Promise.all(prompts.map((p) => ask(p)));
    expect(together.map((r) => r.body.choices[0].message.content)).toEqual(alone);
    // streaming and not, with and without rules, in one batch
    const mixed = await Promise.all([
      ask(prompts[0]!, { stream: true }),
      ask(prompts[1]!, { rules: false }),
      ask(prompts[2]!, { logprobs: true }),
    ]);
    const streamed = parseSse(mixed[0].text)
      .slice(0, -1)
      .map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '')
      .join('');
    expect(streamed).toBe(alone[0]);
    const [baseAlone] = await model.generate(prompts[1]!, { maxNewTokens: 24, rules: false });
    expect(mixed[1].body.choices[0].message.content).toBe(baseAlone!.text);
    expect(mixed[2].body.choices[0].message.content).toBe(alone[2]);
  });
});

describe('POST /v1/completions', () => {
  it('continues raw text (no chat format), 16 tokens by default', async () => {
    const { res, body } = await post('/v1/completions', {
      model: 'tiny',
      prompt: 'Once upon a time',
      logit_bias: { 2: -100 },
    });
    expect(res.status).toBe(200);
    expect(body.object).toBe('text_completion');
    expect(body.usage.completion_tokens).toBe(16);
    const [direct] = await model.generate(
      { text: 'Once upon a time' },
      {
        maxNewTokens: 16,
        rules: 'hewitt2024',
        logitBias: { 2: -100 },
      },
    );
    expect(body.choices[0].text).toBe(direct!.text);
  });

  it("an empty prompt starts a new document: after the BOS (OpenAI's <|endoftext|>), outside the rules' scope", async () => {
    const bos = model.tokenizer.bosId!;
    const [direct] = await model.generate(
      { promptIds: [bos], scopeStart: 1 },
      { maxNewTokens: 12, rules: 'hewitt2024', logitBias: { 2: -100 } },
    );
    for (const prompt of ['', ['']]) {
      const { res, body } = await post('/v1/completions', {
        model: 'tiny',
        prompt,
        max_tokens: 12,
        logit_bias: { 2: -100 },
      });
      expect(res.status).toBe(200);
      expect(body.usage.prompt_tokens).toBe(1);
      expect(body.choices[0].text).toBe(direct!.text);
    }
    // a prompt of only spaces is text: it is tokenized as written
    const spaces = await post('/v1/completions', { model: 'tiny', prompt: '  ', max_tokens: 1 });
    expect(spaces.body.usage.prompt_tokens).toBe(model.prompt({ text: '  ' }, 'raw').ids.length);
  });

  it('takes token ids and legacy log-probs', async () => {
    const { body } = await post('/v1/completions', {
      model: 'tiny',
      prompt: [1, 100, 200],
      max_tokens: 5,
      logprobs: 2,
    });
    const lp = body.choices[0].logprobs;
    expect(lp.tokens).toHaveLength(body.usage.completion_tokens);
    expect(lp.token_logprobs).toHaveLength(lp.tokens.length);
    expect(Object.keys(lp.top_logprobs[0]).length).toBeLessThanOrEqual(2);
    expect(lp.text_offset[0]).toBe(0);
    expect(body.usage.prompt_tokens).toBe(3);
  });

  it('gives text offsets that index into the text: special tokens add none, a token after a lone partial byte counts its U+FFFD', async () => {
    const tok = model.tokenizer;
    const request = { model: 'tiny', prompt: 'hi', max_tokens: 40, logprobs: 0 };
    const { body } = await post('/v1/completions', request);
    const { text, logprobs: lp } = body.choices[0];
    const special = (t: string) => tok.specialTokenTexts.includes(t);
    const partial = (t: string) => t.startsWith('bytes:') || t.includes('\uFFFD');
    // this greedy answer has what once made the offsets drift: a special token (<s>) mid-text, and
    // partial bytes that become U+FFFD followed by whole tokens
    expect(lp.tokens.some((t: string, i: number) => special(t) && i < lp.tokens.length - 1)).toBe(true);
    expect(
      lp.tokens.some((t: string, i: number) => partial(t) && !partial(lp.tokens[i + 1] ?? '\uFFFD')),
    ).toBe(true);
    lp.tokens.forEach((t: string, i: number) => {
      const at = lp.text_offset[i];
      expect(at).toBeGreaterThanOrEqual(i > 0 ? lp.text_offset[i - 1] : 0);
      expect(at).toBeLessThanOrEqual(text.length);
      if (special(t)) expect(lp.text_offset[i + 1] ?? text.length).toBe(at);
      else if (partial(t)) expect(at).toBeLessThan(text.length);
      else expect(text.slice(at, at + t.length)).toBe(t);
    });
    // streamed: the same offsets, into the joined text
    const streamed = parseSse((await post('/v1/completions', { ...request, stream: true })).text)
      .filter((e) => e !== '[DONE]')
      .map((e) => JSON.parse(e).choices[0]);
    expect(streamed.map((c) => c.text).join('')).toBe(text);
    expect(streamed.flatMap((c) => c.logprobs.text_offset)).toEqual(lp.text_offset);

    // a stop string that spans tokens cuts the text before them: their offsets point at its end
    const cut = text.slice(lp.text_offset[0], lp.text_offset[2]);
    for (const stream of [false, true]) {
      const stopped = await post('/v1/completions', { ...request, stop: cut, stream });
      const choices = stream
        ? parseSse(stopped.text)
            .filter((e) => e !== '[DONE]')
            .map((e) => JSON.parse(e).choices[0])
        : [stopped.body.choices[0]];
      expect(choices.map((c) => c.text).join('')).toBe('');
      expect(choices.flatMap((c) => c.logprobs.text_offset)).toEqual([0, 0]);
    }

    // token by token: a special token mid-text, a lone lead byte before x, 世 in three byte tokens,
    // two lone continuation bytes, an invalid byte before an incomplete 4-byte character, EOS
    const byte = (b: number) =>
      Array.from({ length: tok.size }, (_, id) => id).find((id) => {
        const bytes = tok.tokenBytes(id);
        return bytes.length === 1 && bytes[0] === b;
      })!;
    const one = (piece: string) => tok.encode(piece, { addSpecialTokens: false })[0]!;
    const eos = model.info.eosIds[0]!;
    const ids = [
      ...[one('a'), tok.bosId!, one('b'), byte(0xf0), one('x')],
      ...[byte(0xe4), byte(0xb8), byte(0x96), one('y')],
      ...[byte(0x95), byte(0xb7), byte(0x95), byte(0xf0), byte(0x9f), byte(0x98), one('z'), eos],
    ];
    expect(tok.isSpecial(tok.bosId!)).toBe(true);
    expect(tok.decode(ids.slice(0, -1), { skipSpecialTokens: true })).toBe(
      'ab\uFFFDx世y\uFFFD\uFFFD\uFFFD\uFFFDz',
    );
    const offsets = new TextOffsets(tok, new Set(model.info.eosIds));
    expect(ids.map((id) => offsets.next(id))).toEqual([0, 1, 1, 2, 3, 4, 4, 4, 5, 6, 7, 8, 9, 9, 9, 10, 11]);
  });

  it('gives each token the offset a UTF-8 decoder gives its first byte (random byte and text tokens)', () => {
    const tok = model.tokenizer;
    const eos = new Set(model.info.eosIds);
    const fatal = new TextDecoder('utf-8', { fatal: true });
    const whole = (id: number) => {
      try {
        fatal.decode(tok.tokenBytes(id));
        return true;
      } catch {
        return false;
      }
    };
    const all = Array.from({ length: tok.size }, (_, id) => id);
    const partial = all.filter((id) => !whole(id));
    const text = all.filter((id) => whole(id) && !tok.isSpecial(id));
    const special = all.filter((id) => tok.isSpecial(id) && !eos.has(id));
    let state = 12345; // mulberry32
    const random = (n: number) => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const pick = (list: number[]) => list[random(list.length)]!;
    for (let trial = 0; trial < 400; trial++) {
      const ids = Array.from({ length: 1 + random(12) }, () => {
        const r = random(20);
        return r < 10 ? pick(partial) : r < 18 ? pick(text) : r < 19 ? pick(special) : pick([...eos]);
      });
      const end = ids.findIndex((id) => eos.has(id));
      if (end >= 0) ids.splice(end + 1);
      // expected: the UTF-16 units of the characters that a UTF-8 decoder ends before the token's
      // first byte (a pending incomplete character is not before it); special tokens have no bytes
      const bytes: number[] = [];
      const expected = ids.map((id) => {
        if (eos.has(id)) return new TextDecoder().decode(Uint8Array.from(bytes)).length;
        if (tok.isSpecial(id))
          return new TextDecoder().decode(Uint8Array.from(bytes), { stream: true }).length;
        const first = bytes.length;
        bytes.push(...tok.tokenBytes(id));
        const decoder = new TextDecoder();
        let out = '';
        let length = 0;
        for (let k = 0; k <= first; k++) {
          out = decoder.decode(Uint8Array.of(bytes[k]!), { stream: true });
          length += out.length;
        }
        const pending = new TextDecoder().decode(Uint8Array.from(bytes.slice(0, first + 1))).length > length;
        const own = out.length === 0 ? 0 : /[\udc00-\udfff]$/.test(out) ? 2 : 1;
        return pending ? length : length - own;
      });
      const offsets = new TextOffsets(tok, eos);
      expect(
        ids.map((id) => offsets.next(id)),
        JSON.stringify(ids),
      ).toEqual(expected);
    }
  });

  it('names partial-byte tokens by their bytes (bytes:\\xNN), so that top_logprobs keeps each', async () => {
    const [e4, f0, e2] = [0xe4, 0xf0, 0xe2].map((b) => byteToken(model, b));
    for (const id of [e4, f0, e2]) expect(model.tokenizer.decode([id])).toBe('\uFFFD');
    const { body } = await post('/v1/completions', {
      model: 'tiny',
      prompt: 'hi',
      max_tokens: 1,
      rules: false,
      logprobs: 5,
      logit_bias: { [e4]: 60, [f0]: 50, [e2]: 40 },
    });
    const lp = body.choices[0].logprobs;
    expect(lp.tokens).toEqual(['bytes:\\xe4']);
    const top = lp.top_logprobs[0];
    expect(Object.keys(top).slice(0, 3)).toEqual(['bytes:\\xe4', 'bytes:\\xf0', 'bytes:\\xe2']);
    expect(top['bytes:\\xe4']).toBe(lp.token_logprobs[0]);
    expect(top['bytes:\\xf0']).toBeLessThan(top['bytes:\\xe4']);
    expect(Object.keys(top)).toHaveLength(5);
  });

  it('chat: names partial-byte tokens by their escaped bytes (\\xNN, without legacy bytes:), so that top_logprobs tells them apart', async () => {
    const [e4, f0, e2] = [0xe4, 0xf0, 0xe2].map((b) => byteToken(model, b));
    const request = chat({
      max_tokens: 1,
      rules: false,
      logprobs: true,
      top_logprobs: 3,
      logit_bias: { [e4]: 60, [f0]: 50, [e2]: 40 },
    });
    const { body } = await post('/v1/chat/completions', request);
    const [item] = body.choices[0].logprobs.content;
    expect(item.token).toBe('\\xe4');
    expect(item.bytes).toEqual([0xe4]);
    expect(item.top_logprobs.map((t: { token: string; bytes: number[] }) => [t.token, t.bytes])).toEqual([
      ['\\xe4', [0xe4]],
      ['\\xf0', [0xf0]],
      ['\\xe2', [0xe2]],
    ]);
    // streamed alike (the token comes with the finish chunk: its text never became whole)
    const streamed = parseSse((await post('/v1/chat/completions', { ...request, stream: true })).text)
      .filter((e) => e !== '[DONE]')
      .flatMap((e) => JSON.parse(e).choices[0]?.logprobs?.content ?? []);
    expect(streamed).toEqual(body.choices[0].logprobs.content);
  });

  it('keeps the highest log-prob of top alternatives that share a name', () => {
    const [x, y] = [model.tokenizer.encode('x', { addSpecialTokens: false })[0]!, 5];
    const plan = {
      kind: 'completion',
      served: { id: 'tiny', model },
      logprobs: 3,
      inputs: [{ promptIds: [], scopeStart: 0 }],
      n: 1,
      rulesUnresolved: [],
    } as unknown as Plan;
    const top = [
      { id: x, token: 'x', logprob: -1 },
      { id: y, token: 'x', logprob: -2 },
      { id: 7, token: 'z', logprob: -3 },
    ];
    const response = new ResponseWriter(plan).complete([
      {
        text: 'x',
        finishReason: 'length',
        usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 },
        tokens: [{ id: x, logprob: { id: x, token: 'x', logprob: -1, top } }],
      },
    ]);
    const logprobs = response.choices[0]!.logprobs as { top_logprobs: Record<string, number>[] };
    expect(logprobs.top_logprobs).toEqual([{ x: -1, z: -3 }]);
  });

  it('a large logprobs response is the same JSON built a choice at a time, and lets other work run meanwhile', async () => {
    const vocab = model.info.vocabSize;
    const plan = {
      kind: 'completion',
      served: { id: 'tiny', model },
      logprobs: 20,
      inputs: [{ promptIds: [], scopeStart: 0 }],
      n: 64,
      rulesUnresolved: [],
    } as unknown as Plan;
    // 64 choices of 400 tokens with 20 alternatives each, ids across the vocabulary (bytes: names too)
    const results = Array.from({ length: 64 }, (_, c) => {
      const ids = Array.from({ length: 400 }, (_, t) => (c * 31 + t * 7) % vocab);
      return {
        text: 'x'.repeat(400),
        finishReason: 'length' as const,
        usage: { promptTokens: 1, completionTokens: 400, totalTokens: 401 },
        tokens: ids.map((id) => ({
          id,
          logprob: {
            id,
            token: model.tokenizer.tokenText(id),
            logprob: -1,
            top: Array.from({ length: 20 }, (_, k) => ({
              id: (id + k) % vocab,
              token: model.tokenizer.tokenText((id + k) % vocab),
              logprob: -1 - k / 10,
            })),
          },
        })),
      };
    });
    const writer = new ResponseWriter(plan);
    let ticks = 0;
    let ticking = true;
    const tick = () => {
      ticks++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const { json, usage } = await writer.completeJson(results);
    ticking = false;
    // a writer's text offsets advance as it writes: the same response from a writer of its own
    const whole = new ResponseWriter(plan).complete(results);
    const built = JSON.parse(json);
    expect(built.id).toMatch(/^cmpl-/);
    expect(json).toBe(JSON.stringify({ ...whole, id: built.id, created: built.created }));
    expect(usage).toEqual(whole.usage);
    // the event loop ran between choices (built in one go, no tick could come before the end)
    expect(ticks).toBeGreaterThan(1);
  });

  it('streams text_completion chunks', async () => {
    const { text } = await post('/v1/completions', {
      model: 'tiny',
      prompt: 'Hello',
      max_tokens: 6,
      stream: true,
    });
    const events = parseSse(text);
    expect(events.at(-1)).toBe('[DONE]');
    for (const e of events.slice(0, -1)) expect(JSON.parse(e).object).toBe('text_completion');
  });

  it('rejects token ids outside the vocabulary, naming the prompt of a list they are in', async () => {
    const ids = await post('/v1/completions', { model: 'tiny', prompt: [1, 99999] });
    expect(ids.res.status).toBe(400);
    expect(ids.body.error.param).toBe('prompt');
    const listed = await post('/v1/completions', {
      model: 'tiny',
      prompt: [
        [1, 2],
        [1, 99999],
      ],
    });
    expect(listed.res.status).toBe(400);
    expect(listed.body.error).toMatchObject({
      param: 'prompt[1]',
      message: 'prompt[1]: token id 99999 is outside the vocabulary [0, 512)',
    });
    const tooMany = await post('/v1/completions', { model: 'tiny', prompt: Array(129).fill('a') });
    expect(tooMany.res.status).toBe(400);
    expect(tooMany.body.error.message).toBe(
      'prompt: expected a string, an array of token ids, or an array of up to 128 of either',
    );
    const missing = await post('/v1/completions', { model: 'tiny' });
    expect(missing.res.status).toBe(400);
    expect(missing.body.error).toMatchObject({ message: 'prompt: this field is required', param: 'prompt' });
  });
});

describe('errors', () => {
  const cases: [string, Record<string, unknown>, number, string | null][] = [
    ['missing model', { messages: user('hi') }, 400, 'model'],
    ['unknown model', { model: 'gpt-4o', messages: user('hi') }, 404, 'model'],
    ['path as model', { model: '/etc/passwd', messages: user('hi') }, 404, 'model'],
    ['n > 128', chat({ n: 129 }), 400, 'n'],
    ['n beyond 128', chat({ n: 129 }), 400, 'n'],
    ['bad temperature', chat({ temperature: 9 }), 400, 'temperature'],
    ['bad role', { model: 'tiny', messages: [{ role: 'tool', content: 'x' }] }, 400, 'messages[0].role'],
    ['tools', chat({ tools: [] }), 400, 'tools'],
    ['unknown field', chat({ foo: 1 }), 400, 'foo'],
    ['unknown rules', chat({ rules: 'hewitt2025' }), 400, 'rules'],
    ['top_logprobs without logprobs', chat({ top_logprobs: 2 }), 400, 'top_logprobs'],
    ['logit_bias id out of range', chat({ logit_bias: { 100000: 1 } }), 400, 'logit_bias'],
    [
      'stream_options without stream',
      chat({ stream_options: { include_usage: true } }),
      400,
      'stream_options',
    ],
  ];
  for (const [name, body, status, param] of cases) {
    it(`${name}: ${status} naming ${param}`, async () => {
      const r = await post('/v1/chat/completions', body);
      expect(r.res.status).toBe(status);
      expect(r.body.error).toEqual({
        message: expect.any(String),
        type: 'invalid_request_error',
        param,
        code: expect.any(String),
      });
    });
  }

  it("names what a field accepts where zod's own wording was terse", async () => {
    const long = (n: number) => 'x'.repeat(n + 1);
    const chatCases: [Record<string, unknown>, string, string][] = [
      [{ stream: 'yes' }, 'stream', 'stream: expected true or false'],
      [{ store: 1 }, 'store', 'store: expected true or false'],
      [{ trace: 'on' }, 'trace', 'trace: expected true or false'],
      [{ logprobs: 1 }, 'logprobs', 'logprobs: expected true or false'],
      [
        { stream: true, stream_options: { include_usage: 'yes' } },
        'stream_options.include_usage',
        'stream_options.include_usage: expected true or false',
      ],
      [
        { stream: true, stream_options: true },
        'stream_options',
        'stream_options: expected an object such as {"include_usage": true}',
      ],
      [{ user: 5 }, 'user', 'user: expected a string of at most 256 characters'],
      [{ user: long(256) }, 'user', 'user: expected a string of at most 256 characters'],
      [
        { safety_identifier: long(256) },
        'safety_identifier',
        'safety_identifier: expected a string of at most 256 characters',
      ],
      [
        { prompt_cache_key: long(1024) },
        'prompt_cache_key',
        'prompt_cache_key: expected a string of at most 1024 characters',
      ],
      [
        { prompt_cache_retention: 'in-memory' },
        'prompt_cache_retention',
        'prompt_cache_retention: expected "in_memory" or "24h"',
      ],
      [
        { service_tier: long(64) },
        'service_tier',
        'service_tier: expected a string of at most 64 characters',
      ],
      [{ metadata: 'x' }, 'metadata', 'metadata: expected an object of string values'],
      [{ metadata: { a: 1 } }, 'metadata.a', 'metadata.a: expected a string value'],
      [{ top_logprobs: -1 }, 'top_logprobs', 'top_logprobs: expected an integer in [0, 20]'],
      [{ top_logprobs: 1.5 }, 'top_logprobs', 'top_logprobs: expected an integer in [0, 20]'],
      [{ response_format: 'text' }, 'response_format', 'response_format: only {"type":"text"} is supported'],
      [{ stop: long(256) }, 'stop', 'stop: a stop string has at most 256 characters'],
      [{ stop: ['a', long(256)] }, 'stop[1]', 'stop[1]: a stop string has at most 256 characters'],
      [
        { rules: '' },
        'rules',
        'rules: expected a rule-set name (e.g. "hewitt2024"), true (the default), false (none), or a rule-set JSON object; got an empty name',
      ],
      [
        { rules: 5 },
        'rules',
        'rules: expected a rule-set name (e.g. "hewitt2024"), true (the default), false (none), or a rule-set JSON object',
      ],
      // the CLI's way to give a rules file does not reach a server's disk
      [
        { rules: '@my-rules.json' },
        'rules',
        'rules: "@my-rules.json" is how the CLI names a rules file; send the rule set itself, the JSON object the file holds',
      ],
      [{ rules: long(200) }, 'rules', 'rules: a rule-set name has at most 200 characters'],
      [
        { logit_bias: { type: 1 } },
        'logit_bias.type',
        'logit_bias.type: expected a token id (a non-negative integer) as the key',
      ],
      [{ logit_bias: { 5: 'x' } }, 'logit_bias.5', 'logit_bias.5: expected a number in [-100, 100]'],
      [{ logit_bias: [1] }, 'logit_bias', 'logit_bias: expected an object mapping token ids to biases'],
      [{ model: 7 }, 'model', 'model: expected a model id (GET /v1/models lists them)'],
      [{ model: '' }, 'model', 'model: expected a model id, not an empty string (GET /v1/models lists them)'],
      [
        { model: long(256) },
        'model',
        'model: a model id has at most 256 characters (GET /v1/models lists them)',
      ],
      [
        { messages: ['Hi.'] },
        'messages[0]',
        'messages[0]: expected a message object {"role": ..., "content": ...}',
      ],
      [
        { messages: [{ role: 'user', content: 'Hi.', name: long(64) }] },
        'messages[0].name',
        'messages[0].name: expected a string of at most 64 characters',
      ],
      [
        { messages: [{ role: 'assistant', content: 'Hi.', refusal: false }] },
        'messages[0].refusal',
        'messages[0].refusal: expected a string',
      ],
    ];
    const completionCases: [unknown, string, string][] = [
      [[[]], 'prompt[0]', 'prompt[0]: a prompt of token ids may not be empty'],
      [[-1], 'prompt[0]', 'prompt[0]: expected a token id (an integer in [0, 2147483647])'],
      // not an integer: the element named too, as for a bound
      [[1.5], 'prompt[0]', 'prompt[0]: expected a token id (an integer in [0, 2147483647])'],
      [[3, 2.5], 'prompt[1]', 'prompt[1]: expected a token id (an integer in [0, 2147483647])'],
      [[[1], [0.5]], 'prompt[1][0]', 'prompt[1][0]: expected a token id (an integer in [0, 2147483647])'],
      [[1e300], 'prompt[0]', 'prompt[0]: expected a token id (an integer in [0, 2147483647])'],
      [[[1], [2 ** 31]], 'prompt[1][0]', 'prompt[1][0]: expected a token id (an integer in [0, 2147483647])'],
    ];
    const got: unknown[] = [];
    const want: unknown[] = [];
    for (const [extra, param, message] of chatCases) {
      got.push((await post('/v1/chat/completions', chat(extra))).body.error);
      want.push({ message, type: 'invalid_request_error', param, code: 'invalid_value' });
    }
    for (const [prompt, param, message] of completionCases) {
      got.push((await post('/v1/completions', { model: 'tiny', prompt })).body.error);
      want.push({ message, type: 'invalid_request_error', param, code: 'invalid_value' });
    }
    got.push((await post('/v1/completions', { model: 'tiny', prompt: 'Hi', logprobs: true })).body.error);
    want.push({
      message: 'logprobs: expected an integer in [0, 20]',
      type: 'invalid_request_error',
      param: 'logprobs',
      code: 'invalid_value',
    });
    got.push((await post('/v1/chat/completions', [chat()])).body.error);
    want.push({
      message: 'the request body must be a JSON object',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_value',
    });
    expect(got).toEqual(want);
  });

  it('rejects a prompt longer than the context with 400 context_length_exceeded', async () => {
    const r = await post('/v1/chat/completions', chat({ messages: user('tiramisu '.repeat(400)) }));
    expect(r.res.status).toBe(400);
    expect(r.body.error.code).toBe('context_length_exceeded');
    expect(r.body.error.param).toBe('messages');
  });

  it('rejects malformed JSON and other content types', async () => {
    const bad = await app.request('/v1/chat/completions', json('{"model": '));
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.type).toBe('invalid_request_error');
    const form = await app.request('/v1/chat/completions', {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: '{}',
    });
    expect(form.status).toBe(400);
  });

  it('limits the body size (413)', async () => {
    const small = createApp({ models: [{ id: 'tiny', model }], log: () => {}, bodyLimit: 1000 });
    const res = await small.request('/v1/chat/completions', json(chat({ messages: user('x'.repeat(2000)) })));
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({
      error: {
        message:
          "The request body is larger than this server's limit of 1000 bytes: send less in one request (fewer prompts), or have the limit raised (implicit-it serve --body-limit MiB; createApp's bodyLimit option).",
        type: 'invalid_request_error',
        param: null,
        code: 'request_too_large',
      },
    });
    // the default, named in MiB; a limit of KiB in KiB
    for (const [bodyLimit, named] of [
      [undefined, '1048576 bytes (1 MiB)'],
      [1536, '1536 bytes (1.5 KiB)'],
      [3 * 1024 * 1024 + 1000, '3146728 bytes (3 MiB)'],
    ] as const) {
      const app = createApp({
        models: [{ id: 'tiny', model }],
        log: () => {},
        ...(bodyLimit ? { bodyLimit } : {}),
      });
      const big = await app.request(
        '/v1/completions',
        json({ model: 'tiny', prompt: 'x'.repeat(3.5 * 1024 * 1024) }),
      );
      expect(big.status).toBe(413);
      expect((await big.json()).error.message).toContain(`this server's limit of ${named}: send less`);
    }
  });
});

describe('API key', () => {
  const keyed = () => createApp({ models: [{ id: 'tiny', model }], log: () => {}, apiKey: 'sk-test-123' });

  it('401 without or with a wrong key, 200 with it; /health and / stay open', async () => {
    const a = keyed();
    const none = await a.request('/v1/models');
    expect(none.status).toBe(401);
    expect(none.headers.get('WWW-Authenticate')).toBe('Bearer');
    expect((await none.json()).error.code).toBe('invalid_api_key');
    expect((await a.request('/v1/models', { headers: { Authorization: 'Bearer sk-test-12' } })).status).toBe(
      401,
    );
    expect(
      (await a.request('/v1/models', { headers: { Authorization: 'Bearer sk-test-1234' } })).status,
    ).toBe(401);
    expect((await a.request('/metrics')).status).toBe(401);
    expect((await a.request('/v1/models', { headers: { Authorization: 'Bearer sk-test-123' } })).status).toBe(
      200,
    );
    const gen = await a.request(
      '/v1/chat/completions',
      json(chat(), { Authorization: 'Bearer sk-test-123' }),
    );
    expect(gen.status).toBe(200);
    expect((await a.request('/health')).status).toBe(200);
    expect((await a.request('/')).status).toBe(200);
  });

  it("says which scheme an Authorization header that is not a bearer token has (a proxy's basic auth)", async () => {
    const a = keyed();
    const message = async (authorization?: string) => {
      const res = await a.request(
        '/v1/models',
        authorization ? { headers: { Authorization: authorization } } : {},
      );
      expect(res.status).toBe(401);
      return (await res.json()).error.message;
    };
    expect(await message('Basic dXNlcjpwYXNz')).toBe(
      'The Authorization header uses the "Basic" scheme: send "Authorization: Bearer <key>" (the key the server was started with).',
    );
    // the key alone, without "Bearer ": not echoed back
    expect(await message('sk-test-123')).toBe(
      'The Authorization header is not a bearer token: send "Authorization: Bearer <key>" (the key the server was started with).',
    );
    const missing =
      'Missing API key: send "Authorization: Bearer <key>" (the key the server was started with).';
    expect(await message()).toBe(missing);
    // the openai client with an empty key sends "Bearer " with nothing after it
    expect(await message('Bearer ')).toBe(missing);
  });

  it('several keys (a key being rotated): each is taken, any other refused', async () => {
    const a = createApp({
      models: [{ id: 'tiny', model }],
      log: () => {},
      apiKey: ['sk-new-456', 'sk-old-123'],
    });
    const status = async (key: string) =>
      (await a.request('/v1/models', { headers: { Authorization: `Bearer ${key}` } })).status;
    expect(await status('sk-new-456')).toBe(200);
    expect(await status('sk-old-123')).toBe(200);
    expect(await status('sk-other')).toBe(401);
    expect(await status('sk-new-456sk-old-123')).toBe(401);
  });
});

describe('CORS', () => {
  const preflight = (a: ApiApp, origin: string, path = '/v1/chat/completions') =>
    a.request(path, {
      method: 'OPTIONS',
      headers: {
        Origin: origin,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,authorization',
      },
    });

  it('is off by default: no preflight answer, no Access-Control headers', async () => {
    // the route takes POST alone: the preflight (OPTIONS) gets 405, without Access-Control headers
    const pre = await preflight(app, 'http://localhost:3000');
    expect([pre.status, pre.headers.get('Allow'), pre.headers.get('Access-Control-Allow-Origin')]).toEqual([
      405,
      'POST',
      null,
    ]);
    const res = await app.request('/v1/models', { headers: { Origin: 'http://localhost:3000' } });
    expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull();
  });

  it('answers preflights before the API key check and marks responses for the allowed origins', async () => {
    const a = createApp({
      models: [{ id: 'tiny', model }],
      log: () => {},
      apiKey: 'sk-cors',
      cors: 'http://localhost:3000, https://app.example',
    });
    const pre = await preflight(a, 'http://localhost:3000');
    expect(pre.status).toBe(204);
    expect(pre.headers.get('Access-Control-Allow-Origin')).toBe('http://localhost:3000');
    expect(pre.headers.get('Access-Control-Allow-Methods')).toContain('POST');
    expect(pre.headers.get('Access-Control-Allow-Headers')).toBe('content-type,authorization');
    const ok = await a.request(
      '/v1/chat/completions',
      json(chat({ max_tokens: 2 }), { Authorization: 'Bearer sk-cors', Origin: 'https://app.example' }),
    );
    expect(ok.status).toBe(200);
    expect(ok.headers.get('Access-Control-Allow-Origin')).toBe('https://app.example');
    // errors too, so that a page can read them
    const denied = await a.request('/v1/models', { headers: { Origin: 'http://localhost:3000' } });
    expect(denied.status).toBe(401);
    expect(denied.headers.get('Access-Control-Allow-Origin')).toBe('http://localhost:3000');
    // another origin is not allowed
    const other = await preflight(a, 'http://evil.example');
    expect(other.headers.get('Access-Control-Allow-Origin')).toBeNull();
    const get = await a.request('/health', { headers: { Origin: 'http://evil.example' } });
    expect(get.headers.get('Access-Control-Allow-Origin')).toBeNull();
  });

  it('allows every origin with cors: true', async () => {
    const a = createApp({ models: [{ id: 'tiny', model }], log: () => {}, cors: true });
    const pre = await preflight(a, 'http://anywhere.example');
    expect(pre.status).toBe(204);
    expect(pre.headers.get('Access-Control-Allow-Origin')).toBe('*');
    const res = await a.request('/v1/models', { headers: { Origin: 'http://anywhere.example' } });
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe('*');
  });

  it('refuses what is not an origin', () => {
    const make = (cors: string | string[]) => () => createApp({ models: [{ id: 'tiny', model }], cors });
    expect(make('localhost:3000')).toThrow(/cors: "localhost:3000" is not an origin/);
    expect(make(['http://localhost:3000/'])).toThrow(/cors/);
    expect(make([])).toThrow(/cors/);
  });
});

describe('options', () => {
  it('refuses bad server options naming them', () => {
    expect(() => createApp({ models: [] })).toThrow(/models/);
    expect(() => createApp({ models: [{ id: 'a', model }], concurrency: 0 })).toThrow(/concurrency/);
    expect(() => createApp({ models: [{ id: 'a', model }], rules: 'nope' })).toThrow(/unknown rule set/);
    // a bad format used to pass here and fail every chat request with a 400 on a field it has not got
    for (const format of ['xml', 'raw'])
      expect(() => createApp({ models: [{ id: 'a', model }], format: format as never })).toThrow(
        `format: expected "tulu" or "chat-template", got "${format}"`,
      );
    expect(() =>
      createApp({
        models: [
          { id: 'a', model },
          { id: 'a', model },
        ],
      }),
    ).toThrow(/twice/);
    // an empty key would read as none: the server its owner meant to protect would be open
    for (const apiKey of ['', '  ', [], ['sk-1', ' ']])
      expect(() => createApp({ models: [{ id: 'a', model }], apiKey })).toThrow(
        'apiKey: expected a non-empty string, or a non-empty list of them (leave apiKey out to serve without a key)',
      );
    // a key with whitespace at an end (a file's newline) could never be sent: every request refused
    for (const apiKey of ['sk-1\n', ' sk-1', ['sk-1', 'sk-2\t']])
      expect(() => createApp({ models: [{ id: 'a', model }], apiKey })).toThrow(
        'apiKey: a key begins or ends with whitespace, which no client can send (HTTP strips it from the Authorization header); remove it (a key read from a file keeps its final newline)',
      );
  });

  it('serves a bare Model under its directory name', async () => {
    const a = createApp({ models: model, log: () => {} });
    const body = await (await a.request('/v1/models')).json();
    expect(body.data[0].id).toBe(basename(model.info.dir));
  });
});
