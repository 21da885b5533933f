import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatRequestSchema, type RunningServer, serve } from '../src/index.js';
import { tinyModel } from './helpers.js';

/**
 * Hostile and malformed requests: every one must get a 4xx with an OpenAI-style JSON error, and the
 * server must keep answering. Deterministic (seeded), bounded (a fixed list), loopback only.
 */

const BODY_LIMIT = 16 * 1024;

interface Case {
  name: string;
  path?: string;
  method?: string;
  contentType?: string | null;
  body: string | undefined;
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const okChat = { model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };
const okCompletion = { model: 'tiny', prompt: 'hi', max_tokens: 4 };

/** Values that are wrong for every field they are put in. */
const WRONG_EVERYWHERE: unknown[] = [
  { nested: { deeper: [1, 2, 3] } },
  [[[[[]]]]],
  -1e308,
  Number.MAX_SAFE_INTEGER * 1000,
];
/** Unicode strings: wrong for every field that takes no free text. */
const STRINGS: unknown[] = ['ﾟ･✿ヾ╲(｡◕‿◕｡)╱✿･ﾟ', '\u0000\u0001\u0002', '\ud83d', 'Ω≈ç√∫˜µ≤≥÷', '‮RTL'];
const FREE_TEXT = new Set(['user', 'stop', 'prompt', 'service_tier']);
const wrongFor = (field: string) =>
  FREE_TEXT.has(field) ? WRONG_EVERYWHERE : [...WRONG_EVERYWHERE, ...STRINGS];

/** Wrong values per field (each is invalid for that field). */
const BAD_FIELDS: Record<string, unknown[]> = {
  model: [
    1,
    true,
    null,
    [],
    {},
    '',
    'x'.repeat(300),
    '../../etc/passwd',
    '/etc/passwd',
    'C:\\Windows\\system32',
    'file:///etc/passwd',
    '~/.ssh/id_rsa',
    './models/tiny',
    'HuggingFaceTB/SmolLM2-135M',
    'tiny/../tiny',
    'tiny\u0000',
    'модель',
    '模型',
    '🦙',
    'TINY',
    ' tiny',
    'tiny ',
    '%2e%2e%2f',
    '\\\\server\\share',
  ],
  messages: [
    null,
    'hi',
    1,
    {},
    [],
    [null],
    [1],
    ['hi'],
    [{}],
    [{ role: 'user' }],
    [{ content: 'x' }],
    [{ role: 'tool', content: 'x' }],
    [{ role: 'function', content: 'x', name: 'f' }],
    [{ role: 'user', content: 5 }],
    [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x' } }] }],
    [{ role: 'user', content: 'x', tool_calls: [] }],
    [{ role: 'USER', content: 'x' }],
    // (a conversation without a user message, e.g. a system prompt alone, is valid: OpenAI answers it)
    Array.from({ length: 1100 }, () => ({ role: 'user', content: '' })),
    [{ role: 'user', content: 'tiramisu '.repeat(600) }],
  ],
  max_tokens: ['10', -1, 0, 1.5, 1e20, 2 ** 31, true, [], {}],
  max_completion_tokens: ['5', -5, 0.5, 1e300],
  temperature: ['hot', -0.1, 2.01, 1e308, [], {}, true],
  top_p: ['0.9', -0.5, 1.5, 1e9, [0.5]],
  top_k: [-2, 0.5, 'ten', 1e10],
  seed: [1.5, '42', 1e300, -1e300, [], {}],
  stop: [
    5,
    [1, 2],
    Array.from({ length: 17 }, (_, i) => `s${i}`),
    [''],
    '',
    { s: 1 },
    ['x'.repeat(300)],
    [null],
  ],
  n: [0, 129, 1000, -1, '1', 1.5, 1e9],
  stream: ['yes', 1, [], {}],
  stream_options: ['on', { include_usage: 'yes' }, { foo: 1 }, [], { include_usage: true }],
  logprobs: [1, 'true', [], {}],
  top_logprobs: [-1, 21, 1e9, 2.5, 'three', 3],
  logit_bias: [
    [],
    'x',
    5,
    { abc: 1 },
    { '-1': 1 },
    { '1.5': 1 },
    { 1: 101 },
    { 1: -1e9 },
    { 1: 'up' },
    { 99999999: 1 },
    { 512: 1 },
    { '': 1 },
    Object.fromEntries(Array.from({ length: 1100 }, (_, i) => [i, 1])),
  ],
  frequency_penalty: [0.5, -2, 'x', 1e9],
  presence_penalty: [1, 'x'],
  rules: [
    5,
    [],
    'hewitt2025',
    '',
    'eos-eos',
    'uniform-magic',
    'x'.repeat(250),
    'hewitt2024/../../etc',
    { eos: 5 },
    { unknown: true },
    { eos: { rampLength: -1 } },
    { eos: { rampLength: 'long' } },
    { used: { scope: 'everything' } },
    { uniform: { entries: 'all' } },
    { uniform: { entries: [{ id: 1e9, score: 1 }] } },
    { uniform: { entries: [{ text: 'x', score: 'high' }] } },
    { start: { weight: 'heavy' } },
    '🦙-🦙',
  ],
  trace: ['yes', 1, {}],
  add_bos: ['yes', 1, {}, [true]],
  response_format: [{ type: 'json_object' }, { type: 'json_schema', json_schema: {} }, 'text', 5],
  tools: [[], [{ type: 'function', function: { name: 'f' } }]],
  tool_choice: ['auto', 'required', { type: 'function', function: { name: 'f' } }],
  parallel_tool_calls: [false, true],
  modalities: [['text', 'audio'], ['audio'], 'text'],
  functions: [[]],
  user: [5, 'x'.repeat(300)],
  metadata: ['x', { a: 1 }],
  unknown_field: [1, 'x', {}],
  __proto__x: [1],
  constructor: [{}],
  '': [1],
  ключ: [1],
};

const BAD_COMPLETION_FIELDS: Record<string, unknown[]> = {
  prompt: [
    null,
    5,
    [],
    {},
    Array(129).fill('a'),
    ['a', 'b', ''.padEnd(20_000, 'tiramisu ')],
    [1, -1],
    [1, 2.5],
    [[1], [2], Array(600).fill(5)],
    [[]],
    [1, 1e10],
    [1, 99999],
    [true],
    'tiramisu '.repeat(600),
    // ('' is a valid prompt: a new document after the BOS)
    [['x']],
  ],
  logprobs: [true, -1, 21, 'five', 2.5],
  echo: ['yes', 1],
  // 0 only with echo (the prompt's log-probs)
  max_tokens: [0, -1, 1.5],
  best_of: [0, 'x', 1.5, 129],
  suffix: ['after', 5],
  add_bos: [true, false],
  messages: [[{ role: 'user', content: 'x' }]],
};

function cases(): Case[] {
  const out: Case[] = [];
  const add = (name: string, body: unknown, path = '/v1/chat/completions') =>
    out.push({ name, path, body: JSON.stringify(body) });

  for (const [field, values] of Object.entries(BAD_FIELDS)) {
    for (const [i, value] of [...values, ...wrongFor(field)].entries()) {
      add(`chat ${field} #${i}`, { ...okChat, [field]: value });
    }
  }
  for (const [field, values] of Object.entries(BAD_COMPLETION_FIELDS)) {
    for (const [i, value] of [...values, ...wrongFor(field)].entries()) {
      add(`completion ${field} #${i}`, { ...okCompletion, [field]: value }, '/v1/completions');
    }
  }
  // missing required fields
  add('chat without model', { messages: okChat.messages });
  add('chat without messages', { model: 'tiny' });
  add('completion without prompt', { model: 'tiny' }, '/v1/completions');
  add('completion without model', { prompt: 'x' }, '/v1/completions');
  // bodies that are not objects
  for (const body of [null, [], [okChat], 'hello', 42, true, Number.POSITIVE_INFINITY])
    add(`non-object ${String(body)}`, body);
  // prototype keys, as JSON text (an object literal would set the prototype instead)
  const okText = JSON.stringify(okChat).slice(1, -1);
  for (const extra of [
    '"__proto__": {"admin": true}',
    '"constructor": {"prototype": {}}',
    '"rules": {"__proto__": {"eos": true}}',
    '"logit_bias": {"__proto__": 5}',
    '"metadata": {"__proto__": "x"}',
  ]) {
    out.push({ name: `proto ${extra}`, path: '/v1/chat/completions', body: `{${okText}, ${extra}}` });
  }
  // malformed JSON
  const raw = (name: string, body: string | undefined, extra: Partial<Case> = {}) =>
    out.push({ name, path: '/v1/chat/completions', body, ...extra });
  for (const [i, text] of [
    '',
    '{',
    '{"model": "tiny",',
    '{"model": tiny}',
    "{'model': 'tiny'}",
    '{"model": "tiny"} trailing',
    '{"a": NaN}',
    '{"a": Infinity}',
    '\u0000',
    '\ufeff{"model": "tiny"}x',
    '['.repeat(5000),
    `{"messages": ${'['.repeat(3000)}${']'.repeat(3000)}}`,
    '{"model": "\\ud800", "messages": 1}',
    JSON.stringify(okChat).slice(0, -1),
  ].entries()) {
    raw(`malformed json #${i}`, text);
  }
  // oversized bodies
  raw(
    'oversized content',
    JSON.stringify({ ...okChat, messages: [{ role: 'user', content: 'x'.repeat(BODY_LIMIT) }] }),
  );
  raw('oversized padding', `${JSON.stringify(okChat).slice(0, -1)}, "pad": "${' '.repeat(BODY_LIMIT * 4)}"}`);
  raw('oversized completion', JSON.stringify({ ...okCompletion, prompt: 'y'.repeat(BODY_LIMIT * 2) }), {
    path: '/v1/completions',
  });
  // wrong content types and methods, unknown routes
  raw('text/plain', JSON.stringify(okChat), { contentType: 'text/plain' });
  raw('form', 'model=tiny', { contentType: 'application/x-www-form-urlencoded' });
  raw('no content type', JSON.stringify(okChat), { contentType: null });
  raw('multipart', '--x--', { contentType: 'multipart/form-data; boundary=x' });
  raw('GET chat', undefined, { method: 'GET' });
  raw('PUT chat', JSON.stringify(okChat), { method: 'PUT' });
  raw('DELETE models', undefined, { method: 'DELETE', path: '/v1/models' });
  for (const path of [
    '/v1/../etc/passwd',
    '/v1/models/../../etc/passwd',
    '/v1/models/%2e%2e%2fetc',
    '/v2/chat/completions',
    '/v1/chat/completions/extra',
    '/v1/embeddings',
    '/v1/files',
    '/v1/models/gpt-4o',
    '/%00',
    '/v1/chat%2fcompletions',
  ]) {
    raw(`path ${path}`, JSON.stringify(okChat), { path });
  }

  // random garbage: seeded mutations of a valid body
  const random = rng(2024);
  const alphabet = '{}[]":,0123456789abcdefghijklmnopqrstuvwxyz-\\\u00e9\u4e2d\ud83d\ude00 \n\t';
  const valid = JSON.stringify(okChat);
  let made = 0;
  for (let attempt = 0; made < 200 && attempt < 10_000; attempt++) {
    const chars = [...valid];
    const edits = 1 + Math.floor(random() * 4);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(random() * chars.length);
      const op = random();
      const ch = alphabet[Math.floor(random() * alphabet.length)]!;
      if (op < 0.4) chars.splice(at, 1);
      else if (op < 0.7) chars.splice(at, 0, ch);
      else chars[at] = ch;
    }
    const text = chars.join('');
    // keep only mutations that are no longer a valid request: still-valid JSON must differ in a checked way
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      raw(`garbage #${made++}`, text);
      continue;
    }
    // a mutation that is still a valid request for the served model is not hostile: skip it
    const p = parsed as { model?: unknown };
    if (chatRequestSchema.safeParse(parsed).success && p.model === 'tiny') continue;
    raw(`garbage #${made++}`, text);
  }
  return out;
}

