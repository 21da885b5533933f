import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogitsProcessorList } from '@huggingface/transformers';
import { createModel, randomTensor } from '@implicit-it/modelkit';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { describe, expect, it } from 'vitest';
import {
  generateWithoutCache,
  loadModel,
  patchDecoderGraph,
  summarizeGraph,
  transformersRulesProcessor,
} from '../src/index.js';
import { expectLevelRaised, PROMPTS, transformersGreedy, transformersModel } from './helpers.js';

// 4-bit graphs as transformers.js's `model_q4.onnx` files have them: every linear layer, the LM head
// included, a MatMulNBits (onnxruntime's contrib op); modelkit writes them from the same weights
const q4Model = (accuracy: 0 | 4) =>
  createTinyModel({ seed: 1, initScale: 10, dtypes: ['fp32', 'q4'], q4AccuracyLevel: accuracy });

describe('q4 models (onnx/model_q4.onnx, dtype: "q4")', () => {
  it('get every patch, and greedy decoding equals the no-cache loop, transformers.js and single-row runs', async () => {
    const { dir } = await q4Model(4);
    const model = await loadModel(dir, { dtype: 'q4', log: () => {} });
    const fp32 = await loadModel(dir, { log: () => {} });
    expect(model.files.onnxFile).toMatch(/onnx\/model_q4\.onnx$/);
    // the LM head found behind MatMulNBits: logits only where needed; the cache in the engine's buffers
    expect([model.info.logitsMode, model.info.cacheMode, model.info.attention]).toEqual([
      'patched',
      'slots',
      'split',
    ]);
    const hf = await transformersModel(dir, { dtype: 'q4' });
    try {
      const batched = await model.generate(PROMPTS, { maxNewTokens: 24, rules: 'hewitt2024', batchSize: 4 });
      let differs = 0;
      for (const [i, prompt] of PROMPTS.entries()) {
        const [ours] = await model.generate(prompt, { maxNewTokens: 24, rules: 'hewitt2024' });
        expect(batched[i]!.tokenIds).toEqual(ours!.tokenIds);
        const reference = await generateWithoutCache(model, prompt, {
          maxNewTokens: 24,
          rules: 'hewitt2024',
        });
        expect(ours!.tokenIds).toEqual(reference);
        const p = ours!.prompt;
        const list = new LogitsProcessorList();
        list.push((await transformersRulesProcessor(model.rules('hewitt2024')!, p)) as never);
        expect(ours!.tokenIds).toEqual(await transformersGreedy(hf, model, p.ids, 24, list));
        expect(new Set(ours!.tokenIds).size).toBeGreaterThan(8); // a real sequence, not a loop
        const [float] = await fp32.generate(prompt, { maxNewTokens: 24, rules: 'hewitt2024' });
        if (JSON.stringify(float!.tokenIds) !== JSON.stringify(ours!.tokenIds)) differs++;
      }
      // the q4 file is the one that ran: 4-bit weights change some answers of this model
      expect(differs).toBeGreaterThan(0);
    } finally {
      await hf.dispose();
      await model.dispose();
      await fp32.dispose();
    }
  });

  it('scores continuations with the same log-probs as a generation computes', async () => {
    const { dir } = await q4Model(0);
    const model = await loadModel(dir, { dtype: 'q4', log: () => {} });
    try {
      const [gen] = await model.generate(PROMPTS[0]!, { maxNewTokens: 12, logprobs: true });
      const [scored] = await model.score([{ prompt: PROMPTS[0]!, continuation: gen!.tokenIds }]);
      const generated = gen!.logprobs!.map((l) => l.logprob);
      expect(scored!.logprobs.length).toBe(generated.length);
      scored!.logprobs.forEach((lp, i) => {
        expect(Math.abs(lp - generated[i]!)).toBeLessThan(1e-4);
      });
    } finally {
      await model.dispose();
    }
  });

  it('q4AccuracyLevel rewrites the MatMulNBits nodes at load: a level-0 file then computes as a level-4 one', async () => {
    const level0 = (await q4Model(0)).dir;
    const level4 = (await q4Model(4)).dir; // the same weights, written with accuracy_level 4
    // 2 layers x 7 linear layers, and the LM head
    const [, raised] = await expectLevelRaised(level0, level4, 15);
    expect(raised!.info.logitsMode).toBe('patched'); // the head's other edit is kept
  });

  it('q4AccuracyLevel on a graph without MatMulNBits says so; a level onnxruntime has not is refused', async () => {
    const lines: string[] = [];
    const { dir } = await q4Model(0);
    const model = await loadModel(dir, { q4AccuracyLevel: 4, log: (l) => lines.push(l) });
    expect(model.info.q4AccuracyLevel).toBeNull();
    await model.dispose();
    expect(lines).toContain('q4AccuracyLevel 4 not applied: the graph has no MatMulNBits node');
    await expect(loadModel(dir, { dtype: 'q4', q4AccuracyLevel: 5 as never })).rejects.toThrow(
      'loadModel: q4AccuracyLevel must be 0, 1, 2, 3 or 4, got 5',
    );
  });

  it('summarizeGraph counts the ops and reads the MatMulNBits attributes, before and after the patch', async () => {
    const { dir } = await q4Model(0);
    const q4 = readFileSync(join(dir, 'onnx', 'model_q4.onnx'));
    const summary = summarizeGraph(q4);
    expect(summary.matMulNBits).toEqual({ count: 15, bits: [4], blockSizes: [32], accuracyLevels: [0] });
    expect(summary.ops['com.microsoft.MatMulNBits']).toBe(15);
    expect(summary.ops.Gemm).toBeUndefined();
    expect(Object.values(summary.ops).reduce((a, b) => a + b, 0)).toBe(summary.nodes);
    const patched = patchDecoderGraph(q4, { logitsSlice: true, kvOutputs: false, q4AccuracyLevel: 4 });
    expect(summarizeGraph(patched.bytes!).matMulNBits).toEqual({
      count: 15,
      bits: [4],
      blockSizes: [32],
      accuracyLevels: [4],
    });
    const fp32 = summarizeGraph(readFileSync(join(dir, 'onnx', 'model.onnx')));
    expect(fp32.matMulNBits).toBeNull();
    expect(fp32.ops.Gemm).toBe(15);
  });

  it('a q4 graph with external data gets its patches and its accuracy level, from memory', async () => {
    const out = mkdtempSync(join(tmpdir(), 'runtime-q4-external-'));
    const { dir: inline } = await q4Model(0);
    await createModel({
      preset: 'tiny',
      seed: 1,
      weights: (spec) => {
        // the weights of q4Model (createTinyModel's initScale 10)
        const t = randomTensor(spec, 1);
        if (spec.kind !== 'norm') for (let i = 0; i < t.length; i++) t[i]! *= 10;
        return t;
      },
      out,
      dtypes: ['q4'],
      q4AccuracyLevel: 0,
      externalDataThreshold: 0,
    });
    expect(readdirSync(join(out, 'onnx')).sort()).toEqual(['model_q4.onnx', 'model_q4.onnx_data']);
    const lines: string[] = [];
    const before = readdirSync(tmpdir()).filter((f) => f.startsWith('implicit-it-graph-')).length;
    const external = await loadModel(out, { dtype: 'q4', q4AccuracyLevel: 4, log: (l) => lines.push(l) });
    const raised = await loadModel(inline, { dtype: 'q4', q4AccuracyLevel: 4, log: () => {} });
    try {
      expect(lines.filter((l) => l.startsWith('graph as exported'))).toEqual([]);
      expect([external.info.logitsMode, external.info.cacheMode, external.info.q4AccuracyLevel]).toEqual([
        'patched',
        'slots',
        4,
      ]);
      // nothing written beside it any more
      expect(readdirSync(tmpdir()).filter((f) => f.startsWith('implicit-it-graph-')).length).toBe(before);
      const [a] = await external.generate(PROMPTS[0]!, { maxNewTokens: 16 });
      const [b] = await raised.generate(PROMPTS[0]!, { maxNewTokens: 16 });
      expect(a!.tokenIds).toEqual(b!.tokenIds);
    } finally {
      await external.dispose();
      await raised.dispose();
    }
  });
});
