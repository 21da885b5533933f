import { compileRules } from '@implicit-it/rules';
import type { Model } from '@implicit-it/runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ApiApp, createApp } from '../src/index.js';
import { json, parseSse, tinyModel } from './helpers.js';

// Rule entries that match no token of the model's vocabulary are left out (never guessed): a
// response says so in `rules_unresolved`, and the server log once per rule set compiled.
const SURE = { uniform: { entries: [{ text: 'Sure!', score: 5 }] } };
const SURE_UNRESOLVED = [
  { rule: 'uniform', text: 'Sure!', reason: 'no vocabulary item has the surface text "Sure!"' },
];
const OPENAI_KEYS = ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices', 'usage'];
const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'tiny',
  messages: [{ role: 'user', content: 'Give me a recipe for tiramisu.' }],
  max_tokens: 4,
  ...extra,
});
const completion = (extra: Record<string, unknown> = {}) => ({
  model: 'tiny',
  prompt: 'Once upon a time',
  max_tokens: 4,
  ...extra,
});

let model: Model;
let app: ApiApp;
let lines: string[];

beforeAll(async () => {
  model = await tinyModel();
  lines = [];
  app = createApp({ models: [{ id: 'tiny', model }], log: (line) => lines.push(line), playground: false });
});

async function post(path: string, body: unknown) {
  const res = await app.request(path, json(body));
  expect(res.status).toBe(200);
  return res;
}

/** A stream's chunks, parsed. */
const chunks = async (res: Response) =>
  parseSse(await res.text())
    .filter((d) => d !== '[DONE]')
    .map((d) => JSON.parse(d));

describe('rules_unresolved', () => {
  it('lists the entries left out in a JSON response, chat and completions, after the OpenAI fields', async () => {
    for (const [path, body] of [
      ['/v1/chat/completions', chat({ rules: SURE })],
      ['/v1/completions', completion({ rules: SURE })],
    ] as const) {
      const response = await (await post(path, body)).json();
      expect(Object.keys(response)).toEqual([...OPENAI_KEYS, 'rules_unresolved']);
      expect(response.rules_unresolved).toEqual(SURE_UNRESOLVED);
    }
  });

  it('is absent where every entry resolves, or without rules', async () => {
    for (const rules of [false, 'eos', { uniform: { entries: [{ id: 5, score: 1 }] } }]) {
      expect(Object.keys(await (await post('/v1/chat/completions', chat({ rules }))).json())).toEqual(
        OPENAI_KEYS,
      );
      expect(Object.keys(await (await post('/v1/completions', completion({ rules }))).json())).toEqual(
        OPENAI_KEYS,
      );
    }
  });

  it("lists the default rules' entries too (hewitt2024's that the tiny vocabulary lacks), as `rules: true` does", async () => {
    const expected = compileRules('hewitt2024', model.tokenizer.vocabulary).unresolved.map((u) => ({ ...u }));
    expect(expected).toHaveLength(8);
    for (const rules of [undefined, true]) {
      const response = await (await post('/v1/chat/completions', chat({ rules }))).json();
      expect(response.rules_unresolved).toEqual(expected);
    }
  });

  it("comes in a stream's first chunk only, chat and completions", async () => {
    for (const [path, body] of [
      [
        '/v1/chat/completions',
        chat({ rules: SURE, stream: true, n: 2, stream_options: { include_usage: true } }),
      ],
      ['/v1/completions', completion({ rules: SURE, stream: true, n: 2 })],
    ] as const) {
      const [first, ...rest] = await chunks(await post(path, body));
      expect(first.rules_unresolved).toEqual(SURE_UNRESOLVED);
      expect(rest.length).toBeGreaterThan(2);
      expect(rest.filter((c) => 'rules_unresolved' in c)).toEqual([]);
    }
    const off = await chunks(await post('/v1/chat/completions', chat({ rules: false, stream: true })));
    expect(off.filter((c) => 'rules_unresolved' in c)).toEqual([]);
  });

  it("is logged once, when the rule set is first compiled: the default at start-up, a request's on its first use", async () => {
    const logged: string[] = [];
    const server = createApp({
      models: [{ id: 'tiny', model }],
      log: (line) => logged.push(line),
      playground: false,
    });
    expect(logged).toEqual([
      'rules hewitt2024 on the model "tiny": 8 entries match no token of its vocabulary and are left out (responses list them in rules_unresolved): uniform " <" (no vocabulary item has the surface text " <"); uniform " We" (no vocabulary item has the surface text " We"); uniform " should" (no vocabulary item has the surface text " should"); uniform " *" (no vocabulary item has the surface text " *"); uniform " -" (no vocabulary item has the surface text " -"); and 3 more',
    ]);
    logged.length = 0;
    for (const rules of [SURE, SURE, 'hewitt2024', undefined, 'eos']) {
      const res = await server.request('/v1/chat/completions', json(chat({ rules })));
      expect(res.status).toBe(200);
    }
    expect(logged).toEqual([
      'rules given on the model "tiny": 1 entry matches no token of its vocabulary and is left out (responses list them in rules_unresolved): uniform "Sure!" (no vocabulary item has the surface text "Sure!")',
    ]);
  });
});
