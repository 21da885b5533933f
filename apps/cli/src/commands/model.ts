import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  CONVENTIONAL_EOS_TOKENS,
  type ConfigInput,
  createModel,
  DTYPE_FILES,
  exportOnnx,
  ModelConfigError,
  ModelFileError,
  ModelWeightsError,
  PRESETS,
} from '@implicit-it/modelkit';
import { compileRules, resolveRuleSpec } from '@implicit-it/rules';
import {
  damagedGraphHint,
  disableOnnxTelemetry,
  type ModelDtype,
  ModelLoadError,
  modelDirOf,
  onnxruntime,
  resolveModel,
  resolveModelFiles,
  summarizeGraph,
} from '@implicit-it/runtime';
import { loadTokenizer } from '@implicit-it/tokenizers';
import { type Command, Option } from 'commander';
import type * as Ort from 'onnxruntime-node';
import {
  type ConfigSet,
  checkOutDirectory,
  checkTokenizerDir,
  configName,
  dtypesArg,
  inConfigNames,
  intArg,
  parseRules,
  rulesLabel,
  SETTABLE,
  type Settable,
  setArg,
  type WeightDtype,
} from '../flags.js';
import { CliError, EXIT, painter, printJson, shellWord, usage } from '../output.js';
import { progressBar } from '../progress.js';

const human = (bytes: number) =>
  bytes >= 2 ** 30
    ? `${(bytes / 2 ** 30).toFixed(2)} GiB`
    : bytes >= 2 ** 20
      ? `${(bytes / 2 ** 20).toFixed(1)} MiB`
      : `${(bytes / 1024).toFixed(1)} KiB`;

function dirSize(dir: string): { files: { path: string; bytes: number }[]; total: number } {
  const files: { path: string; bytes: number }[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) files.push({ path: relative(dir, p), bytes: statSync(p).size });
    }
  };
  walk(dir);
  files.sort((a, b) => a.path.localeCompare(b.path));
  return { files, total: files.reduce((s, f) => s + f.bytes, 0) };
}

const DTYPES_HELP = `ONNX graphs to write, comma-separated: fp32 (onnx/model.onnx), q4 (onnx/model_q4.onnx: 4-bit linear layers, MatMulNBits), q8 (onnx/model_quantized.onnx: 8-bit, as onnxruntime's dynamic quantizer writes it)`;

interface CreateFlags {
  preset: string;
  seed: number;
  set?: ConfigSet;
  out: string;
  tokenizer?: string;
  dtypes: WeightDtype[];
  merged?: boolean;
  safetensors?: boolean;
  json?: boolean;
}

