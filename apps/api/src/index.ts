export { type ApiApp, type AppState, createApp } from './app.js';
export { ApiError, type ApiErrorBody, type ApiErrorType } from './errors.js';
export type { Metrics } from './metrics.js';
export {
  type ApiOptions,
  defaultModelId,
  type ResolvedApiOptions,
  type ResolvedServedModel,
  resolveCors,
  type ServedModel,
} from './options.js';
export { type PlaygroundConfig, playgroundPage } from './playground/page.js';
export {
  type ChatRequest,
  type CompletionRequest,
  chatRequestSchema,
  completionRequestSchema,
} from './schemas.js';
export { type ClosedServer, type RunningServer, type ServeOptions, serve } from './serve.js';
