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
export { type LengthStats, lengthStats } from './length-stats.js';
export { loadEncodingTokenizer, tokenizerDirHash } from './load-encoding-tokenizer.js';
export type { ChatExample, ChatMessage, Role } from './messages.js';
export { cleanMovetext, type PgnGame, splitPgnGames } from './pgn.js';
export { parsePythonStringList } from './python-list.js';
export { pythonStrip } from './python-strip.js';
export type { RecipeOutput } from './recipe-output.js';
export type { RowIssue } from './row-issue.js';
export { seededRandom, shuffledIndices } from './seeded-random.js';
export { type SplitOptions, splitTrainValidation } from './split.js';
