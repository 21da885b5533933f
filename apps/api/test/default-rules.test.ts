import {
  type CustomRule,
  compileRules,
  idVocabulary,
  type RuleSet,
  resolveRuleSpec,
} from '@implicit-it/rules';
import { loadModel, loadModelInWorker, type Model } from '@implicit-it/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiApp, type ApiOptions, createApp } from '../src/index.js';
import { json, parseSse, tinyModel, tinyModelDir } from './helpers.js';

// A served model's default rules: its models[] entry's, else the app's, else its own load-time
// rules, else hewitt2024; `rules: true` in a request is that default too.
const PROMPT = 'Give me a recipe for tiramisu.';
const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'smol',
  messages: [{ role: 'user', content: PROMPT }],
  max_tokens: 12,
  ...extra,
});

/** The reply text of a chat request to `app` (200 asserted); streamed, its chunks joined. */
async function reply(app: ApiApp, body: Record<string, unknown>): Promise<string> {
  const res = await app.request('/v1/chat/completions', json(body));
  expect(res.status).toBe(200);
  if (body.stream !== true) return (await res.json()).choices[0].message.content;
  return parseSse(await res.text())
    .filter((d) => d !== '[DONE]')
    .map((d) => JSON.parse(d).choices[0]?.delta?.content ?? '')
    .join('');
}

