import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  DecoderSession,
  loadModel,
  ModelLoadError,
  modelDirOf,
  nearMiss,
  patchDecoderGraph,
  providerStatus,
  resolveModel,
  resolveModelFiles,
} from '../src/index.js';
import { diverseModelDir, expectClose, PROMPTS, promptStep, tinyModel } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'runtime-dir-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function copyModel(name: string): Promise<string> {
  const dir = join(work, name);
  cpSync(await diverseModelDir(), dir, { recursive: true });
  return dir;
}

describe('model directory validation', () => {
  it('a path that is not a directory', () => {
    expect(() => resolveModelFiles(join(work, 'nope'))).toThrow(
      `${join(work, 'nope')}: not a directory (expected a Hugging Face model directory with config.json and onnx/model.onnx)`,
    );
    // a file of a model given for its directory: the directory to give instead
    const file = join(work, 'config.json');
    writeFileSync(file, '{}');
    expect(() => resolveModelFiles(file)).toThrow(
      `${file}: a file, not a model directory; give the directory that holds it (${work})`,
    );
    // its ONNX graph: the model directory is the one above onnx/, which the folder itself is not
    const graph = join(work, 'onnx', 'model.onnx');
    mkdirSync(join(work, 'onnx'));
    writeFileSync(graph, '');
    expect(() => resolveModelFiles(graph)).toThrow(
      `${graph}: a file, not a model directory; give the directory that holds it (${work})`,
    );
    expect(() => resolveModelFiles(join(work, 'onnx'))).toThrow(
      `${join(work, 'onnx', 'config.json')} is missing: ${join(work, 'onnx')} is not a Hugging Face model directory; give the model directory above it (${work})`,
    );
    expect([modelDirOf('m/onnx/model_q4.onnx'), modelDirOf('m/model.safetensors')]).toEqual(['m', 'm']);
  });

  it('a missing directory beside one of a nearby name suggests it; an empty path is refused', async () => {
    mkdirSync(join(work, 'models', 'tiny'), { recursive: true });
    expect(() => resolveModelFiles(join(work, 'models', 'tinyy'))).toThrow(
      `${join(work, 'models', 'tinyy')}: not a directory (expected a Hugging Face model directory with config.json and onnx/model.onnx); did you mean ${join(work, 'models', 'tiny')}?`,
    );
    expect(() => resolveModelFiles(join(work, 'models', 'other'))).toThrow(/onnx\/model\.onnx\)$/);
    // written as the path was: relative, with ./, with a trailing slash
    expect(nearMiss(join(work, 'models', 'Tiny/'))).toBe(join(work, 'models', 'tiny'));
    expect(nearMiss(join(work, 'models', 'other'))).toBeUndefined();
    expect(nearMiss(join(work, 'nowhere', 'tiny'))).toBeUndefined();
    // owner/name: a hub id unless it exists; offline, the local near miss is named
    const cwd = process.cwd();
    process.chdir(work);
    try {
      const err = await resolveModel('models/Tiny2', { offline: true, cacheDir: join(work, 'hub') }).catch(
        (e) => e,
      );
      expect(err.code).toBe('runtime.offline');
      expect(err.message).toBe(
        `"models/Tiny2" is neither a local directory nor cached in ${join(work, 'hub', 'models', 'Tiny2')}, and the hub is off (offline): pass a local model directory, or run once with network access to cache it; did you mean models/tiny?`,
      );
      expect([nearMiss('./models/tin'), nearMiss('models/tin'), nearMiss('models/tinyy//')]).toEqual([
        './models/tiny',
        'models/tiny',
        'models/tiny',
      ]);
    } finally {
      process.chdir(cwd);
    }
    // resolve('') is the current directory: refused rather than loaded
    for (const empty of ['', '  ']) {
      const err = await loadModel(empty).catch((e) => e);
      expect(err).toBeInstanceOf(ModelLoadError);
      expect(err.message).toBe(
        `model: expected a model directory or a hub id (owner/name), got ${JSON.stringify(empty)}`,
      );
    }
  });

  it('a model that is no string: a URL says to pass its path, a bigint is shown as one', async () => {
    const url = pathToFileURL(join(work, 'tiny'));
    const err = await loadModel(url as never).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    // the URL used to be shown as a JSON string, as if a path string had been refused
    expect(err.message).toBe(
      `model: expected a model directory (a path) or a hub id (owner/name), got the URL ${url.href}: pass fileURLToPath(url) (from node:url)`,
    );
    // JSON.stringify throws on a bigint: the error used to be "Do not know how to serialize a BigInt"
    expect((await loadModel(5n as never).catch((e) => e)).message).toBe(
      'model: expected a model directory or a hub id (owner/name), got 5n',
    );
  });

  it('a directory without config.json', () => {
    const dir = join(work, 'empty');
    mkdirSync(dir);
    const err = (() => {
      try {
        resolveModelFiles(dir);
      } catch (e) {
        return e as ModelLoadError;
      }
    })()!;
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.code).toBe('runtime.missing_file');
    expect(err.file).toBe(join(dir, 'config.json'));
    expect(err.message).toBe(
      `${join(dir, 'config.json')} is missing: ${dir} is not a Hugging Face model directory`,
    );
  });

  it('malformed config.json and bad fields name the file and field', async () => {
    const dir = await copyModel('badconfig');
    writeFileSync(join(dir, 'config.json'), '{"model_type": "llama",');
    expect(() => resolveModelFiles(dir)).toThrow(
      `${join(dir, 'config.json')}: the model config is not valid JSON`,
    );
    // a byte order mark (Notepad, PowerShell 5) is named as such, not as a JSON syntax error
    writeFileSync(join(dir, 'config.json'), '\ufeff{"model_type": "llama"}');
    expect(() => resolveModelFiles(dir)).toThrow(
      `${join(dir, 'config.json')}: the model config starts with a UTF-8 byte order mark, which JSON readers (Python's json, Rust's serde_json) refuse; save it as UTF-8 without BOM`,
    );
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ num_hidden_layers: 2, num_attention_heads: 4, hidden_size: 64, vocab_size: -1 }),
    );
    expect(() => resolveModelFiles(dir)).toThrow(
      `${join(dir, 'config.json')}: field "vocab_size" must be a positive integer, got -1`,
    );
  });

  it("a context length that is not a positive integer, and a vocab_size that is not the graph's, are refused", async () => {
    const dir = await copyModel('badfields');
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    for (const bad of [0, 'x']) {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: bad }));
      expect(() => resolveModelFiles(dir)).toThrow(
        `${join(dir, 'config.json')}: field "max_position_embeddings" must be a positive integer, got ${JSON.stringify(bad)}`,
      );
    }
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: null }));
    expect(resolveModelFiles(dir).config.max_position_embeddings).toBeUndefined(); // no limit declared
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ ...config, vocab_size: config.vocab_size + 488 }),
    );
    await expect(loadModel(dir, { log: () => {} })).rejects.toMatchObject({
      code: 'runtime.bad_config',
      message: `${join(dir, 'config.json')}: "vocab_size" is ${config.vocab_size + 488}, but the logits of ${join(dir, 'onnx', 'model.onnx')} have ${config.vocab_size} ids; the config is not this graph's`,
    });
  });

  it('reads the sliding window the way each family declares it', async () => {
    const dir = await copyModel('windows');
    const base = { num_hidden_layers: 28, num_attention_heads: 4, hidden_size: 64, vocab_size: 512 };
    const windowOf = (fields: Record<string, unknown>) => {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...base, ...fields }));
      return resolveModelFiles(dir).config.sliding_window;
    };
    const cases: [string, Record<string, unknown>, number | null][] = [
      ['Mistral 7B v0.1', { sliding_window: 4096, max_position_embeddings: 32768 }, 4096],
      ['Mistral 7B v0.2 (null)', { sliding_window: null, max_position_embeddings: 32768 }, null],
      ['Phi-3 mini 4k', { sliding_window: 2047, max_position_embeddings: 4096 }, 2047],
      [
        'Qwen2.5 (use_sliding_window false)',
        { use_sliding_window: false, sliding_window: 4096, max_position_embeddings: 32768 },
        null,
      ],
      [
        'Qwen2, no layer past max_window_layers',
        { use_sliding_window: true, sliding_window: 4096, max_window_layers: 28 },
        null,
      ],
      [
        'Qwen2, upper layers windowed',
        { use_sliding_window: true, sliding_window: 4096, max_window_layers: 21 },
        4096,
      ],
      [
        'Gemma 3 (layer_types)',
        { sliding_window: 512, layer_types: ['sliding_attention', 'full_attention'] },
        512,
      ],
      ['layer_types without a sliding layer', { sliding_window: 512, layer_types: ['full_attention'] }, null],
      ['a window as long as the context', { sliding_window: 2048, max_position_embeddings: 2048 }, null],
      ['no window', {}, null],
    ];
    for (const [label, fields, expected] of cases)
      expect([label, windowOf(fields)]).toEqual([label, expected]);
  });

  it('a missing ONNX file for the dtype lists what was looked for', async () => {
    const dir = await copyModel('nofp16');
    expect(() => resolveModelFiles(dir, 'fp16')).toThrow(
      `${dir}: no ONNX decoder for dtype "fp16": expected onnx/model_fp16.onnx or onnx/decoder_model_merged_fp16.onnx or model_fp16.onnx or decoder_model_merged_fp16.onnx; it has dtype "fp32": choose one with the \`dtype\` option (CLI: --dtype)`,
    );
    expect(() => resolveModelFiles(dir, 'fp8' as never)).toThrow('dtype "fp8" is not one of fp32, fp16, q8');
  });

  it("a directory without a graph whose config is not a llama's is told of the graph, not a config field", () => {
    // GPT-2's config and tokenizer alone (n_head, not num_attention_heads), as a tokenizer directory holds them
    const dir = join(work, 'gpt2-tokenizer-only');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_head: 12, n_layer: 12 }));
    expect(() => resolveModelFiles(dir)).toThrow(
      `${dir}: no ONNX decoder for dtype "fp32": expected onnx/model.onnx or onnx/decoder_model_merged.onnx or model.onnx or decoder_model_merged.onnx`,
    );
  });

  it('a PyTorch checkpoint without an ONNX graph is named, with how to export it', async () => {
    const dir = await copyModel('checkpoint');
    rmSync(join(dir, 'onnx'), { recursive: true });
    expect(() => resolveModelFiles(dir)).toThrow(/decoder_model_merged\.onnx$/);
    writeFileSync(join(dir, 'model-00001-of-00002.safetensors'), '');
    expect(() => resolveModelFiles(dir)).toThrow(
      `or decoder_model_merged.onnx; it holds a PyTorch checkpoint (model-00001-of-00002.safetensors): write its ONNX graph with \`implicit-it model export ${dir}\``,
    );
    // a directory with a space is quoted in the command, so that it can be pasted as it is
    const spaced = join(dir, '..', 'my checkpoint');
    renameSync(dir, spaced);
    expect(() => resolveModelFiles(spaced)).toThrow(
      `write its ONNX graph with \`implicit-it model export "${spaced}"\``,
    );
  });

  it('a graph saved after the patch (already patched) loads and runs as patched', async () => {
    const dir = await copyModel('prepatched');
    const file = join(dir, 'onnx', 'model.onnx');
    const patched = patchDecoderGraph(readFileSync(file), {
      logitsSlice: true,
      kvOutputs: true,
      splitAttention: true,
    });
    writeFileSync(file, patched.bytes!);
    const lines: string[] = [];
    const model = await loadModel(dir, { log: (l) => lines.push(l) });
    expect(lines.filter((l) => /^(logits for every position|KV cache)/.test(l))).toEqual([]);
    const original = await tinyModel();
    try {
      expect([model.info.logitsMode, model.info.cacheMode, model.info.attention]).toEqual([
        'patched',
        'slots',
        'split',
      ]);
      const [again] = await model.generate(PROMPTS[0]!, { maxNewTokens: 12 });
      const [first] = await original.generate(PROMPTS[0]!, { maxNewTokens: 12 });
      expect(again!.tokenIds).toEqual(first!.tokenIds);
    } finally {
      await model.dispose();
    }
  });

  it('picks onnx/model_{dtype}.onnx, and decoder_model_merged.onnx when that is what the export has', async () => {
    const dir = await copyModel('variants');
    renameSync(join(dir, 'onnx', 'model.onnx'), join(dir, 'onnx', 'model_quantized.onnx'));
    expect(resolveModelFiles(dir, 'q8')).toMatchObject({
      onnxFile: join(dir, 'onnx', 'model_quantized.onnx'),
      merged: false,
    });
    renameSync(join(dir, 'onnx', 'model_quantized.onnx'), join(dir, 'onnx', 'decoder_model_merged.onnx'));
    const files = resolveModelFiles(dir, 'fp32');
    expect(files).toMatchObject({ onnxFile: join(dir, 'onnx', 'decoder_model_merged.onnx'), merged: true });
    const model = await loadModel(dir, { log: () => {} });
    const [r] = await model.generate(PROMPTS[0]!, { maxNewTokens: 4 });
    expect(r!.tokenIds).toHaveLength(4);
    await model.dispose();
  });

  it('a file that is not an ONNX graph is reported with its path', async () => {
    const dir = await copyModel('garbage');
    writeFileSync(join(dir, 'onnx', 'model.onnx'), 'not a model');
    const err = await loadModel(dir, { log: () => {}, executionProvider: 'cpu' }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.code).toBe('runtime.no_provider');
    expect(err.message).toContain(
      `${join(dir, 'onnx', 'model.onnx')}: no execution provider could load the model: cpu:`,
    );
    expect(err.message).toContain('(the file is not a complete ONNX graph: an interrupted write or download');
  });

  it('a Git LFS pointer, an empty file or a directory in place of the graph or its data is named, with the fix', async () => {
    const dir = await copyModel('lfs');
    const graph = join(dir, 'onnx', 'model.onnx');
    const pointer =
      'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 540000000\n';
    const refusal = (file: string) => {
      try {
        resolveModelFiles(dir);
      } catch (e) {
        const err = e as ModelLoadError;
        return { code: err.code, file: err.file, message: err.message };
      }
      return { file, message: 'loaded' };
    };
    const graphBytes = readFileSync(graph);
    writeFileSync(graph, pointer);
    expect(refusal(graph)).toEqual({
      code: 'runtime.malformed_file',
      file: graph,
      message: `${graph}: the ONNX graph is a Git LFS pointer (${pointer.length} bytes), not the file itself: the repository was cloned without its LFS files; run \`git lfs install && git lfs pull\` in ${dir}, or download the file`,
    });
    writeFileSync(graph, '');
    expect(refusal(graph).message).toBe(
      `${graph}: the ONNX graph is empty (0 bytes): an interrupted write or download leaves one; recreate or download it again`,
    );
    rmSync(graph);
    mkdirSync(graph);
    expect(refusal(graph).message).toBe(`${graph}: not a file (expected an ONNX graph)`);
    rmSync(graph, { recursive: true });
    // the graph is there, its external data (as optimum and transformers.js name it) a pointer
    writeFileSync(graph, graphBytes);
    const data = join(dir, 'onnx', 'model.onnx_data');
    writeFileSync(data, pointer);
    expect(refusal(data)).toMatchObject({
      file: data,
      message: expect.stringContaining(`${data}: external data of model.onnx is a Git LFS pointer`),
    });
    rmSync(data);
    expect(resolveModelFiles(dir).onnxFile).toBe(graph);
  });

  it('with provider auto, the failure on the provider tried comes first; a skipped CUDA only after it', async () => {
    const dir = await copyModel('garbage-auto');
    writeFileSync(join(dir, 'onnx', 'model.onnx'), 'not a model');
    const err = await loadModel(dir, { log: () => {} }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.code).toBe('runtime.no_provider');
    const cuda = providerStatus().find((p) => p.name === 'cuda')!;
    const head = `${join(dir, 'onnx', 'model.onnx')}: no execution provider could load the model: `;
    if (cuda.available) {
      expect(err.message.startsWith(`${head}cuda: `), err.message).toBe(true);
      return; // tried too: both failures are causes
    }
    // onnxruntime gets the bytes read for the position table: its message names no file, ours does
    expect(
      err.message.startsWith(`${head}cpu: Failed to load model because protobuf parsing failed.`),
      err.message,
    ).toBe(true);
    expect(
      err.message.endsWith(
        `(the file is not a complete ONNX graph: an interrupted write or download leaves one; recreate or download it again) [not tried: cuda: ${cuda.reason}]`,
      ),
    ).toBe(true);
  });

  it('the cuda provider asked for without its binaries fails with what to do, before onnxruntime tries', async () => {
    const cuda = providerStatus().find((p) => p.name === 'cuda')!;
    if (cuda.available) return; // a machine with the CUDA provider installed: nothing to check here
    const dir = await diverseModelDir();
    const create = vi.spyOn(ort.InferenceSession, 'create');
    const lines: string[] = [];
    const err = await loadModel(dir, { log: (l) => lines.push(l), executionProvider: 'cuda' }).catch(
      (e) => e,
    );
    const tried = create.mock.calls.length;
    create.mockRestore();
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.code).toBe('runtime.no_provider');
    // tried (no GPU seen, or libraries not found, may be wrong): onnxruntime says why it failed
    if (cuda.reason.startsWith('CUDA binaries present') || cuda.reason.includes('loads are not found'))
      return;
    expect(tried).toBe(0);
    expect(lines.filter((l) => l.startsWith('graph as exported'))).toEqual([]); // no second attempt
    expect(err.message).toBe(
      `${join(dir, 'onnx', 'model.onnx')}: no execution provider could load the model: cuda: ${cuda.reason}`,
    );
    expect(cuda.reason).toMatch(
      /^CUDA binaries not installed: `installCudaProvider\(\)` \(CLI: implicit-it install-cuda\) fetches them$|^CUDA binaries not installed \(no .+\)$|^onnxruntime-node .* has no CUDA backend/,
    );
  });

  it('a hub id offline fails with what to do', async () => {
    const err = await resolveModel('HuggingFaceTB/SmolLM2-135M', {
      offline: true,
      cacheDir: join(work, 'hub'),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toBe(
      `"HuggingFaceTB/SmolLM2-135M" is neither a local directory nor cached in ${join(work, 'hub', 'HuggingFaceTB/SmolLM2-135M')}, and the hub is off (offline): pass a local model directory, or run once with network access to cache it`,
    );
  });

  it('a hub id already in the cache resolves offline to its directory', async () => {
    const cache = join(work, 'hub2');
    const target = join(cache, 'org', 'tiny');
    mkdirSync(join(cache, 'org'), { recursive: true });
    cpSync(await diverseModelDir(), target, { recursive: true });
    expect(await resolveModel('org/tiny', { offline: true, cacheDir: cache })).toBe(target);
  });
});

