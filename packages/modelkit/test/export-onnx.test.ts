import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createModel,
  type DecoderConfig,
  exportOnnx,
  ModelConfigError,
  ModelFileError,
  ModelWeightsError,
  openSafetensors,
  randomWeights,
  readModel,
  resolveConfig,
  toHfConfig,
  weightSpecs,
  writeSafetensors,
} from '../src/index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'modelkit-export-'));

/** A raw safetensors file: tensors of any dtype, given as their bytes (header padded to 8). */
function writeRaw(
  file: string,
  tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[],
) {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(
    file,
    Buffer.concat([length, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.bytes))]),
  );
}

/** Weights as `name -> { shape, data }` for writeSafetensors. */
function named(config: DecoderConfig, weights: Record<string, Float32Array>) {
  return Object.fromEntries(
    weightSpecs(config).map((s) => [s.name, { shape: s.shape, data: weights[s.name]! }]),
  );
}

/** createModel's directory for these weights, and a second directory with only its config.json. */
async function pair(overrides: Parameters<typeof resolveConfig>[0], weights: Record<string, Float32Array>) {
  const reference = await createModel({ ...overrides, weights, out: tmp() });
  const dir = tmp();
  copyFileSync(join(reference.dir, 'config.json'), join(dir, 'config.json'));
  return { reference: reference.dir, dir };
}

const graphBytes = (dir: string) => readFileSync(join(dir, 'onnx', 'model.onnx'));

/** float32 values rounded toward zero to bfloat16, and their bf16 bit patterns. */
function toBf16(values: Float32Array): { widened: Float32Array; bytes: Uint8Array } {
  const words = new Uint32Array(Float32Array.from(values).buffer);
  const half = new Uint16Array(words.length);
  for (let i = 0; i < words.length; i++) {
    half[i] = words[i]! >>> 16;
    words[i] = (half[i]! << 16) >>> 0;
  }
  return { widened: new Float32Array(words.buffer), bytes: new Uint8Array(half.buffer) };
}

