import type { DecoderConfig } from '../config.js';
import { Q4_BLOCK_SIZES } from '../quantize.js';
import { ropeTables } from '../rope.js';
import { numel, type WeightSpec, weightSpecs } from '../weights.js';
import { GraphBuilder, int, ints, type NodeObject, graph as subgraph } from './graph-builder.js';
import { DataType } from './onnx-schema.js';

/**
 * A graph input or output: name, element type and dims (numbers or symbolic names).
 *
 * @example
 * const logits: GraphValue = buildDecoderGraph(PRESETS.tiny).outputs[0]!;
 * logits.dims; // ['batch_size', 'sequence_length', 512]
 */
export interface GraphValue {
  name: string;
  elemType: number;
  dims: (number | string)[];
}

/** A graph input or output as a ValueInfoProto object (symbolic dims as `dim_param`). */
export function valueInfoObject(v: GraphValue): Record<string, unknown> {
  return {
    name: v.name,
    type: {
      tensor_type: {
        elem_type: v.elemType,
        shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

/**
 * One initializer of the weights, derived from a weight tensor: the tensor itself (`float32`), the
 * packed 4-bit values or the scales of its {@link quantizeQ4} form (`q4-data`, `q4-scales`), or the
 * int8 values (as they are for a gathered table, `q8-data`; transposed to [in, out] for
 * `MatMulInteger`, `q8-data-t`) or the scale of its {@link quantizeQ8} form (`q8-scale`).
 *
 * @example
 * const q4 = buildDecoderGraph(PRESETS.tiny, { dtype: 'q4' });
 * const packed: GraphTensor[] = q4.tensors.filter((t) => t.form === 'q4-data');
 */
export interface GraphTensor {
  /** The weight it is made from. */
  spec: WeightSpec;
  name: string;
  dims: number[];
  dataType: number;
  bytes: number;
  form: 'float32' | 'q4-data' | 'q4-scales' | 'q8-data' | 'q8-data-t' | 'q8-scale';
}

/**
 * A built decoder graph: nodes and constants in `builder`, the weights it references, and its interface.
 *
 * @example
 * const graph: DecoderGraph = buildDecoderGraph(PRESETS.tiny);
 * graph.tensors.length === graph.weights.length; // true: an fp32 graph has one initializer per weight
 */
export interface DecoderGraph {
  builder: GraphBuilder;
  weights: WeightSpec[];
  /** The initializers made from `weights`, grouped by weight in `weights` order. */
  tensors: GraphTensor[];
  inputs: GraphValue[];
  outputs: GraphValue[];
}

/**
 * How linear weights are stored, by the transformers.js dtype of the file (`onnx/model.onnx`,
 * `onnx/model_q4.onnx`, `onnx/model_quantized.onnx`): `fp32`; `q4`: every linear layer, the LM head
 * included, a `MatMulNBits` (onnxruntime's contrib op) on blockwise symmetric 4-bit weights,
 * embeddings and norms float32; or `q8`: what onnxruntime's dynamic quantizer writes (transformers.js's
 * `q8` files): every linear layer's activation quantized to uint8 at run time, one scale per tensor
 * (`DynamicQuantizeLinear`), times int8 weights with one scale each (`MatMulInteger`, `Cast`, `Mul`),
 * and the embeddings gathered from an int8 table (`Gather`, `DequantizeLinear`); norms float32.
 * Per-tensor activation scales make a row's logits depend a little on the other rows and positions
 * computed with it.
 *
 * @example
 * const dtypes: WeightDtype[] = ['fp32', 'q8'];
 * dtypes.map((d) => graphFileName(d)); // ['model.onnx', 'model_quantized.onnx']
 */
export type WeightDtype = 'fp32' | 'q4' | 'q8';

/** `q4BlockSize` when not given: 32, as transformers.js's q4 files. */
export const DEFAULT_Q4_BLOCK_SIZE = 32;
/** The `accuracy_level` values `MatMulNBits` takes. */
export const Q4_ACCURACY_LEVELS: readonly number[] = [0, 1, 2, 3, 4];

/**
 * Options of the `q4` weights.
 *
 * @example
 * const q4: Q4Options = { q4BlockSize: 64, q4AccuracyLevel: 0 };
 * await createModel({ preset: 'tiny', dtypes: ['q4'], ...q4, out });
 */
export interface Q4Options {
  /** Values per quantization block, one scale each (default 32, as transformers.js's q4 files). */
  q4BlockSize?: (typeof Q4_BLOCK_SIZES)[number] | undefined;
  /**
   * `MatMulNBits`'s `accuracy_level`, the precision onnxruntime computes in (default 4: int8, its
   * fastest CPU path, rounding the activations to 8 bits per block; 0: float32 on the dequantized
   * weights, what onnxruntime's quantizer writes by default).
   */
  q4AccuracyLevel?: 0 | 1 | 2 | 3 | 4 | undefined;
}

/**
 * Value substituted for masked attention scores before the softmax.
 *
 * @example
 * const scores = Float32Array.of(0.3, 1.2, 0.7);
 * scores[2] = MASKED_SCORE; // a key the query may not see: exp(-1e9 - max) is 0 after the softmax
 */
export const MASKED_SCORE = -1e9;

/**
 * Options of {@link buildDecoderGraph}.
 *
 * @example
 * const optimumLike: DecoderGraphOptions = { repeatKv: 'expand', linear: 'matmul' };
 * await createModel({ preset: 'tiny', out, ...optimumLike });
 */
export interface DecoderGraphOptions {
  /**
   * Element type of `past_key_values.*` / `present.*` (default `float32`). With `float16` the new keys
   * and values are cast to float16 before they are appended to the cache, and the cache is cast back to
   * float32 for attention, as exports with a half-precision KV cache do.
   */
  kvDtype?: 'float32' | 'float16' | undefined;
  /**
   * How grouped-query attention reads the cache (default `grouped`): `grouped` views each KV head's
   * queries as one matrix (no copies); `expand` repeats the KV heads with Unsqueeze/Expand/Reshape on
   * shapes taken from the cache (Hugging Face's `repeat_kv`, as optimum's exports of llama-family
   * models have it). Same results; `expand` copies the cache once per head group at every step.
   */
  repeatKv?: 'grouped' | 'expand' | undefined;
  /**
   * `false`: no `position_ids` input; the graph derives positions from `attention_mask` the way
   * Hugging Face does without them (cumsum(mask) - 1, padding at 1), as exports of models without
   * that input have it. Default true.
   */
  positionIds?: boolean | undefined;
  /**
   * How linear layers are written (default `gemm`): `gemm` flattens the activations and runs
   * `Gemm(transB=1)` on the [out, in] weight (`Reshape -> Gemm -> Reshape`); `matmul` is what optimum's
   * exports have: `MatMul(x, W)` on the [B, S, in] activations with an [in, out] weight, here
   * `Transpose(weight)` of the same initializer (onnxruntime folds it at load), the tied LM head too
   * (`MatMul(x, Transpose(embed))`). Same logits. A q4 graph's linear layers are `MatMulNBits`, a q8
   * graph's `MatMulInteger`, whatever this says.
   */
  linear?: 'gemm' | 'matmul' | undefined;
  /**
   * `true`: one graph holding both decoders of an optimum merged export (`decoder_model_merged.onnx`):
   * an `If` on a `use_cache_branch` bool [1] input, whose `then` branch appends to `past_key_values.*`
   * and whose `else` branch (the first step) ignores them, `present.*` holding the new keys and values
   * only. Same logits as the plain graph. Default false.
   */
  merged?: boolean | undefined;
}

/**
 * Builds the llama-family decoder graph with the optimum / transformers.js interface (see the package
 * README): standard opset-17 ops only. Linear layers are `Gemm(transB=1)` (or, with `linear: 'matmul'`,
 * `MatMul` on their transpose) on weights kept in their PyTorch [out, in] layout under their Hugging
 * Face names, so the tied LM head reuses `model.embed_tokens.weight` without a transposed copy.
 *
 * @example
 * const graph = buildDecoderGraph(PRESETS.tiny, { linear: 'matmul' });
 * graph.inputs.map((v) => v.name).slice(0, 3); // ['input_ids', 'attention_mask', 'position_ids']
 */
export function buildDecoderGraph(
  config: DecoderConfig,
  options: DecoderGraphOptions & Q4Options & { dtype?: WeightDtype | undefined } = {},
): DecoderGraph {
  const g = new GraphBuilder();
  const q4 = options.dtype === 'q4';
  const q8 = options.dtype === 'q8';
  const blockSize = options.q4BlockSize ?? DEFAULT_Q4_BLOCK_SIZE;
  if (q4 && !(Q4_BLOCK_SIZES as readonly number[]).includes(blockSize)) {
    throw new RangeError(`q4BlockSize must be one of ${Q4_BLOCK_SIZES.join(', ')}, got ${blockSize}`);
  }
  const accuracyLevel = options.q4AccuracyLevel ?? 4;
  if (q4 && !Q4_ACCURACY_LEVELS.includes(accuracyLevel)) {
    throw new RangeError(`q4AccuracyLevel must be 0, 1, 2, 3 or 4, got ${accuracyLevel}`);
  }
  // the quantized initializers of a linear weight, by the onnxruntime quantizer's names
  const q4Names = (weight: string) => ({ data: `${weight}_Q4`, scales: `${weight}_scales` });
  const q8Names = (weight: string) => ({ data: `${weight}_quantized`, scale: `${weight}_scale` });
  // the int8 weights' zero point (symmetric: 0), one for all of them
  const q8Zero = q8 ? g.int8([0], []) : '';
  // a tied LM head reads a quantized copy of the embeddings (q4's Gather keeps the float32 table, q8's
  // reads the int8 one, as they are: the head's copy is its [hidden, vocab] transpose)
  const headWeight = config.tieWordEmbeddings ? 'lm_head.weight' : undefined;
  const halfKv = options.kvDtype === 'float16';
  const toCache = (x: string) => (halfKv ? g.op('Cast', [x], { to: int(DataType.FLOAT16) }) : x);
  const fromCache = (x: string) => (halfKv ? g.op('Cast', [x], { to: int(DataType.FLOAT) }) : x);
  const { hiddenSize: H, numAttentionHeads: nh, numKeyValueHeads: kvh, headDim: hd } = config;
  const nRep = nh / kvh;
  const half = hd / 2;
  const withPositions = options.positionIds !== false;

  // Rotary tables (initializers, shared by both branches of a merged graph)
  const tables = ropeTables(config);
  const cosTable = g.float32(tables.cos, [config.maxPositionEmbeddings, hd], 'rotary.cos_cached');
  const sinTable = g.float32(tables.sin, [config.maxPositionEmbeddings, hd], 'rotary.sin_cached');

  /**
   * Adds the decoder's nodes: with the cache (`present.*` = Concat(past, new)), or without it, as the
   * first-step branch of a merged export has it (`present.*` = the new keys and values; the past
   * inputs unread). `names`: the outputs take their interface names (`logits`, `present.*`).
   */
  const decoder = (withPast: boolean, names: boolean): { logits: string; present: string[] } => {
    const named = (name: string) => (names ? name : undefined);
    // Shapes and the attention mask ([B, 1, S, T] bool: causal AND not padding).
    const bs = g.op('Shape', ['input_ids']);
    const S = g.op('Gather', [bs, g.int64([1], [])], { axis: int(0) });
    const T = g.op('Gather', [g.op('Shape', ['attention_mask']), g.int64([1], [])], { axis: int(0) });
    // without a position_ids input: cumsum(mask) - 1 (padding at 1), the last S columns
    let positionIds = 'position_ids';
    if (!withPositions) {
      const cumsum = g.op('CumSum', ['attention_mask', g.int64([1], [])]);
      const counted = g.op('Sub', [cumsum, g.int64([1], [])]);
      const padding = g.op('Equal', ['attention_mask', g.int64([0], [])]);
      const all = g.op('Where', [padding, g.int64([1], []), counted]);
      const start = g.op('Unsqueeze', [g.op('Sub', [T, S]), g.int64([0])]);
      positionIds = g.op('Slice', [all, start, g.int64([Number.MAX_SAFE_INTEGER]), g.int64([1])]);
    }
    const past = g.op('Sub', [T, S]);
    const one = g.int64([1], []);
    const keyPos = g.op('Range', [g.int64([0], []), T, one]);
    const queryPos = g.op('Range', [past, T, one]);
    const keyCol = g.op('Unsqueeze', [keyPos, g.int64([0])]);
    let causal = g.op('LessOrEqual', [keyCol, g.op('Unsqueeze', [queryPos, g.int64([1])])]);
    if (config.slidingWindow) {
      // as transformers masks it: keys fewer than `slidingWindow` cache positions back (key > query - W)
      const windowStart = g.op('Sub', [queryPos, g.int64([config.slidingWindow], [])]);
      const inWindow = g.op('Greater', [keyCol, g.op('Unsqueeze', [windowStart, g.int64([1])])]);
      causal = g.op('And', [causal, inWindow]);
    }
    const notPad = g.op('Cast', [g.op('Unsqueeze', ['attention_mask', g.int64([1, 2])])], {
      to: int(DataType.BOOL),
    });
    const mask = g.op('And', [causal, notPad]);

    // Rotary tables gathered by position: [B, 1, S, hd].
    const axis1 = g.int64([1]);
    const cos = g.op('Unsqueeze', [g.op('Gather', [cosTable, positionIds], { axis: int(0) }), axis1]);
    const sin = g.op('Unsqueeze', [g.op('Gather', [sinTable, positionIds], { axis: int(0) }), axis1]);

    // q8: each activation quantized once, however many linear layers read it (q, k and v read one)
    const quantizedActivations = new Map<string, string[]>();
    const quantizedActivation = (x: string): string[] => {
      let q = quantizedActivations.get(x);
      if (!q) {
        q = g.opN('DynamicQuantizeLinear', [x], {}, [`${x}_quantized`, `${x}_scale`, `${x}_zero_point`]);
        quantizedActivations.set(x, q);
      }
      return q;
    };
    const flatShapes = new Map<number, string>();
    const linear = (
      x: string,
      rows: number,
      cols: number,
      weight: string,
      bias?: string,
      output?: string,
    ): string => {
      // a quantized graph's tied LM head reads its own copy of the embeddings (see `headWeight`)
      const stored = weight === 'model.embed_tokens.weight' && headWeight ? headWeight : weight;
      if (q4) {
        const names = q4Names(stored);
        const y = g.op(
          'MatMulNBits',
          [x, names.data, names.scales],
          {
            K: int(cols),
            N: int(rows),
            bits: int(4),
            block_size: int(blockSize),
            accuracy_level: int(accuracyLevel),
          },
          bias ? undefined : output,
          'com.microsoft',
        );
        return bias ? g.op('Add', [y, bias], {}, output) : y;
      }
      if (q8) {
        const names = q8Names(stored);
        const [xq, xScale, xZero] = quantizedActivation(x);
        const product = g.op('MatMulInteger', [xq!, names.data, xZero!, q8Zero]);
        const float = g.op('Cast', [product], { to: int(DataType.FLOAT) });
        const scales = g.op('Mul', [xScale!, names.scale]);
        const y = g.op('Mul', [float, scales], {}, bias ? undefined : output);
        return bias ? g.op('Add', [y, bias], {}, output) : y;
      }
      if (options.linear === 'matmul') {
        const y = g.op(
          'MatMul',
          [x, g.op('Transpose', [weight], { perm: ints([1, 0]) })],
          {},
          bias ? undefined : output,
        );
        return bias ? g.op('Add', [y, bias], {}, output) : y;
      }
      const flat = g.op('Reshape', [x, g.int64([-1, cols])]);
      const y = g.op('Gemm', bias ? [flat, weight, bias] : [flat, weight], { transB: int(1) });
      let shape = flatShapes.get(rows);
      if (!shape) {
        shape = g.op('Concat', [bs, g.int64([rows])], { axis: int(0) });
        flatShapes.set(rows, shape);
      }
      return g.op('Reshape', [y, shape], {}, output);
    };
    const two = g.float32([2], []);
    const eps = g.float32([config.rmsNormEps], []);
    const rmsNorm = (x: string, weight: string): string => {
      const variance = g.op('ReduceMean', [g.op('Pow', [x, two])], { axes: ints([-1]), keepdims: int(1) });
      const normed = g.op('Div', [x, g.op('Sqrt', [g.op('Add', [variance, eps])])]);
      return g.op('Mul', [normed, weight]);
    };
    const sliceLo = [g.int64([0]), g.int64([half]), g.int64([3])];
    const sliceHi = [g.int64([half]), g.int64([hd]), g.int64([3])];
    const rope = (x: string): string => {
      const lo = g.op('Slice', [x, sliceLo[0]!, sliceLo[1]!, sliceLo[2]!]);
      const hi = g.op('Slice', [x, sliceHi[0]!, sliceHi[1]!, sliceHi[2]!]);
      const rotated = g.op('Concat', [g.op('Neg', [hi]), lo], { axis: int(3) });
      return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rotated, sin])]);
    };
    const heads = (x: string, n: number): string =>
      g.op('Transpose', [g.op('Reshape', [x, g.int64([0, 0, n, hd])])], { perm: ints([0, 2, 1, 3]) });
    // Grouped-query attention without repeating K/V (HF's repeat_kv): query head h uses KV head
    // floor(h / nRep), so [B, nh, S, x] viewed as [B, kvh, nRep * S, x] puts each KV head's queries in
    // one matrix. Same dot products, no Expand copies of the cache, and M = nRep * S matmuls.
    const toGroups = (x: string): string => (nRep === 1 ? x : g.op('Reshape', [x, g.int64([0, kvh, -1, 0])]));
    const toHeads = (x: string): string => (nRep === 1 ? x : g.op('Reshape', [x, g.int64([0, nh, -1, 0])]));
    // HF's repeat_kv: [B, kvh, T, hd] -> [B, kvh, nRep, T, hd] (Expand) -> [B, nh, T, hd]
    const expandKv = options.repeatKv === 'expand' && nRep > 1;
    const repeatKv = (x: string): string => {
      if (!expandKv) return x;
      const shape = g.op('Shape', [x]);
      const b = g.op('Slice', [shape, g.int64([0]), g.int64([1])]);
      const t = g.op('Slice', [shape, g.int64([2]), g.int64([3])]);
      const expanded = g.op('Expand', [
        g.op('Unsqueeze', [x, g.int64([2])]),
        g.op('Concat', [b, g.int64([kvh, nRep]), t, g.int64([hd])], { axis: int(0) }),
      ]);
      return g.op('Reshape', [
        expanded,
        g.op('Concat', [b, g.int64([nh]), t, g.int64([hd])], { axis: int(0) }),
      ]);
    };
    const grouped = (x: string): string => (expandKv ? x : toGroups(x));
    const ungrouped = (x: string): string => (expandKv ? x : toHeads(x));
    const scale = g.float32([1 / Math.sqrt(hd)], []);
    const masked = g.float32([MASKED_SCORE], []);

    const present: string[] = [];
    const table = q8Names('model.embed_tokens.weight');
    let x = q8
      ? g.op('DequantizeLinear', [
          g.op('Gather', [table.data, 'input_ids'], { axis: int(0) }),
          table.scale,
          q8Zero,
        ])
      : g.op('Gather', ['model.embed_tokens.weight', 'input_ids'], { axis: int(0) });
    for (let i = 0; i < config.numHiddenLayers; i++) {
      const p = `model.layers.${i}`;
      const bias = (proj: string) => (config.attentionBias ? `${p}.self_attn.${proj}.bias` : undefined);
      const h = rmsNorm(x, `${p}.input_layernorm.weight`);
      const q = rope(heads(linear(h, nh * hd, H, `${p}.self_attn.q_proj.weight`, bias('q_proj')), nh));
      const k = rope(heads(linear(h, kvh * hd, H, `${p}.self_attn.k_proj.weight`, bias('k_proj')), kvh));
      const v = heads(linear(h, kvh * hd, H, `${p}.self_attn.v_proj.weight`, bias('v_proj')), kvh);
      const append = (x: string, kind: 'key' | 'value') =>
        withPast
          ? g.op(
              'Concat',
              [`past_key_values.${i}.${kind}`, toCache(x)],
              { axis: int(2) },
              named(`present.${i}.${kind}`),
            )
          : toCache(x);
      const presentK = append(k, 'key');
      const presentV = append(v, 'value');
      present.push(presentK, presentV);
      const keys = g.op('Transpose', [repeatKv(fromCache(presentK))], { perm: ints([0, 1, 3, 2]) });
      const scores = g.op('Mul', [ungrouped(g.op('MatMul', [grouped(q), keys])), scale]);
      const probs = g.op('Softmax', [g.op('Where', [mask, scores, masked])], { axis: int(-1) });
      const values = repeatKv(fromCache(presentV));
      const context = g.op('Transpose', [ungrouped(g.op('MatMul', [grouped(probs), values]))], {
        perm: ints([0, 2, 1, 3]),
      });
      const merged = g.op('Reshape', [context, g.int64([0, 0, nh * hd])]);
      x = g.op('Add', [x, linear(merged, H, nh * hd, `${p}.self_attn.o_proj.weight`)]);
      const h2 = rmsNorm(x, `${p}.post_attention_layernorm.weight`);
      const gate = linear(h2, config.intermediateSize, H, `${p}.mlp.gate_proj.weight`);
      const up = linear(h2, config.intermediateSize, H, `${p}.mlp.up_proj.weight`);
      const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
      x = g.op('Add', [x, linear(act, H, config.intermediateSize, `${p}.mlp.down_proj.weight`)]);
    }
    const final = rmsNorm(x, 'model.norm.weight');
    const head = config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    const logits = linear(final, config.vocabSize, H, head, undefined, named('logits'));
    return { logits, present };
  };

  const I64 = DataType.INT64;
  const F32 = DataType.FLOAT;
  const KV = halfKv ? DataType.FLOAT16 : F32;
  const inputs: GraphValue[] = [
    { name: 'input_ids', elemType: I64, dims: ['batch_size', 'sequence_length'] },
    { name: 'attention_mask', elemType: I64, dims: ['batch_size', 'total_sequence_length'] },
    ...(withPositions
      ? [{ name: 'position_ids', elemType: I64, dims: ['batch_size', 'sequence_length'] }]
      : []),
  ];
  const outputs: GraphValue[] = [
    { name: 'logits', elemType: F32, dims: ['batch_size', 'sequence_length', config.vocabSize] },
  ];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    for (const kind of ['key', 'value']) {
      inputs.push({
        name: `past_key_values.${i}.${kind}`,
        elemType: KV,
        dims: ['batch_size', kvh, 'past_sequence_length', hd],
      });
      outputs.push({
        name: `present.${i}.${kind}`,
        elemType: KV,
        dims: ['batch_size', kvh, 'total_sequence_length', hd],
      });
    }
  }
  // last, as optimum's merged exports have it
  if (options.merged) inputs.push({ name: 'use_cache_branch', elemType: DataType.BOOL, dims: [1] });
  if (!options.merged) decoder(true, true);
  else {
    // optimum's merged decoder: one If on use_cache_branch, each branch a whole decoder reading the
    // graph's inputs and initializers from the outer scope; its outputs named in the branch
    const start = g.nodes.length;
    const cached = decoder(true, false);
    const middle = g.nodes.length;
    const first = decoder(false, false);
    const branch = (name: string, nodes: NodeObject[], made: { logits: string; present: string[] }) => ({
      name,
      node: nodes,
      output: [made.logits, ...made.present].map((value, k) =>
        valueInfoObject({ ...outputs[k]!, name: value }),
      ),
    });
    const thenBranch = branch('with_past', g.nodes.slice(start, middle), cached);
    const elseBranch = branch('without_past', g.nodes.slice(middle), first);
    g.nodes.length = start;
    g.opN(
      'If',
      ['use_cache_branch'],
      { then_branch: subgraph(thenBranch), else_branch: subgraph(elseBranch) },
      outputs.map((o) => o.name),
    );
  }
  const weights = weightSpecs(config);
  const tensors: GraphTensor[] = [];
  const float = (spec: WeightSpec) =>
    tensors.push({
      spec,
      name: spec.name,
      dims: spec.shape,
      dataType: F32,
      bytes: numel(spec.shape) * 4,
      form: 'float32',
    });
  const quantized = (spec: WeightSpec, name: string) => {
    const [rows, cols] = spec.shape as [number, number];
    const blocks = Math.ceil(cols / blockSize);
    const names = q4Names(name);
    tensors.push(
      {
        spec,
        name: names.data,
        dims: [rows, blocks, blockSize / 2],
        dataType: DataType.UINT8,
        bytes: (rows * blocks * blockSize) / 2,
        form: 'q4-data',
      },
      {
        spec,
        name: names.scales,
        dims: [rows * blocks],
        dataType: F32,
        bytes: rows * blocks * 4,
        form: 'q4-scales',
      },
    );
  };
  const int8 = (spec: WeightSpec, name: string, transposed: boolean) => {
    const [rows, cols] = spec.shape as [number, number];
    const names = q8Names(name);
    tensors.push(
      {
        spec,
        name: names.data,
        dims: transposed ? [cols, rows] : [rows, cols],
        dataType: DataType.INT8,
        bytes: rows * cols,
        form: transposed ? 'q8-data-t' : 'q8-data',
      },
      { spec, name: names.scale, dims: [], dataType: F32, bytes: 4, form: 'q8-scale' },
    );
  };
  for (const spec of weights) {
    if (q8 && spec.kind !== 'norm' && spec.kind !== 'bias') {
      // linear layers as MatMulInteger reads them ([in, out]); the embeddings as they are, gathered
      int8(spec, spec.name, spec.kind === 'linear');
      if (spec.kind === 'embedding' && headWeight) int8(spec, headWeight, true);
    } else if (!q4 || spec.kind === 'norm' || spec.kind === 'bias') float(spec);
    else if (spec.kind === 'linear') quantized(spec, spec.name);
    else {
      float(spec); // the embeddings, gathered
      if (headWeight) quantized(spec, headWeight);
    }
  }
  return { builder: g, weights, tensors, inputs, outputs };
}
