import { connect } from 'node:net';
import { loadModel, type Model, type StreamPart } from '@implicit-it/runtime';
import { describe, expect, it } from 'vitest';
import { shuttingDown } from '../src/errors.js';
import { type ApiApp, createApp, serve } from '../src/index.js';
import { json, parseSse, slowed, tinyModel, tinyModelDir } from './helpers.js';

const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'tiny',
  messages: [{ role: 'user', content: 'Write a poem about the sea.' }],
  ...extra,
});

const until = async (check: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  return check();
};

/**
 * Starts a request that holds `app`'s one slot for a while (400 tokens, EOS barred) and waits until
 * it runs; `running` is its response, still to come.
 */
async function occupySlot(app: ApiApp, model: Model): Promise<{ running: Promise<Response> }> {
  const eos = model.info.eosIds[0]!;
  const running = Promise.resolve(
    app.request(
      '/v1/chat/completions',
      json(chat({ max_tokens: 400, rules: false, logit_bias: { [eos]: -100 } })),
    ),
  );
  expect(await until(() => app.state.active === 1)).toBe(true);
  return { running };
}

describe('operations: requests that wait for a slot', () => {
  it('a queued request cut by the shutdown is answered 503 server_shutting_down with Retry-After, not 499', async () => {
    const model = await tinyModel();
    const app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, concurrency: 1, maxQueued: 2 });
    const { running } = await occupySlot(app, model);
    const queued = app.request('/v1/chat/completions', json(chat({ max_tokens: 4 })));
    expect(await until(() => app.state.queued === 1)).toBe(true);
    app.shutdown();
    for (const res of [await queued, await running]) {
      expect(res.status).toBe(503);
      expect(res.headers.get('Retry-After')).toBe('5');
      expect((await res.json()).error.code).toBe('server_shutting_down');
    }
    // nobody left: the server did
    expect(app.state.metrics.value('implicit_it_client_aborts_total')).toBe(0);
    expect(
      app.state.metrics.value('implicit_it_requests_total', { route: '/v1/chat/completions', status: '503' }),
    ).toBe(2);
  });

  it('a client that leaves while queued is answered 499 and counted in implicit_it_client_aborts_total', async () => {
    const model = await tinyModel();
    const app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, concurrency: 1, maxQueued: 2 });
    const eos = model.info.eosIds[0]!;
    const running = app.request(
      '/v1/chat/completions',
      json(chat({ max_tokens: 200, rules: false, logit_bias: { [eos]: -100 } })),
    );
    expect(await until(() => app.state.active === 1)).toBe(true);
    const controller = new AbortController();
    const queued = app.request('/v1/chat/completions', {
      ...json(chat({ max_tokens: 4 })),
      signal: controller.signal,
    });
    expect(await until(() => app.state.queued === 1)).toBe(true);
    controller.abort();
    const res = await queued;
    expect(res.status).toBe(499);
    expect((await res.json()).error.code).toBe('client_closed');
    expect(app.state.metrics.value('implicit_it_client_aborts_total')).toBe(1);
    expect((await running).status).toBe(200);
    expect(app.state.metrics.value('implicit_it_client_aborts_total')).toBe(1);
  });
});

