import type { DecoderConfig } from './config.js';
import { ModelConfigError } from './errors.js';
import { ropeTables } from './rope.js';
import { shown } from './shown.js';
import { type ModelWeights, validateWeights } from './weights.js';

/**
 * A decoder held in memory: its configuration and weights by Hugging Face name.
 *
 * @example
 * const model: ReferenceModel = { config: PRESETS.tiny, weights: randomWeights(PRESETS.tiny, 1) };
 * referenceForward(model, [1, 2, 3]).length; // 3
 */
export interface ReferenceModel {
  config: DecoderConfig;
  weights: ModelWeights;
}

/**
 * Options of {@link referenceForward}.
 *
 * @example
 * // the tokens as the graph sees them with position_ids [[3, 4, 5]]
 * const logits = referenceForward(readModel(dir), [5, 6, 7], { positionIds: [3, 4, 5] });
 */
export interface ReferenceForwardOptions {
  /** Rotary positions of the tokens, integers in [0, maxPositionEmbeddings); default `0, 1, ..., n-1`. */
  positionIds?: number[] | undefined;
}

function linear(x: Float32Array, w: Float32Array, rows: number, bias?: Float32Array): Float32Array {
  const cols = x.length;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) acc += w[base + c]! * x[c]!;
    out[r] = bias ? acc + bias[r]! : acc;
  }
  return out;
}

function rmsNorm(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * inv * w[i]!;
  return out;
}

function applyRope(
  v: Float32Array,
  heads: number,
  hd: number,
  cos: Float32Array,
  sin: Float32Array,
  row: number,
) {
  const half = hd / 2;
  for (let h = 0; h < heads; h++) {
    const o = h * hd;
    const rotated = new Float32Array(hd);
    for (let j = 0; j < half; j++) {
      rotated[j] = -v[o + half + j]!;
      rotated[j + half] = v[o + j]!;
    }
    for (let j = 0; j < hd; j++) v[o + j] = v[o + j]! * cos[row * hd + j]! + rotated[j]! * sin[row * hd + j]!;
  }
}

/**
 * The decoder's logits for every position of one unpadded sequence, computed in plain TypeScript
 * (float32 storage, causal attention within `slidingWindow` if set, no cache): the oracle the ONNX
 * graph is tested against. Slow (O(parameters) per token); meant for tiny models and a few tokens of
 * large ones.
 *
 * @returns one `Float32Array(vocabSize)` per input position.
 * @example
 * const config = resolveConfig({ preset: 'tiny' });
 * const logits = referenceForward({ config, weights: randomWeights(config, 1) }, [5, 6, 7]);
 * argmax(logits.at(-1)!); // the greedy next token
 */
