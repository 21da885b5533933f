import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildDecoderGraph,
  createModel,
  type DecoderConfig,
  type DecoderGraphOptions,
  graphFileName,
} from '../src/index.js';
import { emptyPast, i64, maxAbsDiff, type Past, step } from './ort-helpers.js';

const PROMPT = [12, 99, 250, 7, 400, 31, 2, 88, 150];

/** Row `b` of a [batch, ...] float32 tensor. */
function sliceRow(t: ort.Tensor, b: number): ort.Tensor {
  const [, ...rest] = t.dims as number[];
  const n = rest.reduce((a, x) => a * x, 1);
  return new ort.Tensor('float32', (t.data as Float32Array).slice(b * n, (b + 1) * n), [1, ...rest]);
}

describe('KV cache', () => {
  let session: ort.InferenceSession;
  let config: DecoderConfig;
  beforeAll(async () => {
    const created = await createModel({
      preset: 'tiny',
      seed: 5,
      out: mkdtempSync(join(tmpdir(), 'modelkit-kv-')),
    });
    config = created.config;
    session = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
  });

  /** PROMPT in one pass, from an empty cache. */
  const fullPass = (s: ort.InferenceSession, past = emptyPast(config, 1)) =>
    step(s, config, [PROMPT], [PROMPT.map(() => 1)], [PROMPT.map((_, i) => i)], past);
  /** PROMPT one token at a time from `past`: each step's logits equal `full`'s at its position (to 1e-4). */
  async function expectStepwise(
    s: ort.InferenceSession,
    full: Awaited<ReturnType<typeof step>>,
    past = emptyPast(config, 1),
  ): Promise<Past> {
    for (let t = 0; t < PROMPT.length; t++) {
      const out = await step(s, config, [[PROMPT[t]!]], [Array(t + 1).fill(1)], [[t]], past);
      past = out.past;
      expect(maxAbsDiff(out.logits[0]![0]!, full.logits[0]![t]!)).toBeLessThan(1e-4);
    }
    return past;
  }

  it('decoding one token at a time gives the logits of one full pass', async () => {
    const past = await expectStepwise(session, await fullPass(session));
    expect(past['past_key_values.0.key']!.dims).toEqual([
      1,
      config.numKeyValueHeads,
      PROMPT.length,
      config.headDim,
    ]);
  });

  it('with a sliding window, too (the window counts cache positions)', async () => {
    const created = await createModel({
      preset: 'tiny',
      modelType: 'qwen2',
      attentionBias: true,
      slidingWindow: 3,
      seed: 5,
      out: mkdtempSync(join(tmpdir(), 'modelkit-kv-window-')),
    });
    const windowed = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
    await expectStepwise(windowed, await fullPass(windowed));
  });

  it('a prompt chunk then single steps matches the full pass (past > 0 with seq > 1)', async () => {
    const full = await fullPass(session);
    const head = PROMPT.slice(0, 4);
    const first = await step(
      session,
      config,
      [head],
      [head.map(() => 1)],
      [head.map((_, i) => i)],
      emptyPast(config, 1),
    );
    const rest = PROMPT.slice(4);
    const second = await step(
      session,
      config,
      [rest],
      [PROMPT.map(() => 1)],
      [rest.map((_, i) => i + 4)],
      first.past,
    );
    rest.forEach((_, i) => {
      expect(maxAbsDiff(second.logits[0]![i]!, full.logits[0]![i + 4]!)).toBeLessThan(1e-4);
    });
  });

  it('present tensors have the documented shapes', async () => {
    const out = await session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from([1n, 2n, 3n, 4n, 5n, 6n]), [2, 3]),
      attention_mask: new ort.Tensor('int64', BigInt64Array.from([1n, 1n, 1n, 1n, 1n, 1n]), [2, 3]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from([0n, 1n, 2n, 0n, 1n, 2n]), [2, 3]),
      ...emptyPast(config, 2),
    });
    expect(out.logits!.dims).toEqual([2, 3, config.vocabSize]);
    expect(out['present.1.value']!.dims).toEqual([2, config.numKeyValueHeads, 3, config.headDim]);
    expect(session.inputNames).toEqual([
      'input_ids',
      'attention_mask',
      'position_ids',
      'past_key_values.0.key',
      'past_key_values.0.value',
      'past_key_values.1.key',
      'past_key_values.1.value',
    ]);
    expect(session.outputNames).toEqual([
      'logits',
      'present.0.key',
      'present.0.value',
      'present.1.key',
      'present.1.value',
    ]);
  });

  it('kvDtype float16: a half-precision cache, one step at a time equal to the full pass, close to float32', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'modelkit-kv16-'));
    const created = await createModel({ preset: 'tiny', seed: 5, out: dir, kvDtype: 'float16' });
    const half = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
    const meta = half.inputMetadata.find((m) => m.name === 'past_key_values.0.key');
    expect(meta?.isTensor && meta.type).toBe('float16');
    const empty = (): Past => {
      const past: Past = {};
      for (const name of half.inputNames.filter((n) => n.startsWith('past_key_values.')))
        past[name] = new ort.Tensor('float16', new Uint16Array(0), [
          1,
          config.numKeyValueHeads,
          0,
          config.headDim,
        ]);
      return past;
    };
    const full = await fullPass(half, empty());
    expect(full.past['past_key_values.1.value']!.type).toBe('float16');
    // the same half-precision keys/values either way: equal up to float32 summation order
    await expectStepwise(half, full, empty());
    const f32 = await fullPass(session);
    const diff = Math.max(...PROMPT.map((_, t) => maxAbsDiff(full.logits[0]![t]!, f32.logits[0]![t]!)));
    expect(diff).toBeGreaterThan(0); // keys/values were rounded
    expect(diff).toBeLessThan(1e-2);
  });

  it('positionIds false: no position_ids input, positions from the mask; the logits of explicit positions, left-padded too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'modelkit-nopos-'));
    const created = await createModel({ preset: 'tiny', seed: 5, out: dir, positionIds: false });
    const nopos = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
    expect(nopos.inputNames).not.toContain('position_ids');
    expect(session.inputNames).toContain('position_ids');
    // row 0: the prompt; row 1: its first 6 ids, left-padded by 3
    const ids = [PROMPT, [0, 0, 0, ...PROMPT.slice(0, 6)]];
    const mask = [PROMPT.map(() => 1), [0, 0, 0, 1, 1, 1, 1, 1, 1]];
    const positions = [PROMPT.map((_, i) => i), [1, 1, 1, 0, 1, 2, 3, 4, 5]];
    const want = await step(session, config, ids, mask, positions, emptyPast(config, 2));
    const out = await nopos.run({ input_ids: i64(ids), attention_mask: i64(mask), ...emptyPast(config, 2) });
    const logits = out.logits!.data as Float32Array;
    const V = config.vocabSize;
    for (const [b, row] of mask.entries())
      for (const [t, m] of row.entries()) {
        if (!m) continue;
        const got = logits.subarray((b * 9 + t) * V, (b * 9 + t + 1) * V);
        expect(maxAbsDiff(got, want.logits[b]![t]!)).toBeLessThan(1e-4);
      }
    // a decoding step: the position comes from the mask over past and new
    const next = await nopos.run({
      input_ids: i64([[PROMPT[6]!]]),
      attention_mask: i64([[0, 0, 0, 1, 1, 1, 1, 1, 1, 1]]),
      'past_key_values.0.key': sliceRow(out['present.0.key']!, 1),
      'past_key_values.0.value': sliceRow(out['present.0.value']!, 1),
      'past_key_values.1.key': sliceRow(out['present.1.key']!, 1),
      'past_key_values.1.value': sliceRow(out['present.1.value']!, 1),
    });
    expect(maxAbsDiff(next.logits!.data as Float32Array, want.logits[0]![6]!)).toBeLessThan(1e-4);
  });

  /** How many `op` nodes the graph built with `options` has. */
  const opCount = (options: DecoderGraphOptions, op: string) =>
    buildDecoderGraph(config, options).builder.nodes.filter((n) => n.op_type === op).length;
  /** A model written with graph `options` gives the default graph's logits: in one pass, and one token at a time. */
  async function expectDefaultLogits(options: DecoderGraphOptions, prefix: string): Promise<void> {
    const created = await createModel({
      preset: 'tiny',
      seed: 5,
      out: mkdtempSync(join(tmpdir(), prefix)),
      ...options,
    });
    const variant = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
    const [want, got] = [await fullPass(session), await fullPass(variant)];
    for (let t = 0; t < PROMPT.length; t++)
      expect(maxAbsDiff(got.logits[0]![t]!, want.logits[0]![t]!)).toBeLessThan(1e-4);
    await expectStepwise(variant, want);
  }

  it("repeatKv expand: HF's repeat_kv (Expand), the logits of the grouped graph, one step at a time too", async () => {
    expect([opCount({ repeatKv: 'grouped' }, 'Expand'), opCount({ repeatKv: 'expand' }, 'Expand')]).toEqual([
      0,
      2 * config.numHiddenLayers,
    ]);
    await expectDefaultLogits({ repeatKv: 'expand' }, 'modelkit-expand-');
  });

  it("linear matmul: optimum's MatMul linears (no Gemm, no flattening Reshape), the logits of the Gemm graph", async () => {
    const count = (linear: 'gemm' | 'matmul', op: string) => opCount({ linear }, op);
    // 7 linears per layer and the LM head; attention's own MatMuls (2 per layer) in both
    const linears = 7 * config.numHiddenLayers + 1;
    expect([count('gemm', 'Gemm'), count('matmul', 'Gemm')]).toEqual([linears, 0]);
    expect(count('matmul', 'MatMul') - count('gemm', 'MatMul')).toBe(linears);
    expect(count('gemm', 'Reshape') - count('matmul', 'Reshape')).toBe(2 * linears);
    await expectDefaultLogits({ linear: 'matmul' }, 'modelkit-matmul-');
  });
});

