/**
 * The architectures modelkit writes; both are llama-family decoders (`qwen2` adds q/k/v biases).
 *
 * @example
 * const modelType: ModelType = 'qwen2';
 * resolveConfig({ preset: 'tiny', modelType }).attentionBias; // true
 */
export type ModelType = 'llama' | 'qwen2';

/**
 * A llama-family decoder's shape and hyper-parameters (camelCase; {@link toHfConfig} writes the Hugging
 * Face `config.json` names). Token ids refer to the tokenizer written beside the model.
 *
 * @example
 * const config: DecoderConfig = resolveConfig({ preset: 'tiny', numHiddenLayers: 3 });
 */
export interface DecoderConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Fewer than `numAttentionHeads` gives grouped-query attention; it must divide it. */
  numKeyValueHeads: number;
  /** Defaults to `hiddenSize / numAttentionHeads`; must be even (rotary halves). */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Rows of the rotary tables in the graph: positions at or beyond it are not supported. */
  maxPositionEmbeddings: number;
  /** The LM head reuses `model.embed_tokens.weight` (no `lm_head.weight` tensor). */
  tieWordEmbeddings: boolean;
  /** Biases on q/k/v projections (Qwen2) — `o_proj` never has one. */
  attentionBias: boolean;
  /**
   * Sliding-window attention on every layer (Qwen2's `use_sliding_window`): a query attends to the keys
   * fewer than this many cache positions back, itself included. `null` or absent: the whole context.
   * Needs `modelType: 'qwen2'` (llama has no sliding window in transformers).
   */
  slidingWindow?: number | null | undefined;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
}

/**
 * Fields of {@link DecoderConfig} that callers may override (everything).
 *
 * @example
 * const deeper: DecoderConfigOverrides = { numHiddenLayers: 4, tieWordEmbeddings: false };
 * await createModel({ preset: 'tiny', ...deeper, out });
 */
export type DecoderConfigOverrides = { [K in keyof DecoderConfig]?: DecoderConfig[K] | undefined };