let server: RunningServer;

beforeAll(async () => {
  const model = await tinyModel();
  server = await serve({
    models: [{ id: 'tiny', model }],
    port: 0,
    hostname: '127.0.0.1',
    bodyLimit: BODY_LIMIT,
    maxTokens: 8,
    log: () => {},
  });
});

afterAll(async () => {
  await server?.close();
});

describe('fuzz: malformed and hostile requests', () => {
  const all = cases();

  it('has at least 500 cases', () => {
    expect(all.length).toBeGreaterThanOrEqual(500);
  });

  it('answers every one with a 4xx OpenAI-style JSON error and keeps serving', async () => {
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < all.length) {
        const c = all[next++]!;
        const headers: Record<string, string> = {};
        if (c.contentType !== null) headers['Content-Type'] = c.contentType ?? 'application/json';
        let status = 0;
        let text = '';
        try {
          const res = await fetch(`${server.url}${c.path ?? '/v1/chat/completions'}`, {
            method: c.method ?? 'POST',
            headers,
            body: c.body,
            signal: AbortSignal.timeout(20_000),
          });
          status = res.status;
          text = await res.text();
        } catch (error) {
          failures.push(`${c.name}: request failed (${(error as Error).message})`);
          continue;
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        let body:
          | { error?: { message?: unknown; type?: unknown; param?: unknown; code?: unknown } }
          | undefined;
        try {
          body = JSON.parse(text);
        } catch {}
        const ok =
          status >= 400 &&
          status < 500 &&
          typeof body?.error?.message === 'string' &&
          typeof body.error.type === 'string' &&
          'param' in body.error &&
          'code' in body.error;
        if (!ok) failures.push(`${c.name}: ${status} ${text.slice(0, 160)}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(failures).toEqual([]);
    // the kinds of refusal seen
    expect(statuses.get(400)).toBeGreaterThan(300);
    expect(statuses.get(404)).toBeGreaterThan(20);
    expect(statuses.get(413)).toBeGreaterThanOrEqual(3);

    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', active: 0, queued: 0 });
    const good = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(okChat),
    });
    expect(good.status).toBe(200);
  });
});
