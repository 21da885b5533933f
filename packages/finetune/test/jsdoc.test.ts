import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createModel, randomTensor, writeSafetensors } from '@implicit-it/modelkit';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { sharedPath, tinyLlama2ModelOptions } from '@implicit-it/testkit';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';
import { afterAll } from 'vitest';
import { type ChatExample, getDatasetRecipe, loadEncodingTokenizer, planJob } from '../src/index.js';

// Every export of the package carries a description and an @example (style.md), every @example in
// src/ type-checks against the package's own API, as a consumer would write it, and the values the
// examples state in comments are the values they give.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/finetune' };
// what the examples name without defining: a consumer's own examples, tokenizer and encoded rows
const prelude = `declare const examples: ChatExample[];
declare const example: ChatExample;
declare const tokenizer: EncodingTokenizer;
declare const encoded: EncodedExample[];
`;
const EXPORTS = 95;
// pythonStrip and ImplicitItError are @implicit-it/rules' exports: their examples are in its src/
const REEXPORTED = 2;

// The stated values are checked on the shared data and tokenizers (none of them launches Python).
const SHARED = [
  'data/lima/lima_data.jsonl',
  'data/gsm8k/train.jsonl',
  'data/mbpp/mbpp.jsonl',
  'fixtures/tokenizers/llama2/tokenizer.json',
  'fixtures/tokenizers/olmo/tokenizer.json',
];
const DATA = sharedPath('data');
const LLAMA2 = sharedPath('fixtures/tokenizers/llama2');
// the consumer's own directories: `models/tiny` is modelkit's tiny model (512 positions);
// `models/Llama-2-7b-hf` a tiny Llama on the Llama-2 tokenizer, with Llama-2's 4,096 positions and
// the PyTorch weights planning requires; `jobs/res` a job planned on it
const work = mkdtempSync(join(tmpdir(), 'ft-jsdoc-'));
const TINY = join(work, 'models', 'tiny');
const LLAMA2_MODEL = join(work, 'models', 'Llama-2-7b-hf');
const JOB = join(work, 'jobs', 'res');
const q = (s: string) => JSON.stringify(s);
// the paths the examples name, relative to a consumer's working directory, as they are here
const rewrite = {
  "'../shared/data'": q(DATA),
  "'../shared/fixtures/tokenizers/llama2'": q(LLAMA2),
  "'../shared/fixtures/tokenizers/olmo'": q(sharedPath('fixtures/tokenizers/olmo')),
  "'mbpp.jsonl'": q(join(work, 'mbpp.jsonl')),
  "'models/tiny'": q(TINY),
  "'/abs/models/tiny/config.json'": q(join(TINY, 'config.json')),
  "'models/Llama-2-7b-hf'": q(LLAMA2_MODEL),
  "'jobs/res'": q(JOB),
  // planSweep's example reads the default `dataDir`, ../shared/data relative to the working directory
  "out: 'jobs/gsm-sweep'": `out: ${q(join(work, 'jobs', 'gsm-sweep'))}, dataDir: ${q(DATA)}`,
  // the package's own file: in the workspace, not under a consumer's node_modules
  "'/…/node_modules/@implicit-it/finetune/python/train.py'": q(join(pkgDir, 'python', 'train.py')),
};

/** A tiny Llama on the Llama-2 tokenizer with its seeded weights also as model.safetensors. */
async function llama2Model(dir: string): Promise<void> {
  const { seed, ...options } = tinyLlama2ModelOptions();
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  await createModel({
    preset: 'tiny',
    ...options,
    maxPositionEmbeddings: 4096,
    out: dir,
    weights: (spec) => {
      const data = randomTensor(spec, seed);
      tensors[spec.name] = { shape: spec.shape, data };
      return data;
    },
  });
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
}

// built once, on the first example that states a value (about 1 s); each example gets its own copy
// of the mutable example row
let prepared: Promise<{ tokenizer: unknown; example: ChatExample }> | undefined;
async function prepare() {
  const [tokenizer, lima] = await Promise.all([
    loadEncodingTokenizer(LLAMA2),
    getDatasetRecipe('lima').build(DATA),
  ]);
  await createTinyModel({ dir: TINY });
  await llama2Model(LLAMA2_MODEL);
  // the job `readJob('jobs/res')` reads: planJob's example plans it for LIMA on 8 GPUs; MBPP, the
  // smallest recipe, is planned faster, and any planned job.json has the format readJob accepts
  await planJob({ recipe: 'mbpp', model: LLAMA2_MODEL, gpus: 8, nodes: 1, out: JOB, dataDir: DATA });
  return { tokenizer, example: lima.examples[0]! };
}
// the stated examples use `example` (LIMA's first) and `tokenizer` (Llama-2); a new one that uses
// `examples` or `encoded` fails with a ReferenceError until they are added here
async function free() {
  prepared ??= prepare();
  const { tokenizer, example } = await prepared;
  return { tokenizer, example: structuredClone(example) };
}

const python = process.env.IMPLICIT_IT_PYTHON;

// a new export gets a description and an @example too
describeJsdoc(
  {
    ...pkg,
    prelude,
    exports: EXPORTS,
    minExamples: EXPORTS - REEXPORTED,
    stated: {
      module: () => import('../src/index.js'),
      importer: (s) => import(s),
      free,
      rewrite,
      shared: SHARED,
      minimum: 40,
    },
  },
  () => {
    afterAll(() => {
      rmSync(work, { recursive: true, force: true });
      // defaultPython's example sets IMPLICIT_IT_PYTHON
      if (python === undefined) delete process.env.IMPLICIT_IT_PYTHON;
      else process.env.IMPLICIT_IT_PYTHON = python;
    });
  },
);