describe('operations: a stream whose client stops reading', () => {
  it('is stopped after streamStallTimeout: its slots are freed, the connection closed, the stop logged and counted', async () => {
    const model = await tinyModel();
    const lines: string[] = [];
    const server = await serve({
      models: [{ id: 'tiny', model }],
      port: 0,
      log: (l) => lines.push(l),
      concurrency: 8,
      maxQueued: 0,
      streamStallTimeout: 300,
      accessLog: true,
    });
    try {
      const eos = model.info.eosIds[0]!;
      // 8 choices of 480 tokens with 20 alternatives each: megabytes, more than the socket buffers hold
      const body = JSON.stringify(
        chat({
          max_tokens: 480,
          n: 8,
          stream: true,
          logprobs: true,
          top_logprobs: 20,
          trace: true,
          rules: false,
          logit_bias: { [eos]: -100 },
        }),
      );
      const socket = connect(server.port, '127.0.0.1');
      let closed = false;
      socket.on('close', () => {
        closed = true;
      });
      socket.on('error', () => {});
      await new Promise<void>((r) => socket.once('connect', () => r()));
      socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      socket.pause(); // reads nothing
      const state = server.app.state;
      expect(await until(() => state.active === 8)).toBe(true);
      expect(await until(() => state.metrics.value('implicit_it_stream_stalls_total') === 1, 30_000)).toBe(
        true,
      );
      expect(await until(() => state.active === 0)).toBe(true);
      // the connection is closed: the client, reading again, gets what the buffers held, then its end
      let received = '';
      socket.on('data', (d: Buffer) => {
        received += d.toString('latin1');
      });
      socket.resume();
      expect(await until(() => closed)).toBe(true);
      expect(received).toMatch(/^HTTP\/1\.1 200/);
      expect(received).not.toContain('[DONE]');
      expect(state.metrics.value('implicit_it_client_aborts_total')).toBe(0);
      expect(
        lines.some((l) => /^stream stalled \(req_\w+\): its client accepted no data for 0\.3 s/.test(l)),
      ).toBe(true);
      expect(
        await until(() =>
          lines.some((l) => l.endsWith('(stream stopped: its client accepted no data for 0.3 s)')),
        ),
      ).toBe(true);
      // the slots serve the next request
      const res = await fetch(`${server.url}/v1/chat/completions`, json(chat({ max_tokens: 4 })));
      expect(res.status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('waiting for the model does not count: a slow generation read at once is not stopped', async () => {
    const model = await tinyModel();
    // a step of 150 ms, twice the stall timeout
    const slow = new Proxy(model, {
      get(target, key, receiver) {
        if (key === 'stream')
          return async function* (...args: Parameters<Model['stream']>): AsyncGenerator<StreamPart> {
            for await (const part of target.stream(...args)) {
              await new Promise((r) => setTimeout(r, 150));
              yield part;
            }
          };
        return Reflect.get(target, key, receiver);
      },
    }) as Model;
    const app = createApp({ models: [{ id: 'tiny', model: slow }], log: () => {}, streamStallTimeout: 75 });
    const res = await app.request('/v1/chat/completions', json(chat({ max_tokens: 4, stream: true })));
    const events = parseSse(await res.text());
    expect(events.at(-1)).toBe('[DONE]');
    expect(app.state.metrics.value('implicit_it_stream_stalls_total')).toBe(0);
  });
});

const KEEP_ALIVE = ': keep-alive\n\n';

/** A stream's events without what differs from one request to the next (`id`, `created`). */
const events = (text: string) =>
  parseSse(text).map((e) => (e === '[DONE]' ? e : { ...JSON.parse(e), id: undefined, created: undefined }));

/** Reads a streamed response until its text holds `want`; the text read. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, want: string): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes(want)) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return text;
}

describe('operations: a stream waiting for the model (streamKeepAlive)', () => {
  it('a client that leaves a committed stream as its first part arrives frees its slots', async () => {
    const model = await tinyModel();
    // the first part comes late and comes anyway, as a step already running when the client left
    let delivered = 0;
    const late = new Proxy(model, {
      get(target, key, receiver) {
        if (key === 'stream')
          return async function* (...args: Parameters<Model['stream']>): AsyncGenerator<StreamPart> {
            const inner = target.stream(...args);
            const first = await inner.next();
            await new Promise((r) => setTimeout(r, 150));
            delivered++;
            if (!first.done) yield first.value;
            yield* inner;
          };
        return Reflect.get(target, key, receiver);
      },
    }) as Model;
    const app = createApp({ models: [{ id: 'tiny', model: late }], log: () => {}, streamKeepAlive: 30 });
    const res = await app.request('/v1/chat/completions', json(chat({ max_tokens: 8, stream: true })));
    const reader = res.body!.getReader();
    expect(await readUntil(reader, KEEP_ALIVE)).toBe(KEEP_ALIVE);
    expect(app.state.active).toBe(1);
    await reader.cancel();
    expect(delivered).toBe(1);
    expect(await until(() => app.state.active === 0, 2000)).toBe(true);
    expect(app.state.metrics.value('implicit_it_client_aborts_total')).toBe(1);
  });

  it('is committed once it has waited streamKeepAlive ms, with `: keep-alive` comments until its first part', async () => {
    const model = await tinyModel();
    const { model: slow, yielded } = slowed(model, { first: 400 });
    const app = createApp({ models: [{ id: 'tiny', model: slow }], log: () => {}, streamKeepAlive: 50 });
    expect(createApp({ models: [{ id: 'tiny', model }], log: () => {} }).state.options.streamKeepAlive).toBe(
      15_000,
    );
    const body = chat({ max_tokens: 6, stream: true, stream_options: { include_usage: true } });
    const res = await app.request('/v1/chat/completions', json(body));
    // the status and headers came before the model's first part
    expect(yielded()).toBe(0);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toBe('text/event-stream; charset=utf-8');
    const text = await res.text();
    // before the first event, comments only: one when committed, then one each 50 ms
    const head = text.slice(0, text.indexOf('data: '));
    expect(head).toBe(KEEP_ALIVE.repeat(head.length / KEEP_ALIVE.length));
    expect(head.length / KEEP_ALIVE.length).toBeGreaterThanOrEqual(3);
    // then the stream that the model gave, as it would be without comments
    expect(text.slice(head.length)).not.toContain(KEEP_ALIVE);
    const plain = createApp({ models: [{ id: 'tiny', model }], log: () => {}, streamKeepAlive: 0 });
    const want = await (await plain.request('/v1/chat/completions', json(body))).text();
    expect(events(text)).toEqual(events(want));
    expect(events(text).at(-1)).toBe('[DONE]');
  });

  it('0, or a first part sooner: the status and headers wait for it, and no comment is sent', async () => {
    const model = await tinyModel();
    for (const streamKeepAlive of [0, 2_000]) {
      const { model: slow, yielded } = slowed(model, { first: 150 });
      const app = createApp({ models: [{ id: 'tiny', model: slow }], log: () => {}, streamKeepAlive });
      const res = await app.request('/v1/chat/completions', json(chat({ max_tokens: 3, stream: true })));
      expect(yielded()).toBeGreaterThan(0);
      const text = await res.text();
      expect(text.startsWith('data: {')).toBe(true);
      expect(text).not.toContain(KEEP_ALIVE);
    }
  });

  it('between two parts too, when the next one takes streamKeepAlive ms', async () => {
    const model = await tinyModel();
    const { model: slow } = slowed(model, { each: 200 });
    const app = createApp({ models: [{ id: 'tiny', model: slow }], log: () => {}, streamKeepAlive: 60 });
    const res = await app.request('/v1/chat/completions', json(chat({ max_tokens: 3, stream: true })));
    const text = await res.text();
    expect(text.startsWith('data: {')).toBe(true);
    expect(text).toMatch(/\}\n\n(: keep-alive\n\n)+data: \{/);
    expect(events(text).at(-1)).toBe('[DONE]');
  });

  it('committed, a failure is its last event; sooner, its status', async () => {
    const model = await tinyModel();
    const lines: string[] = [];
    const { model: failing } = slowed(model, {
      first: 200,
      fail: new Error('the session broke (simulated)'),
    });
    const internal = {
      error: {
        message: 'the server could not complete the request (see its log)',
        type: 'server_error',
        param: null,
        code: 'internal_error',
      },
    };
    const committed = createApp({
      models: [{ id: 'tiny', model: failing }],
      log: (l) => lines.push(l),
      streamKeepAlive: 40,
    });
    const res = await committed.request('/v1/chat/completions', json(chat({ stream: true })));
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^(: keep-alive\n\n)+data: \{/);
    expect(text.slice(text.indexOf('data: '))).toBe(`data: ${JSON.stringify(internal)}\n\n`);
    // logged once, with the request id (after the start-up note of the rules)
    const logged = lines.filter((l) => !l.startsWith('rules '));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/^\/v1\/chat\/completions \(req_\w+\): Error: the session broke \(simulated\)/);
    expect(committed.state.active).toBe(0);

    const sooner = createApp({
      models: [{ id: 'tiny', model: failing }],
      log: () => {},
      streamKeepAlive: 2_000,
    });
    const early = await sooner.request('/v1/chat/completions', json(chat({ stream: true })));
    expect(early.status).toBe(500);
    expect(await early.json()).toEqual(internal);
  });

  it('queued past streamKeepAlive: committed; a shutdown then ends it with an error event, a full queue is still a 429', async () => {
    const model = await tinyModel();
    const app = createApp({
      models: [{ id: 'tiny', model }],
      log: () => {},
      concurrency: 1,
      maxQueued: 1,
      streamKeepAlive: 30,
    });
    const { running } = await occupySlot(app, model);
    const queued = await app.request('/v1/chat/completions', json(chat({ max_tokens: 4, stream: true })));
    expect(queued.status).toBe(200);
    expect(app.state.queued).toBe(1);
    const reader = queued.body!.getReader();
    expect(await readUntil(reader, KEEP_ALIVE)).toBe(KEEP_ALIVE);
    // a full queue answers at once: a status
    const full = await app.request('/v1/chat/completions', json(chat({ max_tokens: 4, stream: true })));
    expect(full.status).toBe(429);
    expect((await full.json()).error.code).toBe('queue_full');
    app.shutdown();
    const rest = await readUntil(reader, '"}}\n\n');
    expect(rest.slice(rest.indexOf('data: '))).toBe(`data: ${JSON.stringify(shuttingDown().body)}\n\n`);
    expect((await reader.read()).done).toBe(true);
    expect((await running).status).toBe(503);
    // nobody left: the server did
    expect(app.state.metrics.value('implicit_it_client_aborts_total')).toBe(0);
  });

  it('a client that leaves a committed stream still queued frees its place, counted once and logged', async () => {
    const model = await tinyModel();
    const lines: string[] = [];
    const app = createApp({
      models: [{ id: 'tiny', model }],
      log: (l) => lines.push(l),
      accessLog: true,
      concurrency: 1,
      streamKeepAlive: 30,
    });
    const { running } = await occupySlot(app, model);
    const queued = await app.request('/v1/chat/completions', json(chat({ max_tokens: 4, stream: true })));
    const reader = queued.body!.getReader();
    expect(await readUntil(reader, KEEP_ALIVE)).toBe(KEEP_ALIVE);
    await reader.cancel();
    expect(await until(() => app.state.queued === 0)).toBe(true);
    expect(app.state.metrics.value('implicit_it_client_aborts_total')).toBe(1);
    expect(
      await until(() =>
        lines.some((l) =>
          /^POST \/v1\/chat\/completions 200 \d+ ms req_\w+ tiny, \d+ prompt \+ 0 completion tokens \(stream left by its client\)$/.test(
            l,
          ),
        ),
      ),
    ).toBe(true);
    app.shutdown();
    expect((await running).status).toBe(503);
    expect(app.state.metrics.value('implicit_it_client_aborts_total')).toBe(1);
  });
});

describe('operations: generations a request may ask for', () => {
  it('prompts × n (× best_of) above maxChoices (default 128) is a 400 naming the field and the limit', async () => {
    const model = await tinyModel();
    const app = createApp({ models: [{ id: 'tiny', model }], log: () => {} });
    expect(app.state.options.maxChoices).toBe(128);
    const prompts = (k: number) => Array.from({ length: k }, (_, i) => `hello ${i}`);
    const refused = async (path: string, body: Record<string, unknown>) => {
      const res = await app.request(path, json(body));
      expect(res.status).toBe(400);
      return (await res.json()).error;
    };
    expect(
      await refused('/v1/completions', { model: 'tiny', prompt: prompts(20), n: 8, max_tokens: 1 }),
    ).toEqual({
      message:
        "n: 20 prompts × n 8: 160 generations, above this server's limit of 128 a request (ask for fewer, or split the request)",
      type: 'invalid_request_error',
      param: 'n',
      code: 'invalid_value',
    });
    expect(
      await refused('/v1/completions', {
        model: 'tiny',
        prompt: prompts(2),
        n: 1,
        best_of: 100,
        max_tokens: 1,
      }),
    ).toMatchObject({
      param: 'best_of',
      message: expect.stringMatching(/^best_of: 2 prompts × best_of 100: 200 generations, above/),
    });
    // at the limit: served
    const ok = await app.request(
      '/v1/completions',
      json({ model: 'tiny', prompt: prompts(16), n: 8, max_tokens: 1 }),
    );
    expect(ok.status).toBe(200);
    expect((await ok.json()).choices).toHaveLength(128);

    const small = createApp({ models: [{ id: 'tiny', model }], log: () => {}, maxChoices: 4 });
    const chat5 = await small.request('/v1/chat/completions', json(chat({ n: 5, max_tokens: 1 })));
    expect(chat5.status).toBe(400);
    expect((await chat5.json()).error).toMatchObject({
      param: 'n',
      message: expect.stringMatching(/^n: n 5: 5 generations, above this server's limit of 4 a request/),
    });
    const list5 = await small.request(
      '/v1/completions',
      json({ model: 'tiny', prompt: prompts(5), max_tokens: 1 }),
    );
    expect((await list5.json()).error).toMatchObject({
      param: 'prompt',
      message: expect.stringMatching(/^prompt: 5 prompts: 5 generations/),
    });
    expect(() => createApp({ models: [{ id: 'tiny', model }], maxChoices: 0 })).toThrow(
      /maxChoices: expected an integer >= 1/,
    );
  });
});

describe('operations: each model its own slots and queue', () => {
  it('a busy model makes requests for another neither wait nor answer 429', async () => {
    const model = await tinyModel();
    const other = await loadModel(await tinyModelDir(), { log: () => {} });
    try {
      const app = createApp({
        models: [
          { id: 'busy', model },
          { id: 'idle', model: other },
        ],
        log: () => {},
        concurrency: 1,
        maxQueued: 0,
      });
      const eos = model.info.eosIds[0]!;
      const running = app.request(
        '/v1/chat/completions',
        json(chat({ model: 'busy', max_tokens: 300, rules: false, logit_bias: { [eos]: -100 } })),
      );
      expect(await until(() => app.state.active === 1)).toBe(true);
      // the idle one is served at once, beside it
      const served = await app.request('/v1/chat/completions', json(chat({ model: 'idle', max_tokens: 2 })));
      expect(served.status).toBe(200);
      // the busy model is full: 429, naming it
      const refused = await app.request('/v1/chat/completions', json(chat({ model: 'busy', max_tokens: 2 })));
      expect(refused.status).toBe(429);
      expect((await refused.json()).error.message).toMatch(
        /^The model "busy" is busy: 1 generation is running and 0 requests are waiting for it \(its limit\)\./,
      );
      expect(app.state.active).toBe(1); // the busy model's generation is still running
      const metrics = await (await app.request('/metrics')).text();
      expect(metrics).toMatch(/^implicit_it_model_active_generations\{model="busy"\} 1$/m);
      expect(metrics).toMatch(/^implicit_it_model_active_generations\{model="idle"\} 0$/m);
      expect(metrics).toMatch(/^implicit_it_concurrency_limit 2$/m);
      // tokens, time to first token and 429s by model: the idle model's 2 tokens, the busy one's 429
      expect(metrics).toMatch(/^implicit_it_completion_tokens_total\{model="idle"\} 2$/m);
      expect(metrics).toMatch(/^implicit_it_rejected_total\{model="busy"\} 1$/m);
      expect(metrics).toMatch(/^implicit_it_rejected_total\{model="idle"\} 0$/m);
      expect(metrics).toMatch(/^implicit_it_time_to_first_token_seconds_count\{model="idle"\} 1$/m);
      const idlePrompt = app.state.metrics.value('implicit_it_prompt_tokens_total', { model: 'idle' });
      expect(idlePrompt).toBeGreaterThan(0);
      expect((await running).status).toBe(200);
      // without labels, value() adds up the models' series
      const { metrics: counters } = app.state;
      expect(counters.value('implicit_it_completion_tokens_total')).toBe(
        counters.value('implicit_it_completion_tokens_total', { model: 'busy' }) + 2,
      );
      expect(counters.value('implicit_it_completion_tokens_total', { model: 'busy' })).toBe(300);
    } finally {
      await other.dispose();
    }
  });
});

describe('operations: request bodies', () => {
  it('a Content-Encoding other than identity is a 415 with an OpenAI-style error, not parsed as plain', async () => {
    const model = await tinyModel();
    const app = createApp({ models: [{ id: 'tiny', model }], log: () => {} });
    const { gzipSync } = await import('node:zlib');
    const body = gzipSync(JSON.stringify(chat({ max_tokens: 2 })));
    const res = await app.request('/v1/chat/completions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
      body,
    });
    expect(res.status).toBe(415);
    expect((await res.json()).error).toEqual({
      message: 'Content-Encoding: "gzip" is not supported; send the JSON body uncompressed',
      type: 'invalid_request_error',
      param: null,
      code: 'unsupported_content_encoding',
    });
    const plain = await app.request(
      '/v1/chat/completions',
      json(chat({ max_tokens: 2 }), { 'Content-Encoding': 'identity' }),
    );
    expect(plain.status).toBe(200);
  });
});
