import { connect } from 'node:net';
import { createTinyModel, SLOW_PREFILL_MODEL } from '@implicit-it/modelkit/test';
import { type BaseModel, loadModel, loadModelInWorker, type Model } from '@implicit-it/runtime';
import { describe, expect, it } from 'vitest';
import { createApp, serve } from '../src/index.js';
import { countingPrompts, json, tinyModel } from './helpers.js';

const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'tiny',
  messages: [{ role: 'user', content: 'Write a poem about the sea.' }],
  ...extra,
});

describe('serving: shutdown, server errors, oversized bodies', () => {
  it('close({ grace }) lets requests in flight finish; close() alone ends them with a 503', async () => {
    const model = await tinyModel();
    for (const grace of [30_000, 0]) {
      const server = await serve({ models: [{ id: 'tiny', model }], port: 0, log: () => {} });
      // a generation long enough to be running when the server is told to stop
      const eos = model.info.eosIds[0]!;
      const body = chat({ max_tokens: 400, rules: false, logit_bias: { [eos]: -100 } });
      const answer = fetch(`${server.url}/v1/chat/completions`, json(body)).then(
        async (res) => ({ status: res.status, body: await res.json() }),
        (error: Error) => ({ status: 0, body: error.message }),
      );
      const started = Date.now();
      while (server.app.state.active === 0 && Date.now() - started < 10_000)
        await new Promise((r) => setTimeout(r, 5));
      expect(server.app.state.active).toBe(1);
      // close says what it ended unfinished: nothing after a long grace, the running generation without
      expect(await server.close({ grace })).toEqual({ running: grace > 0 ? 0 : 1, queued: 0 });
      const got = await answer;
      if (grace > 0) {
        expect(got.status).toBe(200);
        expect(got.body.usage.completion_tokens).toBe(400);
      } else expect(got.status).toBe(503); // ended at once, told why
      // either way the generation is over (finished, or ended by the shutdown)
      while (server.app.state.active > 0) await new Promise((r) => setTimeout(r, 5));
    }
  });

  it('/health on a kept-alive connection during the grace says shutting_down (503), with what still runs', async () => {
    const model = await tinyModel();
    const server = await serve({ models: [{ id: 'tiny', model }], port: 0, log: () => {} });
    const eos = model.info.eosIds[0]!;
    const body = JSON.stringify(chat({ max_tokens: 400, rules: false, logit_bias: { [eos]: -100 } }));
    // one kept-alive connection: a generation, then, once the server is told to stop, a health check
    // sent behind it (answered after it, in order), as a load balancer's pooled connection would
    const socket = connect(server.port, '127.0.0.1');
    let raw = '';
    socket.on('data', (d) => {
      raw += d;
    });
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    const started = Date.now();
    while (server.app.state.active === 0 && Date.now() - started < 10_000)
      await new Promise((r) => setTimeout(r, 5));
    const closing = server.close({ grace: 30_000 });
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => socket.on('close', r));
    await closing;
    const [first, second] = raw.split(/(?=HTTP\/1\.1 )/);
    expect(first).toMatch(/^HTTP\/1\.1 200 /); // the generation finished within the grace
    expect(second).toMatch(/^HTTP\/1\.1 503 /);
    expect(second).toMatch(/\r\nretry-after: 5\r\n/i);
    expect(second).toMatch(/\r\nconnection: close\r\n/i);
    expect(second).toMatch(/\r\nx-request-id: req_\w+\r\n/i);
    expect(JSON.parse(second!.slice(second!.indexOf('\r\n\r\n') + 4))).toEqual({
      status: 'shutting_down',
      models: ['tiny'],
      active: 1, // the generation ahead of it, still running when the check was answered
      queued: 0,
    });
    // counted as sent
    const { metrics } = server.app.state;
    expect(metrics.value('implicit_it_requests_total', { route: '/health', status: '503' })).toBe(1);
    expect(metrics.value('implicit_it_requests_total', { route: '/health', status: '200' })).toBe(0);
  });

  it('a draining app answers new requests 503 with their request id, counted and logged as sent', async () => {
    const model = await tinyModel();
    const lines: string[] = [];
    const app = createApp({
      models: [{ id: 'tiny', model }],
      log: (l) => lines.push(l),
      accessLog: true,
      apiKey: 'sk-test',
    });
    lines.length = 0;
    app.drain();
    // the key is not asked for: nothing new is taken either way
    const api = await app.request('/v1/chat/completions', json(chat({ max_tokens: 1 })));
    expect(api.status).toBe(503);
    expect(api.headers.get('Retry-After')).toBe('5');
    expect(api.headers.get('Connection')).toBe('close');
    expect(api.headers.get('X-Request-Id')).toMatch(/^req_\w+$/);
    expect(await api.json()).toEqual({
      error: {
        message: 'the server is shutting down; retry on another instance',
        type: 'server_error',
        param: null,
        code: 'server_shutting_down',
      },
    });
    const health = await app.request('/health');
    expect(health.status).toBe(503);
    expect(health.headers.get('X-Request-Id')).toMatch(/^req_\w+$/);
    expect(await health.json()).toEqual({ status: 'shutting_down', models: ['tiny'], active: 0, queued: 0 });
    // the playground and the metrics are still served
    expect((await app.request('/')).status).toBe(200);
    const { metrics } = app.state;
    expect(
      metrics.value('implicit_it_requests_total', { route: '/v1/chat/completions', status: '503' }),
    ).toBe(1);
    expect(metrics.value('implicit_it_requests_total', { route: '/health', status: '503' })).toBe(1);
    expect(lines.map((l) => l.replace(/ \d+ ms req_\w+/, ' _ ms req_'))).toEqual([
      'POST /v1/chat/completions 503 _ ms req_',
      'GET /health 503 _ ms req_',
      'GET / 200 _ ms req_',
    ]);
  });

  it('requests still running when the grace is over end with 503 server_shutting_down, streamed or not', async () => {
    const model = await tinyModel();
    const server = await serve({ models: [{ id: 'tiny', model }], port: 0, log: () => {} });
    const eos = model.info.eosIds[0]!;
    const long = (stream: boolean) =>
      fetch(
        `${server.url}/v1/chat/completions`,
        json(chat({ max_tokens: 480, rules: false, logit_bias: { [eos]: -100 }, stream })),
      );
    const plain = long(false);
    const streamed = await long(true);
    const reader = streamed.body!.getReader();
    await reader.read(); // under way
    expect(await server.close({ grace: 100 })).toEqual({ running: 2, queued: 0 });
    const res = await plain;
    expect(res.status).toBe(503);
    expect(res.headers.get('Retry-After')).toBe('5');
    expect((await res.json()).error.code).toBe('server_shutting_down');
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text.trimEnd()).toMatch(/data: \{"error":\{[^\n]*"code":"server_shutting_down"\}\}$/);
    expect(server.app.state.metrics.value('implicit_it_client_aborts_total')).toBe(0);
  });

  it('accessLog: a line per request (a stream when it ends, saying how); none by default', async () => {
    const model = await tinyModel();
    const lines: string[] = [];
    const app = createApp({ models: [{ id: 'tiny', model }], log: (l) => lines.push(l), accessLog: true });
    // the start-up line of the hewitt2024 entries the tiny vocabulary has no token for
    expect(lines.splice(0).map((l) => l.slice(0, 37))).toEqual(['rules hewitt2024 on the model "tiny":']);
    const id = (res: Response) => res.headers.get('X-Request-Id');
    const plain = await app.request('/v1/chat/completions', json(chat({ max_tokens: 3 })));
    const { usage } = (await plain.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    // behind a proxy: its X-Forwarded-For is logged as it came (through app.request there is no peer)
    const proxied = { 'X-Forwarded-For': '203.0.113.7, 10.0.0.1' };
    const streamed = await app.request(
      '/v1/chat/completions',
      json(chat({ max_tokens: 3, stream: true, stream_options: { include_usage: true } }), proxied),
    );
    const events = (await streamed.text()).split('\n\n').filter((e) => e.startsWith('data: {'));
    const streamUsage = JSON.parse(events.at(-1)!.slice(6)).usage;
    const missing = await app.request('/v1/nope', { headers: proxied });
    const bad = await app.request('/v1/chat/completions', json(chat({ max_tokens: -1 })));
    expect(lines).toHaveLength(4);
    // with the token counts of the usage the client got
    const counts = (u: typeof usage) =>
      `, ${u.prompt_tokens} prompt \\+ ${u.completion_tokens} completion tokens`;
    expect(usage.prompt_tokens).toBeGreaterThan(0);
    expect(lines[0]).toMatch(
      new RegExp(`^POST /v1/chat/completions 200 \\d+ ms ${id(plain)} tiny${counts(usage)}$`),
    );
    expect(lines[1]).toMatch(
      new RegExp(
        `^POST /v1/chat/completions 200 \\d+ ms ${id(streamed)} tiny${counts(streamUsage)} from unknown \\(X-Forwarded-For 203\\.0\\.113\\.7, 10\\.0\\.0\\.1\\) \\(stream finished\\)$`,
      ),
    );
    expect(lines[2]).toMatch(
      new RegExp(
        `^GET /v1/nope 404 \\d+ ms ${id(missing)} from unknown \\(X-Forwarded-For 203\\.0\\.113\\.7, 10\\.0\\.0\\.1\\)$`,
      ),
    );
    expect(lines[3]).toMatch(new RegExp(`^POST /v1/chat/completions 400 \\d+ ms ${id(bad)}$`));
    // a stream its client leaves
    const controller = new AbortController();
    const eos = model.info.eosIds[0]!;
    const left = await app.request('/v1/chat/completions', {
      ...json(chat({ max_tokens: 400, stream: true, logit_bias: { [eos]: -100 } })),
      signal: controller.signal,
    });
    const reader = left.body!.getReader();
    await reader.read();
    controller.abort();
    await reader.cancel().catch(() => {});
    const until = Date.now() + 10_000;
    while (lines.length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    // with the model, its prompt and the tokens generated before the client left
    expect(lines[4]).toMatch(
      new RegExp(
        `^POST /v1/chat/completions 200 \\d+ ms ${id(left)} tiny, ${usage.prompt_tokens} prompt \\+ [1-9]\\d* completion tokens \\(stream left by its client\\)$`,
      ),
    );
    // a JSON answer its client leaves mid-generation: a 499, with the tokens generated until then
    const metrics = app.state.metrics;
    const before = metrics.value('implicit_it_completion_tokens_total');
    const away = new AbortController();
    const gone = Promise.resolve(
      app.request('/v1/chat/completions', {
        ...json(chat({ max_tokens: 400, logit_bias: { [eos]: -100 } })),
        signal: away.signal,
      }),
    ).catch(() => null);
    while (metrics.value('implicit_it_completion_tokens_total') === before && Date.now() < until)
      await new Promise((r) => setTimeout(r, 1));
    away.abort();
    await gone;
    while (lines.length < 6 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(lines[5]).toMatch(
      new RegExp(
        `^POST /v1/chat/completions 499 \\d+ ms req_\\w+ tiny, ${usage.prompt_tokens} prompt \\+ [1-9]\\d* completion tokens$`,
      ),
    );
    // off by default
    const quiet: string[] = [];
    const off = createApp({ models: [{ id: 'tiny', model }], log: (l) => quiet.push(l) });
    quiet.length = 0; // the start-up line, as above
    await (await off.request('/v1/chat/completions', json(chat({ max_tokens: 2 })))).text();
    expect(quiet).toEqual([]);
  });

  it('a server error (500) is logged with its request id, streamed or not', async () => {
    const model = await tinyModel();
    const failing = new Proxy(model, {
      get(target, key, receiver) {
        if (key === 'stream')
          // biome-ignore lint/correctness/useYield: fails before the first part, as a broken session would
          return async function* () {
            throw new Error('the session broke (simulated)');
          };
        return Reflect.get(target, key, receiver);
      },
    }) as Model;
    const lines: string[] = [];
    const app = createApp({ models: [{ id: 'tiny', model: failing }], log: (l) => lines.push(l) });
    for (const stream of [false, true]) {
      lines.length = 0;
      const res = await app.request('/v1/chat/completions', json(chat({ max_tokens: 4, stream })));
      expect(res.status).toBe(500);
      const id = res.headers.get('X-Request-Id');
      expect(id).toMatch(/^req_[0-9a-f]{32}$/);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`/v1/chat/completions (${id}): Error: the session broke (simulated)`);
    }
  });

  it('an oversized body gets 413 with Connection: close (its unread rest makes the socket unusable)', async () => {
    const model = await tinyModel();
    const app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, bodyLimit: 1024 });
    const res = await app.request('/v1/chat/completions', json(chat({ pad: 'x'.repeat(4096) })));
    expect(res.status).toBe(413);
    expect(res.headers.get('Connection')).toBe('close');
    expect((await res.json()).error.code).toBe('request_too_large');
  });

  it('a full server answers 429 before tokenizing the prompt', async () => {
    const model = await tinyModel();
    const { model: counted, prompts } = countingPrompts(model);
    const app = createApp({
      models: [{ id: 'tiny', model: counted }],
      log: () => {},
      concurrency: 1,
      maxQueued: 0,
    });
    const eos = model.info.eosIds[0]!;
    const running = app.request(
      '/v1/chat/completions',
      json(chat({ max_tokens: 300, logit_bias: { [eos]: -100 }, rules: false })),
    );
    while (app.state.active === 0) await new Promise((r) => setTimeout(r, 5));
    const before = prompts();
    expect(before).toBeGreaterThan(0);
    const refused = await app.request('/v1/chat/completions', json(chat({ max_tokens: 4 })));
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.code).toBe('queue_full');
    expect(prompts()).toBe(before); // not tokenized
    expect((await running).status).toBe(200);
  });

  it('requests leave no listener on the server-wide shutdown signal (no leak, no MaxListeners warning)', async () => {
    const model = await tinyModel();
    // room for 2 + 2 requests in flight: listeners are allowed for 20
    const app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, concurrency: 2, maxQueued: 2 });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const post = async (body: Record<string, unknown>) =>
        (await app.request('/v1/chat/completions', json(chat(body)))).text();
      await Promise.all(Array.from({ length: 12 }, (_, i) => post({ max_tokens: 2, stream: i % 2 === 0 })));
      for (let i = 0; i < 30; i++) await post({ max_tokens: 1, stream: i % 2 === 0 });
      await new Promise((r) => setImmediate(r));
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('serving a model that runs in a worker thread (loadModelInWorker)', () => {
  /** The responses' bodies without what differs between any two responses (ids, timestamps). */
  const stable = (text: string) => text.replace(/"(id|created|system_fingerprint)":("[^"]*"|\d+),?/g, '');

  it('answers as the same model on the server thread does, streamed or not', async () => {
    const model = await tinyModel();
    const there = await loadModelInWorker(model.info.dir, { log: () => {} });
    try {
      const apps = [model, there].map((m) =>
        createApp({ models: [{ id: 'tiny', model: m }], log: () => {} }),
      );
      for (const body of [
        chat({ max_tokens: 24, logprobs: true, top_logprobs: 2 }),
        chat({ max_tokens: 24, stream: true, rules: { eos: true }, temperature: 0.7, seed: 3 }),
        { model: 'tiny', prompt: 'Once upon a time', max_tokens: 12, logprobs: 2 },
        // several choices: prefilled together in either thread (a row joining later would run other
        // kernel shapes, and the log-probs would differ in their last digits)
        chat({ max_tokens: 16, n: 3, temperature: 0.9, seed: 8 }),
        { model: 'tiny', prompt: ['Once upon a time', 'The end'], n: 2, max_tokens: 10, logprobs: 1 },
      ]) {
        const route = 'messages' in body ? '/v1/chat/completions' : '/v1/completions';
        const [mine, theirs] = await Promise.all(
          apps.map(async (a) => (await a.request(route, json(body))).text()),
        );
        expect(stable(theirs!)).toBe(stable(mine!));
        expect(theirs).toContain('"finish_reason":"');
      }
    } finally {
      await there.dispose();
    }
  });

  it('a stream whose long prefill outlasts streamKeepAlive is committed with keep-alive comments during it', async () => {
    // one onnxruntime run of about 40 GFLOP (a 1,500-token prompt prefilled whole) in a worker thread
    const { dir } = await createTinyModel(SLOW_PREFILL_MODEL);
    const model = await loadModelInWorker(dir, { log: () => {}, prefillChunk: 0 });
    const server = await serve({
      models: [{ id: 'big', model }],
      port: 0,
      log: () => {},
      streamKeepAlive: 50,
    });
    try {
      const prompt = [Array.from({ length: 1500 }, (_, i) => 3 + (i % 500))];
      const res = await fetch(
        `${server.url}/v1/completions`,
        json({ model: 'big', prompt, max_tokens: 1, stream: true }),
      );
      expect(res.status).toBe(200);
      const text = await res.text();
      const head = text.slice(0, text.indexOf('data: '));
      expect(head).toBe(': keep-alive\n\n'.repeat(head.length / 14));
      expect(head.length / 14).toBeGreaterThanOrEqual(2);
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    } finally {
      await server.close();
      await model.dispose();
    }
  });

  it('answers GET /health while a long prompt is prefilled, which a model on the server thread cannot', async () => {
    // one onnxruntime run of about 40 GFLOP (a 1,500-token prompt prefilled whole) while /health is
    // polled
    const { dir } = await createTinyModel(SLOW_PREFILL_MODEL);
    const longestHealthWait = async (model: BaseModel) => {
      const server = await serve({ models: [{ id: 'big', model }], port: 0, log: () => {} });
      try {
        const prompt = [Array.from({ length: 1500 }, (_, i) => 3 + (i % 500))];
        const done = fetch(`${server.url}/v1/completions`, json({ model: 'big', prompt, max_tokens: 1 }));
        let finished = false;
        void done.finally(() => {
          finished = true;
        });
        // the longest time between two answers (each poll 10 ms after the last answer)
        let longest = 0;
        let last = performance.now();
        while (!finished) {
          await new Promise((r) => setTimeout(r, 10));
          expect((await fetch(`${server.url}/health`)).status).toBe(200);
          longest = Math.max(longest, performance.now() - last);
          last = performance.now();
        }
        expect((await done).status).toBe(200);
        return longest;
      } finally {
        await server.close();
        await model.dispose();
      }
    };
    const blocked = await longestHealthWait(await loadModel(dir, { log: () => {}, prefillChunk: 0 }));
    const free = await longestHealthWait(await loadModelInWorker(dir, { log: () => {}, prefillChunk: 0 }));
    expect(blocked).toBeGreaterThan(3 * free);
  });
});
