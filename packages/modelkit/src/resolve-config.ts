import type { ListsEveryKey } from '@implicit-it/rules';
import type { DecoderConfig, DecoderConfigOverrides } from './config.js';
import { ModelConfigError } from './errors.js';
import { refuseUnknownOptions } from './options.js';
import { PRESETS, type PresetName } from './presets.js';
import { shown } from './shown.js';

/**
 * A preset name plus overrides, as accepted by {@link resolveConfig} and {@link createModel}.
 *
 * @example
 * const input: ConfigInput = { preset: 'smollm2-135m', numHiddenLayers: 2 };
 * resolveConfig(input).hiddenSize; // 576
 */
export interface ConfigInput extends DecoderConfigOverrides {
  /** Starting point; default `tiny`. */
  preset?: PresetName | undefined;
}

/**
 * The keys of {@link ConfigInput}: a preset and the fields of {@link DecoderConfig}, every one (what a
 * command line or a form can offer to set; the CLI's `model create --set` takes these fields).
 *
 * @example
 * CONFIG_INPUT_OPTIONS[0]; // 'preset'
 * CONFIG_INPUT_OPTIONS.includes('numHiddenLayers'); // true
 */
export const CONFIG_INPUT_OPTIONS = [
  'preset',
  'modelType',
  'vocabSize',
  'hiddenSize',
  'intermediateSize',
  'numHiddenLayers',
  'numAttentionHeads',
  'numKeyValueHeads',
  'headDim',
  'rmsNormEps',
  'ropeTheta',
  'maxPositionEmbeddings',
  'tieWordEmbeddings',
  'attentionBias',
  'slidingWindow',
  'bosTokenId',
  'eosTokenId',
  'padTokenId',
] as const satisfies readonly (keyof ConfigInput)[];

// every field is listed (a new one missing here would be refused as unknown)
const _allConfigInputListed: ListsEveryKey<ConfigInput, typeof CONFIG_INPUT_OPTIONS> = true;
void _allConfigInputListed;

/**
 * Merges a preset with overrides and validates the result. When `hiddenSize` or `numAttentionHeads`
 * is overridden but `headDim` is not, `headDim` follows `hiddenSize / numAttentionHeads`.
 *
 * @example
 * resolveConfig({ preset: 'tiny', numHiddenLayers: 1 }).numHiddenLayers; // 1
 * resolveConfig({ hiddenSize: 60, numAttentionHeads: 7 }); // throws ModelConfigError (hiddenSize)
 */
export function resolveConfig(input: ConfigInput = {}): DecoderConfig {
  refuseUnknownOptions(input, CONFIG_INPUT_OPTIONS, 'resolveConfig');
  const { preset = 'tiny', ...overrides } = input;
  const base = Object.hasOwn(PRESETS, preset) ? PRESETS[preset] : undefined;
  if (!base) {
    throw new ModelConfigError(
      'preset',
      `unknown preset ${shown(preset)}; use one of ${Object.keys(PRESETS).join(', ')}`,
    );
  }
  const merged: DecoderConfig = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
  }
  // transformers' Qwen2 always has q/k/v biases
  if (merged.modelType === 'qwen2' && overrides.attentionBias === undefined) merged.attentionBias = true;
  const shapeChanged = overrides.hiddenSize !== undefined || overrides.numAttentionHeads !== undefined;
  if (overrides.headDim === undefined && shapeChanged) {
    merged.headDim = merged.hiddenSize / merged.numAttentionHeads;
  }
  validateConfig(merged);
  return merged;
}

const POSITIVE_INTS = [
  'vocabSize',
  'hiddenSize',
  'intermediateSize',
  'numHiddenLayers',
  'numAttentionHeads',
  'numKeyValueHeads',
  'headDim',
  'maxPositionEmbeddings',
] as const;

/**
 * Throws a {@link ModelConfigError} naming the field when the configuration cannot describe a model.
 * `tokenizerVocabSize`, when given, must not exceed `vocabSize` (ids beyond the LM head would be
 * unreachable and crash the embedding lookup), and the BOS/EOS/PAD ids must be below it. `qwen2` has
 * q/k/v biases (`attentionBias: true`), `llama` none.
 *
 * @example
 * validateConfig({ ...PRESETS.tiny, numKeyValueHeads: 3 }); // throws ModelConfigError: numKeyValueHeads must divide numAttentionHeads
 */