describe('execution providers and logits', () => {
  it('logs which provider runs, and why others were skipped', async () => {
    const lines: string[] = [];
    const model = await loadModel(await diverseModelDir(), { log: (l) => lines.push(l) });
    expect(model.info.provider).toBe('cpu');
    expect(lines.some((l) => /^execution provider: cpu( \(skipped: cuda: .+\))?$/.test(l))).toBe(true);
    await model.dispose();
  });

  it('sets and logs the threads per operator', async () => {
    const lines: string[] = [];
    const create = vi.spyOn(ort.InferenceSession, 'create');
    const model = await loadModel(await diverseModelDir(), { log: (l) => lines.push(l), intraOpThreads: 1 });
    // every session onnxruntime was asked for got the thread count
    expect(create).toHaveBeenCalled();
    for (const call of create.mock.calls) expect(call[1]).toMatchObject({ intraOpNumThreads: 1 });
    create.mockRestore();
    expect(
      lines.some((l) => /^execution provider: cpu, intra-op threads: 1( \(skipped: .+\))?$/.test(l)),
    ).toBe(true);
    expect((await model.generate('Hi', { maxNewTokens: 2 }))[0]!.usage.completionTokens).toBeGreaterThan(0);
    await model.dispose();
  });

  it('the logits-slice patch gives the same logits as the graph as exported', async () => {
    const files = resolveModelFiles(await diverseModelDir());
    const patched = await DecoderSession.create(files, { log: () => {} });
    const plain = await DecoderSession.create(files, { log: () => {}, sliceLogits: false });
    expect([patched.logitsMode, plain.logitsMode]).toEqual(['patched', 'all']);
    const ids = [1, 40, 41, 42, 300, 301, 77, 9];
    const step = (s: DecoderSession, from: number) => s.run(promptStep(ids, from, 'none'));
    const all = await step(plain, 0);
    expect(all.kept).toBe(ids.length);
    for (const from of [-1, 3, 0]) {
      const a = await step(patched, from);
      const want = from < 0 ? ids.length + from : from;
      expect(a.kept).toBe(ids.length - want);
      expectClose(a.logits, all.logits.subarray(want * all.vocab));
    }
    await patched.release();
    await plain.release();
  });
});
