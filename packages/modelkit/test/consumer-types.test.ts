import { resolve } from 'node:path';
import { typecheckConsumer } from '@implicit-it/testkit';
import { expect, it } from 'vitest';

// A TypeScript consumer with exactOptionalPropertyTypes hands on its own optional settings
// (`T | undefined`): every option type the package takes must accept them, as the functions do.
it('optional options take undefined under exactOptionalPropertyTypes', () => {
  const source = `
import {
  buildDecoderGraph,
  type ConfigInput,
  type CreateModelOptions,
  createModel,
  type DecoderConfigOverrides,
  type DecoderGraphOptions,
  type ExportOnnxOptions,
  exportOnnx,
  type ForceGreedyOptions,
  forceGreedyToken,
  PRESETS,
  type Q4Options,
  type ReferenceForwardOptions,
  randomWeightSource,
  randomWeights,
  readModel,
  referenceForward,
  resolveConfig,
  type TrainBpeOptions,
  trainByteLevelBpe,
  validateConfig,
  type WriteOnnxOptions,
  writeOnnxModel,
} from '@implicit-it/modelkit';
import { createTinyModel, type TinyModelOptions } from '@implicit-it/modelkit/test';

declare const settings: {
  seed: number | undefined;
  layers: number | undefined;
  window: number | null | undefined;
  dir: string | undefined;
  flag: boolean | undefined;
  dtypes: ('fp32' | 'q4' | 'q8')[] | undefined;
};
const overrides: DecoderConfigOverrides = { numHiddenLayers: settings.layers, slidingWindow: settings.window };
const input: ConfigInput = { preset: undefined, ...overrides };
const config = resolveConfig(input);
validateConfig(config, { tokenizerVocabSize: undefined });
const graph: DecoderGraphOptions & Q4Options = {
  kvDtype: undefined,
  repeatKv: undefined,
  positionIds: settings.flag,
  linear: undefined,
  merged: settings.flag,
  q4BlockSize: undefined,
  q4AccuracyLevel: undefined,
};
buildDecoderGraph(config, { ...graph, dtype: undefined });
const creating: CreateModelOptions = {
  out: '/tmp/tiny',
  seed: undefined,
  weights: undefined,
  tokenizerDir: settings.dir,
  dtypes: settings.dtypes,
  externalDataThreshold: undefined,
  onProgress: undefined,
  ...input,
  ...graph,
};
await createModel(creating);
await createModel({ out: '/tmp/tiny', seed: settings.seed });
const exporting: ExportOnnxOptions = {
  dir: '/tmp/tiny',
  base: settings.dir,
  dtypes: undefined,
  overwrite: settings.flag,
  externalDataThreshold: undefined,
  onProgress: undefined,
  ...graph,
};
await exportOnnx(exporting);
const writing: WriteOnnxOptions = { dtype: undefined, externalDataThreshold: undefined, onTensor: undefined, ...graph };
writeOnnxModel('/tmp/model.onnx', config, randomWeightSource(1), writing);
const greedy: ForceGreedyOptions = { channel: undefined, strength: settings.seed };
forceGreedyToken(config, randomWeights(config, 1), 3, greedy);
const bpe: TrainBpeOptions = { merges: settings.layers, specialTokens: undefined };
trainByteLevelBpe('hello hello', bpe);
const forward: ReferenceForwardOptions = { positionIds: undefined };
referenceForward(readModel('/tmp/tiny'), [1, 2], forward);
const tiny: TinyModelOptions = {
  seed: settings.seed,
  dtypes: undefined,
  dir: settings.dir,
  initScale: undefined,
  tokenizerDir: undefined,
  ...overrides,
  ...graph,
};
await createTinyModel(tiny);
void PRESETS;
`;
  expect(typecheckConsumer(resolve(import.meta.dirname, '..'), source)).toBe('');
}, 120_000);
