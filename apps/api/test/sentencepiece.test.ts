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

    it('echo: a prompt with its BOS reads "<s> The capital...", each offset where its token starts', async () => {
      const app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, rules: false });
      const prompt = 'The capital of France is';
      const ids = [1, ...model.tokenizer.encode(prompt, { addSpecialTokens: false })];
      const res = await (
        await app.request(
          '/v1/completions',
          json({ model: 'tiny', prompt: ids, echo: true, max_tokens: 0, logprobs: 0 }),
        )
      ).json();
      const choice = res.choices[0];
      expect(choice.text).toBe(model.tokenizer.decode(ids));
      const text = choice.text as string;
      expect(text.endsWith(prompt)).toBe(true);
      const { tokens, text_offset } = choice.logprobs;
      expect(tokens[0]).toBe('<s>');
      // every token after the BOS starts where its text, its space included, does: " The" at the space
      // decode writes after "<s>"
      for (let t = 1; t < ids.length; t++)
        expect(text.slice(text_offset[t]).startsWith(tokens[t])).toBe(true);
      expect(text_offset[1]).toBe(text.indexOf(' The'));
      // the text as sent echoes as sent
      const sent = await (
        await app.request('/v1/completions', json({ model: 'tiny', prompt, echo: true, max_tokens: 0 }))
      ).json();
      expect(sent.choices[0].text).toBe(prompt);
    });

    it('echo: a text prompt echoes as sent, its offsets index that text (the BOS at 0), streamed alike', async () => {
      const app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, rules: false });
      const [b] = model.tokenizer.encode('B', { addSpecialTokens: false });
      const body = {
        model: 'tiny',
        prompt: 'A 😀 B',
        max_tokens: 1,
        echo: true,
        logprobs: 0,
        logit_bias: { [b!]: 100 },
      };
      const choice = (await (await app.request('/v1/completions', json(body))).json()).choices[0];
      expect(choice.text).toBe('A 😀 B B');
      const bytes = ['\\xf0', '\\x9f', '\\x98', '\\x80'].map((x) => `bytes:${x}`);
      expect(choice.logprobs.tokens).toEqual(['<s>', ' A', ' ', ...bytes, ' B', ' B']);
      // the BOS, which the text leaves out, at 0; " A" where its "A" starts (the text's first
      // token has no space before it); the emoji's four byte tokens at its start; the completion after
      expect(choice.logprobs.text_offset).toEqual([0, 0, 1, 2, 2, 2, 2, 4, 6]);
      const events = (await (await app.request('/v1/completions', json({ ...body, stream: true }))).text())
        .split('\n')
        .filter((l) => l.startsWith('data: {'))
        .map((l) => JSON.parse(l.slice(6)).choices[0]);
      expect(events.map((c) => c.text).join('')).toBe(choice.text);
      expect(events.flatMap((c) => c.logprobs.text_offset)).toEqual(choice.logprobs.text_offset);
      // each token after the BOS starts where its text does, the first one's space aside
      const capital = await (
        await app.request(
          '/v1/completions',
          json({ model: 'tiny', prompt: 'The capital of', echo: true, max_tokens: 0, logprobs: 0 }),
        )
      ).json();
      const { text } = capital.choices[0];
      const { tokens, text_offset } = capital.choices[0].logprobs;
      expect(text).toBe('The capital of');
      expect(tokens).toEqual(['<s>', ' The', ' capital', ' of']);
      expect(text_offset).toEqual([0, 0, 3, 11]);
    });

    it('echo: a text SentencePiece does not spell back (a leading space) keeps its offsets in it', async () => {
      const app = createApp({ models: [{ id: 'tiny', model }], log: () => {}, rules: false });
      const echo = async (prompt: string) => {
        const body = { model: 'tiny', prompt, echo: true, max_tokens: 0, logprobs: 0 };
        const { choices } = await (await app.request('/v1/completions', json(body))).json();
        return [choices[0].text, choices[0].logprobs.tokens, choices[0].logprobs.text_offset];
      };
      // decoding strips a text's first space: the ids of " lead" spell "lead", of "  two  spaces",
      // " two  spaces"; the first token keeps the space, the others start where they do in the text
      expect(model.tokenizer.decode(model.tokenizer.encode(' lead'), { skipSpecialTokens: true })).toBe(
        'lead',
      );
      expect(await echo(' lead')).toEqual([' lead', ['<s>', ' lead'], [0, 0]]);
      expect(await echo('  two  spaces')).toEqual([
        '  two  spaces',
        ['<s>', ' ', ' two', ' ', ' spaces'],
        [0, 0, 1, 5, 6],
      ]);
    });
  },
);