export function validateConfig(
  config: DecoderConfig,
  options: { tokenizerVocabSize?: number | undefined } = {},
): void {
  if (config.modelType !== 'llama' && config.modelType !== 'qwen2') {
    throw new ModelConfigError(
      'modelType',
      `${shown(config.modelType)} is not supported; use "llama" or "qwen2"`,
    );
  }
  const positive = (field: (typeof POSITIVE_INTS)[number]) => {
    const v = config[field];
    if (!Number.isInteger(v) || v <= 0) {
      throw new ModelConfigError(field, `must be a positive integer, got ${shown(v)}`);
    }
  };
  for (const field of POSITIVE_INTS) if (field !== 'headDim') positive(field);
  if (config.hiddenSize % config.numAttentionHeads !== 0) {
    throw new ModelConfigError(
      'hiddenSize',
      `${config.hiddenSize} is not divisible by numAttentionHeads ${config.numAttentionHeads}; pick a multiple of ${config.numAttentionHeads}`,
    );
  }
  positive('headDim');
  if (config.numAttentionHeads % config.numKeyValueHeads !== 0) {
    throw new ModelConfigError(
      'numKeyValueHeads',
      `${config.numKeyValueHeads} does not divide numAttentionHeads ${config.numAttentionHeads}; use a divisor of it`,
    );
  }
  if (config.headDim % 2 !== 0) {
    throw new ModelConfigError('headDim', `${config.headDim} must be even for rotary embeddings`);
  }
  for (const field of ['rmsNormEps', 'ropeTheta'] as const) {
    const v = config[field];
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) {
      throw new ModelConfigError(field, `must be a positive finite number, got ${shown(v)}`);
    }
  }
  // before the special ids: a tokenizer's own ids (GPT-2's EOS 50256) above a smaller vocabSize
  // are the tokenizer not fitting, not ids to fix
  const t = options.tokenizerVocabSize;
  if (t !== undefined && t > config.vocabSize) {
    throw new ModelConfigError(
      'vocabSize',
      `${config.vocabSize} is smaller than the tokenizer's ${t} ids; set vocabSize to at least ${t}`,
      { atLeast: t },
    );
  }
  for (const field of ['bosTokenId', 'eosTokenId', 'padTokenId'] as const) {
    const v = config[field];
    if (v !== null && (!Number.isInteger(v) || v < 0 || v >= config.vocabSize)) {
      throw new ModelConfigError(
        field,
        `${shown(v)} is not an id below vocabSize ${config.vocabSize}; use null or a valid id`,
      );
    }
  }
  for (const field of ['tieWordEmbeddings', 'attentionBias'] as const) {
    if (typeof config[field] !== 'boolean') {
      throw new ModelConfigError(field, `must be true or false, got ${shown(config[field])}`);
    }
  }
  if (config.modelType === 'qwen2' && !config.attentionBias) {
    throw new ModelConfigError(
      'attentionBias',
      'must be true for modelType "qwen2": transformers\' Qwen2 always has q/k/v biases (its config cannot say otherwise); use modelType "llama" for none',
    );
  }
  if (config.modelType === 'llama' && config.attentionBias) {
    throw new ModelConfigError(
      'attentionBias',
      'must be false for modelType "llama": Llama\'s attention_bias also puts a bias on o_proj, which modelkit does not build; use modelType "qwen2" for q/k/v biases',
    );
  }
  const w = config.slidingWindow;
  if (w !== undefined && w !== null) {
    if (!Number.isInteger(w) || w <= 0) {
      throw new ModelConfigError('slidingWindow', `must be a positive integer or null, got ${shown(w)}`);
    }
    if (config.modelType !== 'qwen2') {
      throw new ModelConfigError(
        'slidingWindow',
        `needs modelType "qwen2" (llama has no sliding window in transformers), got "${config.modelType}"`,
      );
    }
  }
  if (t !== undefined) {
    for (const field of ['bosTokenId', 'eosTokenId', 'padTokenId'] as const) {
      const v = config[field];
      if (v !== null && v >= t) {
        throw new ModelConfigError(
          field,
          `${v} is not a token of the tokenizer (${t} ids): the runtime could never stop on or decode it; give ${field} explicitly, or a tokenizer whose tokenizer_config.json names the token`,
        );
      }
    }
  }
}
