export { argmax, ImplicitItError } from '@implicit-it/rules';
export { PromptError, TokenizerLoadError } from '@implicit-it/tokenizers';
export { BaseModel, MAX_LOGIT_BIAS, type ModelInfo, unresolvedNote } from './base-model.js';
export type { FinishReason, TokenEvent, TokenLogprob } from './decode-engine.js';
export {
  checkSplitAttention,
  DecoderSession,
  damagedGraphHint,
  ONNX_LOG_LEVELS,
  type OnnxLogLevel,
  type SessionOptions,
} from './decoder-session.js';
export { GenerationAbortedError, GenerationError, ModelLoadError } from './errors.js';
export { defaultHubCacheDir, hubEndpoint, isHubId, type ResolveOptions, resolveModel } from './hub.js';
export type { LogitsProcessor, ProcessorContext } from './logits-processor.js';
export { DEFAULT_PREFILL_CHUNK, inputSeed, type LoadOptions, loadModel, Model } from './model.js';
export {
  DTYPE_SUFFIX,
  type ModelConfig,
  type ModelDtype,
  type ModelFiles,
  modelDirOf,
  nearMiss,
  resolveModelFiles,
} from './model-dir.js';
export {
  type GraphPatch,
  type GraphSummary,
  LOGITS_START_INPUT,
  type LogitsPatch,
  NEW_KV_PREFIX,
  type PatchRequest,
  type PositionTable,
  patchDecoderGraph,
  patchLogitsSlice,
  positionTable,
  summarizeGraph,
} from './onnx-patch.js';
export { onnxruntime } from './onnxruntime.js';
export type {
  GenerateInput,
  GenerateOptions,
  GenerationResult,
  StreamOptions,
  StreamPart,
} from './options.js';
export type { PrefixCacheStats } from './prefix-cache.js';
export {
  cudaPackageUrl,
  type ExecutionProvider,
  type InstallCudaOptions,
  installCudaProvider,
  PROVIDER_PRIORITY,
  ProviderInstallError,
  type ProviderStatus,
  providerStatus,
} from './providers.js';
export { generateWithoutCache } from './reference.js';
export { createRng, rankOf, type SamplingOptions, sampleToken, topEntries } from './sampling.js';
export type { ScoreItem, ScoreOptions, ScoreResult } from './score.js';
export { disableOnnxTelemetry, type OnnxTelemetry, ORT_TELEMETRY_VARIABLES } from './telemetry.js';
export { transformersRulesProcessor } from './transformers-processor.js';
export { loadModelInWorker, WorkerModel } from './worker-model.js';
