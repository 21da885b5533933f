import { createTinyModel } from '@implicit-it/modelkit/test';
import { loadModel, type Model } from '@implicit-it/runtime';
import { describeShared, OLMO_EOS, TIRAMISU, tinyOlmoModelOptions } from '@implicit-it/testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  promptsOverContext,
  type RuntimeModel,
  runtimeGenerator,
  runtimeRankSource,
  runtimeScorer,
} from '../src/index.js';

describeShared(
  'runtime adapters with addBos on a tokenizer without a BOS (OLMo)',
  ['fixtures/tokenizers/olmo/tokenizer.json'],
  () => {
    let model: Model;
    /** `model`, recording the first id of every prompt built and the options of every call. */
    let spy: RuntimeModel & { firstIds: number[]; calls: Record<string, unknown>[] };
    beforeAll(async () => {
      const { dir } = await createTinyModel(tinyOlmoModelOptions());
      model = await loadModel(dir, { log: () => {} });
      const firstIds: number[] = [];
      const calls: Record<string, unknown>[] = [];
      spy = {
        firstIds,
        calls,
        generate: (i, o) => {
          calls.push(o);
          return model.generate(i, o);
        },
        score: (items, o) => {
          // the first id of each prompt scored: the adapters send the prompts they built, as ids
          const first = items.map((x) => ('promptIds' in x.prompt ? x.prompt.promptIds[0] : undefined));
          calls.push({ ...o, firstIds: first });
          return model.score(items, o);
        },
        prompt: (i, f, o) => {
          const p = model.prompt(i, f, o);
          firstIds.push(p.ids[0]!);
          return p;
        },
        continuationIds: (p, t) => model.continuationIds(p as never, t),
        tokenizer: model.tokenizer,
        info: model.info,
      };
    });
    afterAll(() => model?.dispose());

    it('runtimeGenerator passes addBos: the outputs are those of the prompt with the EOS first', async () => {
      const [withBos] = await runtimeGenerator(spy, { addBos: true }).generateBatch([TIRAMISU], {
        maxNewTokens: 6,
      });
      const [plain] = await runtimeGenerator(spy).generateBatch([TIRAMISU], { maxNewTokens: 6 });
      expect(spy.calls).toEqual([
        { format: 'tulu', addBos: true, rules: false, maxNewTokens: 6 },
        { format: 'tulu', rules: false, maxNewTokens: 6 },
      ]);
      const [direct] = await model.generate(TIRAMISU, { maxNewTokens: 6, addBos: true });
      expect(direct!.prompt.ids[0]).toBe(OLMO_EOS);
      expect(withBos!.tokenIds).toEqual(direct!.tokenIds);
      expect(withBos!.tokenIds).not.toEqual(plain!.tokenIds);
    });

    it('promptsOverContext counts the EOS in front: 21 tokens fit a context of 22, 22 do not', () => {
      const short: RuntimeModel = { ...spy, info: { maxPositions: 22 } };
      expect(promptsOverContext(short, [TIRAMISU])).toEqual([]);
      expect(promptsOverContext(short, [TIRAMISU], { addBos: true })).toEqual([{ index: 0, tokens: 22 }]);
    });

    it('runtimeScorer and runtimeRankSource score after the prompt with the EOS first', async () => {
      spy.firstIds.length = 0;
      spy.calls.length = 0;
      const items = [{ instruction: TIRAMISU, response: 'Mix the cream.' }];
      const [scored] = await runtimeScorer(spy, { addBos: true }).scoreContinuations(items);
      const [ranked] = await runtimeRankSource(spy, { addBos: true }).rankTokens(items);
      // each prompt built once (by the adapter), with the EOS first, and scored as those ids: the
      // model is given neither addBos nor the format, which the ids hold already
      expect(spy.firstIds).toEqual([OLMO_EOS, OLMO_EOS]);
      expect(spy.calls).toEqual([
        { rules: false, ranks: false, firstIds: [OLMO_EOS] },
        { rules: false, ranks: true, firstIds: [OLMO_EOS] },
      ]);
      const prompt = model.prompt({ instruction: TIRAMISU }, 'tulu', { addBos: true });
      const ids = model.continuationIds(prompt, 'Mix the cream.');
      const [direct] = await model.score(
        [
          {
            prompt: { promptIds: prompt.ids, scopeStart: prompt.scopeStart },
            continuation: [...ids, OLMO_EOS],
          },
        ],
        { ranks: true },
      );
      expect(scored!.tokenLogprobs).toEqual(direct!.logprobs);
      expect(ranked!.tokens.map((t) => t.rank)).toEqual(direct!.ranks!.slice(0, -1));
      const [plain] = await runtimeScorer(spy).scoreContinuations(items);
      expect(plain!.tokenLogprobs).not.toEqual(scored!.tokenLogprobs);
    });
  },
);
