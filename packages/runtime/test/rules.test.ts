import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, forceGreedyToken, randomWeights, resolveConfig } from '@implicit-it/modelkit';
import { RuleSet } from '@implicit-it/rules';
import { loadTokenizer } from '@implicit-it/tokenizers';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../src/index.js';
import { diverseModelDir } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'runtime-rules-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the rules change the output exactly as the spec says', () => {
  it.each([
    [0.5, true],
    [1, false],
  ])(
    'a model whose greedy pick is " I" (strength %d): uniform rule switches it: %s',
    async (strength, switches) => {
      const tok = await loadTokenizer(await diverseModelDir());
      const [iId] = tok.vocabulary.idsOf(' I');
      expect(iId).toBeDefined();
      const config = resolveConfig({ preset: 'tiny' });
      const out = join(work, `forced-${strength}`);
      await createModel({
        preset: 'tiny',
        out,
        weights: forceGreedyToken(config, randomWeights(config, 1), iId!, { strength }),
      });
      const model = await loadModel(out, { log: () => {} });
      try {
        const prompt = 'Give me a recipe for tiramisu.';
        const [base] = await model.generate(prompt, { maxNewTokens: 1, logprobs: 20 });
        expect(base!.tokenIds).toEqual([iId]);

        // expected first token: argmax over the base distribution plus the uniform scores at t = 0
        const rules = model.rules('uniform')!;
        const scores = rules.scores(
          rules.createState({ promptIds: base!.prompt.ids, scopeStart: base!.prompt.scopeStart }),
        );
        expect(scores.get(iId!)).toBe(-5);
        const top = base!.logprobs![0]!.top;
        const adjusted = top.map((t) => ({ id: t.id, v: t.logprob + (scores.get(t.id) ?? 0) }));
        adjusted.sort((a, b) => b.v - a.v);
        // no id outside the top 20 can win: its bonus is at most +1
        expect(adjusted[0]!.v).toBeGreaterThan(top.at(-1)!.logprob + 1);
        const expected = adjusted[0]!.id;

        const [adapted] = await model.generate(prompt, { maxNewTokens: 1, rules: 'uniform' });
        expect(adapted!.tokenIds).toEqual([expected]);
        expect(expected !== iId).toBe(switches);
      } finally {
        await model.dispose();
      }
    },
  );
});

describe('rule sets from another copy of @implicit-it/rules', () => {
  it('a RuleSet compiled by a second copy (here the CJS build beside the ESM one) is used as compiled', async () => {
    // an app can hold two copies (versions drift, or one is required and the other imported): its
    // RuleSet fails `instanceof` against ours, and used to be read as a config ("vocabSize: unknown field")
    const other = createRequire(import.meta.url)('@implicit-it/rules') as typeof import('@implicit-it/rules');
    expect(other.RuleSet).not.toBe(RuleSet);
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const theirs = other.compileRules('hewitt2024', model.tokenizer.vocabulary);
    expect(theirs instanceof RuleSet).toBe(false);
    expect(RuleSet.isInstance(theirs)).toBe(true);
    const prompt = 'Give me a recipe for tiramisu.';
    const [a] = await model.generate(prompt, { maxNewTokens: 24, rules: theirs as unknown as RuleSet });
    const [b] = await model.generate(prompt, { maxNewTokens: 24, rules: 'hewitt2024' });
    const [base] = await model.generate(prompt, { maxNewTokens: 24, rules: false });
    expect(a!.tokenIds).toEqual(b!.tokenIds);
    expect(b!.tokenIds).not.toEqual(base!.tokenIds);
    await model.dispose();
  });
});
