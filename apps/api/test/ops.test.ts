import { describe, expect, it } from 'vitest';
import { createApp } from '../src/index.js';
import { json, tinyModel } from './helpers.js';

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

describe('operations: requests that wait for a slot', () => {
  it('a queued request cut by the shutdown is answered 503 server_shutting_down with Retry-After, not 499', async () => {
    const model = await tinyModel();
    const app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, concurrency: 1, maxQueued: 2 });
    const eos = model.info.eosIds[0]!;
    const running = app.request(
      '/v1/chat/completions',
      json(chat({ max_tokens: 400, rules: false, logit_bias: { [eos]: -100 } })),
    );
    expect(await until(() => app.state.active === 1)).toBe(true);
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
