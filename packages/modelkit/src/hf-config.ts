import type { DecoderConfig, ModelType } from './config.js';
import { ModelConfigError } from './errors.js';
import { validateConfig } from './resolve-config.js';
import { shown } from './shown.js';

/**
 * A Hugging Face `config.json` object (snake_case).
 *
 * @example
 * const json: HfConfigJson = toHfConfig(PRESETS['qwen2.5-0.5b']);
 * json.architectures; // ['Qwen2ForCausalLM']
 */
export type HfConfigJson = Record<string, unknown>;

const ARCHITECTURES: Record<ModelType, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};

/**
 * The `config.json` that transformers (Python) and transformers.js read for this decoder. `qwen2`
 * configs carry no `attention_bias` field (Qwen2 always has q/k/v biases), as real exports do.
 *
 * @example
 * toHfConfig(PRESETS.tiny).model_type; // 'llama'
 */
export function toHfConfig(config: DecoderConfig): HfConfigJson {
  const json: HfConfigJson = {
    architectures: [ARCHITECTURES[config.modelType]],
    model_type: config.modelType,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numHiddenLayers,
    num_attention_heads: config.numAttentionHeads,
    num_key_value_heads: config.numKeyValueHeads,
    head_dim: config.headDim,
    hidden_act: 'silu',
    max_position_embeddings: config.maxPositionEmbeddings,
    initializer_range: 0.02,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: null,
    attention_dropout: 0,
    tie_word_embeddings: config.tieWordEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    pad_token_id: config.padTokenId,
    use_cache: true,
    torch_dtype: 'float32',
    transformers_version: '4.46.0',
  };
  if (config.modelType === 'llama') {
    json.attention_bias = config.attentionBias;
    json.mlp_bias = false;
    json.pretraining_tp = 1;
  } else if (config.slidingWindow) {
    // every layer windowed: Qwen2 windows the layers from max_window_layers on
    json.use_sliding_window = true;
    json.sliding_window = config.slidingWindow;
    json.max_window_layers = 0;
  } else {
    json.use_sliding_window = false;
    json.sliding_window = config.maxPositionEmbeddings;
    json.max_window_layers = config.numHiddenLayers;
  }
  return json;
}

/**
 * The `generation_config.json` beside the model (greedy by default, as base-model exports carry).
 *
 * @example
 * toGenerationConfig(PRESETS.tiny); // { bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, ... }
 */
export function toGenerationConfig(config: DecoderConfig): HfConfigJson {
  return {
    _from_model_config: true,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    pad_token_id: config.padTokenId,
    transformers_version: '4.46.0',
  };
}

function num(json: HfConfigJson, key: string, fallback?: number): number {
  const v = json[key];
  if (typeof v === 'number') return v;
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ModelConfigError(key, `missing from config.json; add "${key}": <number>`);
  }
  throw new ModelConfigError(key, `must be a number in config.json, got ${JSON.stringify(v)}`);
}

function tokenId(json: HfConfigJson, key: string): number | null {
  const v = json[key];
  if (Array.isArray(v)) return typeof v[0] === 'number' ? v[0] : null;
  return typeof v === 'number' ? v : null;
}

/**
 * Reads a llama or qwen2 `config.json` object (as transformers 4 or 5 writes it: `rope_theta` or
 * `rope_parameters`) back into a validated {@link DecoderConfig}. Features modelkit does not build
 * (`rope_scaling`, a `rope_type` other than default, an activation other than silu, `mlp_bias`) throw a
 * {@link ModelConfigError}; of a list of EOS ids, the first is kept.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 * fromHfConfig(JSON.parse(readFileSync('model/config.json', 'utf8'))).hiddenSize;
 */
