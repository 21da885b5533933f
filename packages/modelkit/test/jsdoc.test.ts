import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sharedPath } from '@implicit-it/testkit';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';
import { afterAll } from 'vitest';
import {
  BUILTIN_CORPUS,
  type ByteLevelBpe,
  createModel,
  PRESETS,
  randomTensor,
  randomWeights,
  resolveConfig,
  toHfConfig,
  trainByteLevelBpe,
  weightSpecs,
  writeSafetensors,
} from '../src/index.js';

// Every export of the package carries a description and an @example (style.md), every @example in
// src/ type-checks against the package's own API, as a consumer would write it, and the values the
// examples state in comments (`parameterCount(PRESETS.tiny); // 106816`) are the values they give.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/modelkit' };
// what the examples name without defining: a consumer's own model directory, config, weights, text
const prelude = `declare const out: string;
declare const dir: string;
declare const config: DecoderConfig;
declare const weights: ModelWeights;
declare const weight: Float32Array;
declare const rows: number;
declare const cols: number;
declare const text: string;
declare const bpe: ByteLevelBpe;
declare function argmax(row: Float32Array): number;
`;

const root = mkdtempSync(join(tmpdir(), 'modelkit-jsdoc-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const fresh = () => mkdtempSync(join(root, 'x-'));

/** A Hugging Face checkpoint directory (config.json, model.safetensors) of `config`'s seeded weights. */
function writeCheckpoint(dir: string, config: ReturnType<typeof resolveConfig>): void {
  const w = randomWeights(config, 1);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfig(config)));
  writeSafetensors(
    join(dir, 'model.safetensors'),
    Object.fromEntries(weightSpecs(config).map((s) => [s.name, { shape: s.shape, data: w[s.name]! }])),
  );
}

// the consumer paths of the examples: a finetuned tiny model's output directory (exportOnnx writes its
// onnx/ into it), a SmolLM2-135M checkpoint (its shapes with 1 layer and 512 ids: 49,152 x 576
// embeddings are 113 MB), and the shared SmolLM tokenizer
const finetuned = join(root, 'poetry-output');
const smollm2 = join(root, 'smollm2-135m');
const SMOLLM = 'fixtures/tokenizers/smollm';

// the names the examples leave to the reader, as values. Made once (lazily): a tiny model written by
// createModel, the checkpoints above, the seeded gate_proj of a SmolLM2 layer, a BPE trained on the
// built-in corpus; each example gets its own copy of what it may change (a directory, arrays, maps)
let made: Promise<{ model: string; gate: Float32Array; trained: ByteLevelBpe }> | undefined;
async function free() {
  made ??= (async () => {
    writeCheckpoint(finetuned, PRESETS.tiny);
    writeCheckpoint(smollm2, resolveConfig({ preset: 'smollm2-135m', numHiddenLayers: 1, vocabSize: 512 }));
    const gateSpec = weightSpecs(PRESETS['smollm2-135m']).find(
      (s) => s.name === 'model.layers.0.mlp.gate_proj.weight',
    )!;
    return {
      model: (await createModel({ preset: 'tiny', seed: 1, out: join(root, 'tiny') })).dir,
      gate: randomTensor(gateSpec, 1),
      trained: trainByteLevelBpe(BUILTIN_CORPUS),
    };
  })();
  const { model, gate, trained } = await made;
  const dir = fresh();
  cpSync(model, dir, { recursive: true });
  return {
    out: fresh(),
    dir,
    config: resolveConfig({ preset: 'tiny' }),
    weights: randomWeights(PRESETS.tiny, 1),
    weight: gate.slice(),
    rows: 1536,
    cols: 576,
    text: BUILTIN_CORPUS,
    bpe: {
      vocab: new Map(trained.vocab),
      merges: trained.merges.map(([a, b]) => [a, b]),
      specialTokens: [...trained.specialTokens],
    } satisfies ByteLevelBpe,
    argmax: (row: Float32Array) => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0),
  };
}

// a new export gets a description and an @example too
describeJsdoc({
  ...pkg,
  prelude,
  exports: 83,
  stated: {
    module: () => import('../src/index.js'),
    importer: (s) => import(s),
    free,
    rewrite: {
      "'jobs/poetry/output'": JSON.stringify(finetuned),
      "'/models/smollm2-135m'": JSON.stringify(smollm2),
      "'../shared/fixtures/tokenizers/smollm'": JSON.stringify(sharedPath(SMOLLM)),
    },
    // one example reads the shared SmolLM tokenizer
    shared: [`${SMOLLM}/tokenizer.json`],
    minimum: 41,
  },
});
