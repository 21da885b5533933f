import { join, resolve } from 'node:path';
import { Tensor } from '@huggingface/transformers';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { TIRAMISU, tinyLlama2ModelOptions } from '@implicit-it/testkit';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';
import { afterAll } from 'vitest';
import { loadModel, type Model, providerStatus } from '../src/index.js';
import { PROMPTS, transformersModel } from './helpers.js';

// Every export of the package carries a description and an @example (style.md), every @example in
// src/ type-checks against the package's own API, as a consumer would write it, and the values the
// examples state in comments (`sampleToken(...); // 1 (greedy)`) are the values they give, with a
// tiny model on the shared Llama-2 tokenizer standing for the consumer's model.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/runtime' };
// what the examples name without defining: a consumer's loaded model, its directory and ONNX file,
// prompts and responses, a logits row, rule sets and prompts from the lower packages, and a
// transformers.js model with its input ids
const prelude = `declare const model: Model;
declare const modelDir: string;
declare const onnxFile: string;
declare const prompts: string[];
declare const instruction: string;
declare const responses: string[];
declare const logits: Float32Array;
declare const digitIds: number[];
declare const rules: import('@implicit-it/rules').RuleSet;
declare const prompt: import('@implicit-it/tokenizers').Prompt;
declare const hfModel: import('@huggingface/transformers').PreTrainedModel;
declare const inputIds: import('@huggingface/transformers').Tensor;
`;

const LLAMA2 = 'fixtures/tokenizers/llama2';

// the names the examples leave to the reader, as values: a tiny seeded model on the Llama-2
// tokenizer, loaded once by the runtime (and once by transformers.js), the first logits row it
// gives for the tiramisu prompt; arrays and prompts made anew for each example
type Loaded = {
  model: Model;
  dir: string;
  row: Float32Array;
  hf: Awaited<ReturnType<typeof transformersModel>>;
};
let loaded: Promise<Loaded> | undefined;
async function free() {
  loaded ??= (async () => {
    const { dir } = await createTinyModel(tinyLlama2ModelOptions());
    const model = await loadModel(dir, { log: () => {} });
    const rows: Float32Array[] = [];
    await model.generate(TIRAMISU, {
      maxNewTokens: 1,
      processors: [{ process: (l) => void rows.push(l.slice()) }],
    });
    return { model, dir, row: rows[0]!, hf: await transformersModel(dir) };
  })();
  const { model, dir, row, hf } = await loaded;
  const prompt = model.prompt({ instruction: TIRAMISU });
  return {
    model,
    modelDir: dir,
    onnxFile: join(dir, 'onnx', 'model.onnx'),
    prompts: [...PROMPTS],
    instruction: TIRAMISU,
    responses: ['Whisk the yolks with the sugar.', 'I cannot help with that.'],
    logits: row.slice(),
    digitIds: [...'0123456789'].flatMap((d) => model.tokenizer.vocabulary.idsOf(d)),
    rules: model.rules('hewitt2024'),
    prompt,
    hfModel: hf,
    inputIds: new Tensor('int64', BigInt64Array.from(prompt.ids, BigInt), [1, prompt.ids.length]),
  };
}
afterAll(async () => {
  const done = await loaded;
  await done?.model.dispose();
  await done?.hf.dispose();
});

// a graph such as a consumer's SmolLM2-135M q4 export: its 30 layers (7 linear layers each and the
// LM head quantized, blocks of 32, accuracy level 0 as transformers.js writes them), 2,048 positions
const graphs = (async () =>
  (
    await createTinyModel({
      seed: 1,
      numHiddenLayers: 30,
      maxPositionEmbeddings: 2048,
      dtypes: ['fp32', 'q4'],
      q4AccuracyLevel: 0,
    })
  ).dir)();

// providerStatus's example states what a machine without CUDA gives
const cuda = providerStatus().some((p) => p.name === 'cuda' && p.available);

// a new export gets a description and an @example too
describeJsdoc({
  ...pkg,
  prelude,
  exports: 80,
  // ImplicitItError, PromptError and TokenizerLoadError are re-exported: their examples are their packages'
  minExamples: 75,
  timeout: 120_000,
  stated: {
    module: () => import('../src/index.js'),
    importer: (s) => import(s),
    free,
    // a consumer's graph files are the tiny model's
    rewrite: {
      "readFileSync('onnx/model_q4.onnx')": `readFileSync(${JSON.stringify(join(await graphs, 'onnx', 'model_q4.onnx'))})`,
      "readFileSync('onnx/model.onnx')": `readFileSync(${JSON.stringify(join(await graphs, 'onnx', 'model.onnx'))})`,
    },
    skip: cuda
      ? [
          {
            match: 'providerStatus().filter',
            why: 'states what a machine without CUDA gives, and this one has it',
          },
        ]
      : [],
    shared: [`${LLAMA2}/tokenizer.json`, `${LLAMA2}/tokenizer_config.json`],
    minimum: cuda ? 15 : 16,
  },
});
