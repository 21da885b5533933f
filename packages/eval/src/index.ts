// the base of every error this package throws, for `instanceof` / `isInstance` without a direct
// dependency on @implicit-it/rules (as @implicit-it/runtime re-exports it)
export { ImplicitItError } from '@implicit-it/rules';
export {
  type AblationPlan,
  type AblationRun,
  planAblations,
  type RunAblationsOptions,
  runAblations,
} from './ablations.js';
export { type Annotation, isRefusedPair, readAnnotations, writeAnnotations } from './annotations.js';
export { readDoneRecord } from './done-record.js';
export {
  AdapterContractError,
  ContextLengthError,
  type ContextOverrun,
  EvalInputError,
  JudgeRequestError,
  ResumeMismatchError,
  RunAbortedError,
} from './errors.js';
export {
  finishedRun,
  finishedRunDifferences,
  type GenerateRunOptions,
  type GenerateRunResult,
  generateRun,
} from './generate-run.js';
export { sha256 } from './hash.js';
export { headerDifferences, Journal } from './journal.js';
export { readJson, writeFileAtomic, writeJson } from './json-file.js';
export { JudgeCache } from './judge-cache.js';
export {
  type FinishedAnnotationsOptions,
  finishedAnnotationsDifferences,
  type JudgePairsOptions,
  type JudgePairsResult,
  judgePairs,
  pairOutputs,
} from './judge-pairs.js';
export {
  type ChatCompletionChoice,
  type JudgedPreference,
  preferenceFromChoice,
} from './judge-preference.js';
export { type ChatMessage, isSwitched, JUDGE_LABELS, judgeMessages } from './judge-prompt.js';
export type {
  ContinuationScore,
  GenerateOptions,
  Generation,
  Generator,
  Progress,
  ProgressCallbacks,
  RankSource,
  ResponseItem,
  Scorer,
  TokenRank,
} from './model-interfaces.js';
export {
  type EvalInstruction,
  type ModelOutput,
  readInstructions,
  readModelOutputs,
  writeModelOutputs,
} from './model-outputs.js';
export {
  type ChatCompletionResponse,
  type JudgeClient,
  type JudgeRequest,
  judgeEndpoint,
  judgeId,
  OPENAI_BASE_URL,
  type OpenAIJudgeOptions,
  openAIJudge,
} from './openai-judge.js';
export {
  type AlpacaExample,
  alpacaInstruction,
  drawNegatives,
  type FinishedRankingOptions,
  finishedRanking,
  finishedRankingDifferences,
  type NegativeDraw,
  type RankedExample,
  type RankingResult,
  type RankResponsesOptions,
  rankResponses,
  readAlpacaData,
  responseScore,
  resummarizeRanking,
} from './rank-responses.js';
export { createRateLimiter, type RateLimiter, type RateLimiterOptions } from './rate-limiter.js';
export { fmt, type ReportResult, type WinRateRow, winRatesOfRun, writeReport } from './report.js';
export { createRng, type PythonRandom, pythonRandom, type Rng } from './rng.js';
export { type RunPaths, runPaths } from './run-layout.js';
export {
  type BuiltPrompt,
  excerpt,
  type PromptInput,
  promptsOverContext,
  type RuntimeAdapterOptions,
  type RuntimeModel,
  type RuntimeRankSourceOptions,
  type RuntimeScorerOptions,
  runtimeGenerator,
  runtimeRankSource,
  runtimeScorer,
} from './runtime-adapters.js';
export { mean, quantileSorted, roundHalfEven, standardError, sum } from './stats.js';
export { barChartSvg, COLORS, escapeXml, histogramSvg, stackedBarsSvg } from './svg.js';
export {
  type FinishedShiftOptions,
  finishedShift,
  finishedShiftDifferences,
  type ShiftCategory,
  type ShiftCounts,
  type ShiftResult,
  shiftCategory,
  type TokenShiftOptions,
  tokenShift,
} from './token-shift.js';
export {
  codePointLength,
  discreteWinRate,
  formatWinRate,
  WIN_RATE_KEYS,
  type WinRateStats,
  winRate,
} from './win-rate.js';
