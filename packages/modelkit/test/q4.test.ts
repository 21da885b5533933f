import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createModel,
  type DecoderConfig,
  dequantizeQ4,
  exportOnnx,
  ModelConfigError,
  ModelFileError,
  type ModelWeights,
  ModelWeightsError,
  quantizeQ4,
  randomWeights,
  referenceForward,
  resolveConfig,
  toHfConfig,
  weightSpecs,
  writeSafetensors,
} from '../src/index.js';
import { maxAbsDiff, promptLogits } from './ort-helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'modelkit-q4-'));
const PROMPT = [5, 17, 300, 42, 9, 260, 128, 77, 3, 511, 64];

/**
 * The float model a q4 graph computes (at accuracy level 0): its linear weights dequantized, the
 * embeddings as they are, and a tied LM head as an untied one holding the dequantized embeddings.
 */
function dequantizedModel(config: DecoderConfig, weights: ModelWeights, blockSize = 32) {
  const out: ModelWeights = {};
  const q = (w: Float32Array, [rows, cols]: number[]) => dequantizeQ4(quantizeQ4(w, rows!, cols!, blockSize));
  for (const spec of weightSpecs(config))
    out[spec.name] = spec.kind === 'linear' ? q(weights[spec.name]!, spec.shape) : weights[spec.name]!;
  if (!config.tieWordEmbeddings) return { config, weights: out };
  const embed = weights['model.embed_tokens.weight']!;
  out['lm_head.weight'] = q(embed, [config.vocabSize, config.hiddenSize]);
  return { config: { ...config, tieWordEmbeddings: false }, weights: out };
}

describe('quantizeQ4', () => {
  it('packs two values a byte, low nibble first, scale = the largest magnitude / -8', () => {
    const row = new Float32Array(32); // one block
    row[0] = 2; // the largest magnitude: scale 2 / -8 = -0.25, and 2 / -0.25 = -8 -> q 0
    row[1] = -0.25; // 1 -> q 9
    row[2] = 0.3; // -1.2 -> floor(-1.2 + 8.5) = 7, back to 0.25
    row[31] = -1.75; // 7 -> q 15
    const q = quantizeQ4(row, 1, 32);
    expect(q.scales).toEqual(Float32Array.of(-0.25));
    expect(q.data.length).toBe(16);
    expect(q.data[0]).toBe(0 | (9 << 4));
    expect(q.data[1]).toBe(7 | (8 << 4)); // value 3 is 0: q = 8
    expect(q.data[15]! >> 4).toBe(15);
    expect(Array.from(dequantizeQ4(q).slice(0, 3))).toEqual([2, -0.25, 0.25]);
  });

  it('pads the last block with zeros and stays within half a step of each value (one step where clamped)', () => {
    const rows = 3;
    const cols = 40; // a block of 32 and one of 8 padded to 32
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * 0.05);
    const q = quantizeQ4(w, rows, cols);
    expect(q.data.length).toBe(rows * 2 * 16);
    expect(q.scales.length).toBe(rows * 2);
    const back = dequantizeQ4(q);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const scale = Math.abs(q.scales[r * 2 + Math.floor(c / 32)]!);
        const v = w[r * cols + c]!;
        // [-8, 7] steps: the largest magnitude is -8 steps, a value beyond 7.5 steps on the other side is clamped
        const bound = Math.abs(v) > 7.5 * scale ? scale : scale / 2;
        expect(Math.abs(back[r * cols + c]! - v)).toBeLessThanOrEqual(bound + 1e-9);
      }
    }
  });

  it("takes the negative value of a tie for the scale, as onnxruntime's quantizer does", () => {
    const row = new Float32Array(16);
    row[0] = 1;
    row[1] = -1;
    const q = quantizeQ4(row, 1, 16, 16);
    expect(q.scales).toEqual(Float32Array.of(0.125)); // -1 / -8
    expect(Array.from(dequantizeQ4(q).slice(0, 2))).toEqual([0.875, -1]); // 1 is clamped to 7 steps
  });

  it('refuses NaN and infinite values, naming where they are', () => {
    const w = new Float32Array(64);
    w[37] = Number.NaN;
    expect(() => quantizeQ4(w, 2, 32)).toThrow('value NaN at row 1, column 5: a 4-bit block cannot hold it');
  });

  it('refuses a block size MatMulNBits does not take, and a length that is not rows x cols', () => {
    expect(() => quantizeQ4(new Float32Array(48), 1, 48, 48)).toThrow(
      'q4 block size must be one of 16, 32, 64, 128, 256, got 48',
    );
    expect(() => quantizeQ4(new Float32Array(10), 2, 6)).toThrow('expected 2 x 6 = 12 values, got 10');
  });
});

