import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, forceGreedyToken, randomWeights, resolveConfig } from '@implicit-it/modelkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRun, rankResponses, tokenShift } from '../src/index.js';
import { referenceAdapters } from './reference-model.js';

// Real (tiny, seeded) llama models written by modelkit, run by its reference forward pass with their
// own byte-level BPE tokenizer. `forced` has the same weights as `base` except that its greedy next
// token is always T, which makes the expected results checkable by hand.
let root: string;
let base: Awaited<ReturnType<typeof referenceAdapters>>;
let forced: Awaited<ReturnType<typeof referenceAdapters>>;
let T: number;
let tText: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'eval-modelkit-'));
  const config = resolveConfig({ preset: 'tiny' });
  const weights = randomWeights(config, 7);
  const baseDir = (await createModel({ preset: 'tiny', weights, out: join(root, 'base') })).dir;
  base = await referenceAdapters({ config, weights }, baseDir);
  // a single-character token that does not merge with itself, so "TTTT" tokenizes back to T, T, T, T
  T = [...'!?#%&*+=@^~']
    .map((c) => base.encode(c))
    .find(
      (ids) => ids.length === 1 && base.encode(base.decode([ids[0]!, ids[0]!, ids[0]!])).length === 3,
    )![0]!;
  tText = base.decode([T]);
  const forcedWeights = forceGreedyToken(config, weights, T);
  const forcedDir = (await createModel({ preset: 'tiny', weights: forcedWeights, out: join(root, 'forced') }))
    .dir;
  forced = await referenceAdapters({ config, weights: forcedWeights }, forcedDir);
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('evaluations on modelkit models (reference forward, real tokenizer)', () => {
  it('generateRun: the forced model greedily writes T until the token limit', async () => {
    const r = await generateRun({
      generator: forced.generator,
      instructions: [{ instruction: 'Say something.' }, { instruction: 'Name a color.' }],
      out: join(root, 'out.json'),
      generatorName: 'forced',
      maxNewTokens: 5,
    });
    expect(r.outputs.map((o) => o.output)).toEqual([tText.repeat(5), tText.repeat(5)]);
  });

  it('tokenShift: T-runs are all unshifted under the forced model; one other token is shifted off rank 1', async () => {
    const self = await tokenShift({
      base: forced.ranks,
      aligned: [{ instruction: 'Say something.', output: tText.repeat(5) }],
    });
    expect(self.overall).toMatchObject({ tokens: 5, unshifted: 5, marginal: 0, shifted: 0 });
    const other = base.decode(base.encode(' the').slice(0, 1));
    const mixed = await tokenShift({
      base: forced.ranks,
      aligned: [{ instruction: 'Say something.', output: `${tText}${tText}${other}${tText}` }],
      positionBins: [0, 2, 3],
    });
    expect(mixed.overall.tokens).toBe(4);
    expect(mixed.overall.unshifted).toBe(3); // T at positions 0, 1, 3
    expect(mixed.byPosition.map((b) => b.unshifted)).toEqual([2, 0, 1]);
    expect(mixed.byPosition[1]!.marginal + mixed.byPosition[1]!.shifted).toBe(1); // the other token: rank > 1
    // under the unforced base model, the forced model's T-run is not what it would have written
    const vsBase = await tokenShift({
      base: base.ranks,
      aligned: [{ instruction: 'Say something.', output: tText.repeat(5) }],
    });
    expect(vsBase.overall.unshifted).toBeLessThan(5);
  });

  it('rankResponses: with n = 6 and 5 negatives every other example is a negative; hand-counted result', async () => {
    // example 0's response is a T-run, which the forced model scores far above anything else;
    // examples 1-5 share one response, so their pairs with each other are ties.
    const data = [
      { instruction: 'Say something.', output: tText.repeat(6) },
      ...['Name a color.', 'Count to two.', 'Greet me.', 'Describe rain.', 'Pick a number.'].map(
        (instruction) => ({ instruction, output: 'hello world' }),
      ),
    ];
    const r = await rankResponses({
      scorer: forced.scorer,
      data,
      n: 6,
      negatives: 5,
      draw: 'distinct',
      bootstrap: 200,
      batchSize: 12,
    });
    expect(r.examples[0]!.negatives.map((x) => x.j).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(r.histogram).toEqual([5, 0, 0, 0, 0, 1]); // example 0 beats all 5; the others beat none
    expect(r).toMatchObject({ pairs: 30, wins: 5, ties: 20 });
    expect(r.percent).toBeCloseTo(100 / 6, 12);
    // the same test under the base model scores with the same machinery: scores are exp(mean log p) in (0, 1)
    const b = await rankResponses({ scorer: base.scorer, data, n: 6, negatives: 5, bootstrap: 50 });
    for (const e of b.examples) expect(e.real > 0 && e.real < 1).toBe(true);
  });
});
