import { compileRules } from '@implicit-it/rules';
import type { Model } from '@implicit-it/runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ApiApp, createApp } from '../src/index.js';
import { json, parseSse, tinyModel } from './helpers.js';

// Rule entries that match no token of the model's vocabulary are left out (never guessed): a
// response says so in `rules_unresolved`, and the server log once per rule set compiled. A request's
// rule none of whose entries resolves is refused (400): it would change nothing.
const SURE = {
  uniform: {
    entries: [
      { text: 'Sure!', score: 5 },
      { id: 5, score: 1 },
    ],
  },
};
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
    for (const rules of [SURE, SURE, 'hewitt2024', undefined, 'eos', ' uniform-eos ', 'eos-uniform']) {
      const res = await server.request('/v1/chat/completions', json(chat({ rules })));
      expect(res.status).toBe(200);
    }
    // a request's own rules are said to be the request's (the model's default had its line above);
    // "eos-uniform" is "uniform-eos" written otherwise: compiled, and logged, once
    expect(logged).toEqual([
      'rules given by a request on the model "tiny": 1 entry matches no token of its vocabulary and is left out (responses list them in rules_unresolved): uniform "Sure!" (no vocabulary item has the surface text "Sure!")',
      `rules uniform-eos given by a request on the model "tiny": 8 entries match no token of its vocabulary and are left out (responses list them in rules_unresolved): ${logged[1]!.split(': ').slice(2).join(': ')}`,
    ]);
    expect(logged[1]).toContain(': uniform " <" (no vocabulary item has the surface text " <"); ');
  });
});

