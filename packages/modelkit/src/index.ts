export type { DecoderConfig, DecoderConfigOverrides, ModelType } from './config.js';
export { type CreatedModel, type CreateModelOptions, createModel } from './create-model.js';
export { ModelConfigError, ModelFileError, ModelTokenizerError, ModelWeightsError } from './errors.js';
export { type ExportedOnnx, type ExportOnnxOptions, exportOnnx } from './export-onnx.js';
export { type ForceGreedyOptions, forceGreedyToken } from './greedy-token.js';
export { fromHfConfig, type HfConfigJson, toGenerationConfig, toHfConfig } from './hf-config.js';
export {
  buildDecoderGraph,
  type DecoderGraph,
  type DecoderGraphOptions,
  type GraphTensor,
  type GraphValue,
  MASKED_SCORE,
  type Q4Options,
  type WeightDtype,
} from './onnx/decoder-graph.js';
export { type ModelOnDisk, readModel } from './onnx/read-onnx.js';
export { DTYPE_FILES, graphFileName } from './onnx/write-aside.js';
export {
  EXTERNAL_DATA_THRESHOLD,
  IR_VERSION,
  OPSET_VERSION,
  type WriteOnnxOptions,
  type WrittenOnnx,
  writeOnnxModel,
} from './onnx/write-onnx.js';
export { PRESETS, type PresetName } from './presets.js';
export {
  dequantizeQ4,
  dequantizeQ8,
  Q4_BLOCK_SIZES,
  type Q4Matrix,
  type Q8Tensor,
  quantizeQ4,
  quantizeQ8,
  transposeInt8,
} from './quantize.js';
export { type ReferenceForwardOptions, type ReferenceModel, referenceForward } from './reference-forward.js';
export { CONFIG_INPUT_OPTIONS, type ConfigInput, resolveConfig, validateConfig } from './resolve-config.js';
export { ropeTables } from './rope.js';
export {
  openSafetensors,
  type SafetensorsCheckpoint,
  type SafetensorsDtype,
  type SafetensorsEntry,
  writeSafetensors,
} from './safetensors.js';
export { BUILTIN_CORPUS } from './tokenizer/corpus.js';
export { type TokenizerFiles, tinyTokenizer } from './tokenizer/tiny-tokenizer.js';
export { CONVENTIONAL_EOS_TOKENS, readTokenizerDir } from './tokenizer/tokenizer-dir.js';
export { TULU_CHAT_TEMPLATE, tokenizerConfigJson, tokenizerJson } from './tokenizer/tokenizer-files.js';
export {
  type ByteLevelBpe,
  DEFAULT_SPECIAL_TOKENS,
  type TrainBpeOptions,
  trainByteLevelBpe,
} from './tokenizer/train-bpe.js';
export {
  type ModelWeights,
  numel,
  parameterCount,
  randomTensor,
  randomWeightSource,
  randomWeights,
  validateWeights,
  type WeightSource,
  type WeightSpec,
  weightSpecs,
  weightsSource,
} from './weights.js';
