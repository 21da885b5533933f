export { pythonStrip } from '@implicit-it/rules';
export {
  type BuildDatasetOptions,
  type BuildDatasetResult,
  buildDataset,
  DEFAULT_DATA_DIR,
  datasetSummary,
  examplesToJsonl,
} from './build-dataset.js';
export { ASSISTANT_TAG, concatMessages } from './chat-format.js';
export {
  DATASET_RECIPE_NAMES,
  DATASET_RECIPES,
  type DatasetRecipe,
  type DatasetRecipeName,
  getDatasetRecipe,
} from './dataset-recipes.js';
export { type EncodeDatasetOptions, type EncodeDatasetResult, encodeDataset } from './encode-dataset.js';
export { type EncodedExample, type EncodeOptions, encodeMessages, IGNORE_INDEX } from './encode-messages.js';
export { readEncodedShard, SHARD_FORMAT, type ShardManifest, writeEncodedShard } from './encoded-shard.js';
export type { EncodingTokenizer } from './encoding-tokenizer.js';
export {
  DataFileError,
  EncodeError,
  FinetuneOptionError,
  ImplicitItError,
  JobError,
  MissingPythonError,
  TokenizerLoadError,
  TrainingFailedError,
} from './errors.js';
export {
  accelerateConfigYaml,
  deepspeedZero3Config,
  type LaunchTopology,
  launchScript,
} from './launch-configs.js';
export { type LengthStats, lengthStats } from './length-stats.js';
export { type LinearSchedule, learningRateAt, linearSchedule } from './linear-schedule.js';
export { loadEncodingTokenizer, tokenizerDirHash } from './load-encoding-tokenizer.js';
export type { ChatExample, ChatMessage, Role } from './messages.js';
export { buildOwnData, type DataSource, ownDataName } from './own-data.js';
export { trainEntryPointPath } from './package-files.js';
export { cleanMovetext, type PgnGame, splitPgnGames } from './pgn.js';
export {
  JOB_FORMAT,
  type JobSpec,
  modelContextLength,
  type PlanJobOptions,
  type PlanJobResult,
  type PlanProgress,
  planJob,
} from './plan-job.js';
export { type PlanSweepOptions, type PlanSweepResult, planSweep } from './plan-sweep.js';
export { defaultPython, type PythonProbe, probePython, TRAINING_MODULES } from './python-env.js';
export { parsePythonStringList } from './python-list.js';
export type { RecipeOutput } from './recipe-output.js';
export type { RowIssue } from './row-issue.js';
export { type RunJobOptions, type RunJobResult, readJob, requiredModules, runJob } from './run-job.js';
export { seededRandom, shuffledIndices } from './seeded-random.js';
export { type SplitOptions, splitTrainValidation } from './split.js';
export {
  formatProgress,
  parseTrainingLogLine,
  type TrainingEvent,
  type TrainingProgress,
} from './training-log.js';
export {
  DEFAULT_LORA,
  EPOCH_CHOICES,
  gradientAccumulationSteps,
  type LoraOptions,
  PAPER_TRAINING,
  SCHEDULE_STEPS,
  type ScheduleSteps,
  SEEDS,
  type TrainingRecipe,
  trainingRecipe,
} from './training-recipe.js';