describe("a request's rule that matches no token at all", () => {
  const refusal = (message: string, param: string) => ({
    error: { message, type: 'invalid_request_error', param, code: 'invalid_rules' },
  });
  const fix =
    'give each uniform entry the exact text of one token (a leading space is part of it: " Sure") or its id ({"id": 42, "score": 5}), or leave the rule out';

  it('is refused (400) naming the rule, its entries and why, on both endpoints and streamed or not; nothing is logged', async () => {
    const logged: string[] = [];
    const server = createApp({
      models: [{ id: 'tiny', model }],
      log: (line) => logged.push(line),
      playground: false,
    });
    logged.length = 0;
    const one = { uniform: { entries: [{ text: 'Sure!', score: 5 }] } };
    const oneRefused = refusal(
      `rules: the uniform rule's one entry, "Sure!", matches no token of the model "tiny", so the rule would change nothing (the request would be answered as one without it): ${fix}`,
      'rules.uniform',
    );
    for (const [path, body] of [
      ['/v1/chat/completions', chat({ rules: one })],
      ['/v1/chat/completions', chat({ rules: one, stream: true })],
      ['/v1/completions', completion({ rules: { ...one, used: true } })],
      ['/v1/completions', completion({ rules: one, stream: true, n: 2 })],
    ] as const) {
      const res = await server.request(path, json(body));
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await res.json()).toEqual(oneRefused);
    }
    // many entries: the first five named, and how many more
    const seven = {
      uniform: { entries: Array.from({ length: 7 }, (_, i) => ({ text: `Sure${i}!`, score: 1 })) },
    };
    const res = await server.request('/v1/chat/completions', json(chat({ rules: seven })));
    expect([res.status, await res.json()]).toEqual([
      400,
      refusal(
        `rules: none of the uniform rule's 7 entries ("Sure0!", "Sure1!", "Sure2!", "Sure3!", "Sure4!", and 2 more) matches a token of the model "tiny", so the rule would change nothing (the request would be answered as one without it): ${fix}`,
        'rules.uniform',
      ),
    ]);
    expect(logged).toEqual([]);
  });

  it("is the request's to fix: the model's default with such a rule is served, its entries listed as left out", async () => {
    const sure = { uniform: { entries: [{ text: 'Sure!', score: 5 }] }, used: true };
    const logged: string[] = [];
    const server = createApp({
      models: [{ id: 'tiny', model, rules: sure }],
      log: (line) => logged.push(line),
      playground: false,
    });
    expect(logged).toEqual([
      'rules given on the model "tiny": 1 entry matches no token of its vocabulary and is left out (responses list them in rules_unresolved): uniform "Sure!" (no vocabulary item has the surface text "Sure!")',
    ]);
    for (const rules of [undefined, true]) {
      const res = await server.request('/v1/chat/completions', json(chat({ rules })));
      expect(res.status).toBe(200);
      expect((await res.json()).rules_unresolved).toEqual(SURE_UNRESOLVED);
    }
    // the same rules sent by a request are refused
    const res = await server.request('/v1/chat/completions', json(chat({ rules: sure })));
    expect(res.status).toBe(400);
    expect((await res.json()).error.param).toBe('rules.uniform');
  });

  it("a model's default stays compiled however many rule sets requests send: its line is logged once", async () => {
    const logged: string[] = [];
    const server = createApp({
      models: [{ id: 'tiny', model, rules: { ...SURE, used: true } }],
      log: (line) => logged.push(line),
      playground: false,
    });
    expect(logged).toHaveLength(1);
    // more rule sets of requests than the cache keeps (32 a model), each its own
    for (let i = 0; i < 40; i++) {
      const res = await server.request(
        '/v1/completions',
        json(completion({ max_tokens: 1, rules: { used: { penalty: -1 - i / 100 } } })),
      );
      expect(res.status).toBe(200);
    }
    const res = await server.request('/v1/completions', json(completion({ max_tokens: 1 })));
    expect((await res.json()).rules_unresolved).toEqual(SURE_UNRESOLVED);
    // not compiled again: no second line
    expect(logged).toHaveLength(1);
  });

  it('an EOS rule on a tokenizer that names no EOS id, by name or JSON; with eos.ids it is served', async () => {
    // the tiny model, its vocabulary without EOS ids (as a tokenizer whose config names none)
    const vocabulary = new Proxy(model.tokenizer.vocabulary, {
      get: (target, key) => (key === 'eosIds' ? [] : Reflect.get(target, key, target)),
    });
    const tokenizer = new Proxy(model.tokenizer, {
      get: (target, key) => (key === 'vocabulary' ? vocabulary : Reflect.get(target, key, target)),
    });
    const noEos = new Proxy(model, {
      get: (target, key) => (key === 'tokenizer' ? tokenizer : Reflect.get(target, key, target)),
    });
    const server = createApp({
      models: [{ id: 'tiny', model: noEos, rules: false }],
      log: () => {},
      playground: false,
    });
    const eos = 'the eos rule has no id to raise, as the tokenizer of the model "tiny" names no EOS id';
    for (const [rules, param] of [
      ['eos-diversity', 'rules'],
      [{ eos: { rampLength: 100 } }, 'rules.eos'],
    ] as const) {
      const res = await server.request('/v1/completions', json(completion({ rules })));
      expect([res.status, await res.json()], JSON.stringify(rules)).toEqual([
        400,
        refusal(
          `rules: ${eos}, so the rule would change nothing (the request would be answered as one without it): give the eos rule the ids to raise ({"eos": {"ids": [2]}}), or leave the rule out`,
          param,
        ),
      ]);
    }
    // both rules: both named, the param the rules as a whole
    const both = await server.request(
      '/v1/completions',
      json(completion({ rules: { eos: true, uniform: { entries: [{ text: 'Sure!', score: 5 }] } } })),
    );
    expect([both.status, await both.json()]).toEqual([
      400,
      refusal(
        `rules: ${eos}; the uniform rule's one entry, "Sure!", matches no token of the model "tiny", so these rules would change nothing (the request would be answered as one without them): give the eos rule the ids to raise ({"eos": {"ids": [2]}}), ${fix.replace('or leave the rule out', 'or leave them out')}`,
        'rules',
      ),
    ]);
    const given = await server.request('/v1/completions', json(completion({ rules: { eos: { ids: [0] } } })));
    expect(given.status).toBe(200);
  });
});
