import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CONVENTIONAL_EOS_TOKENS,
  randomWeights,
  resolveConfig,
  tinyTokenizer,
  weightSpecs,
  writeSafetensors,
} from '@implicit-it/modelkit';
import { cudaPackageUrl } from '@implicit-it/runtime';
import { describeShared, missingShared, sharedPath } from '@implicit-it/testkit';
import { CONVENTIONAL_EOS_TOKENS as TOKENIZERS_EOS } from '@implicit-it/tokenizers';
import { afterAll, describe, expect, it } from 'vitest';
import { providerFix } from '../src/commands/doctor.js';
import { run } from './helpers.js';

const out = mkdtempSync(join(tmpdir(), 'implicit-it-cli-model-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** `model create --preset tiny --out DIR ...flags --json`: the files it wrote. */
async function createTiny(dir: string, ...flags: string[]): Promise<string[]> {
  const created = await run(['model', 'create', '--preset', 'tiny', '--out', dir, ...flags, '--json']);
  expect(created.code, created.stderr).toBe(0);
  return JSON.parse(created.stdout).files;
}

/** `generate --model DIR --json --verbose ...flags "Hi."`: its JSON and its log. */
async function generateJson(dir: string, ...flags: string[]) {
  const r = await run(['generate', '--model', dir, '--json', '--verbose', ...flags, 'Hi.']);
  expect(r.code, r.stderr).toBe(0);
  return { out: JSON.parse(r.stdout), stderr: r.stderr };
}

/** `model inspect DIR ...flags --json` */
const inspectJson = async (dir: string, ...flags: string[]) =>
  JSON.parse((await run(['model', 'inspect', dir, ...flags, '--json'])).stdout);

describe('model create / inspect', () => {
  it("takes a tokenizer's conventional EOS as @implicit-it/tokenizers does (modelkit keeps its own copy of the list)", () => {
    // modelkit depends on no tokenizer package; the model it writes must end where the runtime reads its EOS
    expect(CONVENTIONAL_EOS_TOKENS).toEqual(TOKENIZERS_EOS);
  });

  it('creates a tiny model (--json) and inspects it', async () => {
    const dir = join(out, 'tiny');
    const created = await run(['model', 'create', '--preset', 'tiny', '--seed', '7', '--out', dir, '--json']);
    expect(created.code, created.stderr).toBe(0);
    const info = JSON.parse(created.stdout);
    expect(info).toMatchObject({ preset: 'tiny', seed: 7, externalData: false });
    expect(info.files).toContain('onnx/model.onnx');
    expect(existsSync(join(dir, 'onnx', 'model.onnx'))).toBe(true);

    const report = JSON.parse((await run(['model', 'inspect', dir, '--json'])).stdout);
    expect(report.config).toMatchObject({ modelType: 'llama', layers: 2, vocabSize: 512, maxPositions: 512 });
    expect(report.onnx.inputs.map((i: { name: string }) => i.name)).toEqual([
      'input_ids',
      'attention_mask',
      'position_ids',
      'past_key_values.0.key',
      'past_key_values.0.value',
      'past_key_values.1.key',
      'past_key_values.1.value',
    ]);
    expect(report.onnx.outputs[0]).toMatchObject({ name: 'logits', type: 'float32' });
    expect(report.onnx.dtype).toBe('fp32');
    expect(report.size.bytes).toBeGreaterThan(100_000);
    expect(report.tokenizer.eosIds).toEqual([2]);
    expect(report.rules.enabled).toEqual(['eos', 'uniform', 'diversity']);
    expect(report.rules.uniform).toHaveLength(15);
    const newline = report.rules.uniform.find((e: { entry: string }) => e.entry === '"\\n"');
    expect(newline.ids).toHaveLength(1);
    expect(report.rules.unresolved.length).toBe(
      report.rules.uniform.filter((e: { ids: number[] }) => e.ids.length === 0).length,
    );

    const text = await run(['model', 'inspect', dir]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/in input_ids\s+int64 \[batch_size, sequence_length\]/);
    expect(text.stdout).toMatch(/EOS\s+\[2\]/);
    expect(text.stdout).toMatch(/entries do not resolve/);
    // a score reads the same whether its entry resolves or not
    expect(text.stdout).toMatch(/^ {2}"\\n" +\+1 -> id 13$/m);
    expect(text.stdout).toMatch(/^ {2}" \*" +\+1 unresolved$/m);
    expect(text.stdout).toMatch(/^ {2}" We" +-3 unresolved$/m);

    // a file of the model named instead of its directory: said so, with the directory to give
    const file = await run(['model', 'inspect', join(dir, 'config.json')]);
    expect(file.code).toBe(3);
    expect(file.stderr).toContain(`${join(dir, 'config.json')}: a file, not a model directory`);
    expect(file.stderr).toContain(`give the directory that holds it (${dir})`);
    // its ONNX graph: the model directory above onnx/, not onnx/ (which has no config.json)
    const graph = join(dir, 'onnx', 'model.onnx');
    for (const command of [
      ['model', 'inspect'],
      ['generate', '--max-tokens', '1', '-m'],
      ['model', 'export'],
    ]) {
      const r = await run([...command, graph, ...(command[0] === 'generate' ? ['hi'] : [])]);
      expect(r.code, command.join(' ')).toBe(3);
      expect(r.stderr, command.join(' ')).toContain(`give the directory that holds it (${dir})`);
    }
    const onnxDir = await run(['generate', '-m', join(dir, 'onnx'), 'hi']);
    expect(onnxDir.code).toBe(3);
    expect(onnxDir.stderr).toContain(
      `${join(dir, 'onnx', 'config.json')} is missing: ${join(dir, 'onnx')} is not a Hugging Face model directory; give the model directory above it (${dir})`,
    );
  });

  it("--rules with eos.ids: the ids the EOS ramp raises, as rules trace applies it, not the tokenizer's EOS", async () => {
    const dir = join(out, 'eos-ids');
    await createTiny(dir);
    const spec = '{"eos":{"ids":[5]}}';
    const report = await inspectJson(dir, '--rules', spec);
    expect(report.rules.eosIds).toEqual([5]);
    expect(report.tokenizer.eosIds).toEqual([2]);
    // rules trace ramps that id: after one response token, id 5 alone is scored (15 * 1 / 250)
    const trace = await run([
      'rules',
      'trace',
      '--tokenizer',
      dir,
      '--rules',
      spec,
      '--instruction',
      'Hi',
      '--response-ids',
      '7',
    ]);
    expect(trace.code, trace.stderr).toBe(0);
    expect(JSON.parse(trace.stdout).steps[1].scores).toEqual({ '5': 0.06 });
    const text = await run(['model', 'inspect', dir, '--rules', spec]);
    expect(text.stdout).toMatch(
      /^ {2}eos ramp {19}ids \[5\] \(the rules' eos\.ids; the tokenizer's EOS ids are \[2\]\)$/m,
    );
    // without eos.ids the ramp is on the tokenizer's EOS; the rule off, no ramp
    expect((await run(['model', 'inspect', dir])).stdout).toMatch(
      /^ {2}eos ramp {19}ids \[2\] \(the tokenizer's EOS\)$/m,
    );
    expect((await inspectJson(dir)).rules.eosIds).toEqual([2]);
    expect((await inspectJson(dir, '--rules', 'uniform')).rules.eosIds).toEqual([]);
  });

  it('--dtypes q8 writes the 8-bit graph, which generate --dtype q8 runs and model inspect shows', async () => {
    const dir = join(out, 'q8');
    expect(await createTiny(dir, '--dtypes', 'q8')).toContain('onnx/model_quantized.onnx');
    const q8 = await generateJson(dir, '--dtype', 'q8', '-n', '4');
    expect(q8.stderr).toContain('8-bit graph rounding activations with one scale per run');
    expect(q8.out).toMatchObject({ usage: { completionTokens: 4 } });
    const report = await inspectJson(dir, '--dtype', 'q8');
    expect(report.onnx).toMatchObject({ file: 'onnx/model_quantized.onnx', matMulNBits: null });
    expect([report.onnx.ops.DynamicQuantizeLinear, report.onnx.ops.MatMulInteger]).toEqual([9, 15]);
    expect((await run(['model', 'inspect', dir, '--dtype', 'q8'])).stdout).toMatch(
      /quantized linear layers\s+15 MatMulInteger on 8-bit weights, 9 activations rounded to 8 bits per tensor at run time/,
    );
  });

  it('--dtypes fp32,q4 writes the 4-bit graph too, which generate --dtype q4 runs', async () => {
    const dir = join(out, 'q4');
    expect(await createTiny(dir, '--dtypes', 'fp32,q4')).toEqual(
      expect.arrayContaining(['onnx/model.onnx', 'onnx/model_q4.onnx']),
    );
    const generate = (...flags: string[]) => generateJson(dir, '-n', '6', ...flags);
    const q4 = await generate('--dtype', 'q4', '--q4-accuracy-level', '0');
    // the 4-bit graph ran (the float32 one has no MatMulNBits node)
    expect(q4.stderr).toContain('MatMulNBits accuracy level 0 on 15 nodes');
    expect(q4.out).toMatchObject({ finishReason: 'length', usage: { completionTokens: 6 } });
    const report = await inspectJson(dir, '--dtype', 'q4');
    expect(report.onnx).toMatchObject({
      file: 'onnx/model_q4.onnx',
      dtype: 'q4',
      matMulNBits: { count: 15, bits: [4], blockSizes: [32], accuracyLevels: [4] },
    });
    expect(report.onnx.ops['com.microsoft.MatMulNBits']).toBe(15);
    const fp32 = await inspectJson(dir);
    expect(fp32.onnx.matMulNBits).toBeNull();
    expect((await run(['model', 'inspect', dir, '--dtype', 'q4'])).stdout).toMatch(
      /quantized linear layers\s+15 MatMulNBits, 4 bits, blocks of 32, accuracy level 4\n/,
    );
    for (const [flags, message] of [
      [['--dtypes', 'fp32,int8'], 'expected a comma-separated list of fp32, q4, q8, got "int8"'],
      [['--dtypes', 'q4,q4'], 'q4 is listed twice'],
    ] as const) {
      const bad = await run(['model', 'create', '--preset', 'tiny', '--out', join(out, 'bad'), ...flags]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain(message);
    }
    // on the float32 graph the flag changes nothing, and says so
    const onFp32 = await run(['generate', '--model', dir, '-n', '2', '--q4-accuracy-level', '4', 'Hi.']);
    expect(onFp32.code, onFp32.stderr).toBe(0);
    expect(onFp32.stderr).toMatch(
      /--q4-accuracy-level: \S*onnx\/model\.onnx has no MatMulNBits layers, so nothing changed \(4-bit graphs load with --dtype q4\)/,
    );
    const level = await run(['generate', '--model', dir, '--dtype', 'q4', '--q4-accuracy-level', '5', 'Hi.']);
    expect(level.code).toBe(2);
    expect(level.stderr).toContain('expected an integer in [0, 4], got "5"');
  });

  it("--merged writes optimum's merged decoder, which generate runs and inspect reads through its If", async () => {
    const dir = join(out, 'merged');
    expect(await createTiny(dir, '--merged', '--dtypes', 'q4')).toContain(
      'onnx/decoder_model_merged_q4.onnx',
    );
    const r = await generateJson(dir, '--dtype', 'q4', '--q4-accuracy-level', '4', '-n', '4');
    // 2 layers x 7 linear layers and the LM head, in each of the If's branches
    expect(r.stderr).toContain('MatMulNBits accuracy level 4 on 30 nodes');
    expect(r.out).toMatchObject({ usage: { completionTokens: 4 } });
    const report = await inspectJson(dir, '--dtype', 'q4');
    expect(report.onnx).toMatchObject({
      file: 'onnx/decoder_model_merged_q4.onnx',
      matMulNBits: { count: 30, accuracyLevels: [4] },
    });
    expect(report.onnx.ops.If).toBe(1);
    expect(report.onnx.inputs.at(-1)).toMatchObject({ name: 'use_cache_branch', type: 'bool' });
  });

  it('off a terminal, long work prints a progress line every IMPLICIT_IT_PROGRESS_SECONDS (default 30)', async () => {
    const r = await run(['model', 'create', '--preset', 'tiny', '--out', join(out, 'progress')], {
      env: { IMPLICIT_IT_PROGRESS_SECONDS: '0.000001' },
    });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('writing tiny: '));
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines)
      expect(line).toMatch(/^writing tiny: \d+\/\d+ tensors \(\d+%\), \d+m\d\ds elapsed(, ETA \d+m\d\ds)?$/);
    // 0 turns them off
    const quiet = await run(['model', 'create', '--preset', 'tiny', '-o', join(out, 'quiet')]); // -o as elsewhere
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).not.toContain('writing tiny: ');
  });

  it('--set changes config.json fields over the preset (any size), and generate runs the model', async () => {
    const dir = join(out, 'resized');
    const set = ['--set', 'num_hidden_layers=3', '--set', 'hidden_size=32', '--set', 'intermediateSize=48'];
    const created = await run(['model', 'create', '--preset', 'tiny', ...set, '--out', dir, '--json']);
    expect(created.code, created.stderr).toBe(0);
    const info = JSON.parse(created.stdout);
    // config.json names in the report, whichever name was given; head_dim follows 32 / 4 heads
    expect(info.set).toEqual({ num_hidden_layers: 3, hidden_size: 32, intermediate_size: 48 });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      num_hidden_layers: 3,
      hidden_size: 32,
      intermediate_size: 48,
      head_dim: 8,
      num_attention_heads: 4,
      vocab_size: 512,
    });
    expect((await inspectJson(dir)).config).toMatchObject({ layers: 3, vocabSize: 512 });
    const { out: generated } = await generateJson(dir, '--max-tokens', '3');
    expect(generated.tokenIds).toHaveLength(3);
    // the text report names what --set changed; a value that is not JSON is taken as text
    const qwen = await run([
      'model',
      'create',
      '--preset',
      'tiny',
      '--set',
      'model_type=qwen2',
      '--out',
      dir,
    ]);
    expect(qwen.code, qwen.stderr).toBe(0);
    expect(qwen.stdout).toMatch(/^ {2}preset tiny \(model_type="qwen2"\), seed 0: /m);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).model_type).toBe('qwen2');
  });

  it('--set: a malformed, unknown or repeated field, or a value modelkit refuses, is a usage error (exit 2)', async () => {
    const dir = join(out, 'not-set');
    const refused = async (set: string[]) => {
      const r = await run(['model', 'create', '--preset', 'tiny', ...set, '--out', dir]);
      expect(r.code, r.stderr).toBe(2);
      return r.stderr;
    };
    expect(await refused(['--set', 'num_hidden_layers'])).toContain(
      'argument \'num_hidden_layers\' is invalid. expected KEY=VALUE with a config.json field as KEY (e.g. num_hidden_layers=4), got "num_hidden_layers"',
    );
    expect(await refused(['--set', 'layers=2'])).toContain(
      '"layers" is not a field it sets; use one of model_type, vocab_size, hidden_size, intermediate_size, num_hidden_layers, ',
    );
    expect(await refused(['--set', 'hiden_size=64'])).toContain(
      '"hiden_size" is not a field it sets (did you mean "hidden_size"?); use one of model_type, vocab_size, ',
    );
    expect(await refused(['--set', 'numHiddenLayer=2'])).toContain('(did you mean "num_hidden_layers"?)');
    expect(await refused(['--set', 'numHiddenLayers=3', '--set', 'num_hidden_layers=4'])).toContain(
      'num_hidden_layers is set twice',
    );
    expect(await refused(['--set', 'num_hidden_layers=0'])).toBe(
      'error: --set num_hidden_layers: must be a positive integer, got 0\n',
    );
    // a field derived from what was set, and one the preset fixes, are named with what to do
    expect(await refused(['--set', 'hidden_size=60'])).toBe(
      'error: --set head_dim: 15 must be even for rotary embeddings\n' +
        'hint: head_dim follows hidden_size / num_attention_heads unless set: change those, or give --set head_dim=...\n',
    );
    expect(await refused(['--set', 'vocab_size=2'])).toBe(
      'error: --set eos_token_id: 2 is not an id below vocab_size 2; use null or a valid id\n' +
        "hint: eos_token_id is --preset tiny's own; give --set eos_token_id=... to change it with the rest\n",
    );
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses an unknown preset (2) and a missing directory (3)', async () => {
    const bad = await run(['model', 'create', '--preset', 'gpt-5', '--out', join(out, 'x')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/expected one of tiny, smollm2-135m/);
    // an Object property is no preset either (`in` took toString for one)
    const inherited = await run(['model', 'create', '--preset', 'toString', '--out', join(out, 'x')]);
    expect(inherited.code).toBe(2);
    expect(inherited.stderr).toContain('--preset: expected one of tiny, smollm2-135m');
    expect((await run(['model', 'create', '--preset', 'tiny'])).code).toBe(2); // --out required
    // an empty one would resolve to the current directory and replace the model files there
    const empty = await run(['model', 'create', '--preset', 'tiny', '--out', '']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('--out: expected a path, got ""');
    // a --tokenizer directory that is not there is said to be missing, not to lack a tokenizer.json
    const create = (tokenizer: string) =>
      run(['model', 'create', '--preset', 'tiny', '--out', join(out, 'x'), '--tokenizer', tokenizer]);
    const noDir = join(out, 'no-such-tokenizer');
    expect(await create(noDir)).toEqual({
      code: 3,
      stdout: '',
      stderr: `error: --tokenizer: ${noDir} does not exist\n`,
    });
    const tokenizerDir = join(out, 'tokenizer-files');
    mkdirSync(tokenizerDir, { recursive: true });
    expect((await create(tokenizerDir)).stderr).toBe(
      `error: --tokenizer: ${tokenizerDir} has no tokenizer.json\n`,
    );
    const file = join(tokenizerDir, 'tokenizer.json');
    writeFileSync(file, '{}');
    expect(await create(file)).toEqual({
      code: 3,
      stdout: '',
      stderr: `error: --tokenizer: ${file} is a file, not a tokenizer directory\nhint: give the directory that holds tokenizer.json: ${tokenizerDir}\n`,
    });
    expect(existsSync(join(out, 'x'))).toBe(false);
    const missing = await run(['model', 'inspect', join(out, 'missing')]);
    expect(missing.code).toBe(3);
    // a hub id not in the cache: inspect downloads nothing, and says so (not that the hub is off)
    const hub = await run(['model', 'inspect', 'nobody/no-such-model'], {
      env: { HF_HUB_OFFLINE: undefined },
    });
    expect(hub.code).toBe(3);
    expect(hub.stderr).toMatch(
      /^error: nobody\/no-such-model: neither a model directory nor a hub model in the cache \(.*nobody\/no-such-model\); model inspect downloads nothing\nhint: give a model directory, or fetch it once with a command that loads it \(implicit-it generate --model nobody\/no-such-model "Hi"\)\n$/,
    );
    // a truncated graph (an interrupted write): exit 3 naming the file, and what to do
    const made = await run(['model', 'create', '--preset', 'tiny', '--out', join(out, 'cut')]);
    expect(made.code, made.stderr).toBe(0);
    const graph = join(out, 'cut', 'onnx', 'model.onnx');
    truncateSync(graph, 1000);
    const cut = await run(['model', 'inspect', join(out, 'cut')]);
    expect(cut.code).toBe(3);
    expect(cut.stderr).toContain(`${graph}: onnxruntime cannot load it`);
    expect(cut.stderr).toContain('recreate or download it again');
  });

  it('exports a safetensors checkpoint to ONNX that generates what the created model generates', async () => {
    const made = join(out, 'made');
    expect((await run(['model', 'create', '--preset', 'tiny', '--seed', '3', '--out', made])).code).toBe(0);
    // the same model as a checkpoint: config, tokenizer and model.safetensors, no onnx/
    const ckpt = join(out, 'ckpt');
    mkdirSync(ckpt);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'])
      copyFileSync(join(made, f), join(ckpt, f));
    const config = resolveConfig({ preset: 'tiny' });
    const weights = randomWeights(config, 3);
    writeSafetensors(
      join(ckpt, 'model.safetensors'),
      Object.fromEntries(
        weightSpecs(config).map((s) => [s.name, { shape: s.shape, data: weights[s.name]! }]),
      ),
    );
    const exported = await run(['model', 'export', ckpt, '--json']);
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(exported.stdout)).toMatchObject({
      files: ['onnx/model.onnx'],
      sourceDtypes: ['F32'],
      ignored: [],
    });
    expect(
      readFileSync(join(ckpt, 'onnx', 'model.onnx')).equals(readFileSync(join(made, 'onnx', 'model.onnx'))),
    ).toBe(true);
    const generate = async (dir: string) =>
      JSON.parse((await run(['generate', '--model', dir, '-n', '8', '--json', 'Write a haiku.'])).stdout)
        .text;
    expect(await generate(ckpt)).toBe(await generate(made));

    const again = await run(['model', 'export', ckpt]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${join(ckpt, 'onnx', 'model.onnx')}: exists`);
    expect(again.stderr).toContain('pass --force to replace it');
    const forced = await run(['model', 'export', ckpt, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    const q4 = await run(['model', 'export', ckpt, '--dtypes', 'q4', '--json']);
    expect(q4.code, q4.stderr).toBe(0);
    expect(JSON.parse(q4.stdout).files).toEqual(['onnx/model_q4.onnx']);
    // the float32 graph again, alone: the 4-bit one it left is named
    const fp32Again = await run(['model', 'export', ckpt, '--force']);
    expect(fp32Again.stdout).toContain(
      'onnx/model_q4.onnx was not written: it holds the weights it was made from; export it too (--dtypes fp32,q4 --force), or remove it',
    );
    expect(forced.stdout).toMatch(
      /^exported .*model\.onnx\n {2}llama, 2 layers, hidden 64: .* from model\.safetensors \(F32\)/,
    );

    // a LoRA adapter whose base is not local: --base names it; the adapter directory becomes a model
    const adapter = join(out, 'adapter');
    mkdirSync(adapter);
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      copyFileSync(join(made, f), join(adapter, f));
    const loraConfig = {
      peft_type: 'LORA',
      base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M',
      r: 2,
      lora_alpha: 4,
    };
    writeFileSync(join(adapter, 'adapter_config.json'), JSON.stringify(loraConfig));
    const q = 'base_model.model.model.layers.0.self_attn.q_proj';
    writeSafetensors(join(adapter, 'adapter_model.safetensors'), {
      [`${q}.lora_A.weight`]: { shape: [2, 64], data: new Float32Array(128).fill(0.01) },
      [`${q}.lora_B.weight`]: { shape: [64, 2], data: new Float32Array(128).fill(0.01) },
    });
    const noBase = await run(['model', 'export', adapter]);
    expect(noBase.code).toBe(3);
    expect(noBase.stderr).toBe(
      `error: ${join(adapter, 'adapter_config.json')}: its base model "HuggingFaceTB/SmolLM2-135M" is not a local model directory (no config.json there); give the base model directory with --base DIR\n`,
    );
    const merged = await run(['model', 'export', adapter, '--base', ckpt, '--json']);
    expect(merged.code, merged.stderr).toBe(0);
    expect(JSON.parse(merged.stdout)).toMatchObject({
      adapter: { base: ckpt, rank: 2, scale: 2, matrices: 1 },
      files: ['config.json', 'generation_config.json', 'onnx/model.onnx'],
    });
    expect((await run(['generate', '--model', adapter, '-n', '4', 'Hi'])).code).toBe(0);

    const scaled = JSON.parse(readFileSync(join(ckpt, 'config.json'), 'utf8'));
    writeFileSync(
      join(ckpt, 'config.json'),
      JSON.stringify({ ...scaled, rope_scaling: { rope_type: 'yarn', factor: 4 } }),
    );
    const refused = await run(['model', 'export', ckpt, '--force']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(
      `${join(ckpt, 'config.json')}: rope_scaling: {"rope_type":"yarn","factor":4} is not supported`,
    );
    expect(refused.stderr).toContain('optimum-cli export onnx');
    const nowhere = await run(['model', 'export', join(out, 'nowhere')]);
    expect(nowhere.code).toBe(3);
    expect(nowhere.stderr).toContain('no such directory');
    const file = await run(['model', 'export', join(ckpt, 'config.json')]);
    expect(file.code).toBe(3);
    expect(file.stderr).toContain(`${join(ckpt, 'config.json')}: a file, not a model directory`);
    expect(file.stderr).toContain(`give the directory that holds it (${ckpt})`);
  });

  it("a model created into another model's directory leaves none of its tokenizer files", async () => {
    // a tokenizer directory with SmolLM's slow-tokenizer files beside tokenizer.json
    const tokenizer = join(out, 'tok');
    expect((await run(['model', 'create', '--preset', 'tiny', '--out', tokenizer])).code).toBe(0);
    for (const f of ['vocab.json', 'special_tokens_map.json']) writeFileSync(join(tokenizer, f), '{}');
    writeFileSync(join(tokenizer, 'merges.txt'), '#version: 0.2\n');
    const dir = join(out, 'reused');
    const first = await run(['model', 'create', '--preset', 'tiny', '--out', dir, '--tokenizer', tokenizer]);
    expect(first.code, first.stderr).toBe(0);
    expect(existsSync(join(dir, 'merges.txt'))).toBe(true);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    const second = await run(['model', 'create', '--preset', 'tiny', '--out', dir]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(
      "removed a previous model's special_tokens_map.json, vocab.json, merges.txt\n",
    );
    for (const f of ['vocab.json', 'merges.txt', 'special_tokens_map.json'])
      expect(existsSync(join(dir, f)), f).toBe(false);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'notes.txt'])
      expect(existsSync(join(dir, f)), f).toBe(true);
  });

  it('--out naming a file is a usage error (exit 2), not ENOTDIR', async () => {
    const file = join(out, 'a-file');
    writeFileSync(file, 'x');
    const r = await run(['model', 'create', '--preset', 'tiny', '--out', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--out: ${file} is a file; give a directory (created when missing)`);
  });

  it.runIf(process.platform === 'linux')(
    '--out where no file can be created: exit 2 before anything is written, as every --out',
    async () => {
      const r = await run(['model', 'create', '--preset', 'tiny', '--out', '/proc/implicit-it-model']);
      const why =
        process.getuid?.() === 0
          ? 'files cannot be created in /proc (ENOENT: no such file or directory)'
          : '/proc is not writable (permission denied)';
      expect([r.code, r.stderr]).toEqual([
        2,
        `error: --out: cannot write /proc/implicit-it-model: ${why}\nhint: give --out a path in a directory you can write to\n`,
      ]);
    },
  );
});