describe('exportOnnx', () => {
  it('writes the same graph createModel writes for the same weights (F32, tied and untied, qwen2 biases)', async () => {
    for (const overrides of [
      { preset: 'tiny' as const },
      { preset: 'tiny' as const, tieWordEmbeddings: false },
      { preset: 'tiny' as const, modelType: 'qwen2' as const },
    ]) {
      const config = resolveConfig(overrides);
      const weights = randomWeights(config, 3);
      const { reference, dir } = await pair(overrides, weights);
      writeSafetensors(join(dir, 'model.safetensors'), named(config, weights));
      const progress: number[] = [];
      const exported = await exportOnnx({ dir, onProgress: (p) => progress.push(p.index) });
      expect(exported.files).toEqual(['onnx/model.onnx']);
      expect(exported.sourceDtypes).toEqual(['F32']);
      expect(exported.ignored).toEqual([]);
      expect(exported.config).toEqual(config);
      expect(progress).toEqual(weightSpecs(config).map((_, i) => i));
      expect(graphBytes(dir).equals(graphBytes(reference))).toBe(true);
      // nothing else in the directory was written
      expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe(
        readFileSync(join(reference, 'config.json'), 'utf8'),
      );
    }
  });

  it('widens BF16 and F16 weights exactly, and reads shards through model.safetensors.index.json', async () => {
    const config = resolveConfig({ preset: 'tiny' });
    const weights = randomWeights(config, 4);
    const specs = weightSpecs(config);
    // every tensor stored as bf16: the model is the one whose float32 weights are the bf16 values
    const bf16 = Object.fromEntries(specs.map((s) => [s.name, toBf16(weights[s.name]!)]));
    const widened = Object.fromEntries(specs.map((s) => [s.name, bf16[s.name]!.widened]));
    const { reference, dir } = await pair({ preset: 'tiny' }, widened);
    const half = Math.floor(specs.length / 2);
    const shards = [specs.slice(0, half), specs.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeRaw(
        join(dir, file),
        part.map((s) => ({ name: s.name, dtype: 'BF16', shape: s.shape, bytes: bf16[s.name]!.bytes })),
      );
      for (const s of part) weightMap[s.name] = file;
    });
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const exported = await exportOnnx({ dir });
    expect(exported.source).toBe(join(dir, 'model.safetensors.index.json'));
    expect(exported.sourceDtypes).toEqual(['BF16']);
    expect(graphBytes(dir).equals(graphBytes(reference))).toBe(true);

    // F16 bit patterns: 1, -2, 0.5, the largest half (65504), the smallest subnormal (2^-24), -0, +inf
    const f16 = Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000, 0x7c00]);
    const one = tmp();
    writeRaw(join(one, 'model.safetensors'), [
      { name: 'x', dtype: 'F16', shape: [7], bytes: new Uint8Array(f16.buffer) },
      { name: 'y', dtype: 'F64', shape: [2], bytes: new Uint8Array(Float64Array.from([0.1, -3]).buffer) },
    ]);
    const ckpt = openSafetensors(one);
    expect([...ckpt.read('x')]).toEqual([1, -2, 0.5, 65504, 2 ** -24, -0, Number.POSITIVE_INFINITY]);
    expect([...ckpt.read('y')]).toEqual([Math.fround(0.1), -3]);
    expect(ckpt.metadata).toEqual({ format: 'pt' });
  });

  it("takes a bare decoder's names, ignores rotary buffers and a tied lm_head, and leaves other files alone", async () => {
    const config = resolveConfig({ preset: 'tiny' });
    const weights = randomWeights(config, 5);
    const { reference, dir } = await pair({ preset: 'tiny' }, weights);
    const tensors = Object.fromEntries(
      Object.entries(named(config, weights)).map(([name, t]) => [name.replace(/^model\./, ''), t]),
    );
    tensors['layers.0.self_attn.rotary_emb.inv_freq'] = { shape: [8], data: new Float32Array(8) };
    tensors['lm_head.weight'] = {
      shape: [config.vocabSize, config.hiddenSize],
      data: weights['model.embed_tokens.weight']!,
    };
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    writeFileSync(join(dir, 'README.md'), 'mine');
    const exported = await exportOnnx({ dir });
    expect(exported.ignored).toEqual(['layers.0.self_attn.rotary_emb.inv_freq', 'lm_head.weight']);
    expect(graphBytes(dir).equals(graphBytes(reference))).toBe(true);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toBe('mine');
    // a misspelt option is refused before anything is written, naming the one meant
    await expect(exportOnnx({ dir, overwite: true } as never)).rejects.toThrow(
      'overwite: not an option of exportOnnx (did you mean overwrite?); its options are dir, base, dtypes, overwrite,',
    );
    await expect(exportOnnx({ dir, dtype: ['q4'] } as never)).rejects.toThrow(
      /^dtype: not an option of exportOnnx \(did you mean dtypes\?\)/,
    );
    // a second export needs overwrite
    await expect(exportOnnx({ dir })).rejects.toThrow(
      `${join(dir, 'onnx', 'model.onnx')}: exists; pass \`overwrite: true\` (CLI: --force) to replace it`,
    );
    expect((await exportOnnx({ dir, overwrite: true, externalDataThreshold: 0 })).files).toEqual([
      'onnx/model.onnx',
      'onnx/model.onnx_data',
    ]);
  });

  it('refuses what it cannot convert, naming the file and tensor', async () => {
    const config = resolveConfig({ preset: 'tiny' });
    const weights = randomWeights(config, 6);
    const withConfig = (hf: Record<string, unknown> = toHfConfig(config)) => {
      const dir = tmp();
      writeFileSync(join(dir, 'config.json'), JSON.stringify(hf));
      return dir;
    };
    const fail = async (dir: string) => (await exportOnnx({ dir }).catch((e: unknown) => e)) as Error;

    const empty = tmp();
    expect((await fail(empty)).message).toBe(
      `${join(empty, 'config.json')}: missing: a Hugging Face model directory has config.json beside its weights`,
    );
    const bom = tmp();
    writeFileSync(join(bom, 'config.json'), `\ufeff${JSON.stringify(toHfConfig(config))}`);
    expect((await fail(bom)).message).toBe(
      `${join(bom, 'config.json')}: starts with a UTF-8 byte order mark, which JSON readers (Python's json, Rust's serde_json) refuse; save it as UTF-8 without BOM`,
    );
    const none = withConfig();
    const noWeights = `${join(none, 'model.safetensors')}: missing, and no model.safetensors.index.json: ${none} holds no safetensors weights`;
    expect((await fail(none)).message).toBe(noWeights);
    // a graph already there (an ONNX-only model directory): still the missing weights, not the graph
    mkdirSync(join(none, 'onnx'));
    writeFileSync(join(none, 'onnx', 'model.onnx'), 'x');
    expect((await fail(none)).message).toBe(noWeights);
    const pickle = withConfig();
    writeFileSync(join(pickle, 'pytorch_model.bin'), 'x');
    expect((await fail(pickle)).message).toMatch(
      /PyTorch pickle weights \(pytorch_model\.bin\).*safe_serialization=True/,
    );

    const scaled = withConfig({ ...toHfConfig(config), rope_scaling: { rope_type: 'llama3', factor: 8 } });
    const scaledError = await fail(scaled);
    expect(scaledError).toBeInstanceOf(ModelConfigError);
    expect(scaledError.message).toMatch(/^rope_scaling: .* is not supported/);

    const all = named(config, weights);
    const missing = withConfig();
    const { 'model.norm.weight': _norm, ...withoutNorm } = all;
    writeSafetensors(join(missing, 'model.safetensors'), withoutNorm);
    const missingError = await fail(missing);
    expect(missingError).toBeInstanceOf(ModelWeightsError);
    expect(missingError.message).toBe(
      `model.norm.weight: missing from ${join(missing, 'model.safetensors')}`,
    );

    const untied = withConfig({ ...toHfConfig(config), tie_word_embeddings: false });
    writeSafetensors(join(untied, 'model.safetensors'), all);
    expect((await fail(untied)).message).toMatch(
      /^lm_head\.weight: missing .*set it true if the model reuses/,
    );

    const misshaped = withConfig();
    writeSafetensors(join(misshaped, 'model.safetensors'), {
      ...all,
      'model.norm.weight': { shape: [2, 32], data: weights['model.norm.weight']! },
    });
    expect((await fail(misshaped)).message).toBe(
      `model.norm.weight: is [2, 32] in ${join(misshaped, 'model.safetensors')}, but config.json makes it [64]`,
    );

    const lora = withConfig();
    writeSafetensors(join(lora, 'model.safetensors'), {
      ...all,
      'model.layers.0.self_attn.q_proj.lora_A.weight': { shape: [8, 64], data: new Float32Array(512) },
    });
    expect((await fail(lora)).message).toMatch(
      /has no place for: model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight \(LoRA weights: merge the adapter/,
    );

    const int8 = withConfig();
    writeRaw(join(int8, 'model.safetensors'), [
      { name: 'q', dtype: 'I8', shape: [4], bytes: new Uint8Array(4) },
    ]);
    expect(() => openSafetensors(int8).read('q')).toThrow(
      `${join(int8, 'model.safetensors')}: tensor "q" is I8; modelkit reads F32, F16, BF16 and F64 weights (a quantized checkpoint must be dequantized first)`,
    );

    const truncated = withConfig();
    writeSafetensors(join(truncated, 'model.safetensors'), all);
    const bytes = readFileSync(join(truncated, 'model.safetensors'));
    writeFileSync(join(truncated, 'model.safetensors'), bytes.subarray(0, bytes.length - 10));
    const truncatedError = await fail(truncated);
    expect(truncatedError).toBeInstanceOf(ModelFileError);
    expect(truncatedError.message).toMatch(/past the end of the file .*: the file is truncated$/);

    const garbage = withConfig();
    writeFileSync(join(garbage, 'model.safetensors'), Buffer.from('not a safetensors file at all'));
    expect((await fail(garbage)).message).toMatch(
      /model\.safetensors: not a safetensors file: header length \d+ does not fit/,
    );

    const shardless = withConfig();
    writeFileSync(
      join(shardless, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { 'model.norm.weight': 'model-00001-of-00002.safetensors' } }),
    );
    expect((await fail(shardless)).message).toBe(
      `${join(shardless, 'model-00001-of-00002.safetensors')}: missing (listed in model.safetensors.index.json)`,
    );
    // every check runs before anything is written
    for (const dir of [missing, misshaped, lora, truncated])
      expect(existsSync(join(dir, 'onnx'))).toBe(false);
  });
});

