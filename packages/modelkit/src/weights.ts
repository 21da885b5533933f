import type { DecoderConfig } from './config.js';
import { ModelWeightsError } from './errors.js';
import { tensorRng } from './rng.js';

/**
 * One weight tensor: its Hugging Face name, shape (PyTorch layout: Linear weights are [out, in]) and role.
 *
 * @example
 * const norms = weightSpecs(PRESETS.tiny).filter((s: WeightSpec) => s.kind === 'norm');
 * norms.length; // 5: two per layer and the final norm
 */
export interface WeightSpec {
  name: string;
  shape: number[];
  kind: 'embedding' | 'linear' | 'bias' | 'norm';
}

/**
 * Weight tensors by Hugging Face name (`model.layers.0.self_attn.q_proj.weight`, ...), row-major float32.
 *
 * @example
 * const weights: ModelWeights = randomWeights(PRESETS.tiny, 1);
 * weights['model.embed_tokens.weight']!.length; // 32768 (512 ids x 64)
 */
export type ModelWeights = Record<string, Float32Array>;

/**
 * Where the writer gets each tensor: called once per spec, in {@link weightSpecs} order.
 *
 * @example
 * // every linear weight zero, the rest seeded
 * const source: WeightSource = (spec) => (spec.kind === 'linear' ? new Float32Array(numel(spec.shape)) : randomTensor(spec, 1));
 * await createModel({ preset: 'tiny', weights: source, out });
 */
export type WeightSource = (spec: WeightSpec) => Float32Array;

/**
 * Number of elements of a shape.
 *
 * @example
 * numel([512, 64]); // 32768
 */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Every weight tensor of a decoder, in the order of the Hugging Face state dict: embeddings, then per
 * layer norms, attention (q/k/v with biases when `attentionBias`, o), MLP (gate/up/down), final norm,
 * and `lm_head.weight` unless embeddings are tied.
 *
 * @example
 * weightSpecs(PRESETS.tiny).map((s) => s.name); // ['model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight', ...]
 */
export function weightSpecs(config: DecoderConfig): WeightSpec[] {
  const {
    hiddenSize: h,
    intermediateSize: m,
    numAttentionHeads: nh,
    numKeyValueHeads: kvh,
    headDim: hd,
  } = config;
  const specs: WeightSpec[] = [
    { name: 'model.embed_tokens.weight', shape: [config.vocabSize, h], kind: 'embedding' },
  ];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    specs.push({ name: `${p}.input_layernorm.weight`, shape: [h], kind: 'norm' });
    for (const [proj, rows] of [
      ['q_proj', nh * hd],
      ['k_proj', kvh * hd],
      ['v_proj', kvh * hd],
    ] as const) {
      specs.push({ name: `${p}.self_attn.${proj}.weight`, shape: [rows, h], kind: 'linear' });
      if (config.attentionBias)
        specs.push({ name: `${p}.self_attn.${proj}.bias`, shape: [rows], kind: 'bias' });
    }
    specs.push({ name: `${p}.self_attn.o_proj.weight`, shape: [h, nh * hd], kind: 'linear' });
    specs.push({ name: `${p}.post_attention_layernorm.weight`, shape: [h], kind: 'norm' });
    specs.push({ name: `${p}.mlp.gate_proj.weight`, shape: [m, h], kind: 'linear' });
    specs.push({ name: `${p}.mlp.up_proj.weight`, shape: [m, h], kind: 'linear' });
    specs.push({ name: `${p}.mlp.down_proj.weight`, shape: [h, m], kind: 'linear' });
  }
  specs.push({ name: 'model.norm.weight', shape: [h], kind: 'norm' });
  if (!config.tieWordEmbeddings)
    specs.push({ name: 'lm_head.weight', shape: [config.vocabSize, h], kind: 'linear' });
  return specs;
}

/**
 * Total parameter count of a decoder (tied embeddings counted once).
 *
 * @example
 * parameterCount(PRESETS.tiny); // 106816
 */
export function parameterCount(config: DecoderConfig): number {
  return weightSpecs(config).reduce((n, s) => n + numel(s.shape), 0);
}

/**
 * The seeded value of one tensor, as Hugging Face initializes it: matrices and embeddings normal(0, 0.02);
 * biases normal(0, 0.02) (HF uses zeros; random biases keep the bias path tested); norm weights
 * 1 + normal(0, 0.02) (HF uses ones; same reason). Depends only on (seed, name, shape).
 *
 * @example
 * const q = randomTensor(weightSpecs(PRESETS.tiny)[2], 1);
 */
export function randomTensor(spec: WeightSpec, seed: number): Float32Array {
  const out = new Float32Array(numel(spec.shape));
  return tensorRng(seed, spec.name).fillNormal(out, 0.02, spec.kind === 'norm' ? 1 : 0);
}

/**
 * A {@link WeightSource} of seeded random tensors (see {@link randomTensor}).
 *
 * @example
 * await createModel({ out, weights: randomWeightSource(7) });
 */
export function randomWeightSource(seed: number): WeightSource {
  return (spec) => randomTensor(spec, seed);
}

/**
 * All seeded random tensors of a (small) decoder in memory, by Hugging Face name: the same values that
 * `createModel({ seed })` writes. Edit them and pass them back as `weights` to build a chosen model.
 *
 * @example
 * const config = resolveConfig({ preset: 'tiny' });
 * const weights = randomWeights(config, 1);
 * weights['model.norm.weight'].fill(1);
 */
export function randomWeights(config: DecoderConfig, seed: number): ModelWeights {
  const out: ModelWeights = {};
  for (const spec of weightSpecs(config)) out[spec.name] = randomTensor(spec, seed);
  return out;
}

/**
 * Throws a {@link ModelWeightsError} unless `weights` holds exactly the tensors of `config` with the
 * right lengths.
 *
 * @example
 * validateWeights(config, weights);
 */
export function validateWeights(config: DecoderConfig, weights: ModelWeights): void {
  const specs = weightSpecs(config);
  const known = new Set(specs.map((s) => s.name));
  for (const spec of specs) {
    const t = weights[spec.name];
    if (!(t instanceof Float32Array)) {
      throw new ModelWeightsError(
        spec.name,
        `missing; provide a Float32Array of shape [${spec.shape.join(', ')}]`,
      );
    }
    if (t.length !== numel(spec.shape)) {
      throw new ModelWeightsError(
        spec.name,
        `has ${t.length} values, expected ${numel(spec.shape)} for shape [${spec.shape.join(', ')}]`,
      );
    }
  }
  for (const name of Object.keys(weights)) {
    if (!known.has(name)) {
      const hint =
        name === 'lm_head.weight' ? ' (tieWordEmbeddings is true: set it false to use lm_head.weight)' : '';
      throw new ModelWeightsError(name, `is not a tensor of this configuration${hint}; remove it`);
    }
  }
}

/**
 * A {@link WeightSource} reading from an in-memory {@link ModelWeights} (validated first).
 *
 * @example
 * const weights = randomWeights(config, 1);
 * writeOnnxModel(`${dir}/onnx/model.onnx`, config, weightsSource(config, weights));
 */
export function weightsSource(config: DecoderConfig, weights: ModelWeights): WeightSource {
  validateWeights(config, weights);
  return (spec) => weights[spec.name]!;
}