describe('q4 graphs (onnx/model_q4.onnx)', () => {
  for (const [label, overrides] of [
    ['tiny (GQA, tied head)', {}],
    ['qwen2 biases, untied head', { modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: false }],
  ] as const) {
    it(`${label}: accuracy level 0 computes the dequantized model (logits to 1e-4)`, async () => {
      const out = tmp();
      const created = await createModel({
        preset: 'tiny',
        ...overrides,
        seed: 3,
        out,
        dtypes: ['fp32', 'q4'],
        q4AccuracyLevel: 0,
      });
      expect(created.files).toEqual(expect.arrayContaining(['onnx/model.onnx', 'onnx/model_q4.onnx']));
      expect(readdirSync(join(out, 'onnx')).sort()).toEqual(['model.onnx', 'model_q4.onnx']);
      const config = resolveConfig({ preset: 'tiny', ...overrides });
      const weights = randomWeights(config, 3);
      const expected = referenceForward(dequantizedModel(config, weights), PROMPT);
      const logits = await promptLogits(join(out, 'onnx', 'model_q4.onnx'), created.config, PROMPT);
      PROMPT.forEach((_, p) => {
        expect(maxAbsDiff(logits[p]!, expected[p]!)).toBeLessThan(1e-4);
      });
      // and the quantization is real: the float32 model's logits differ
      const exact = referenceForward({ config, weights }, PROMPT);
      expect(maxAbsDiff(logits.at(-1)!, exact.at(-1)!)).toBeGreaterThan(1e-3);
    });
  }

  it('accuracy level 4 (the default, int8 compute) stays close to the dequantized model', async () => {
    const out = tmp();
    const created = await createModel({ preset: 'tiny', seed: 3, out, dtypes: ['q4'] });
    expect(created.files).toContain('onnx/model_q4.onnx');
    expect(existsSync(join(out, 'onnx', 'model.onnx'))).toBe(false);
    const config = resolveConfig({ preset: 'tiny' });
    const expected = referenceForward(dequantizedModel(config, randomWeights(config, 3)), PROMPT);
    const logits = await promptLogits(join(out, 'onnx', 'model_q4.onnx'), created.config, PROMPT);
    // the activations are rounded to 8 bits per block of 32: about 1 % of the logits' spread here
    let spread = 0;
    for (const v of expected.at(-1)!) spread = Math.max(spread, Math.abs(v));
    PROMPT.forEach((_, p) => {
      expect(maxAbsDiff(logits[p]!, expected[p]!)).toBeLessThan(0.05 * spread);
    });
  });

  it('weighs about an eighth of the float32 linear weights', async () => {
    const out = tmp();
    const fp32 = await createModel({ preset: 'tiny', seed: 1, out: tmp() });
    const q4 = await createModel({ preset: 'tiny', seed: 1, out, dtypes: ['q4'] });
    const config = fp32.config;
    const embed = config.vocabSize * config.hiddenSize * 4;
    // 4 bits a value plus a float scale per 32: 0.625 bytes a value; embeddings and norms stay float32
    const linears = weightSpecs(config)
      .filter((s) => s.kind === 'linear')
      .reduce((n, s) => n + s.shape[0]! * s.shape[1]!, 0);
    const norms = fp32.weightBytes - embed - linears * 4;
    const head = config.vocabSize * config.hiddenSize; // the tied head's quantized copy
    expect(q4.weightBytes).toBe(embed + norms + (linears + head) * 0.625);
  });

  it('progress counts the weights of every graph written', async () => {
    const events: number[] = [];
    const created = await createModel({
      preset: 'tiny',
      out: tmp(),
      dtypes: ['fp32', 'q4'],
      onProgress: (e) => events.push(e.index, e.count),
    });
    const n = weightSpecs(created.config).length;
    expect(events.slice(-2)).toEqual([2 * n - 1, 2 * n]);
    expect(events.filter((_, i) => i % 2 === 0)).toEqual(Array.from({ length: 2 * n }, (_, i) => i));
  });

  it('refuses q4 options MatMulNBits does not take before writing anything, and weights it cannot hold', async () => {
    for (const [options, field, message] of [
      [{ q4BlockSize: 48 }, 'q4BlockSize', 'must be one of 16, 32, 64, 128, 256, got 48'],
      [{ q4BlockSize: '32' }, 'q4BlockSize', 'must be one of 16, 32, 64, 128, 256, got "32"'],
      [{ q4AccuracyLevel: 5 }, 'q4AccuracyLevel', 'must be 0, 1, 2, 3 or 4, got 5'],
    ] as const) {
      const out = tmp();
      await expect(
        createModel({ preset: 'tiny', out, dtypes: ['q4'], ...(options as object) }),
      ).rejects.toThrow(new ModelConfigError(field, message));
      expect(readdirSync(out)).toEqual([]);
    }
    const config = resolveConfig({ preset: 'tiny' });
    const weights = randomWeights(config, 1);
    weights['model.layers.1.mlp.up_proj.weight']![3] = Number.POSITIVE_INFINITY;
    await expect(createModel({ preset: 'tiny', out: tmp(), dtypes: ['q4'], weights })).rejects.toThrow(
      new ModelWeightsError(
        'model.layers.1.mlp.up_proj.weight',
        'value Infinity at row 0, column 3: a 4-bit block cannot hold it',
      ),
    );
  });

  it('refuses dtypes it does not write, an empty list and a repeated one', async () => {
    for (const [dtypes, message] of [
      [['fp16'], 'dtypes: modelkit writes fp32, q4 and q8 weights, got "fp16"'],
      [[], 'dtypes: expected a non-empty list of fp32, q4, q8'],
      [['q4', 'q4'], 'dtypes: q4 is listed twice'],
    ] as const) {
      const out = tmp();
      await expect(createModel({ preset: 'tiny', out, dtypes: dtypes as never })).rejects.toThrow(
        new ModelConfigError('dtypes', message.slice('dtypes: '.length)),
      );
      expect(readdirSync(out)).toEqual([]);
    }
  });

  it('exportOnnx writes the q4 graph of a safetensors checkpoint, and refuses to replace one', async () => {
    const made = await createModel({ preset: 'tiny', seed: 5, out: tmp(), dtypes: ['q4'] });
    const dir = tmp();
    const config = made.config;
    const weights = randomWeights(config, 5);
    writeSafetensors(
      join(dir, 'model.safetensors'),
      Object.fromEntries(
        weightSpecs(config).map((s) => [s.name, { shape: s.shape, data: weights[s.name]! }]),
      ),
    );
    writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfig(config)));
    const exported = await exportOnnx({ dir, dtypes: ['q4'] });
    expect(exported.files).toEqual(['onnx/model_q4.onnx']);
    expect(exported.otherGraphs).toEqual([]);
    // the same graph and weights as createModel's
    expect(readFileSync(join(dir, 'onnx', 'model_q4.onnx'))).toEqual(
      readFileSync(join(made.dir, 'onnx', 'model_q4.onnx')),
    );
    // the float32 graph alone: the q4 one, left as it was, is named
    const fp32 = await exportOnnx({ dir });
    expect(fp32.otherGraphs).toEqual(['onnx/model_q4.onnx']);
    await expect(exportOnnx({ dir, dtypes: ['fp32', 'q4'] })).rejects.toThrow(ModelFileError);
    await expect(exportOnnx({ dir, dtypes: ['fp32', 'q4'] })).rejects.toThrow(
      `${join(dir, 'onnx', 'model.onnx')}: exists; pass \`overwrite: true\` (CLI: --force) to replace it`,
    );
  });
});
