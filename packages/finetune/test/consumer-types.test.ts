import { resolve } from 'node:path';
import { typecheckConsumer } from '@implicit-it/testkit';
import { expect, it } from 'vitest';

// A TypeScript consumer with exactOptionalPropertyTypes hands on its own optional settings
// (`T | undefined`): every option type the package takes must accept them, as the functions do
// (checkKeys and checkPlanOptions skip undefined keys; trainingRecipe drops undefined overrides).
it('optional options take undefined under exactOptionalPropertyTypes', () => {
  const source = `
import {
  type BuildDatasetOptions,
  buildDataset,
  type EncodeDatasetOptions,
  type EncodeOptions,
  type EncodingTokenizer,
  encodeDataset,
  encodeMessages,
  type PlanJobOptions,
  type PlanSweepOptions,
  planJob,
  planSweep,
  type RunJobOptions,
  runJob,
  type SplitOptions,
  splitTrainValidation,
  trainingRecipe,
} from '@implicit-it/finetune';

declare const settings: {
  n: number | undefined;
  flag: boolean | undefined;
  text: string | undefined;
  signal: AbortSignal | undefined;
  epochs: number[] | undefined;
};
const split: SplitOptions = { fraction: undefined, count: settings.n, seed: settings.n };
splitTrainValidation([1, 2, 3], split);
const building: BuildDatasetOptions = {
  recipe: 'poetry', dataDir: settings.text, out: undefined,
  validation: { ...split, out: settings.text }, onProgress: undefined,
};
const { train: examples } = await buildDataset(building);
const tokenizer: EncodingTokenizer = {
  encode: (t) => [...t].map((c) => c.charCodeAt(0)), addsBos: false, eosToken: '\\u0000',
  bosId: undefined, bosToken: settings.text, hash: undefined, name: settings.text,
};
const encoding: EncodeDatasetOptions = {
  examples, tokenizer, recipe: 'poetry', split: undefined, maxSeqLength: settings.n,
  addBos: settings.flag, outDir: settings.text, onProgress: undefined,
};
await encodeDataset(encoding);
const messages: EncodeOptions = { maxSeqLength: 2048, addBos: settings.flag };
if (examples[0]) encodeMessages(examples[0], tokenizer, messages);
const training = trainingRecipe({ epochs: settings.n, seed: undefined, lora: undefined, maxSeqLength: settings.n });
const planning: PlanJobOptions = {
  recipe: 'poetry', model: 'models/llama', out: 'jobs/poetry',
  gpus: settings.n, nodes: undefined, dataDir: settings.text, tokenizer: undefined,
  training: { epochs: settings.n, learningRate: undefined }, validation: split, zero3: settings.flag,
  exportOnnx: undefined, addBos: settings.flag, checkpointing: undefined, keepCheckpoints: settings.n, onProgress: undefined,
};
await planJob(planning);
const sweep: PlanSweepOptions = { ...planning, epochs: settings.epochs, seeds: undefined };
await planSweep(sweep);
const running: RunJobOptions = {
  python: settings.text, args: undefined, resume: settings.flag, env: undefined, onLine: undefined,
  onEvent: undefined, onProgress: undefined, signal: settings.signal, killGraceMs: settings.n,
  modelkitExport: settings.flag, onnxDtypes: undefined, onExportProgress: undefined,
};
await runJob('jobs/poetry', running);
void training;
`;
  expect(typecheckConsumer(resolve(import.meta.dirname, '..'), source)).toBe('');
}, 120_000);
