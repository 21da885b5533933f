import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogitsProcessorList } from '@huggingface/transformers';
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

// optimum's merged decoders (onnx/decoder_model_merged.onnx, as older transformers.js exports have
// them): one If on a use_cache_branch input, each branch a whole decoder; modelkit writes them from the
// same weights as the plain graph
const merged = (extra: Parameters<typeof createTinyModel>[0] = {}) =>
  createTinyModel({ seed: 1, initScale: 10, merged: true, ...extra });

describe('merged decoders (onnx/decoder_model_merged.onnx, use_cache_branch)', () => {
  it('greedy decoding equals the no-cache loop, transformers.js, single-row runs and the plain graph', async () => {
    const { dir } = await merged();
    const plainDir = (await createTinyModel({ seed: 1, initScale: 10 })).dir;
    const lines: string[] = [];
    const model = await loadModel(dir, { log: (l) => lines.push(l) });
    const plain = await loadModel(plainDir, { log: () => {} });
    expect(model.files.onnxFile).toMatch(/onnx\/decoder_model_merged\.onnx$/);
    // both branches of the If patched: the LM head sliced, the new keys/values as outputs; attention as
    // exported (the cache still concatenated inside onnxruntime)
    expect([model.info.logitsMode, model.info.cacheMode, model.info.attention]).toEqual([
      'patched',
      'slots',
      'exported',
    ]);
    expect(lines).toContain(
      'KV cache concatenated inside onnxruntime at every step (attention not split: a merged decoder (split attention does not rewrite the branches of its If))',
    );
    // the graph as exported: every position's logits, the cache fed back as present.*
    const asExported = await loadModel(dir, { log: () => {}, sliceLogits: false, cacheOutputs: false });
    expect([asExported.info.logitsMode, asExported.info.cacheMode]).toEqual(['all', 'present']);
    const hf = await transformersModel(dir, { model_file_name: 'decoder_model_merged' });
    try {
      const options = { maxNewTokens: 24, rules: 'hewitt2024' } as const;
      const batched = await model.generate(PROMPTS, { ...options, batchSize: 4 });
      for (const [i, prompt] of PROMPTS.entries()) {
        const [ours] = await model.generate(prompt, options);
        expect(batched[i]!.tokenIds).toEqual(ours!.tokenIds);
        expect(ours!.tokenIds).toEqual(await generateWithoutCache(model, prompt, options));
        const [fromPlain] = await plain.generate(prompt, options);
        expect(ours!.tokenIds).toEqual(fromPlain!.tokenIds);
        const [exported] = await asExported.generate(prompt, options);
        expect(ours!.tokenIds).toEqual(exported!.tokenIds);
        const p = ours!.prompt;
        const list = new LogitsProcessorList();
        list.push((await transformersRulesProcessor(model.rules('hewitt2024')!, p)) as never);
        expect(ours!.tokenIds).toEqual(await transformersGreedy(hf, model, p.ids, 24, list));
        expect(new Set(ours!.tokenIds).size).toBeGreaterThan(8); // a real sequence, not a loop
      }
      // a prompt in chunks feeds the cache branch a multi-token step
      // (chunks need the engine's own cache buffers: with the patch, a merged decoder has them)
      const chunked = await loadModel(dir, { log: () => {}, prefillChunk: 4 });
      expect([chunked.info.prefillChunk, asExported.info.prefillChunk]).toEqual([4, 0]);
      const [whole] = await asExported.generate(PROMPTS[3]!, { maxNewTokens: 8 });
      const [inChunks] = await chunked.generate(PROMPTS[3]!, { maxNewTokens: 8 });
      expect(inChunks!.tokenIds).toEqual(whole!.tokenIds);
      await chunked.dispose();
      // teacher-forced scores: those of the generation, and of the plain graph
      const [gen] = await model.generate(PROMPTS[0]!, { maxNewTokens: 12, logprobs: true });
      const item = [{ prompt: PROMPTS[0]!, continuation: gen!.tokenIds }];
      const [[scored], [scoredPlain]] = await Promise.all([model.score(item), plain.score(item)]);
      scored!.logprobs.forEach((lp, i) => {
        expect(Math.abs(lp - gen!.logprobs![i]!.logprob)).toBeLessThan(1e-4);
        expect(Math.abs(lp - scoredPlain!.logprobs[i]!)).toBeLessThan(1e-4);
      });
    } finally {
      await hf.dispose();
      await model.dispose();
      await plain.dispose();
      await asExported.dispose();
    }
  });

  it('the patch reaches into both branches of the If; a graph saved after it loads as patched', async () => {
    const { dir } = await merged();
    const bytes = readFileSync(join(dir, 'onnx', 'decoder_model_merged.onnx'));
    const request = { logitsSlice: true, kvOutputs: true, splitAttention: true };
    const once = patchDecoderGraph(bytes, request);
    expect(once).toMatchObject({
      logitsSlice: true,
      kvOutputs: true,
      splitAttention: 'a merged decoder (split attention does not rewrite the branches of its If)',
    });
    // per branch: a Slice before the LM head and one of its shape (the tiny model's head is flattened,
    // Reshape(Gemm(Reshape))), an Identity per new key/value (2 layers x 2)
    const before = summarizeGraph(bytes).ops;
    const after = summarizeGraph(once.bytes!).ops;
    expect([after.Slice! - (before.Slice ?? 0), after.Identity! - (before.Identity ?? 0)]).toEqual([4, 8]);
    expect(after.If).toBe(1);
    expect(patchDecoderGraph(once.bytes!, request)).toMatchObject({
      bytes: null,
      logitsSlice: 'already patched',
      kvOutputs: 'already patched',
    });
    const saved = mkdtempSync(join(tmpdir(), 'implicit-it-merged-patched-'));
    cpSync(dir, saved, { recursive: true });
    writeFileSync(join(saved, 'onnx', 'decoder_model_merged.onnx'), once.bytes!);
    const lines: string[] = [];
    const [patched, original] = await Promise.all([
      loadModel(saved, { log: (l) => lines.push(l) }),
      loadModel(dir, { log: () => {}, sliceLogits: false, cacheOutputs: false }),
    ]);
    try {
      expect(lines.filter((l) => /^logits for every position/.test(l))).toEqual([]);
      expect([patched.info.logitsMode, patched.info.cacheMode]).toEqual(['patched', 'slots']);
      const [again] = await patched.generate(PROMPTS, { maxNewTokens: 12 });
      const [first] = await original.generate(PROMPTS, { maxNewTokens: 12 });
      expect(again!.tokenIds).toEqual(first!.tokenIds);
    } finally {
      await Promise.all([patched.dispose(), original.dispose()]);
      rmSync(saved, { recursive: true, force: true });
    }
  });

  it('a float16 cache: the patched branches decode as the graph as exported does', async () => {
    const { dir } = await merged({ kvDtype: 'float16' });
    const [patched, exported] = await Promise.all([
      loadModel(dir, { log: () => {} }),
      loadModel(dir, { log: () => {}, sliceLogits: false, cacheOutputs: false }),
    ]);
    try {
      expect([patched.info.kvType, patched.info.cacheMode, exported.info.cacheMode]).toEqual([
        'float16',
        'slots',
        'present',
      ]);
      const options = { maxNewTokens: 16, rules: 'hewitt2024' } as const;
      const [ours, theirs] = await Promise.all([
        patched.generate(PROMPTS, options),
        exported.generate(PROMPTS, options),
      ]);
      expect(ours.map((r) => r.tokenIds)).toEqual(theirs.map((r) => r.tokenIds));
    } finally {
      await Promise.all([patched.dispose(), exported.dispose()]);
    }
  });

  it('q4: q4AccuracyLevel reaches the MatMulNBits nodes in both branches; summarizeGraph counts them', async () => {
    const q4 = (level: 0 | 4) => merged({ dtypes: ['q4'], q4AccuracyLevel: level });
    const [level0, level4] = [(await q4(0)).dir, (await q4(4)).dir];
    const file = join(level0, 'onnx', 'decoder_model_merged_q4.onnx');
    const summary = summarizeGraph(readFileSync(file));
    // 2 layers x 7 linear layers and the LM head, in each branch
    expect(summary.matMulNBits).toEqual({ count: 30, bits: [4], blockSizes: [32], accuracyLevels: [0] });
    expect(summary.ops.If).toBe(1);
    expect(Object.values(summary.ops).reduce((a, b) => a + b, 0)).toBe(summary.nodes);
    await expectLevelRaised(level0, level4, 30);
  });

  it('q8: decoder_model_merged_quantized.onnx decodes one prompt as transformers.js does', async () => {
    const { dir } = await merged({ dtypes: ['q8'] });
    const lines: string[] = [];
    const model = await loadModel(dir, { dtype: 'q8', log: (l) => lines.push(l) });
    expect(model.files.onnxFile).toMatch(/onnx\/decoder_model_merged_quantized\.onnx$/);
    // the rounding is found inside the If's branches (9 DynamicQuantizeLinear nodes in each)
    expect(model.session.dynamicQuantization).toBe(true);
    expect(lines.some((l) => l.startsWith('8-bit graph rounding activations'))).toBe(true);
    expect(summarizeGraph(readFileSync(model.files.onnxFile)).ops.DynamicQuantizeLinear).toBe(18);
    const hf = await transformersModel(dir, { dtype: 'q8', model_file_name: 'decoder_model_merged' });
    try {
      const [ours] = await model.generate(PROMPTS[1]!, { maxNewTokens: 24, rules: 'hewitt2024' });
      const p = ours!.prompt;
      const list = new LogitsProcessorList();
      list.push((await transformersRulesProcessor(model.rules('hewitt2024')!, p)) as never);
      expect(ours!.tokenIds).toEqual(await transformersGreedy(hf, model, p.ids, 24, list));
    } finally {
      await hf.dispose();
      await model.dispose();
    }
  });
});
