import { resolve } from 'node:path';
import { typecheckConsumer } from '@implicit-it/testkit';
import { expect, it } from 'vitest';

// A TypeScript consumer with exactOptionalPropertyTypes hands on its own optional settings
// (`T | undefined`): every option type the package takes must accept them, as the functions do
// (test/undefined-options.test.ts).
it('optional options take undefined under exactOptionalPropertyTypes', () => {
  const source = `
import {
  barChartSvg,
  type EvalInstruction,
  finishedRanking,
  finishedShift,
  formatWinRate,
  type GenerateRunOptions,
  generateRun,
  type Generator,
  histogramSvg,
  type JudgeClient,
  type JudgePairsOptions,
  judgePairs,
  type ModelOutput,
  type OpenAIJudgeOptions,
  openAIJudge,
  pairOutputs,
  type RankResponsesOptions,
  type RankSource,
  rankResponses,
  type RateLimiterOptions,
  type RunAblationsOptions,
  type RuntimeModel,
  type RuntimeScorerOptions,
  createRateLimiter,
  runAblations,
  runtimeGenerator,
  runtimeScorer,
  type Scorer,
  stackedBarsSvg,
  type TokenShiftOptions,
  tokenShift,
  winRate,
  writeReport,
} from '@implicit-it/eval';

declare const settings: {
  n: number | undefined;
  flag: boolean | undefined;
  text: string | undefined;
  signal: AbortSignal | undefined;
  fingerprint: Record<string, unknown> | undefined;
  onWarning: ((message: string) => void) | undefined;
};
declare const generator: Generator;
declare const judge: JudgeClient;
declare const scorer: Scorer;
declare const base: RankSource;
declare const model: RuntimeModel;
const instructions: EvalInstruction[] = [{ instruction: 'Name a prime.', dataset: settings.text }];
const outputs: ModelOutput[] = [{ instruction: 'a', output: 'b', generator: 'g', dataset: undefined, token_ids: undefined }];
const common = { replace: settings.flag, signal: settings.signal, onProgress: undefined, onWarning: settings.onWarning };
const run: GenerateRunOptions = {
  generator, instructions, out: 'o.json', generatorName: 'g',
  batchSize: settings.n, maxNewTokens: settings.n, fingerprint: settings.fingerprint, journalPath: settings.text,
  strip: settings.flag, tokenIds: settings.flag, sortByLength: undefined, ...common,
};
await generateRun(run);
const ablations: RunAblationsOptions = {
  createGenerator: () => generator, instructions, outDir: 'out', modelName: 'm',
  subsets: undefined, maxNewTokens: settings.n, batchSize: undefined, tokenIds: settings.flag, fingerprint: undefined, ...common,
};
await runAblations(ablations);
const judging: JudgePairsOptions = {
  judge, baseline: outputs, model: outputs, cacheDir: 'cache',
  files: { baseline: settings.text, model: undefined }, out: settings.text, seed: settings.n,
  concurrency: undefined, annotatorName: settings.text,
  request: { temperature: settings.n, max_tokens: undefined }, ...common,
};
await judgePairs(judging);
pairOutputs(outputs, outputs, { baseline: settings.text, model: undefined });
const openai: OpenAIJudgeOptions = {
  baseURL: 'http://127.0.0.1/v1', model: 'judge', apiKey: settings.text, apiKeyEnv: undefined, id: undefined,
  requestsPerMinute: settings.n, concurrency: undefined, maxRetries: settings.n, baseDelayMs: undefined,
  maxDelayMs: undefined, timeoutMs: settings.n, extraBody: undefined, onRetry: undefined,
};
openAIJudge(openai);
const limits: RateLimiterOptions = { requestsPerMinute: settings.n, concurrency: undefined };
createRateLimiter(limits);
const ranking: RankResponsesOptions = {
  scorer, data: [{ instruction: 'i', input: settings.text, output: 'o' }], n: settings.n, negatives: undefined,
  draw: undefined, seed: settings.n, batchSize: undefined, bootstrap: settings.n, confidence: undefined,
  journalPath: undefined, out: settings.text, fingerprint: settings.fingerprint, ...common,
};
await rankResponses(ranking);
finishedRanking({ data: [], out: 'r.json', journalPath: settings.text, n: settings.n });
const shift: TokenShiftOptions = {
  base, aligned: outputs, label: settings.text, batchSize: undefined, positionBins: undefined, topK: settings.n,
  journalPath: undefined, out: settings.text, fingerprint: undefined, ...common,
};
await tokenShift(shift);
finishedShift({ aligned: outputs, out: 's.json', journalPath: undefined, label: settings.text });
const adapter: RuntimeScorerOptions = {
  format: undefined, addBos: settings.flag, rules: undefined, batchSize: settings.n, maxSeqLength: settings.n, eos: settings.flag,
};
runtimeScorer(model, adapter);
runtimeGenerator(model, { format: undefined, addBos: settings.flag, rules: undefined, batchSize: undefined });
await writeReport('run', { title: settings.text, onWarning: undefined, onProgress: undefined });
formatWinRate(winRate([], { outputs: undefined }), { json: settings.flag });
barChartSvg({ title: 't', unit: settings.text, bars: [{ label: 'a', value: 1, error: settings.n }], max: undefined, note: undefined });
stackedBarsSvg({ title: 't', series: [], colors: undefined, bars: [] });
histogramSvg({ title: 't', xLabel: 'x', yLabel: settings.text, bins: [], counts: [] });
`;
  expect(typecheckConsumer(resolve(import.meta.dirname, '..'), source)).toBe('');
}, 120_000);
