import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  createModel,
  exportOnnx,
  fromHfConfig,
  ModelConfigError,
  ModelWeightsError,
  openSafetensors,
  randomWeightSource,
  randomWeights,
  readModel,
  referenceForward,
  resolveConfig,
  toHfConfig,
  writeOnnxModel,
} from '../src/index.js';
import { onnxType } from '../src/onnx/onnx-schema.js';
import { modelkitVersion } from '../src/package-version.js';
import { emptyPast, maxAbsDiff, step } from './ort-helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'modelkit-create-'));
const read = (dir: string, file: string) => readFileSync(join(dir, file));

describe('createModel', () => {
  it('writes the graph aside and renames it in last, clearing what interrupted runs left', async () => {
    const out = tmp();
    const first = await createModel({ preset: 'tiny', seed: 1, out, externalDataThreshold: 0 });
    expect(first.externalData).toBe(true);
    mkdirSync(join(out, 'onnx', '.partial-stale'), { recursive: true }); // as an interrupted run leaves
    writeFileSync(join(out, 'onnx', '.partial-stale', 'model.onnx'), 'cut short');
    const second = await createModel({ preset: 'tiny', seed: 2, out });
    expect(second.externalData).toBe(false);
    expect(readdirSync(join(out, 'onnx'))).toEqual(['model.onnx']); // no leftovers, no stale _data
    const session = await ort.InferenceSession.create(join(out, 'onnx', 'model.onnx'));
    expect(session.outputNames).toContain('logits');
    await session.release();
  });

  it("removes a previous model's files the new one does not write, and nothing else", async () => {
    // a tokenizer directory with the slow-tokenizer files as SmolLM's has them
    const source = (await createModel({ preset: 'tiny', seed: 1, out: tmp() })).dir;
    for (const f of ['vocab.json', 'special_tokens_map.json']) writeFileSync(join(source, f), '{}');
    writeFileSync(join(source, 'merges.txt'), '#version: 0.2\n');
    const out = tmp();
    const first = await createModel({ preset: 'tiny', seed: 1, tokenizerDir: source, out });
    expect(first.files).toContain('merges.txt');
    expect(first.removed).toEqual([]);
    // what other exports leave: other dtypes' graphs, merged decoders, PyTorch weights; and the user's own files
    const stale = [
      'onnx/model_fp16.onnx',
      'onnx/model_fp16.onnx_data',
      'onnx/decoder_model_merged.onnx',
      'model_quantized.onnx',
      'model.safetensors',
      'model-00001-of-00002.safetensors',
      'chat_template.jinja',
    ];
    const own = ['README.md', 'notes.txt', 'onnx/model_backup.onnx', 'onnx/my_model.onnx', 'vocab.json.bak'];
    for (const f of [...stale, ...own]) writeFileSync(join(out, f), 'x');
    mkdirSync(join(out, 'tokenizer.model')); // a directory of a listed name is not a model file
    const second = await createModel({ preset: 'tiny', seed: 2, out });
    expect(second.removed.sort()).toEqual(
      [...stale, 'merges.txt', 'special_tokens_map.json', 'vocab.json'].sort(),
    );
    for (const f of second.removed) expect(existsSync(join(out, f)), f).toBe(false);
    for (const f of [...own, 'tokenizer.model', ...second.files])
      expect(existsSync(join(out, f)), f).toBe(true);
    expect(readdirSync(join(out, 'onnx')).sort()).toEqual([
      'model.onnx',
      'model_backup.onnx',
      'my_model.onnx',
    ]);
  });

  it('copies a read-only tokenizer directory into files of its own mode, so a rerun can overwrite them', async () => {
    const source = (await createModel({ preset: 'tiny', seed: 1, out: tmp() })).dir;
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) chmodSync(join(source, f), 0o444);
    const out = tmp();
    for (let run = 0; run < 2; run++) {
      await createModel({ preset: 'tiny', seed: 1, tokenizerDir: source, out });
      expect(statSync(join(out, 'tokenizer.json')).mode & 0o777).toBe(0o644);
    }
    expect(read(out, 'tokenizer.json').equals(read(source, 'tokenizer.json'))).toBe(true);
  });

  it('takes the tokenizer from the directory it writes into, leaving its files whole', async () => {
    const out = (await createModel({ preset: 'tiny', seed: 1, out: tmp() })).dir;
    const before = read(out, 'tokenizer.json');
    // it used to remove tokenizer.json before copying it from itself (ENOENT, and the file gone)
    const again = await createModel({ preset: 'tiny', seed: 2, tokenizerDir: out, out });
    expect(again.files).toContain('tokenizer.json');
    expect(read(out, 'tokenizer.json').equals(before)).toBe(true);
    expect(readdirSync(out).filter((f) => f.includes('.partial-'))).toEqual([]);
  });

  it('readModel on a merged or quantized-only directory says which graphs are there and how to pass one', async () => {
    const merged = await createModel({ preset: 'tiny', out: tmp(), merged: true, dtypes: ['fp32', 'q4'] });
    expect(() => readModel(merged.dir)).toThrow(
      "onnx/model.onnx: not found; onnx/ holds decoder_model_merged.onnx, decoder_model_merged_q4.onnx; pass the graph to read: readModel(dir, join(dir, 'onnx', 'decoder_model_merged.onnx'))",
    );
    const graph = join(merged.dir, 'onnx', 'decoder_model_merged.onnx');
    expect(readModel(merged.dir, graph).config).toEqual(merged.config);
    expect(() => readModel(merged.dir, join(merged.dir, 'onnx', 'decoder_model_merged_q4.onnx'))).toThrow(
      'holds model.layers.0.self_attn.q_proj.weight quantized (a q4 or q8 graph), which readModel does not read back',
    );
    const q4 = await createModel({ preset: 'tiny', out: tmp(), dtypes: ['q4'] });
    expect(() => readModel(q4.dir)).toThrow(
      "onnx/ holds only model_q4.onnx, whose quantized weights readModel does not read back; write the model with dtypes including 'fp32'",
    );
  });

  // how long it takes is measured by bench/create.bench.mjs, not asserted here (a loaded machine is slow)
  it('writes the Hugging Face layout', async () => {
    const created = await createModel({ preset: 'tiny', seed: 1, out: tmp() });
    expect(created.files.sort()).toEqual(
      [
        'config.json',
        'generation_config.json',
        'onnx/model.onnx',
        'tokenizer.json',
        'tokenizer_config.json',
      ].sort(),
    );
    const config = JSON.parse(read(created.dir, 'config.json').toString());
    expect(config).toMatchObject({
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      hidden_size: 64,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      vocab_size: 512,
      tie_word_embeddings: true,
      bos_token_id: 1,
      eos_token_id: 2,
    });
    expect(JSON.parse(read(created.dir, 'generation_config.json').toString()).eos_token_id).toBe(2);
    expect(created.externalData).toBe(false);
  });

  it("names itself and this package's version as the graph's producer", async () => {
    const created = await createModel({ preset: 'tiny', seed: 1, out: tmp() });
    const ModelProto = onnxType('ModelProto');
    const proto = ModelProto.toObject(ModelProto.decode(read(created.dir, 'onnx/model.onnx'))) as {
      producer_name: string;
      producer_version: string;
    };
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.name).toBe('@implicit-it/modelkit');
    expect([proto.producer_name, proto.producer_version]).toEqual(['@implicit-it/modelkit', pkg.version]);
    expect(modelkitVersion()).toBe(pkg.version);
  });

  it('is seeded: the same seed writes byte-identical files, another seed different weights', async () => {
    const a = await createModel({ preset: 'tiny', seed: 7, out: tmp() });
    const b = await createModel({ preset: 'tiny', seed: 7, out: tmp() });
    const c = await createModel({ preset: 'tiny', seed: 8, out: tmp() });
    for (const file of a.files) expect(read(a.dir, file).equals(read(b.dir, file))).toBe(true);
    expect(read(a.dir, 'onnx/model.onnx').equals(read(c.dir, 'onnx/model.onnx'))).toBe(false);
    expect(read(a.dir, 'tokenizer.json').equals(read(c.dir, 'tokenizer.json'))).toBe(true);
  });

  it('random weights look like HF init (std 0.02) and logits are not degenerate', () => {
    const config = resolveConfig({ preset: 'tiny' });
    const w = randomWeights(config, 1)['model.layers.0.mlp.up_proj.weight']!;
    const mean = w.reduce((s, x) => s + x, 0) / w.length;
    const std = Math.sqrt(w.reduce((s, x) => s + (x - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(0.002);
    expect(std).toBeGreaterThan(0.019);
    expect(std).toBeLessThan(0.021);
    const logits = referenceForward({ config, weights: randomWeights(config, 1) }, [1, 2, 3]).at(-1)!;
    const spread = Math.max(...logits) - Math.min(...logits);
    expect(spread).toBeGreaterThan(0.1);
  });

  it('builds a model from given weights and reads them back by HF name', async () => {
    const config = resolveConfig({ preset: 'tiny', tieWordEmbeddings: false });
    const weights = randomWeights(config, 2);
    weights['lm_head.weight']!.fill(0.5, 77 * 64, 78 * 64);
    const created = await createModel({ preset: 'tiny', tieWordEmbeddings: false, weights, out: tmp() });
    const back = readModel(created.dir);
    expect(back.config).toEqual(config);
    for (const [name, t] of Object.entries(weights)) expect(back.weights[name]).toEqual(t);
  });

  it('safetensors: true also writes model.safetensors, the same weights, from which exportOnnx writes the same graph', async () => {
    for (const tieWordEmbeddings of [true, false]) {
      const progress: string[] = [];
      const created = await createModel({
        preset: 'tiny',
        seed: 5,
        tieWordEmbeddings,
        safetensors: true,
        out: tmp(),
        onProgress: ({ index, count }) => progress.push(`${index}/${count}`),
      });
      expect(created.files.at(-1)).toBe('model.safetensors');
      expect(readdirSync(created.dir).filter((f) => f.includes('.partial'))).toEqual([]);
      const config = resolveConfig({ preset: 'tiny', tieWordEmbeddings });
      const weights = randomWeights(config, 5);
      const ckpt = openSafetensors(created.dir);
      expect(ckpt.metadata).toEqual({ format: 'pt' });
      expect([...ckpt.tensors.keys()]).toEqual(Object.keys(weights));
      expect(ckpt.tensors.has('lm_head.weight')).toBe(!tieWordEmbeddings);
      for (const [name, values] of Object.entries(weights)) expect(ckpt.read(name)).toEqual(values);
      // the progress counts the graph's tensors, then the copy's, once each
      const n = Object.keys(weights).length;
      expect(progress).toEqual(Array.from({ length: 2 * n }, (_, i) => `${i}/${2 * n}`));
      // the checkpoint alone (config.json beside it) exports to the very graph createModel wrote
      const alone = tmp();
      copyFileSync(join(created.dir, 'config.json'), join(alone, 'config.json'));
      copyFileSync(join(created.dir, 'model.safetensors'), join(alone, 'model.safetensors'));
      await exportOnnx({ dir: alone });
      expect(read(alone, 'onnx/model.onnx').equals(read(created.dir, 'onnx/model.onnx'))).toBe(true);
    }
  });

  it('a model written again without safetensors loses the old copy, which would load instead of the new graph', async () => {
    const out = tmp();
    await createModel({ preset: 'tiny', seed: 1, safetensors: true, out });
    const again = await createModel({ preset: 'tiny', seed: 2, out });
    expect(again.removed).toEqual(['model.safetensors']);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    await expect(createModel({ preset: 'tiny', out, safetensors: 'yes' as never })).rejects.toThrow(
      'safetensors: must be true or false, got "yes"',
    );
  });

  it('rejects weights that do not fit, naming the tensor', async () => {
    const config = resolveConfig({ preset: 'tiny' });
    const weights = randomWeights(config, 1);
    weights['model.norm.weight'] = new Float32Array(3);
    await expect(createModel({ weights, out: tmp() })).rejects.toThrow(ModelWeightsError);
    await expect(createModel({ weights, out: tmp() })).rejects.toThrow(/model\.norm\.weight: has 3 values/);
    const extra = { ...randomWeights(config, 1), 'lm_head.weight': new Float32Array(512 * 64) };
    await expect(createModel({ weights: extra, out: tmp() })).rejects.toThrow(/tieWordEmbeddings/);
  });

  it('counts the rotary tables against the threshold too (a long context makes them large)', async () => {
    const small = await createModel({ preset: 'tiny', seed: 1, out: tmp() });
    // rotary cos/sin tables of 65536 positions x 8 frequencies: 4 MiB, no weight among them
    const created = await createModel({
      preset: 'tiny',
      seed: 1,
      maxPositionEmbeddings: 65536,
      externalDataThreshold: small.weightBytes + 1024 ** 2,
      out: tmp(),
    });
    expect(created.weightBytes).toBe(small.weightBytes);
    expect(created.externalData).toBe(true);
  });

  it('writes weights to onnx/model.onnx_data above the external-data threshold, and they load', async () => {
    const created = await createModel({ preset: 'tiny', seed: 9, externalDataThreshold: 1000, out: tmp() });
    expect(created.externalData).toBe(true);
    expect(readdirSync(join(created.dir, 'onnx')).sort()).toEqual(['model.onnx', 'model.onnx_data']);
    const modelSize = statSync(join(created.dir, 'onnx', 'model.onnx')).size;
    expect(modelSize).toBeLessThan(created.weightBytes / 4);
    // Tensors under 1 KiB (the norm weights) stay inline, as onnx's external-data converter keeps them.
    expect(statSync(join(created.dir, 'onnx', 'model.onnx_data')).size).toBeGreaterThan(
      created.weightBytes * 0.95,
    );
    const session = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
    const ids = [4, 8, 15, 16, 23, 42];
    const out = await step(
      session,
      created.config,
      [ids],
      [ids.map(() => 1)],
      [ids.map((_, i) => i)],
      emptyPast(created.config, 1),
    );
    const expected = referenceForward(
      { config: created.config, weights: randomWeights(created.config, 9) },
      ids,
    );
    expect(maxAbsDiff(out.logits[0]![5]!, expected[5]!)).toBeLessThan(1e-4);
    expect(readModel(created.dir).weights['model.embed_tokens.weight']).toEqual(
      randomWeights(created.config, 9)['model.embed_tokens.weight'],
    );
  });
});

describe('impossible configs are rejected with the field named', () => {
  const cases: [string, Parameters<typeof resolveConfig>[0], string, RegExp][] = [
    [
      'hidden not divisible by heads',
      { hiddenSize: 60, numAttentionHeads: 7 },
      'hiddenSize',
      /not divisible by numAttentionHeads 7/,
    ],
    [
      'kv heads not dividing heads',
      { numKeyValueHeads: 3 },
      'numKeyValueHeads',
      /does not divide numAttentionHeads 4/,
    ],
    ['odd head dim', { headDim: 15 }, 'headDim', /even/],
    ['zero layers', { numHiddenLayers: 0 }, 'numHiddenLayers', /positive integer/],
    ['eos outside vocab', { eosTokenId: 600 }, 'eosTokenId', /below vocabSize 512/],
    ['unknown model type', { modelType: 'gpt2' as 'llama' }, 'modelType', /not supported/],
    ['sliding window on llama', { slidingWindow: 8 }, 'slidingWindow', /needs modelType "qwen2"/],
    [
      'qwen2 without its q/k/v biases',
      { modelType: 'qwen2', attentionBias: false },
      'attentionBias',
      /must be true for modelType "qwen2"/,
    ],
    [
      'llama with attention_bias (an o_proj bias modelkit does not build)',
      { attentionBias: true },
      'attentionBias',
      /must be false for modelType "llama": Llama's attention_bias also puts a bias on o_proj/,
    ],
    [
      'fractional sliding window',
      { modelType: 'qwen2', slidingWindow: 2.5 },
      'slidingWindow',
      /positive integer or null, got 2.5/,
    ],
  ];
  for (const [label, input, field, message] of cases) {
    it(label, () => {
      try {
        resolveConfig(input);
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(ModelConfigError);
        expect((error as ModelConfigError).field).toBe(field);
        expect((error as ModelConfigError).code).toBe('modelkit.invalid_config');
        expect((error as Error).message).toMatch(message);
      }
    });
  }

  it('a sliding window round-trips through config.json as Qwen2 writes it', () => {
    const config = resolveConfig({
      preset: 'tiny',
      modelType: 'qwen2',
      attentionBias: true,
      slidingWindow: 6,
    });
    const json = toHfConfig(config);
    expect(json).toMatchObject({ use_sliding_window: true, sliding_window: 6, max_window_layers: 0 });
    expect(fromHfConfig(json)).toEqual(config);
    const plain = toHfConfig({ ...config, slidingWindow: null });
    expect(plain.use_sliding_window).toBe(false);
    expect(fromHfConfig(plain).slidingWindow).toBeUndefined();
    expect(() => fromHfConfig({ ...json, max_window_layers: 2 })).toThrow(
      /max_window_layers: must be 0 with use_sliding_window/,
    );
  });

  it('referenceForward refuses positions outside the rotary tables, naming positionIds (they gave NaN)', () => {
    const config = resolveConfig({ preset: 'tiny', numHiddenLayers: 1, maxPositionEmbeddings: 4 });
    const model = { config, weights: randomWeights(config, 1) };
    for (const [positionIds, shownValue] of [
      [[0, 4], '4 at index 1'],
      [[-1, 0], '-1 at index 0'],
      [[0, 1.5], '1.5 at index 1'],
    ] as const) {
      expect(() => referenceForward(model, [5, 6], { positionIds: [...positionIds] })).toThrow(
        ModelConfigError,
      );
      expect(() => referenceForward(model, [5, 6], { positionIds: [...positionIds] })).toThrow(
        `positionIds: ${shownValue} is not a position in [0, 4) (maxPositionEmbeddings)`,
      );
    }
    expect(() => referenceForward(model, [5, 6, 7, 8, 9])).toThrow(
      "positionIds: 4 at index 4 is not a position in [0, 4) (maxPositionEmbeddings); the input is longer than the model's context",
    );
    expect(referenceForward(model, [5, 6, 7, 8]).at(-1)!.every(Number.isFinite)).toBe(true);
  });

  it('referenceForward names input that is not an array of token ids', () => {
    const config = resolveConfig({ preset: 'tiny', numHiddenLayers: 1 });
    const model = { config, weights: randomWeights(config, 1) };
    const forward = (ids: unknown) => () => referenceForward(model, ids as number[]);
    expect(forward('Hello')).toThrow(ModelConfigError);
    expect(forward('Hello')).toThrow(
      'inputIds: expected an array of token ids (integers below vocabSize 512), got "Hello": tokenize the text first',
    );
    expect(forward(new Int32Array([5, 6]))).toThrow(
      'inputIds: expected an array of token ids (integers below vocabSize 512), got Int32Array (Array.from makes an array of it)',
    );
    expect(forward([5, '6'])).toThrow('inputIds: "6" is not an id below vocabSize 512');
    expect(forward([5, 512])).toThrow('inputIds: 512 is not an id below vocabSize 512');
  });

  it('a preset named after an Object property is an unknown preset (toString was taken for one)', () => {
    for (const preset of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
      expect(() => resolveConfig({ preset } as never)).toThrow(
        `preset: unknown preset ${JSON.stringify(preset)}; use one of tiny, smollm2-135m`,
      );
    }
  });

  it('values are shown as JSON, so a string "2" is not read as the number 2', () => {
    expect(() => resolveConfig({ numHiddenLayers: '2' } as never)).toThrow(
      'numHiddenLayers: must be a positive integer, got "2"',
    );
    expect(() => resolveConfig({ rmsNormEps: '1e-5' } as never)).toThrow(
      'rmsNormEps: must be a positive finite number, got "1e-5"',
    );
    expect(() => resolveConfig({ eosTokenId: '2' } as never)).toThrow(
      'eosTokenId: "2" is not an id below vocabSize 512',
    );
    expect(() => resolveConfig({ tieWordEmbeddings: 'true' } as never)).toThrow(
      'tieWordEmbeddings: must be true or false, got "true"',
    );
    expect(() => resolveConfig({ modelType: 5 } as never)).toThrow('modelType: 5 is not supported');
    expect(() => resolveConfig({ rmsNormEps: Number.NaN })).toThrow('got NaN');
  });

  it('vocab smaller than the tokenizer', async () => {
    const error = await createModel({ preset: 'tiny', vocabSize: 300, out: tmp() }).catch((e) => e);
    expect(error).toBeInstanceOf(ModelConfigError);
    expect(error.message).toMatch(
      /vocabSize: 300 is smaller than the tokenizer's 512 ids; set vocabSize to at least 512/,
    );
    // the value that fits, for a caller to offer without reading the message (the CLI names its flags)
    expect(error.atLeast).toBe(512);
    // other config errors carry none
    expect(() => resolveConfig({ hiddenSize: 63 })).toThrow(
      expect.objectContaining({ field: 'hiddenSize', atLeast: undefined }),
    );
  });

  it('writes nothing for a rejected config', async () => {
    const out = join(tmp(), 'never');
    await expect(createModel({ numKeyValueHeads: 3, out })).rejects.toThrow(ModelConfigError);
    expect(existsSync(out)).toBe(false);
  });

  it('qwen2 gets its biases by default', () => {
    expect(resolveConfig({ preset: 'tiny', modelType: 'qwen2' }).attentionBias).toBe(true);
  });

  it('config.json features modelkit cannot build are refused, not dropped', () => {
    const json = toHfConfig(resolveConfig({ preset: 'tiny' }));
    expect(() => fromHfConfig({ ...json, rope_scaling: { rope_type: 'llama3', factor: 32 } })).toThrow(
      /rope_scaling: \{"rope_type":"llama3","factor":32\} is not supported/,
    );
    expect(() => fromHfConfig({ ...json, hidden_act: 'gelu' })).toThrow(
      'hidden_act: "gelu" is not supported',
    );
    expect(() => fromHfConfig({ ...json, mlp_bias: true })).toThrow(/mlp_bias: true is not supported/);
    expect(() => fromHfConfig({ ...json, attention_bias: true })).toThrow(/attentionBias: must be false/);
  });

  it('reads transformers 5 configs: rope_parameters and layer_types', () => {
    const {
      rope_theta: _theta,
      rope_scaling: _scaling,
      ...json
    } = toHfConfig(resolveConfig({ preset: 'tiny' }));
    const v5 = { ...json, rope_parameters: { rope_type: 'default', rope_theta: 5000 } };
    expect(fromHfConfig(v5).ropeTheta).toBe(5000);
    expect(fromHfConfig({ ...v5, layer_types: ['full_attention', 'full_attention'] }).ropeTheta).toBe(5000);
    expect(() =>
      fromHfConfig({ ...v5, rope_parameters: { rope_type: 'llama3', rope_theta: 5e5, factor: 8 } }),
    ).toThrow(/^rope_parameters: \{"rope_type":"llama3",.*\} is not supported/);
    expect(() => fromHfConfig({ ...v5, layer_types: ['full_attention', 'sliding_attention'] })).toThrow(
      'layer_types: layer 1 is "sliding_attention", but no sliding window is configured',
    );
  });

  it('a missing or empty out is refused, naming out (an empty one used to write into the current directory)', async () => {
    for (const out of [undefined, '', '  ']) {
      const options = { preset: 'tiny', out } as unknown as Parameters<typeof createModel>[0];
      await expect(createModel(options)).rejects.toThrow(ModelConfigError);
      await expect(createModel(options)).rejects.toThrow(
        `out: expected the path of the model directory to write (e.g. '/tmp/tiny'), got ${JSON.stringify(out) ?? 'undefined'}`,
      );
    }
  });

  it('an unknown option is refused with the option meant (dtype, hiddenSzie used to be ignored)', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { dtype: ['q4'] },
        /^dtype: not an option of createModel \(did you mean dtypes\?\); its options are preset, /,
      ],
      [{ hiddenSzie: 32 }, /^hiddenSzie: not an option of createModel \(did you mean hiddenSize\?\)/],
      [{ kv_dtype: 'float16' }, /^kv_dtype: not an option of createModel \(did you mean kvDtype\?\)/],
      [{ colour: 'red' }, /^colour: not an option of createModel; its options are /],
    ];
    for (const [extra, message] of cases) {
      const out = join(tmp(), 'never');
      const options = { preset: 'tiny', out, ...extra } as Parameters<typeof createModel>[0];
      await expect(createModel(options)).rejects.toThrow(ModelConfigError);
      await expect(createModel(options)).rejects.toThrow(message);
      expect(existsSync(out)).toBe(false);
    }
    // an option left undefined is no option given
    await expect(createModel({ preset: 'tiny', out: tmp(), ...{ dtype: undefined } })).resolves.toBeDefined();
    expect(() => resolveConfig({ preset: 'tiny', hiddenSzie: 32 } as never)).toThrow(
      /^hiddenSzie: not an option of resolveConfig \(did you mean hiddenSize\?\)/,
    );
  });

  it('graph option values it does not know are refused, naming the option (they fell back to the default graph)', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ kvDtype: 'fp16' }, 'kvDtype: must be "float32" or "float16", got "fp16"'],
      [{ linear: 'conv' }, 'linear: must be "gemm" or "matmul", got "conv"'],
      [{ repeatKv: 'tile' }, 'repeatKv: must be "grouped" or "expand", got "tile"'],
      [{ merged: 'yes' }, 'merged: must be true or false, got "yes"'],
      [{ positionIds: 0 }, 'positionIds: must be true or false, got 0'],
      [
        { externalDataThreshold: 'big' },
        'externalDataThreshold: must be a number of bytes >= 0 (0: all weights external), got "big"',
      ],
      [
        { externalDataThreshold: -1 },
        'externalDataThreshold: must be a number of bytes >= 0 (0: all weights external), got -1',
      ],
      [{ onProgress: true }, 'onProgress: must be a function ({ tensor, index, count }) => void, got true'],
    ];
    for (const [extra, message] of cases) {
      const out = join(tmp(), 'never');
      const options = { preset: 'tiny', out, ...extra } as Parameters<typeof createModel>[0];
      await expect(createModel(options)).rejects.toThrow(ModelConfigError);
      await expect(createModel(options)).rejects.toThrow(message);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('a seed that is not an integer in [0, 2^32) is refused (1.5 and 1 used to give the same weights)', async () => {
    for (const seed of [1.5, -1, 2 ** 32, Number.NaN]) {
      await expect(createModel({ preset: 'tiny', seed, out: tmp() })).rejects.toThrow(
        `seed: must be an integer in [0, 2^32), got ${seed}`,
      );
    }
  });

  it('a weight tensor larger than one Float32Array names the field', async () => {
    const out = join(tmp(), 'never');
    await expect(createModel({ preset: 'tiny', vocabSize: 2 ** 31, out })).rejects.toThrow(
      /vocabSize: makes model\.embed_tokens\.weight \[2147483648, 64\] 512\.0 GiB, more than one Float32Array can hold/,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('a failed write leaves no partial graph behind', async () => {
    const out = tmp();
    const failing = (spec: { name: string }) => {
      if (spec.name.includes('layers.1.')) throw new Error('disk full');
      return new Float32Array(0);
    };
    await expect(createModel({ preset: 'tiny', weights: failing as never, out })).rejects.toThrow();
    expect(readdirSync(join(out, 'onnx'))).toEqual([]);
  });
});

describe("special ids are the written tokenizer's", () => {
  it("a real-shape preset with the built-in tokenizer gets the tokenizer's ids, not its real ones", async () => {
    // qwen2.5-0.5b names 151643 (Qwen's <|endoftext|>), which the built-in 512-id tokenizer lacks
    const created = await createModel({
      preset: 'qwen2.5-0.5b',
      numHiddenLayers: 1,
      hiddenSize: 32,
      numAttentionHeads: 2,
      numKeyValueHeads: 1,
      intermediateSize: 32,
      seed: 1,
      out: tmp(),
    });
    expect([created.config.bosTokenId, created.config.eosTokenId, created.config.padTokenId]).toEqual([
      1, 2, 0,
    ]);
    const generation = JSON.parse(read(created.dir, 'generation_config.json').toString());
    expect(generation).toMatchObject({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 });
  });

  it('an explicit id the tokenizer does not have is refused, naming the field', async () => {
    await expect(
      createModel({ preset: 'tiny', vocabSize: 1024, eosTokenId: 700, out: join(tmp(), 'never') }),
    ).rejects.toThrow(/eosTokenId: 700 is not a token of the tokenizer \(512 ids\)/);
  });
});

it('writeOnnxModel creates the directory of the file it writes (onnx/ of a new model directory)', async () => {
  const file = join(tmp(), 'new-model', 'onnx', 'model.onnx');
  const config = resolveConfig({ preset: 'tiny' });
  const written = writeOnnxModel(file, config, randomWeightSource(1));
  expect(written.files).toEqual([file]);
  const session = await ort.InferenceSession.create(file);
  expect(session.inputNames).toContain('input_ids');
  await session.release();
});