describe('exportOnnx of a LoRA adapter', () => {
  const config = resolveConfig({ preset: 'tiny' });
  const weights = randomWeights(config, 7);
  const targets = ['model.layers.0.self_attn.q_proj', 'model.layers.1.mlp.down_proj'];

  /** A base model directory (config, tokenizer, model.safetensors) and a peft-style adapter directory for it. */
  async function adapterPair(adapterConfig: Record<string, unknown> = {}, rank = 4) {
    const base = (await createModel({ preset: 'tiny', weights, out: tmp() })).dir;
    writeSafetensors(join(base, 'model.safetensors'), named(config, weights));
    const dir = tmp();
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(base, f), join(dir, f));
    writeFileSync(
      join(dir, 'adapter_config.json'),
      JSON.stringify({
        peft_type: 'LORA',
        base_model_name_or_path: base,
        r: rank,
        lora_alpha: 8,
        bias: 'none',
        ...adapterConfig,
      }),
    );
    const specs = new Map(weightSpecs(config).map((s) => [s.name, s]));
    const lora: Record<string, { shape: number[]; data: Float32Array }> = {};
    targets.forEach((t, n) => {
      const [rows, cols] = specs.get(`${t}.weight`)!.shape as [number, number];
      const fill = (len: number, k: number) =>
        Float32Array.from({ length: len }, (_, i) => Math.sin(i * 0.37 + k + n) * 0.1);
      lora[`base_model.model.${t}.lora_A.weight`] = { shape: [rank, cols], data: fill(rank * cols, 1) };
      lora[`base_model.model.${t}.lora_B.weight`] = { shape: [rows, rank], data: fill(rows * rank, 2) };
    });
    writeSafetensors(join(dir, 'adapter_model.safetensors'), lora);
    return { base, dir, lora, rank };
  }

  it('merges W + alpha / r * B A into the base, and makes the adapter directory a model directory', async () => {
    for (const [extra, scale] of [
      [{}, 8 / 4],
      [{ use_rslora: true }, 8 / 2],
    ] as const) {
      const { base, dir, lora, rank } = await adapterPair(extra);
      const exported = await exportOnnx({ dir });
      expect(exported.adapter).toEqual({ base, rank, scale, matrices: 2 });
      expect(exported.files).toEqual(['config.json', 'generation_config.json', 'onnx/model.onnx']);
      expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe(
        readFileSync(join(base, 'config.json'), 'utf8'),
      );
      const merged = readModel(dir).weights;
      for (const spec of weightSpecs(config)) {
        const target = spec.name.replace(/\.weight$/, '');
        if (!targets.includes(target)) {
          expect(merged[spec.name], spec.name).toEqual(weights[spec.name]);
          continue;
        }
        // the merge computed here in float64, element by element
        const [rows, cols] = spec.shape as [number, number];
        const a = lora[`base_model.model.${target}.lora_A.weight`]!.data;
        const b = lora[`base_model.model.${target}.lora_B.weight`]!.data;
        let worst = 0;
        for (let i = 0; i < rows; i++) {
          for (let j = 0; j < cols; j++) {
            let sum = 0;
            for (let k = 0; k < rank; k++) sum += b[i * rank + k]! * a[k * cols + j]!;
            const want = weights[spec.name]![i * cols + j]! + scale * sum;
            worst = Math.max(worst, Math.abs(merged[spec.name]![i * cols + j]! - want));
          }
        }
        expect(worst, spec.name).toBeLessThan(1e-6);
        expect(merged[spec.name]).not.toEqual(weights[spec.name]); // the adapter changed it
      }
    }
  });

  it('refuses adapters a plain merge does not cover, and a base it cannot find', async () => {
    const fail = async (dir: string, base?: string) =>
      ((await exportOnnx({ dir, base }).catch((e: unknown) => e)) as Error).message;
    const dora = await adapterPair({ use_dora: true });
    expect(await fail(dora.dir)).toBe(
      `${join(dora.dir, 'adapter_config.json')}: use_dora: true is not supported (modelkit merges plain LoRA: W + alpha / r * B A); merge with peft's merge_and_unload() and save the model instead`,
    );
    const saved = await adapterPair({ modules_to_save: ['lm_head'] });
    expect(await fail(saved.dir)).toMatch(/: modules_to_save: \["lm_head"\] is not supported/);
    const elsewhere = await adapterPair({ base_model_name_or_path: 'meta-llama/Llama-2-7b-hf' });
    expect(await fail(elsewhere.dir)).toBe(
      `${join(elsewhere.dir, 'adapter_config.json')}: its base model "meta-llama/Llama-2-7b-hf" is not a local model directory (no config.json there); give the base model directory with the \`base\` option (CLI: --base DIR)`,
    );
    // the base given explicitly
    expect((await exportOnnx({ dir: elsewhere.dir, base: elsewhere.base })).adapter?.matrices).toBe(2);
    const ranked = await adapterPair({ r: 8 });
    expect(await fail(ranked.dir)).toMatch(
      /^base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight: is \[4, 64\] in .*adapter_model\.safetensors, expected \[8, 64\] \(r 8, model\.layers\.0\.self_attn\.q_proj\.weight \[64, 64\]\)$/,
    );
    const embedding = await adapterPair();
    writeSafetensors(join(embedding.dir, 'adapter_model.safetensors'), {
      ...embedding.lora,
      'base_model.model.model.embed_tokens.lora_embedding_A': {
        shape: [4, 512],
        data: new Float32Array(2048),
      },
    });
    expect(await fail(embedding.dir)).toMatch(
      /^base_model\.model\.model\.embed_tokens\.lora_embedding_A: in .* is not the A or B matrix of a linear layer of this llama model/,
    );
    for (const dir of [dora.dir, saved.dir, ranked.dir, embedding.dir])
      expect(existsSync(join(dir, 'config.json'))).toBe(false);
  });
});
