import { createTinyModel } from '@implicit-it/modelkit/test';
import { loadModel, type Model } from '@implicit-it/runtime';
import { describeShared, tinyLlama2ModelOptions } from '@implicit-it/testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../src/index.js';
import { json } from './helpers.js';

describeShared(
  'a SentencePiece (Llama-2) model: completions go on from the prompt',
  ['fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    let model: Model;
    beforeAll(async () => {
      const { dir } = await createTinyModel(tinyLlama2ModelOptions());
      model = await loadModel(dir, { log: () => {} });
    });
    afterAll(() => model?.dispose());

    it('a first ▁Paris is " Paris": in the text, the stream, the log-probs and text_offset', async () => {
      const app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, rules: false });
      const prompt = 'The capital of France is';
      const [paris] = model.tokenizer.encode('Paris', { addSpecialTokens: false });
      expect(model.tokenizer.idToToken(paris!)).toBe('▁Paris');
      // the model forced to ▁Paris by the logit bias (no rules)
      const body = {
        model: 'tiny',
        prompt,
        max_tokens: 1,
        logprobs: 1,
        logit_bias: { [paris!]: 100 },
      };
      const res = await (await app.request('/v1/completions', json(body))).json();
      const choice = res.choices[0];
      expect(choice.text).toBe(' Paris');
      expect(choice.logprobs.tokens).toEqual([' Paris']);
      expect(choice.logprobs.text_offset).toEqual([0]);
      const stream = await (await app.request('/v1/completions', json({ ...body, stream: true }))).text();
      const deltas = stream
        .split('\n')
        .filter((l) => l.startsWith('data: {'))
        .map((l) => JSON.parse(l.slice(6)).choices[0]?.text ?? '');
      expect(deltas.join('')).toBe(' Paris');
      const chat = await (
        await app.request(
          '/v1/chat/completions',
          json({
            model: 'tiny',
            messages: [{ role: 'user', content: 'Capital of France?' }],
            max_tokens: 2,
            logprobs: true,
            logit_bias: { [paris!]: 100 },
          }),
        )
      ).json();
      expect(chat.choices[0].logprobs.content.map((c: { token: string }) => c.token)).toEqual([
        ' Paris',
        ' Paris',
      ]);
    });
  },
);