async function create(flags: CreateFlags): Promise<void> {
  if (!Object.hasOwn(PRESETS, flags.preset)) {
    throw usage(`--preset: expected one of ${Object.keys(PRESETS).join(', ')}, got "${flags.preset}"`);
  }
  if (flags.tokenizer) checkTokenizerDir(flags.tokenizer);
  checkOutDirectory(flags.out, 'give a directory (created when missing)');
  const set = flags.set ?? {};
  // what --set changed, by config.json name (for the report and its text)
  const named = Object.fromEntries(Object.entries(set).map(([k, v]) => [configName(k), v]));
  const setText = Object.entries(named)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ');
  const bar = progressBar(`writing ${flags.preset}`, 1, 'tensors');
  const started = performance.now();
  let created: Awaited<ReturnType<typeof createModel>>;
  try {
    created = await createModel({
      preset: flags.preset as keyof typeof PRESETS,
      ...(set as ConfigInput),
      seed: flags.seed,
      out: flags.out,
      tokenizerDir: flags.tokenizer,
      dtypes: flags.dtypes,
      merged: flags.merged,
      safetensors: flags.safetensors === true,
      onProgress: ({ index, count }) => bar.update(index + 1, count),
    });
  } catch (error) {
    // the library names its vocabSize option; here the preset (or --set vocab_size) fixes the vocabulary
    const ids =
      ModelConfigError.isInstance(error) && error.field === 'vocabSize' && flags.tokenizer
        ? error.atLeast
        : undefined;
    if (ids !== undefined && set.vocabSize !== undefined) {
      throw new CliError(
        `--tokenizer: its ${ids} ids do not fit the ${set.vocabSize}-id vocabulary of --set vocab_size`,
        EXIT.usage,
        `give --set vocab_size=${ids} (or more)`,
      );
    }
    if (ids !== undefined) {
      const fits = Object.entries(PRESETS)
        .map(([name, p]) => `${name} (${p.vocabSize} ids)`)
        .join(', ');
      throw new CliError(
        `--tokenizer: its ${ids} ids do not fit the ${PRESETS[flags.preset as keyof typeof PRESETS].vocabSize}-id vocabulary of --preset ${flags.preset}`,
        EXIT.usage,
        `choose a preset whose vocabulary holds the tokenizer's ids: ${fits}; or keep this one and give --set vocab_size=${ids}`,
      );
    }
    // the model's ids are the tokenizer's: one without an EOS cannot stop
    if (ModelConfigError.isInstance(error) && error.field === 'eosTokenId' && flags.tokenizer) {
      throw new CliError(
        `--tokenizer: ${flags.tokenizer} names no EOS token, and tokenizer.json has none of ${CONVENTIONAL_EOS_TOKENS.join(', ')} as a special token`,
        EXIT.usage,
        'use a tokenizer directory whose tokenizer_config.json names eos_token',
      );
    }
    // a value of --set, or a field of the preset that no longer fits what --set changed
    if (ModelConfigError.isInstance(error) && setText !== '') {
      const field = error.field as Settable;
      // modelkit derives head_dim from the sizes set (see resolveConfig); other fields keep the preset's
      const derived =
        field === 'headDim' && (set.hiddenSize !== undefined || set.numAttentionHeads !== undefined);
      throw new CliError(
        `--set ${inConfigNames(error.message)}`,
        EXIT.usage,
        Object.hasOwn(set, field) || !SETTABLE.includes(field)
          ? undefined
          : derived
            ? 'head_dim follows hidden_size / num_attention_heads unless set: change those, or give --set head_dim=...'
            : `${configName(field)} is --preset ${flags.preset}'s own; give --set ${configName(field)}=... to change it with the rest`,
      );
    }
    const code = (error as NodeJS.ErrnoException)?.code;
    if (code === 'ENOTDIR' || code === 'EACCES' || code === 'EROFS') {
      throw new CliError(`--out: cannot write ${flags.out} (${(error as Error).message})`, EXIT.failure);
    }
    throw error;
  } finally {
    bar.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  if (flags.json) {
    printJson({
      dir: created.dir,
      preset: flags.preset,
      set: named,
      seed: flags.seed,
      parameters: created.parameters,
      weightBytes: created.weightBytes,
      externalData: created.externalData,
      files: created.files,
      removed: created.removed,
      config: created.config,
      seconds: Number(seconds.toFixed(2)),
    });
    return;
  }
  const paint = painter();
  process.stdout.write(
    `${paint('green', 'created')} ${created.dir}\n` +
      `  preset ${flags.preset}${setText ? ` (${setText})` : ''}, seed ${flags.seed}: ${(created.parameters / 1e6).toFixed(2)}M parameters, ` +
      `${human(created.weightBytes)} of weights${created.externalData ? ' (external data)' : ''}, ${seconds.toFixed(1)} s\n` +
      `  files: ${created.files.join(', ')}\n` +
      (created.removed.length > 0 ? `  removed a previous model's ${created.removed.join(', ')}\n` : '') +
      `  ${paint('dim', 'weights are random: use it to test mechanics, not answers')}\n`,
  );
}

interface ExportFlags {
  base?: string;
  force?: boolean;
  dtypes: WeightDtype[];
  json?: boolean;
}

async function exportGraph(dir: string, flags: ExportFlags): Promise<void> {
  if (!existsSync(dir)) {
    throw new CliError(
      `${dir}: no such directory`,
      EXIT.load,
      'give a Hugging Face model directory: config.json and model.safetensors',
    );
  }
  if (!statSync(dir).isDirectory()) {
    throw new CliError(
      `${dir}: a file, not a model directory`,
      EXIT.load,
      `give the directory that holds it (${modelDirOf(dir)})`,
    );
  }
  const bar = progressBar('exporting', 1, 'tensors');
  const started = performance.now();
  let exported: Awaited<ReturnType<typeof exportOnnx>>;
  try {
    exported = await exportOnnx({
      dir,
      overwrite: flags.force === true,
      dtypes: flags.dtypes,
      ...(flags.base ? { base: flags.base } : {}),
      onProgress: ({ index, count }) => bar.update(index + 1, count),
    });
  } catch (error) {
    if (ModelFileError.isInstance(error) && /: exists; pass `overwrite: true`/.test(error.message)) {
      throw new CliError(`${error.file}: exists`, EXIT.usage, 'pass --force to replace it');
    }
    if (ModelFileError.isInstance(error) || ModelWeightsError.isInstance(error)) {
      throw new CliError(error.message, EXIT.load);
    }
    if (ModelConfigError.isInstance(error)) {
      throw new CliError(
        `${join(dir, 'config.json')}: ${error.message}`,
        EXIT.load,
        'modelkit exports llama and qwen2 decoders with plain rotary embeddings; use optimum-cli export onnx for others',
      );
    }
    throw error;
  } finally {
    bar.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  if (flags.json) {
    printJson({ ...exported, seconds: Number(seconds.toFixed(2)) });
    return;
  }
  const paint = painter();
  const c = exported.config;
  process.stdout.write(
    `${paint('green', 'exported')} ${exported.files
      .filter((f) => f.endsWith('.onnx'))
      .map((f) => join(exported.dir, f))
      .join(', ')}\n` +
      `  ${c.modelType}, ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}: ${(exported.parameters / 1e6).toFixed(2)}M parameters ` +
      `from ${relative(exported.dir, exported.source)} (${exported.sourceDtypes.join(', ')}), ` +
      `${human(exported.weightBytes)} of weights${exported.externalData ? ' (external data)' : ''}, ${seconds.toFixed(1)} s\n` +
      (exported.ignored.length > 0 ? `  ignored ${exported.ignored.join(', ')}\n` : '') +
      exported.otherGraphs.map((g) => `  ${paint('yellow', staleGraphNote(g, flags.dtypes))}\n`).join('') +
      `  ${paint('dim', `try it: implicit-it generate --model ${shellWord(dir)}${flags.dtypes.includes('fp32') ? '' : ` --dtype ${flags.dtypes[0]}`} "Write a poem about the sea."`)}\n`,
  );
}

/** What to say of a graph an export left as it was (see `ExportedOnnx.otherGraphs`). */
function staleGraphNote(graph: string, written: readonly WeightDtype[]): string {
  const dtype = (Object.keys(DTYPE_FILES) as WeightDtype[]).find((d) => graph === `onnx/${DTYPE_FILES[d]}`);
  const redo = dtype
    ? `export it too (--dtypes ${[...new Set([...written, dtype])].join(',')} --force), or `
    : '';
  return `${graph} was not written: it holds the weights it was made from; ${redo}remove it`;
}

interface InspectFlags {
  rules?: string;
  dtype: string;
  json?: boolean;
}

async function inspect(target: string, flags: InspectFlags): Promise<void> {
  const rulesSpec = parseRules(flags.rules);
  // inspect reads what is on this machine: a hub id is looked up in the cache, never downloaded
  const dir = await resolveModel(target, { offline: true, dtype: flags.dtype as ModelDtype }).catch(
    (error: unknown) => {
      if (!ModelLoadError.isInstance(error) || error.code !== 'runtime.offline') throw error;
      throw new CliError(
        `${target}: neither a model directory nor a hub model in the cache (${error.file}); model inspect downloads nothing`,
        EXIT.load,
        `give a model directory, or fetch it once with a command that loads it (implicit-it generate --model ${shellWord(target)} "Hi")`,
      );
    },
  );
  if (!existsSync(dir)) throw new CliError(`${target}: no such directory`, EXIT.load);
  const files = resolveModelFiles(dir, flags.dtype as ModelDtype);
  const tok = await loadTokenizer(dir);
  disableOnnxTelemetry(); // as loadModel does before its first session
  const session = await onnxruntime()
    .InferenceSession.create(files.onnxFile, { executionProviders: ['cpu'] })
    .catch((error: Error) => {
      // as every command that loads a model: exit 3, naming the file
      throw new CliError(
        `${files.onnxFile}: onnxruntime cannot load it (${error.message.split('\n')[0]})`,
        EXIT.load,
        damagedGraphHint(error.message),
      );
    });
  const io = (names: readonly string[], meta: readonly Ort.InferenceSession.ValueMetadata[]) =>
    names.map((name) => {
      const m = meta.find((x) => x.name === name);
      return m?.isTensor ? { name, type: m.type, shape: m.shape } : { name, type: 'non-tensor', shape: [] };
    });
  const inputs = io(session.inputNames, session.inputMetadata);
  const outputs = io(session.outputNames, session.outputMetadata);
  await session.release();
  const graph = summarizeGraph(readFileSync(files.onnxFile));

  const rules = compileRules(rulesSpec, tok.vocabulary);
  const config = rulesSpec === false ? {} : resolveRuleSpec(rulesSpec);
  // the ids the EOS ramp raises: the config's eos.ids where it gives them (then the tokenizer's are named apart)
  const eosConfig = rules.config.eos;
  const ramp = {
    ids: [...rules.eosIds],
    fromSpec: typeof eosConfig === 'object' && eosConfig.ids !== undefined,
  };
  const uniform = typeof config.uniform === 'object' ? (config.uniform.entries ?? []) : [];
  const entries = uniform.map((e) =>
    'id' in e
      ? { entry: `id ${e.id}`, score: e.score, ids: [e.id] }
      : { entry: JSON.stringify(e.text), score: e.score, ids: [...tok.vocabulary.idsOf(e.text)] },
  );
  const size = dirSize(dir);
  const c = files.config;
  const report = {
    dir,
    config: {
      modelType: c.model_type,
      layers: c.num_hidden_layers,
      hiddenSize: c.hidden_size,
      heads: c.num_attention_heads,
      kvHeads: c.num_key_value_heads,
      headDim: c.head_dim,
      vocabSize: c.vocab_size,
      maxPositions: c.max_position_embeddings ?? null,
      bosTokenId: c.bos_token_id ?? null,
      eosTokenIds: c.eos_token_id,
    },
    onnx: {
      file: relative(dir, files.onnxFile),
      dtype: files.dtype,
      merged: files.merged,
      inputs,
      outputs,
      nodes: graph.nodes,
      ops: graph.ops,
      matMulNBits: graph.matMulNBits,
    },
    size: { bytes: size.total, files: size.files },
    tokenizer: {
      pieceEncoding: tok.pieceEncoding,
      vocabularySize: tok.vocabulary.size,
      eosIds: [...tok.eosIds],
      eosSource: tok.eosSource ?? null,
      bosId: tok.bosId ?? null,
      chatTemplate: tok.chatTemplate !== undefined,
    },
    rules: {
      spec: rulesLabel(rulesSpec),
      enabled: rules.enabled,
      eosIds: ramp.ids,
      uniform: entries,
      unresolved: rules.unresolved,
    },
  };
  if (flags.json) {
    printJson(report);
    return;
  }
  const p = painter();
  const line = (k: string, v: string) => `  ${k.padEnd(26)} ${v}\n`;
  let out = `${p('bold', dir)}\n`;
  out += `${p('bold', 'config')}\n`;
  out += line('type', `${c.model_type}, ${c.num_hidden_layers} layers, hidden ${c.hidden_size}`);
  out += line(
    'attention',
    `${c.num_attention_heads} heads, ${c.num_key_value_heads} KV heads, head dim ${c.head_dim}`,
  );
  out += line('vocabulary', `${c.vocab_size} (tokenizer: ${tok.vocabulary.size}, ${tok.pieceEncoding})`);
  out += line('context', `${c.max_position_embeddings ?? 'unknown'} positions`);
  out += line('EOS', `${JSON.stringify([...tok.eosIds])} (${tok.eosSource ?? 'not named'})`);
  out += line('chat template', tok.chatTemplate ? 'yes' : 'no (use --format tulu)');
  out += `${p('bold', 'onnx')} ${report.onnx.file} (${files.dtype})\n`;
  for (const i of inputs) out += line(`in ${i.name}`, `${i.type} [${i.shape.join(', ')}]`);
  for (const o of outputs) out += line(`out ${o.name}`, `${o.type} [${o.shape.join(', ')}]`);
  const top = Object.entries(graph.ops)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6)
    .map(([op, n]) => `${op.replace(/^com\.microsoft\./, '')} ${n}`);
  out += line(
    'nodes',
    `${graph.nodes} (${top.join(', ')}${Object.keys(graph.ops).length > 6 ? ', ...' : ''})`,
  );
  const nBits = graph.matMulNBits;
  if (nBits) {
    const levels = nBits.accuracyLevels.join(', ');
    out += line(
      'quantized linear layers',
      `${nBits.count} MatMulNBits, ${nBits.bits.join('/')} bits, blocks of ${nBits.blockSizes.join('/')}, accuracy level ${levels}` +
        (nBits.accuracyLevels.includes(4)
          ? ''
          : ' (load it with --q4-accuracy-level 4 for int8 compute, faster on CPU)'),
    );
  }
  const dynamic = graph.ops.DynamicQuantizeLinear ?? 0;
  if (dynamic > 0)
    out += line(
      'quantized linear layers',
      `${graph.ops.MatMulInteger ?? 0} MatMulInteger on 8-bit weights, ${dynamic} activations rounded to 8 bits per tensor at run time (rows batched together move each other's answers a little)`,
    );
  out += `${p('bold', 'size')} ${human(size.total)} in ${size.files.length} files\n`;
  out += `${p('bold', 'rules')} ${rulesLabel(rulesSpec)}: ${rules.enabled.join(', ') || 'none enabled'}\n`;
  if (rules.enabled.includes('eos')) {
    // the ids the rules ramp: a spec's eos.ids replace the tokenizer's, which are then named apart
    const own = JSON.stringify([...tok.vocabulary.eosIds]);
    out += line(
      'eos ramp',
      ramp.fromSpec
        ? `ids ${JSON.stringify(ramp.ids)} (the rules' eos.ids${JSON.stringify(ramp.ids) === own ? '' : `; the tokenizer's EOS ids are ${own}`})`
        : `ids ${JSON.stringify(ramp.ids)} (the tokenizer's EOS)`,
    );
  }
  for (const e of entries) {
    const score = `${e.score > 0 ? '+' : ''}${e.score}`;
    out += line(
      e.entry,
      e.ids.length ? `${score} -> id ${e.ids.join(', ')}` : p('yellow', `${score} unresolved`),
    );
  }
  if (rules.unresolved.length) {
    out += p(
      'yellow',
      `  ${rules.unresolved.length} entries do not resolve (no vocabulary item with that exact text)\n`,
    );
  }
  process.stdout.write(out);
}

/** `--dtypes`, whose default shows as the flag is written (`fp32`), not as a JSON array. */
const dtypesOption = () =>
  new Option('--dtypes <list>', DTYPES_HELP).argParser(dtypesArg).default(['fp32'], 'fp32');

export function registerModel(program: Command): void {
  const model = program
    .command('model')
    .description('create, export and inspect model directories')
    .addHelpText(
      'after',
      `
Examples:
  $ implicit-it model create --preset tiny --seed 1 --out ./models/tiny
  $ implicit-it model export ./jobs/poetry/output
  $ implicit-it model inspect ./models/tiny`,
    );
  model
    .command('create')
    .description('write a llama-family ONNX model directory with seeded random weights (modelkit)')
    .requiredOption('--preset <name>', `shape: ${Object.keys(PRESETS).join(', ')}`)
    .option('--seed <n>', 'seed of the random weights', intArg(0, 2 ** 32 - 1), 0)
    .option(
      '--set <key=value>',
      "a config.json field over the preset's, e.g. num_hidden_layers=4 (repeatable; any size: hidden_size, vocab_size, num_attention_heads...)",
      setArg,
    )
    .requiredOption(
      '-o, --out <dir>',
      "directory to write (a previous model's files in it are replaced or removed, other files kept)",
    )
    .addOption(dtypesOption())
    .option(
      '--merged',
      "write optimum's merged decoder instead (onnx/decoder_model_merged.onnx: one If on a use_cache_branch input, as older transformers.js exports have it)",
    )
    .option(
      '--tokenizer <dir>',
      "a Hugging Face tokenizer directory to copy in (default: modelkit's tiny tokenizer)",
    )
    .option(
      '--safetensors',
      'also write the weights as model.safetensors (PyTorch), so that transformers loads the model: a base model for finetune plan',
    )
    .option('--json', 'print what was written as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ implicit-it model create --preset tiny --seed 1 --out ./models/tiny
  $ implicit-it model create --preset smollm2-135m --out ./models/smol \\
      --tokenizer ../shared/fixtures/tokenizers/smollm
  $ implicit-it model create --preset smollm2-135m --out ./models/smol \\
      --dtypes fp32,q4    # then: generate --dtype q4
  $ implicit-it model create --preset tiny --set vocab_size=49152 \\
      --tokenizer ../shared/fixtures/tokenizers/smollm --out ./models/tiny-smol
  $ implicit-it model create --preset tiny --safetensors --out ./models/tiny-pt
      # a base model for: finetune plan --model ./models/tiny-pt ...`,
    )
    .action(async (flags: CreateFlags) => create(flags));
  model
    .command('export')
    .description(
      "write onnx/model.onnx from a checkpoint's config.json and safetensors (llama, qwen2; no Python)",
    )
    .argument('<dir>', 'a Hugging Face model directory (config.json, model.safetensors or its shards)')
    .option(
      '--base <dir>',
      "for a LoRA adapter directory: the base model to merge it into (default: the adapter's base_model_name_or_path)",
    )
    .addOption(dtypesOption())
    .option('--force', 'replace existing graphs of those dtypes')
    .option('--json', 'print what was written as JSON')
    .addHelpText(
      'after',
      `
Reads F32, BF16, F16 or F64 weights (one tensor at a time) and writes float32
ONNX with a KV cache, the graph \`model create\` writes, and with --dtypes q4 a
4-bit copy (onnx/model_q4.onnx, blocks of 32 with one scale each, int8 compute:
linear layers 6.4x smaller, faster on CPU, answers not identical to float32);
with --dtypes q8 an 8-bit copy (onnx/model_quantized.onnx, as onnxruntime's
quantize_dynamic writes it and transformers.js loads for dtype q8: weights 4x
smaller, each activation rounded to 8 bits over its whole tensor, so rows
batched together move each other's answers a little); nothing else in the
directory changes. A LoRA adapter directory (peft's adapter_config.json and
adapter_model.safetensors) is merged into its base model, and gets the base's
config.json. \`finetune run\` does this itself when optimum is not installed.

Examples:
  $ implicit-it model export ./jobs/poetry/output
  $ implicit-it model export ./jobs/poetry-lora/output \\
      --base ./models/SmolLM2-135M
  $ implicit-it model export ./Qwen2.5-0.5B --force --json | jq .files
  $ implicit-it model export ./jobs/poetry/output --dtypes fp32,q4`,
    )
    .action(async (dir: string, flags: ExportFlags) => exportGraph(dir, flags));
  model
    .command('inspect')
    .description('config, ONNX inputs/outputs, dtype, size, EOS, and which rule entries resolve')
    .argument('<dir>', 'a model directory (or a cached hub id)')
    .option('-r, --rules <spec>', 'rules to resolve against the vocabulary', 'hewitt2024')
    .option('--dtype <dtype>', 'ONNX weights variant', 'fp32')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ implicit-it model inspect ./models/tiny
  $ implicit-it model inspect ./models/smol --rules hewitt2024-prose --json \\
      | jq .rules.unresolved`,
    )
    .action(async (dir: string, flags: InspectFlags) => inspect(dir, flags));
}