describe('merged decoder (optimum decoder_model_merged.onnx)', () => {
  it('one If on use_cache_branch: the plain graph logits without the past, then with it; q4 and q8 too', async () => {
    for (const dtypes of [['fp32'], ['q4'], ['q8']] as const) {
      const out = mkdtempSync(join(tmpdir(), 'modelkit-merged-'));
      const plain = await createModel({ preset: 'tiny', seed: 5, out, dtypes });
      const file = graphFileName(dtypes[0]);
      const want = await ort.InferenceSession.create(join(plain.dir, 'onnx', file));
      const created = await createModel({ preset: 'tiny', seed: 5, out, dtypes, merged: true });
      const mergedFile = graphFileName(dtypes[0], true);
      expect(mergedFile).toBe(
        {
          fp32: 'decoder_model_merged.onnx',
          q4: 'decoder_model_merged_q4.onnx',
          q8: 'decoder_model_merged_quantized.onnx',
        }[dtypes[0]],
      );
      expect(created.files).toContain(`onnx/${mergedFile}`);
      expect(created.removed).toContain(`onnx/${file}`); // the plain graph of the same dtype is replaced
      const graph = buildDecoderGraph(created.config, { merged: true, dtype: dtypes[0] });
      expect(graph.builder.nodes.map((n) => n.op_type)).toEqual(['If']);
      expect(graph.inputs.at(-1)).toEqual({ name: 'use_cache_branch', elemType: 9, dims: [1] });
      const merged = await ort.InferenceSession.create(join(created.dir, 'onnx', mergedFile));
      expect(merged.inputNames).toContain('use_cache_branch');
      const config = created.config;
      const branch = (cache: boolean) => ({ use_cache_branch: new ort.Tensor('bool', [cache], [1]) });
      // the first step, with the past inputs given as empty (the branch does not read them)
      const head = PROMPT.slice(0, 5);
      const feeds = {
        input_ids: i64([head]),
        attention_mask: i64([head.map(() => 1)]),
        position_ids: i64([head.map((_, i) => i)]),
        ...emptyPast(config, 1),
      };
      const [a, b] = [await want.run(feeds), await merged.run({ ...feeds, ...branch(false) })];
      expect(maxAbsDiff(b.logits!.data as Float32Array, a.logits!.data as Float32Array)).toBeLessThan(1e-5);
      expect(b['present.0.key']!.dims).toEqual([1, config.numKeyValueHeads, head.length, config.headDim]);
      // the rest of the prompt in one chunk on that cache, through the cache branch
      const rest = PROMPT.slice(head.length);
      const pastOf = (o: typeof a) =>
        Object.fromEntries(
          Object.keys(emptyPast(config, 1)).map((k) => [k, o[k.replace('past_key_values', 'present')]!]),
        );
      const next = {
        input_ids: i64([rest]),
        attention_mask: i64([PROMPT.map(() => 1)]),
        position_ids: i64([rest.map((_, i) => head.length + i)]),
      };
      const [c, d] = [
        await want.run({ ...next, ...pastOf(a) }),
        await merged.run({ ...next, ...pastOf(b), ...branch(true) }),
      ];
      expect(maxAbsDiff(d.logits!.data as Float32Array, c.logits!.data as Float32Array)).toBeLessThan(1e-5);
      expect(d['present.1.value']!.dims).toEqual([1, config.numKeyValueHeads, PROMPT.length, config.headDim]);
      await Promise.all([want.release(), merged.release()]);
    }
  });
});