describeShared(
  'model create with a shared tokenizer',
  ['fixtures/tokenizers/smollm/tokenizer.json', 'fixtures/tokenizers/gpt2/tokenizer.json'],
  () => {
    it('a tokenizer larger than the preset vocabulary names the presets that hold it (exit 2)', async () => {
      const big = sharedPath('fixtures', 'tokenizers', 'smollm'); // 49152 ids
      const r = await run([
        'model',
        'create',
        '--preset',
        'tiny',
        '--out',
        join(out, 'y'),
        '--tokenizer',
        big,
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        '--tokenizer: its 49152 ids do not fit the 512-id vocabulary of --preset tiny',
      );
      expect(r.stderr).toContain('smollm2-135m (49152 ids)');
      expect(r.stderr).toContain('; or keep this one and give --set vocab_size=49152\n');
    });

    it('--set vocab_size fits a large tokenizer into a small shape; one too small says what it needs', async () => {
      const big = sharedPath('fixtures', 'tokenizers', 'smollm');
      const dir = join(out, 'tiny-smol');
      const small = await run([
        'model',
        'create',
        '--preset',
        'tiny',
        '--set',
        'vocab_size=1000',
        '--tokenizer',
        big,
        '--out',
        dir,
      ]);
      expect(small.code).toBe(2);
      expect(small.stderr).toBe(
        'error: --tokenizer: its 49152 ids do not fit the 1000-id vocabulary of --set vocab_size\n' +
          'hint: give --set vocab_size=49152 (or more)\n',
      );
      expect(existsSync(dir)).toBe(false);
      await createTiny(dir, '--set', 'vocab_size=49152', '--tokenizer', big);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      expect(config).toMatchObject({ vocab_size: 49152, hidden_size: 64, num_hidden_layers: 2 });
      // the tokenizer's special tokens (<|im_start|>, <|im_end|>, <|im_end|>): its PAD is not the preset's 0
      expect([config.bos_token_id, config.eos_token_id, config.pad_token_id]).toEqual([1, 2, 2]);
      const { out: generated } = await generateJson(dir, '--max-tokens', '4');
      expect(generated.tokenIds).toHaveLength(4);
      expect(generated.usage.promptTokens).toBeGreaterThan(3);
    });

    it("a larger tokenizer whose EOS id is beyond the preset's vocabulary is not called EOS-less (exit 2)", async () => {
      // gpt2's <|endoftext|> is id 50256: its check came first and was read as "names no EOS token"
      const gpt2 = sharedPath('fixtures', 'tokenizers', 'gpt2');
      const dir = join(out, 'gpt2-tiny');
      const r = await run(['model', 'create', '--preset', 'tiny', '--out', dir, '--tokenizer', gpt2]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toBe(
        'error: --tokenizer: its 50257 ids do not fit the 512-id vocabulary of --preset tiny\n' +
          "hint: choose a preset whose vocabulary holds the tokenizer's ids: tiny (512 ids), smollm2-135m (49152 ids), smollm2-360m (49152 ids), qwen2.5-0.5b (151936 ids); or keep this one and give --set vocab_size=50257\n",
      );
      expect(existsSync(dir)).toBe(false);
    });

    it('a tokenizer with no EOS, named or conventional, is refused (exit 2) with the fix', async () => {
      // the preset's EOS id used to be kept, an unrelated token of this tokenizer (gpt2 and OLMo take
      // their special <|endoftext|> now)
      const dir = join(out, 'no-eos');
      const none = mkdtempSync(join(out, 'no-eos-'));
      const json = JSON.parse(tinyTokenizer().files['tokenizer.json'] as string);
      for (const added of json.added_tokens) added.special = false;
      writeFileSync(join(none, 'tokenizer.json'), JSON.stringify(json));
      const r = await run(['model', 'create', '--preset', 'tiny', '--out', dir, '--tokenizer', none]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(
        `--tokenizer: ${none} names no EOS token, and tokenizer.json has none of </s>`,
      );
      expect(r.stderr).toContain('tokenizer_config.json names eos_token');
      expect(existsSync(dir)).toBe(false);
    });
  },
);

describe('doctor', () => {
  it('reports Node, onnxruntime-node, providers, CUDA, shared fixtures, cache; --json', async () => {
    // the telemetry variables unset, whatever this machine sets
    const r = await run(['doctor', '--json'], {
      env: { ORT_DISABLE_TELEMETRY: undefined, ORT_TELEMETRY_DISABLED: undefined },
    });
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    const names = report.checks.map((c: { name: string }) => c.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'Node.js',
        'onnxruntime-node',
        'execution provider cpu',
        'execution provider cuda',
        'CUDA',
        'shared fixtures',
        'model cache',
      ]),
    );
    // onnxruntime's telemetry: off, as every command that loads a model turns it off
    expect(report.checks.find((c: { name: string }) => c.name === 'onnxruntime telemetry')).toEqual({
      name: 'onnxruntime telemetry',
      status: 'ok',
      detail:
        'off (implicit-it sets ORT_DISABLE_TELEMETRY=1 before the first session; ORT_DISABLE_TELEMETRY=0 keeps it on)',
    });
    const on = await run(['doctor', '--json'], { env: { ORT_DISABLE_TELEMETRY: '0' } });
    expect(
      JSON.parse(on.stdout).checks.find((c: { name: string }) => c.name === 'onnxruntime telemetry'),
    ).toEqual({
      name: 'onnxruntime telemetry',
      status: 'warn',
      detail:
        'on (ORT_DISABLE_TELEMETRY=0): onnxruntime sends usage events to Microsoft and keeps a device id in ~/.cache/Microsoft',
      fix: 'unset ORT_DISABLE_TELEMETRY (implicit-it then turns it off), or set it to 1',
    });
    for (const c of report.checks) {
      expect(['ok', 'warn', 'fail']).toContain(c.status);
      if (c.status !== 'ok') expect(c.fix).toEqual(expect.any(String));
    }
    expect(report.checks.find((c: { name: string }) => c.name === 'execution provider cpu').status).toBe(
      'ok',
    );
    const text = await run(['doctor']);
    expect(text.stdout).toMatch(/^ok\s+Node\.js\s+v\d+/m);
    // the runtime's reasons in the CLI's words: its commands, not the library's calls
    for (const c of report.checks) expect(c.detail ?? '').not.toMatch(/installCudaProvider|\(CLI: /);
  });

  it('says whether the Python finetune run uses has torch, transformers and accelerate (a warning: only training needs them)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'implicit-it-doctor-python-'));
    try {
      const python = (name: string, versions: string) => {
        const file = join(dir, name);
        writeFileSync(file, `#!/bin/sh\necho '${versions}'\n`);
        chmodSync(file, 0o755);
        return file;
      };
      const check = async (interpreter: string) => {
        const r = await run(['doctor', '--json'], { env: { IMPLICIT_IT_PYTHON: interpreter } });
        return JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === 'python (finetune run)');
      };
      const all = python('all', '{"torch": "2.5.1", "transformers": "4.46.0", "accelerate": "1.1.0"}');
      expect(await check(all)).toEqual({
        name: 'python (finetune run)',
        status: 'ok',
        detail: `${all} (torch 2.5.1, transformers 4.46.0, accelerate 1.1.0)`,
      });
      const torchOnly = python('torch-only', '{"torch": "1.13.0"}');
      expect(await check(torchOnly)).toEqual({
        name: 'python (finetune run)',
        status: 'warn',
        detail: `${torchOnly} lacks transformers, accelerate (has torch 1.13.0)`,
        fix: `optional, for finetune run: ${torchOnly} -m pip install transformers accelerate; or point IMPLICIT_IT_PYTHON (or finetune run --python) at an interpreter that has them`,
      });
      const none = join(dir, 'no-such-python');
      const missing = await run(['doctor'], { env: { IMPLICIT_IT_PYTHON: none } });
      expect(missing.code).toBe(0);
      expect(missing.stdout).toMatch(/^warn\s+python \(finetune run\)\s+\S+ could not be started/m);
      expect(missing.stdout).toContain(`  ${none} could not be started (not found, or not an executable)\n`);
      expect(missing.stdout).toContain(
        '-> optional, for finetune run: install Python 3.9+ then: pip install torch transformers accelerate; or point IMPLICIT_IT_PYTHON (or finetune run --python) at an interpreter that has torch, transformers and accelerate\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says a cached stand-in with modelkit's tokenizer is written again now that ../shared is here", async (ctx) => {
    if (missingShared('fixtures/tokenizers/smollm/tokenizer.json')) return ctx.skip();
    const cache = mkdtempSync(join(tmpdir(), 'implicit-it-doctor-'));
    try {
      const dir = join(cache, 'models', 'smollm2-135m-random');
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, 'implicit-it-random-model.json'),
        JSON.stringify({ tokenizer: 'modelkit tiny' }),
      );
      const r = await run(['doctor', '--json'], { env: { IMPLICIT_IT_CACHE: cache } });
      const check = JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === 'default model');
      expect(check.status).toBe('warn');
      expect(check.detail).toMatch(
        /^only the random-weights stand-in \(.*\) is cached; it has modelkit's tiny tokenizer \(written while \.\.\/shared was missing\), and SmolLM2's is now in .*: the next run without --model writes it again with that tokenizer$/,
      );
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});

it('doctor: a CUDA provider whose libraries are missing is told where CUDA 12 can come from', () => {
  const reason =
    "CUDA binaries at /x/libonnxruntime_providers_cuda.so, but the libraries it loads are not found: libcudart.so.12 (only libcudart.so.13 here). onnxruntime-node 1.30.0's CUDA provider needs CUDA 12 and cuDNN 9 for CUDA 12: install them, or put their directories on LD_LIBRARY_PATH";
  expect(providerFix({ name: 'cuda', available: false, reason })).toBe(
    "optional (CPU works): pip install nvidia-cuda-runtime-cu12 nvidia-cublas-cu12 nvidia-cufft-cu12 nvidia-curand-cu12 nvidia-cudnn-cu12 holds them; put each one's lib directory (site-packages/nvidia/*/lib) on LD_LIBRARY_PATH",
  );
  expect(
    providerFix({
      name: 'cuda',
      available: false,
      reason: 'CUDA binaries present but no NVIDIA GPU/driver visible',
    }),
  ).toBe('optional (CPU works)');
});

describe('install-cuda', () => {
  // onnxruntime-node's real install script runs, through a proxy that refuses every connection
  // (GLOBAL_AGENT_HTTPS_PROXY, read by the script): the download fails at once, network or not.
  it.runIf(process.platform === 'linux' && process.arch === 'x64')(
    "runs onnxruntime-node's install script and exits 1 with its error when the download fails",
    async () => {
      const env = { GLOBAL_AGENT_HTTPS_PROXY: 'http://127.0.0.1:9' };
      const r = await run(['install-cuda'], { env });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines[0]).toBe(
        "running onnxruntime-node's install script (ONNXRUNTIME_NODE_INSTALL=cuda12), from api.nuget.org",
      );
      // the script's own output, then the error
      expect(lines).toContain('Error: connect ECONNREFUSED 127.0.0.1:9');
      expect(lines.slice(-2)).toEqual([
        "error: onnxruntime-node's install script (ONNXRUNTIME_NODE_INSTALL=cuda12) failed: Error: connect ECONNREFUSED 127.0.0.1:9",
        `hint: without direct https access to api.nuget.org (a proxy, no network), download ${cudaPackageUrl()} and run: implicit-it install-cuda --from FILE`,
      ]);
      const quiet = await run(['install-cuda', '--quiet'], { env });
      expect(quiet.code).toBe(1);
      expect(quiet.stderr.trimEnd().split('\n')).toEqual([lines[0], ...lines.slice(-2)]);

      // --from reads a package already downloaded, and names the one to download when it is not
      // there: a bad argument (exit 2), as a missing input file is to every command
      const missing = join(out, 'missing.nupkg');
      const from = await run(['install-cuda', '--from', missing]);
      expect(from.code).toBe(2);
      expect(from.stderr.trimEnd()).toBe(`error: ${missing}: no such file (download ${cudaPackageUrl()})`);
      const notPackage = join(out, 'not.nupkg');
      writeFileSync(notPackage, 'an HTML error page');
      const wrong = await run(['install-cuda', '--from', notPackage]);
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toMatch(/^error: .+not\.nupkg: not a NuGet package \(.+\)\n$/);
    },
  );
});
