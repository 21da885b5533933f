import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildDecoderGraph,
  createModel,
  type DecoderConfig,
  dequantizeQ8,
  exportOnnx,
  ModelConfigError,
  type ModelWeights,
  ModelWeightsError,
  quantizeQ8,
  randomWeights,
  referenceForward,
  resolveConfig,
  toHfConfig,
  transposeInt8,
  weightSpecs,
  writeSafetensors,
} from '../src/index.js';
import { maxAbsDiff, promptLogits } from './ort-helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'modelkit-q8-'));
const PROMPT = [5, 17, 300, 42, 9, 260, 128, 77, 3, 511, 64];

/** The float model a q8 graph multiplies by: every linear weight and the embeddings dequantized. */
function dequantizedModel(config: DecoderConfig, weights: ModelWeights) {
  const out: ModelWeights = {};
  for (const spec of weightSpecs(config))
    out[spec.name] =
      spec.kind === 'linear' || spec.kind === 'embedding'
        ? dequantizeQ8(quantizeQ8(weights[spec.name]!))
        : weights[spec.name]!;
  return { config, weights: out };
}

describe('quantizeQ8', () => {
  it('one scale for the tensor (largest magnitude / 127), values rounded half to even', () => {
    const q = quantizeQ8(Float32Array.of(127, -63.5, 0.5, -0.5, 1.5, 2.5, -2.5, 126.6));
    expect(q.scale).toBe(1);
    expect(Array.from(q.data)).toEqual([127, -64, 0, 0, 2, 2, -2, 127]);
    const small = quantizeQ8(Float32Array.of(-0.254, 0.001, 0.0031, 0.1));
    expect(small.scale).toBe(Math.fround(0.254 / 127)); // the negative extreme sets it too: symmetric
    // 0.001 / scale is 0.5 exactly in float32: to even, 0; 0.0031 / scale = 1.55
    expect(Array.from(small.data)).toEqual([-127, 0, 2, 50]);
    expect(Array.from(dequantizeQ8(small))).toEqual(
      [-127, 0, 2, 50].map((v) => Math.fround(v * small.scale)),
    );
  });

  it('an all-zero tensor gets scale 1, as onnxruntime gives it', () => {
    expect(quantizeQ8(new Float32Array(4))).toEqual({ data: new Int8Array(4), scale: 1 });
  });

  it('stays within half a step of every value', () => {
    const w = Float32Array.from({ length: 999 }, (_, i) => Math.sin(i * 1.7) * 0.05 + (i === 7 ? 0.3 : 0));
    const q = quantizeQ8(w);
    const back = dequantizeQ8(q);
    for (let i = 0; i < w.length; i++)
      expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(q.scale / 2 + 1e-9);
  });

  it('refuses NaN and infinite values, naming where they are', () => {
    const w = new Float32Array(8);
    w[6] = Number.NEGATIVE_INFINITY;
    expect(() => quantizeQ8(w)).toThrow('value -Infinity at index 6: an 8-bit tensor cannot hold it');
  });

  it('transposeInt8: [rows, cols] to [cols, rows]', () => {
    expect(Array.from(transposeInt8(Int8Array.of(1, 2, 3, 4, 5, 6), 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
    expect(() => transposeInt8(new Int8Array(5), 2, 3)).toThrow('expected 2 x 3 = 6 values, got 5');
  });
});

describe('q8 graphs (onnx/model_quantized.onnx)', () => {
  for (const [label, overrides] of [
    ['tiny (GQA, tied head)', {}],
    ['qwen2 biases, untied head', { modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: false }],
  ] as const) {
    it(`${label}: close to the model of its dequantized weights, and not the float32 one`, async () => {
      const out = tmp();
      const created = await createModel({
        preset: 'tiny',
        ...overrides,
        seed: 3,
        out,
        dtypes: ['fp32', 'q8'],
      });
      expect(readdirSync(join(out, 'onnx')).sort()).toEqual(['model.onnx', 'model_quantized.onnx']);
      const config = resolveConfig({ preset: 'tiny', ...overrides });
      const weights = randomWeights(config, 3);
      const expected = referenceForward(dequantizedModel(config, weights), PROMPT);
      const logits = await promptLogits(join(out, 'onnx', 'model_quantized.onnx'), created.config, PROMPT);
      // each activation is rounded to 8 bits over its tensor's range: a few per mille of the logits' spread
      let spread = 0;
      for (const v of expected.at(-1)!) spread = Math.max(spread, Math.abs(v));
      let worst = 0;
      PROMPT.forEach((_, p) => {
        worst = Math.max(worst, maxAbsDiff(logits[p]!, expected[p]!));
      });
      expect(worst).toBeLessThan(0.03 * spread);
      // the quantization is real: the float32 model's logits differ by more than the graph's float noise
      const exact = referenceForward({ config, weights }, PROMPT);
      expect(maxAbsDiff(logits.at(-1)!, exact.at(-1)!)).toBeGreaterThan(1e-3);
    });
  }

  it("has onnxruntime's dynamic-quantization layout: one DynamicQuantizeLinear per activation read", () => {
    const config = resolveConfig({ preset: 'tiny' });
    const graph = buildDecoderGraph(config, { dtype: 'q8' });
    const count = (op: string) => graph.builder.nodes.filter((n) => n.op_type === op).length;
    const L = config.numHiddenLayers;
    // per layer: the normed input (q, k, v), the attention output, the normed residual (gate, up), the
    // MLP product; then the final norm (LM head)
    expect(count('DynamicQuantizeLinear')).toBe(4 * L + 1);
    expect(count('MatMulInteger')).toBe(7 * L + 1);
    expect(count('Gemm') + count('MatMul') - 2 * L).toBe(0); // attention's two MatMuls stay float
    expect(count('DequantizeLinear')).toBe(1); // the embeddings, gathered from the int8 table
    const gather = graph.builder.nodes.find((n) => n.op_type === 'Gather' && n.input[1] === 'input_ids');
    expect(gather?.input[0]).toBe('model.embed_tokens.weight_quantized');
    // the tied head reads its own [hidden, vocab] copy
    const head = graph.tensors.find((t) => t.name === 'lm_head.weight_quantized');
    expect(head?.dims).toEqual([config.hiddenSize, config.vocabSize]);
    expect(graph.tensors.find((t) => t.name === 'model.embed_tokens.weight_quantized')?.dims).toEqual([
      config.vocabSize,
      config.hiddenSize,
    ]);
  });

  it('weighs about a quarter of the float32 weights', async () => {
    const fp32 = await createModel({ preset: 'tiny', seed: 1, out: tmp() });
    const q8 = await createModel({ preset: 'tiny', seed: 1, out: tmp(), dtypes: ['q8'] });
    const config = fp32.config;
    const specs = weightSpecs(config);
    const int8 = specs.filter((s) => s.kind === 'linear' || s.kind === 'embedding');
    const values = int8.reduce((n, s) => n + s.shape[0]! * s.shape[1]!, 0);
    const floats = fp32.weightBytes - values * 4; // norms
    const head = config.vocabSize * config.hiddenSize; // the tied head's int8 copy
    // a byte a value, a float32 scale per tensor
    expect(q8.weightBytes).toBe(floats + values + head + (int8.length + 1) * 4);
  });

  it('refuses weights an 8-bit tensor cannot hold, naming the weight', async () => {
    const config = resolveConfig({ preset: 'tiny' });
    const weights = randomWeights(config, 1);
    weights['model.layers.0.self_attn.v_proj.weight']![9] = Number.NaN;
    await expect(createModel({ preset: 'tiny', out: tmp(), dtypes: ['q8'], weights })).rejects.toThrow(
      new ModelWeightsError(
        'model.layers.0.self_attn.v_proj.weight',
        'value NaN at index 9: an 8-bit tensor cannot hold it',
      ),
    );
  });

  it('refuses dtypes it does not write, naming the three it does', async () => {
    await expect(createModel({ preset: 'tiny', out: tmp(), dtypes: ['int8' as never] })).rejects.toThrow(
      new ModelConfigError('dtypes', 'modelkit writes fp32, q4 and q8 weights, got "int8"'),
    );
  });

  it('exportOnnx writes the q8 graph of a safetensors checkpoint, the same bytes as createModel', async () => {
    const made = await createModel({ preset: 'tiny', seed: 5, out: tmp(), dtypes: ['q8'] });
    const dir = tmp();
    const weights = randomWeights(made.config, 5);
    writeSafetensors(
      join(dir, 'model.safetensors'),
      Object.fromEntries(
        weightSpecs(made.config).map((s) => [s.name, { shape: s.shape, data: weights[s.name]! }]),
      ),
    );
    writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfig(made.config)));
    const exported = await exportOnnx({ dir, dtypes: ['q8'] });
    expect(exported.files).toEqual(['onnx/model_quantized.onnx']);
    expect(readFileSync(join(dir, 'onnx', 'model_quantized.onnx'))).toEqual(
      readFileSync(join(made.dir, 'onnx', 'model_quantized.onnx')),
    );
  });
});
