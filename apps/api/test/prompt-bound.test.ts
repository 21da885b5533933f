import { createTinyModel } from '@implicit-it/modelkit/test';
import { loadModel, type Model } from '@implicit-it/runtime';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { loadTokenizer } from '@implicit-it/tokenizers';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../src/index.js';
import { fewestTokens, maxCodeUnitsPerToken } from '../src/prompt-bound.js';
import { countingPrompts, json } from './helpers.js';

describeShared(
  'a prompt far too long for the context is refused before it is tokenized',
  [
    'fixtures/tokenizers/gpt2/tokenizer.json',
    'fixtures/tokenizers/llama2/tokenizer.json',
    'fixtures/tokenizers/olmo/tokenizer.json',
    'fixtures/tokenizers/smollm/tokenizer.json',
  ],
  () => {
    let model: Model;
    let prompts: () => number;
    let counted: Model;
    beforeAll(async () => {
      // a 512-position model with GPT-2's tokenizer
      const { dir } = await createTinyModel({
        seed: 1,
        tokenizerDir: sharedPath('fixtures', 'tokenizers', 'gpt2'),
        vocabSize: 50257,
      });
      model = await loadModel(dir, { log: () => {} });
      ({ model: counted, prompts } = countingPrompts(model));
    });
    afterAll(() => model?.dispose());

    it('the bound never exceeds the tokens a text takes (GPT-2, Llama-2, OLMo, SmolLM2)', async () => {
      for (const name of ['gpt2', 'llama2', 'olmo', 'smollm']) {
        const tok = await loadTokenizer(sharedPath('fixtures', 'tokenizers', name));
        const per = maxCodeUnitsPerToken(tok);
        expect(per, name).toBeGreaterThan(0);
        // the vocabulary's longest pieces, repeated; whitespace runs; text with special tokens
        const longest = [...Array(tok.vocabulary.size).keys()]
          .map((id) => tok.vocabulary.surfaceOf(id) ?? '')
          .sort((a, b) => b.length - a.length)
          .slice(0, 5);
        const texts = [
          ...longest.map((t) => t.repeat(20)),
          ' '.repeat(5000),
          '\n'.repeat(3000),
          'hello world '.repeat(300),
          `${tok.specialTokenTexts.join('')}x`.repeat(50),
          'héllo 世界 😀 a\u0301 ﬁ'.repeat(100),
        ];
        for (const text of texts) {
          const ids = tok.buildPrompt({ format: 'raw', text }).ids;
          expect(
            fewestTokens(tok, text.length),
            `${name}: ${JSON.stringify(text.slice(0, 20))}`,
          ).toBeLessThanOrEqual(ids.length);
        }
      }
    });

    it('GPT-2: a prompt at the limit passes; one far past it is a 400 context_length_exceeded, not tokenized', async () => {
      const app = createApp({ models: [{ id: 'gpt2', model: counted }], log: () => {}, rules: false });
      const tok = model.tokenizer;
      // 511 tokens of the longest surface (64 characters each): the most text that fits with room for one token
      const longest = tok.vocabulary.surfaceOf(
        [...Array(tok.vocabulary.size).keys()].reduce((a, b) =>
          (tok.vocabulary.surfaceOf(b)?.length ?? 0) > (tok.vocabulary.surfaceOf(a)?.length ?? 0) ? b : a,
        ),
      )!;
      const atLimit = longest.repeat(511);
      expect(tok.encode(atLimit, { addSpecialTokens: false })).toHaveLength(511);
      const fits = await app.request(
        '/v1/completions',
        json({ model: 'gpt2', prompt: atLimit, max_tokens: 1 }),
      );
      expect(fits.status).toBe(200);
      // scored only, the whole context
      const scored = `${atLimit}${longest}`;
      const full = await app.request(
        '/v1/completions',
        json({ model: 'gpt2', prompt: scored, max_tokens: 0, echo: true, logprobs: 0 }),
      );
      expect(full.status).toBe(200);
      // one token more: the exact count's 400, after tokenizing
      const over = await app.request(
        '/v1/completions',
        json({ model: 'gpt2', prompt: scored, max_tokens: 1 }),
      );
      expect(over.status).toBe(400);
      const exact = (await over.json()).error;
      expect(exact).toMatchObject({ code: 'context_length_exceeded', param: 'prompt' });

      // far too long: refused with the same error, the prompt never tokenized
      const before = prompts();
      const huge = 'hello world, '.repeat(70_000); // 910,000 characters
      for (const [path, body, param] of [
        ['/v1/completions', { model: 'gpt2', prompt: huge }, 'prompt'],
        ['/v1/completions', { model: 'gpt2', prompt: ['Hi', huge] }, 'prompt[1]'],
        ['/v1/chat/completions', { model: 'gpt2', messages: [{ role: 'user', content: huge }] }, 'messages'],
      ] as const) {
        const res = await app.request(path, json(body));
        expect(res.status).toBe(400);
        const { error } = await res.json();
        expect(Object.keys(error).sort()).toEqual(Object.keys(exact).sort());
        expect(error).toMatchObject({
          type: 'invalid_request_error',
          code: 'context_length_exceeded',
          param,
        });
        expect(error.message).toBe(
          `This model's maximum context length is 512 tokens; the prompt has at least 7110 (910000 characters, and no token of this model stands for more than 128). Shorten the ${param}.`,
        );
      }
      expect(prompts() - before).toBe(1); // 'Hi' alone, before the huge one
    });
  },
);