export function referenceForward(
  model: ReferenceModel,
  inputIds: readonly number[],
  options: ReferenceForwardOptions = {},
): Float32Array[] {
  const { config, weights: w } = model;
  validateWeights(config, w);
  const {
    hiddenSize: H,
    numAttentionHeads: nh,
    numKeyValueHeads: kvh,
    headDim: hd,
    rmsNormEps: eps,
  } = config;
  // text, or a typed array of ids, would fail inside as `inputIds.map is not a function` or embed nothing
  if (!Array.isArray(inputIds)) {
    throw new ModelConfigError(
      'inputIds',
      `expected an array of token ids (integers below vocabSize ${config.vocabSize}), got ${
        ArrayBuffer.isView(inputIds)
          ? `${(inputIds as object).constructor.name} (Array.from makes an array of it)`
          : `${shown(inputIds)}${typeof inputIds === 'string' ? ': tokenize the text first' : ''}`
      }`,
    );
  }
  const positions = options.positionIds ?? inputIds.map((_, i) => i);
  if (positions.length !== inputIds.length) {
    throw new ModelConfigError(
      'positionIds',
      `has ${positions.length} entries for ${inputIds.length} input ids`,
    );
  }
  // the rotary tables have maxPositionEmbeddings rows: a position beyond them gave NaN logits
  for (const [i, position] of positions.entries()) {
    if (!Number.isInteger(position) || position < 0 || position >= config.maxPositionEmbeddings) {
      throw new ModelConfigError(
        'positionIds',
        `${shown(position)} at index ${i} is not a position in [0, ${config.maxPositionEmbeddings}) (maxPositionEmbeddings)${options.positionIds ? '' : "; the input is longer than the model's context"}`,
      );
    }
  }
  const { cos, sin } = ropeTables(config);
  const embed = w['model.embed_tokens.weight']!;
  let xs = inputIds.map((id) => {
    if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
      throw new ModelConfigError('inputIds', `${shown(id)} is not an id below vocabSize ${config.vocabSize}`);
    }
    return embed.slice(id * H, (id + 1) * H);
  });
  const nRep = nh / kvh;
  const scale = 1 / Math.sqrt(hd);
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const p = `model.layers.${l}`;
    const b = (proj: string) => (config.attentionBias ? w[`${p}.self_attn.${proj}.bias`] : undefined);
    const qs: Float32Array[] = [];
    const ks: Float32Array[] = [];
    const vs: Float32Array[] = [];
    xs.forEach((x, t) => {
      const h = rmsNorm(x, w[`${p}.input_layernorm.weight`]!, eps);
      const q = linear(h, w[`${p}.self_attn.q_proj.weight`]!, nh * hd, b('q_proj'));
      const k = linear(h, w[`${p}.self_attn.k_proj.weight`]!, kvh * hd, b('k_proj'));
      applyRope(q, nh, hd, cos, sin, positions[t]!);
      applyRope(k, kvh, hd, cos, sin, positions[t]!);
      qs.push(q);
      ks.push(k);
      vs.push(linear(h, w[`${p}.self_attn.v_proj.weight`]!, kvh * hd, b('v_proj')));
    });
    xs = xs.map((x, t) => {
      // the first key this query sees: all of them, or the last `slidingWindow`
      const first = config.slidingWindow ? Math.max(0, t - config.slidingWindow + 1) : 0;
      const context = new Float32Array(nh * hd);
      for (let head = 0; head < nh; head++) {
        const kvHead = Math.floor(head / nRep);
        const scores = new Float32Array(t + 1);
        let max = -Infinity;
        for (let s = first; s <= t; s++) {
          let dot = 0;
          for (let j = 0; j < hd; j++) dot += qs[t]![head * hd + j]! * ks[s]![kvHead * hd + j]!;
          scores[s] = Math.fround(dot) * scale;
          max = Math.max(max, scores[s]!);
        }
        let sum = 0;
        for (let s = first; s <= t; s++) {
          scores[s] = Math.exp(scores[s]! - max);
          sum += scores[s]!;
        }
        for (let s = first; s <= t; s++) {
          const pr = scores[s]! / sum;
          for (let j = 0; j < hd; j++) context[head * hd + j] += pr * vs[s]![kvHead * hd + j]!;
        }
      }
      const attn = linear(context, w[`${p}.self_attn.o_proj.weight`]!, H);
      const x1 = new Float32Array(H);
      for (let i = 0; i < H; i++) x1[i] = x[i]! + attn[i]!;
      const h2 = rmsNorm(x1, w[`${p}.post_attention_layernorm.weight`]!, eps);
      const gate = linear(h2, w[`${p}.mlp.gate_proj.weight`]!, config.intermediateSize);
      const up = linear(h2, w[`${p}.mlp.up_proj.weight`]!, config.intermediateSize);
      for (let i = 0; i < gate.length; i++) gate[i] = (gate[i]! / (1 + Math.exp(-gate[i]!))) * up[i]!;
      const down = linear(gate, w[`${p}.mlp.down_proj.weight`]!, H);
      for (let i = 0; i < H; i++) x1[i] = x1[i]! + down[i]!;
      return x1;
    });
  }
  const head = config.tieWordEmbeddings ? embed : w['lm_head.weight']!;
  return xs.map((x) => linear(rmsNorm(x, w['model.norm.weight']!, eps), head, config.vocabSize));
}
