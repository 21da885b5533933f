import type { DecoderConfig } from './config.js';

/**
 * Names of the built-in shape presets.
 *
 * @example
 * const preset: PresetName = 'smollm2-135m';
 * parameterCount(PRESETS[preset]); // 134515008
 */
export type PresetName = 'tiny' | 'smollm2-135m' | 'smollm2-360m' | 'qwen2.5-0.5b';

/**
 * Built-in shapes. `tiny` fits the built-in tokenizer (512 ids) and builds in milliseconds; the others
 * copy the published models' shapes (weights are random) for benchmarks. Token ids of the large presets
 * are those of their real tokenizers (SmolLM2: 0/1/2, Qwen2.5: 151643).
 *
 * @example
 * PRESETS['smollm2-135m'].numHiddenLayers; // 30
 */
export const PRESETS: Readonly<Record<PresetName, Readonly<DecoderConfig>>> = {
  tiny: {
    modelType: 'llama',
    vocabSize: 512,
    hiddenSize: 64,
    intermediateSize: 128,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 16,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositionEmbeddings: 512,
    tieWordEmbeddings: true,
    attentionBias: false,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 0,
  },
  'smollm2-135m': {
    modelType: 'llama',
    vocabSize: 49152,
    hiddenSize: 576,
    intermediateSize: 1536,
    numHiddenLayers: 30,
    numAttentionHeads: 9,
    numKeyValueHeads: 3,
    headDim: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 100000,
    maxPositionEmbeddings: 8192,
    tieWordEmbeddings: true,
    attentionBias: false,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 2,
  },
  'smollm2-360m': {
    modelType: 'llama',
    vocabSize: 49152,
    hiddenSize: 960,
    intermediateSize: 2560,
    numHiddenLayers: 32,
    numAttentionHeads: 15,
    numKeyValueHeads: 5,
    headDim: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 100000,
    maxPositionEmbeddings: 8192,
    tieWordEmbeddings: true,
    attentionBias: false,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 2,
  },
  'qwen2.5-0.5b': {
    modelType: 'qwen2',
    vocabSize: 151936,
    hiddenSize: 896,
    intermediateSize: 4864,
    numHiddenLayers: 24,
    numAttentionHeads: 14,
    numKeyValueHeads: 2,
    headDim: 64,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    maxPositionEmbeddings: 32768,
    tieWordEmbeddings: true,
    attentionBias: true,
    bosTokenId: 151643,
    eosTokenId: 151643,
    padTokenId: 151643,
  },
};
