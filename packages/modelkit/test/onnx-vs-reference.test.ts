import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createModel, randomWeights, referenceForward, resolveConfig } from '../src/index.js';
import { maxAbsDiff, promptLogits } from './ort-helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'modelkit-test-'));
const PROMPT = [5, 17, 300, 42, 9, 260, 128, 77, 3, 511, 64];

describe('ONNX graph vs reference forward', () => {
  for (const [label, overrides] of [
    ['tiny (GQA, tied)', {}],
    ['MHA, untied, 3 layers', { numKeyValueHeads: 4, tieWordEmbeddings: false, numHiddenLayers: 3 }],
    ['qwen2 biases, 1 KV head', { modelType: 'qwen2', numKeyValueHeads: 1, attentionBias: true }],
    ['qwen2, sliding window of 4', { modelType: 'qwen2', attentionBias: true, slidingWindow: 4 }],
  ] as const) {
    it(`${label}: full-pass logits match to 1e-4`, async () => {
      const created = await createModel({ preset: 'tiny', ...overrides, seed: 3, out: tmp() });
      const config = resolveConfig({ preset: 'tiny', ...overrides });
      const expected = referenceForward({ config, weights: randomWeights(config, 3) }, PROMPT);
      const logits = await promptLogits(join(created.dir, 'onnx', 'model.onnx'), config, PROMPT);
      PROMPT.forEach((_, p) => {
        expect(maxAbsDiff(logits[p]!, expected[p]!)).toBeLessThan(1e-4);
      });
    });
  }
});

describe('sliding window', () => {
  it('changes the logits only where a query has keys beyond the window', async () => {
    const config = resolveConfig({
      preset: 'tiny',
      modelType: 'qwen2',
      attentionBias: true,
      slidingWindow: 4,
    });
    const weights = randomWeights(config, 3);
    const windowed = referenceForward({ config, weights }, PROMPT);
    const whole = referenceForward({ config: { ...config, slidingWindow: null }, weights }, PROMPT);
    PROMPT.forEach((_, p) => {
      if (p < 4) expect(maxAbsDiff(windowed[p]!, whole[p]!)).toBe(0);
      else expect(maxAbsDiff(windowed[p]!, whole[p]!)).toBeGreaterThan(1e-3);
    });
  });
});