/** What `make` throws (it must throw). */
function thrown(make: () => unknown): Error {
  try {
    make();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

const quiet = { log: () => {} };
const serve = (options: Omit<ApiOptions, 'log' | 'playground'>) =>
  createApp({ ...options, ...quiet, playground: false });

let model: Model; // loaded without rules
let ruled: Model; // loaded with hewitt2024 and a custom rule
let custom: RuleSet;
/** Greedy replies under each rule set, from the runtime itself. */
const texts: Record<'hewitt2024' | 'custom' | 'base', string> = { hewitt2024: '', custom: '', base: '' };

beforeAll(async () => {
  model = await tinyModel();
  const generate = async (rules: RuleSet | 'hewitt2024' | false) =>
    (await model.generate(PROMPT, { maxNewTokens: 12, rules }))[0].text;
  texts.hewitt2024 = await generate('hewitt2024');
  // a rule written as a function: the first token hewitt2024 picks is all but banned
  const first = (await model.generate(PROMPT, { maxNewTokens: 1, rules: 'hewitt2024' }))[0].tokenIds[0]!;
  const banFirst: CustomRule = { name: 'ban-first', score: (_ctx, add) => add(first, -1e4) };
  custom = compileRules('hewitt2024', model.tokenizer.vocabulary, { custom: [banFirst] });
  texts.custom = await generate(custom);
  texts.base = await generate(false);
  expect(new Set(Object.values(texts)).size).toBe(3);
  ruled = await loadModel(await tinyModelDir(), { ...quiet, rules: custom });
});

afterAll(async () => {
  await ruled?.dispose();
});

describe("a served model's default rules", () => {
  it('are the rules it was loaded with, a custom rule included, for requests without rules or with rules: true', async () => {
    const app = serve({ models: [{ id: 'smol', model: ruled }] });
    expect(app.state.options.models[0]!.rules).toBe(custom);
    expect(await reply(app, chat())).toBe(texts.custom);
    expect(await reply(app, chat({ rules: true }))).toBe(texts.custom);
    expect(await reply(app, chat({ rules: null, stream: true }))).toBe(texts.custom);
    // a request's own rules still win
    expect(await reply(app, chat({ rules: 'hewitt2024' }))).toBe(texts.hewitt2024);
    // a model loaded without rules: the paper's
    expect(await reply(serve({ models: [{ id: 'smol', model }] }), chat())).toBe(texts.hewitt2024);
  });

  it("are the app's rules where given, a compiled RuleSet too, over the load-time ones; a models[] entry's over both", async () => {
    expect(await reply(serve({ models: [{ id: 'smol', model: ruled }], rules: 'hewitt2024' }), chat())).toBe(
      texts.hewitt2024,
    );
    const app = serve({ models: [{ id: 'smol', model }], rules: custom });
    expect(app.state.options.rules).toBe(custom);
    expect(await reply(app, chat({ rules: true }))).toBe(texts.custom);
    const own = serve({
      models: [
        { id: 'smol', model: ruled, rules: false },
        { id: 'other', model, rules: custom },
      ],
      rules: 'hewitt2024',
    });
    expect(own.state.options.models.map((m) => m.rules)).toEqual([false, custom]);
    expect(await reply(own, chat())).toBe(texts.base);
    expect(await reply(own, chat({ model: 'other' }))).toBe(texts.custom);
  });

  it('refuse at createApp a RuleSet compiled for another vocabulary, naming the option and the model', () => {
    const other = compileRules('eos', idVocabulary({ size: 100, eosIds: [2] }));
    const own = thrown(() => serve({ models: [{ id: 'smol', model, rules: other }] }));
    expect(own).toBeInstanceOf(TypeError);
    expect(own.message).toBe(
      'models[0].rules: a RuleSet compiled for a vocabulary of 100 ids, but the tokenizer of the model "smol" has 512; compile it with that model\'s (compileRules(spec, model.tokenizer.vocabulary)), or give the spec',
    );
    // the app's set must fit every model that takes it: "a" has rules of its own, "b" does not
    const app = thrown(() =>
      serve({
        models: [
          { id: 'a', model, rules: 'eos' },
          { id: 'b', model },
        ],
        rules: other,
      }),
    );
    expect(app).toBeInstanceOf(TypeError);
    expect(app.message).toBe(
      'rules: a RuleSet compiled for a vocabulary of 100 ids does not fit the model "b", whose tokenizer has 512; give that model rules of its own (models: [{ id: "b", model, rules }]), or give a spec, which is compiled for each model',
    );
    // never read as a rule-set JSON ("vocabSize: unknown field")
    expect(() =>
      serve({
        models: [
          { id: 'a', model, rules: other },
          { id: 'b', model },
        ],
        rules: custom,
      }),
    ).toThrow(/^models\[0\]\.rules: a RuleSet compiled for a vocabulary of 100 ids/);
    // of the same size, another tokenizer's: its texts at other ids
    const vocab = model.tokenizer.vocabulary;
    const moved = compileRules('hewitt2024', {
      size: vocab.size,
      eosIds: [...vocab.eosIds, 3],
      surfaceOf: (i: number) => vocab.surfaceOf(i),
      idsOf: (text: string) => vocab.idsOf(text),
    });
    expect(() => serve({ models: [{ id: 'smol', model, rules: moved }] })).toThrow(
      `models[0].rules: a RuleSet compiled for another vocabulary than the tokenizer of the model "smol" (its EOS ids are ${JSON.stringify([...vocab.eosIds, 3])}, and this vocabulary's are ${JSON.stringify([...vocab.eosIds])}); compile it with that model's (compileRules(spec, model.tokenizer.vocabulary)), or give the spec`,
    );
  });

  it('refuse at createApp a RuleSet with custom rules for a model in a worker thread', async () => {
    const there = await loadModelInWorker(await tinyModelDir(), quiet);
    try {
      const error = thrown(() => serve({ models: [{ id: 'w', model: there }], rules: custom }));
      expect(error).toBeInstanceOf(TypeError);
      expect(error.message).toBe(
        'rules: a RuleSet with custom rules (ban-first) holds functions, which cannot be sent to the worker thread running the model "w"; load it with loadModel to serve them',
      );
      // its built-in rules alone are served
      const app = serve({
        models: [{ id: 'w', model: there, rules: compileRules(custom.config, there.tokenizer.vocabulary) }],
      });
      expect(await reply(app, chat({ model: 'w' }))).toBe(texts.hewitt2024);
    } finally {
      await there.dispose();
    }
  });

  it('refuse at createApp a spec the rules package refuses, naming the model', () => {
    let message = '';
    try {
      resolveRuleSpec('hewitt2025');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(
      thrown(() =>
        serve({
          models: [
            { id: 'a', model },
            { id: 'b', model, rules: 'hewitt2025' },
          ],
        }),
      ).message,
    ).toBe(`rules of the model "b": ${message}`);
  });
});
