import type { DecoderConfig } from './config.js';
import { ModelConfigError } from './errors.js';
import { type ModelWeights, validateWeights } from './weights.js';

/**
 * Options of {@link forceGreedyToken}.
 *
 * @example
 * const options: ForceGreedyOptions = { channel: 5, strength: 2 };
 * const forced = forceGreedyToken(config, randomWeights(config, 1), 42, options);
 */
export interface ForceGreedyOptions {
  /** Residual channel reserved for the constant signal; default 0. */
  channel?: number | undefined;
  /** Logit margin scale (tied: the target's embedding gets `1 + strength` in the channel); default 1. */
  strength?: number | undefined;
}

/**
 * Returns weights (copies of the changed tensors) whose greedy next token is `tokenId` at every
 * position, for any input: the embedding writes a constant 1 into one residual channel, no layer
 * writes to that channel (its rows of every `o_proj` and `down_proj` are zero), so after the final norm
 * the channel is a large positive constant; only `tokenId`'s LM-head row reads it (tied: the target's
 * embedding carries `1 + strength` there, all others 1). Everything else keeps its values, so the rest
 * of the distribution stays random.
 *
 * @example
 * const config = resolveConfig({ preset: 'tiny' });
 * const weights = forceGreedyToken(config, randomWeights(config, 1), 42);
 * await createModel({ out, weights }); // greedy decoding emits 42, 42, 42, ...
 */
export function forceGreedyToken(
  config: DecoderConfig,
  weights: ModelWeights,
  tokenId: number,
  options: ForceGreedyOptions = {},
): ModelWeights {
  validateWeights(config, weights);
  const { channel = 0, strength = 1 } = options;
  const H = config.hiddenSize;
  if (!Number.isInteger(tokenId) || tokenId < 0 || tokenId >= config.vocabSize) {
    throw new ModelConfigError('tokenId', `${tokenId} is not an id below vocabSize ${config.vocabSize}`);
  }
  if (!Number.isInteger(channel) || channel < 0 || channel >= H) {
    throw new ModelConfigError('channel', `${channel} is not a channel below hiddenSize ${H}`);
  }
  const out: ModelWeights = { ...weights };
  const embed = weights['model.embed_tokens.weight']!.slice();
  for (let v = 0; v < config.vocabSize; v++) embed[v * H + channel] = 1;
  if (config.tieWordEmbeddings) embed[tokenId * H + channel] = 1 + strength;
  out['model.embed_tokens.weight'] = embed;
  for (let i = 0; i < config.numHiddenLayers; i++) {
    for (const name of [
      `model.layers.${i}.self_attn.o_proj.weight`,
      `model.layers.${i}.mlp.down_proj.weight`,
    ]) {
      const w = weights[name]!.slice();
      const cols = w.length / H;
      w.fill(0, channel * cols, (channel + 1) * cols);
      out[name] = w;
    }
  }
  const norm = weights['model.norm.weight']!.slice();
  norm[channel] = 1;
  out['model.norm.weight'] = norm;
  if (!config.tieWordEmbeddings) {
    const head = weights['lm_head.weight']!.slice();
    for (let v = 0; v < config.vocabSize; v++) head[v * H + channel] = 0;
    head[tokenId * H + channel] = strength;
    out['lm_head.weight'] = head;
  }
  return out;
}
