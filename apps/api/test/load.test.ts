import type { Model } from '@implicit-it/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, serve } from '../src/index.js';
import { tinyModel } from './helpers.js';

/**
 * Load on loopback: 32 concurrent streaming clients against a server that runs 8 generations at once
 * and queues 24; a third of the clients disconnect after a few chunks. Bounded: a fixed number of
 * requests, each with a fixed token budget (EOS suppressed with logit_bias so every stream is long).
 */

const CLIENTS = 32;
const CONCURRENCY = 8;
const QUEUED = 24;
const TOKENS = 200;
const EOS = 2;

let server: RunningServer;

/**
 * The tiny model behind a gate: while a gate is held, generations wait before their first step (all
 * decoding stays real). Lets the test fill every slot and queue place deterministically.
 */
let gated: Promise<void> = Promise.resolve();
function hold() {
  let open!: () => void;
  gated = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open };
}
function gate(model: Model): Model {
  const wrapper = Object.create(model) as Model;
  wrapper.stream = async function* (input, options) {
    await gated;
    yield* model.stream(input, options);
  };
  return wrapper;
}

const gc = () => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('run with --expose-gc (vitest.config.ts sets it)');
  for (let i = 0; i < 3; i++) g();
};
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const memory = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

function request(stream = true) {
  return fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model: 'tiny',
      messages: [{ role: 'user', content: 'Tell me a long story about a lighthouse keeper.' }],
      max_tokens: TOKENS,
      logit_bias: { [EOS]: -100 },
      stream,
    }),
  });
}

interface Outcome {
  kind: 'complete' | 'disconnected';
  tokens: number;
  done: boolean;
  finish: string | null;
}

/** A streaming client; after `dropAfter` chunks it cancels the response body (a disconnect). */
async function client(dropAfter: number | null): Promise<Outcome> {
  const res = await request();
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let chunks = 0;
  let tokens = 0;
  let done = false;
  let finish: string | null = null;
  for (;;) {
    const { value, done: eof } = await reader.read();
    if (eof) break;
    buffer += decoder.decode(value, { stream: true });
    const events = buffer.split('\n\n');
    buffer = events.pop()!;
    for (const e of events) {
      const data = e.replace(/^data: /, '');
      if (data === '[DONE]') {
        done = true;
        continue;
      }
      const chunk = JSON.parse(data);
      const choice = chunk.choices[0];
      if (choice?.delta?.content) tokens++;
      if (choice?.finish_reason) finish = choice.finish_reason;
      chunks++;
    }
    if (dropAfter !== null && chunks >= dropAfter) {
      await reader.cancel();
      return { kind: 'disconnected', tokens, done, finish };
    }
  }
  return { kind: 'complete', tokens, done, finish };
}

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return condition();
}

beforeAll(async () => {
  const model = await tinyModel();
  server = await serve({
    models: [{ id: 'tiny', model: gate(model) }],
    port: 0,
    hostname: '127.0.0.1',
    concurrency: CONCURRENCY,
    maxQueued: QUEUED,
    rules: 'hewitt2024',
    log: () => {},
  });
  // warm up: the first requests allocate the session's buffers
  for (let i = 0; i < 2; i++) await (await request(false)).json();
});

afterAll(async () => {
  await server?.close();
});

describe('load: 32 streaming clients on loopback', () => {
  it('completes every client that stays, aborts those that leave, refuses overflow with 429, returns memory', async () => {
    const state = server.app.state;
    const before = memory();
    const metric = (name: string) => state.metrics.value(name);
    const abortsBefore = metric('implicit_it_client_aborts_total');
    const tokensBefore = metric('implicit_it_completion_tokens_total');

    // every third client disconnects mid-stream, after 3 chunks; generations start only once all 32
    // are in (the gate), so that the queue is full whatever the machine's speed
    const gate = hold();
    const clients = Array.from({ length: CLIENTS }, (_, i) => client(i % 3 === 2 ? 3 : null));

    // once every slot and queue place is taken, more requests are refused with 429 + Retry-After
    const full = await until(() => state.active + state.queued >= CLIENTS, 30_000);
    expect(full).toBe(true);
    expect(state.active).toBe(CONCURRENCY);
    const overflow = await Promise.all(Array.from({ length: 4 }, () => request()));
    for (const res of overflow) {
      expect(res.status).toBe(429);
      expect(Number(res.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
      const body = await res.json();
      expect(body.error).toMatchObject({ type: 'rate_limit_error', code: 'queue_full' });
    }
    gate.open();

    const outcomes = await Promise.all(clients);
    const stayed = outcomes.filter((o) => o.kind === 'complete');
    const left = outcomes.filter((o) => o.kind === 'disconnected');
    expect(stayed).toHaveLength(CLIENTS - Math.floor(CLIENTS / 3));
    expect(left).toHaveLength(Math.floor(CLIENTS / 3));
    for (const o of stayed) {
      expect(o.done).toBe(true);
      expect(o.finish).toBe('length');
      expect(o.tokens).toBeGreaterThan(TOKENS / 2);
    }

    // the server noticed each disconnect and freed its slot
    expect(await until(() => state.active === 0 && state.queued === 0, 10_000)).toBe(true);
    expect(
      await until(() => metric('implicit_it_client_aborts_total') - abortsBefore === left.length, 5_000),
    ).toBe(true);
    // disconnected generations stopped early: well under half their budget each
    const generated = metric('implicit_it_completion_tokens_total') - tokensBefore;
    expect(generated).toBeGreaterThanOrEqual(stayed.length * TOKENS);
    expect(generated).toBeLessThan(stayed.length * TOKENS + (left.length * TOKENS) / 2);

    // memory back to its baseline (heap + array buffers after a collection)
    await new Promise((r) => setTimeout(r, 50));
    const after = memory();
    console.log(
      `memory (heap + array buffers) before ${mb(before)} MB, after ${mb(after)} MB; ${generated} tokens generated`,
    );
    expect(after - before).toBeLessThan(16 * 1024 * 1024);

    // and the server still serves
    const health = await fetch(`${server.url}/health`);
    expect(await health.json()).toMatchObject({ status: 'ok', active: 0, queued: 0 });
    const again = await request(false);
    expect(again.status).toBe(200);
  });

  it('a client that leaves while queued frees its place', async () => {
    const state = server.app.state;
    const gate = hold();
    const holders = Array.from({ length: CONCURRENCY }, () => client(null));
    expect(await until(() => state.active === CONCURRENCY, 10_000)).toBe(true);
    const controller = new AbortController();
    const waiting = fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], stream: true }),
      signal: controller.signal,
    }).catch((e) => e);
    expect(await until(() => state.queued === 1, 5_000)).toBe(true);
    controller.abort();
    expect(await until(() => state.queued === 0, 5_000)).toBe(true);
    expect(await waiting).toBeInstanceOf(Error);
    gate.open();
    await Promise.all(holders);
    expect(await until(() => state.active === 0, 5_000)).toBe(true);
  });
});