export function fromHfConfig(json: HfConfigJson): DecoderConfig {
  const modelType = json.model_type;
  if (modelType !== 'llama' && modelType !== 'qwen2') {
    throw new ModelConfigError('model_type', `${shown(modelType)} is not supported; use "llama" or "qwen2"`);
  }
  // what modelkit's graph cannot build is refused, not dropped
  if (json.rope_scaling !== undefined && json.rope_scaling !== null) {
    throw new ModelConfigError(
      'rope_scaling',
      `${JSON.stringify(json.rope_scaling)} is not supported (modelkit builds plain rotary embeddings); set it to null`,
    );
  }
  if (json.hidden_act !== undefined && json.hidden_act !== 'silu') {
    throw new ModelConfigError(
      'hidden_act',
      `${shown(json.hidden_act)} is not supported; modelkit builds "silu"`,
    );
  }
  if (json.mlp_bias === true) {
    throw new ModelConfigError(
      'mlp_bias',
      'true is not supported (modelkit builds MLPs without biases); set it to false',
    );
  }
  // transformers v5 writes the rotary settings as rope_parameters ({ rope_type, rope_theta })
  const ropeParameters = json.rope_parameters;
  let ropeTheta = num(json, 'rope_theta', 10000);
  if (ropeParameters !== undefined && ropeParameters !== null) {
    const rope = ropeParameters as HfConfigJson;
    if (typeof rope !== 'object' || (rope.rope_type ?? 'default') !== 'default') {
      throw new ModelConfigError(
        'rope_parameters',
        `${JSON.stringify(ropeParameters)} is not supported (modelkit builds plain rotary embeddings, rope_type "default")`,
      );
    }
    if (rope.rope_theta !== undefined) {
      if (typeof rope.rope_theta !== 'number') {
        throw new ModelConfigError(
          'rope_parameters',
          `rope_theta must be a number, got ${JSON.stringify(rope.rope_theta)}`,
        );
      }
      ropeTheta = rope.rope_theta;
    }
  }
  const hiddenSize = num(json, 'hidden_size');
  const numAttentionHeads = num(json, 'num_attention_heads');
  const config: DecoderConfig = {
    modelType,
    vocabSize: num(json, 'vocab_size'),
    hiddenSize,
    intermediateSize: num(json, 'intermediate_size'),
    numHiddenLayers: num(json, 'num_hidden_layers'),
    numAttentionHeads,
    numKeyValueHeads: num(json, 'num_key_value_heads', numAttentionHeads),
    headDim: num(json, 'head_dim', hiddenSize / numAttentionHeads),
    rmsNormEps: num(json, 'rms_norm_eps', 1e-6),
    ropeTheta,
    maxPositionEmbeddings: num(json, 'max_position_embeddings', 2048),
    tieWordEmbeddings: json.tie_word_embeddings === true,
    attentionBias: modelType === 'qwen2' ? true : json.attention_bias === true,
    bosTokenId: tokenId(json, 'bos_token_id'),
    eosTokenId: tokenId(json, 'eos_token_id'),
    padTokenId: tokenId(json, 'pad_token_id'),
  };
  if (modelType === 'qwen2' && json.use_sliding_window === true) {
    if (num(json, 'max_window_layers', 0) !== 0) {
      throw new ModelConfigError(
        'max_window_layers',
        'must be 0 with use_sliding_window (modelkit windows every layer or none)',
      );
    }
    config.slidingWindow = num(json, 'sliding_window');
  }
  // transformers v5 also lists each layer's attention; modelkit windows every layer or none
  if (Array.isArray(json.layer_types)) {
    const expected = config.slidingWindow ? 'sliding_attention' : 'full_attention';
    const other = json.layer_types.findIndex((t) => t !== expected);
    if (other >= 0) {
      throw new ModelConfigError(
        'layer_types',
        `layer ${other} is ${JSON.stringify(json.layer_types[other])}, but ${config.slidingWindow ? 'use_sliding_window with max_window_layers 0 windows every layer' : 'no sliding window is configured'} (modelkit builds one kind of attention for all layers)`,
      );
    }
  }
  validateConfig(config);
  return config;
}
