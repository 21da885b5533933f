/**
 * In-memory ONNX graph surgery at the protobuf wire level: only the graph's node list is decoded; the
 * weights (most of the bytes) are copied as opaque ranges. Used to compute the LM head only for the
 * positions whose logits are needed (the last one while generating), which standard optimum exports
 * do not offer: they compute logits for every prompt position; to output each step's new keys/values;
 * and to attend to the cache without copying it (split attention, grouped queries).
 */

interface WireField {
  no: number;
  wireType: number;
  /** whole field, tag included */
  start: number;
  end: number;
  /** payload of a length-delimited field */
  dataStart: number;
}

function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let result = 0;
  let shift = 1;
  for (;;) {
    if (pos >= buf.length) throw new RangeError('truncated varint');
    const b = buf[pos++]!;
    result += (b & 0x7f) * shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift *= 128;
  }
}

function* wireFields(buf: Uint8Array, start: number, end: number): Generator<WireField> {
  let pos = start;
  while (pos < end) {
    const fieldStart = pos;
    const [tag, afterTag] = readVarint(buf, pos);
    const no = Math.floor(tag / 8);
    const wireType = tag & 7;
    pos = afterTag;
    let dataStart = pos;
    if (wireType === 0) pos = readVarint(buf, pos)[1];
    else if (wireType === 1) pos += 8;
    else if (wireType === 5) pos += 4;
    else if (wireType === 2) {
      const [len, p] = readVarint(buf, pos);
      dataStart = p;
      pos = p + len;
    } else throw new RangeError(`unsupported protobuf wire type ${wireType}`);
    if (pos > end) throw new RangeError('truncated protobuf field');
    yield { no, wireType, start: fieldStart, end: pos, dataStart };
  }
}

const utf8 = new TextDecoder();
const enc = new TextEncoder();

function varint(n: number): number[] {
  const out: number[] = [];
  if (n < 0) {
    // int64 fields: negative values are ten-byte two's complement
    let u = BigInt.asUintN(64, BigInt(n));
    while (u >= 0x80n) {
      out.push(Number(u & 0x7fn) | 0x80);
      u >>= 7n;
    }
    out.push(Number(u));
    return out;
  }
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

function lenField(no: number, payload: Uint8Array): Uint8Array {
  const head = [...varint(no * 8 + 2), ...varint(payload.length)];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const str = (no: number, s: string) => lenField(no, enc.encode(s));
const varintField = (no: number, n: number) => new Uint8Array([...varint(no * 8), ...varint(n)]);

interface NodeInfo {
  field: WireField;
  inputs: string[];
  outputs: string[];
  opType: string;
  name: string;
  /** '' for the default ONNX domain */
  domain: string;
}

function readNode(buf: Uint8Array, f: WireField): NodeInfo {
  const node: NodeInfo = { field: f, inputs: [], outputs: [], opType: '', name: '', domain: '' };
  for (const g of wireFields(buf, f.dataStart, f.end)) {
    if (g.wireType !== 2) continue;
    const s = () => utf8.decode(buf.subarray(g.dataStart, g.end));
    if (g.no === 1) node.inputs.push(s());
    else if (g.no === 2) node.outputs.push(s());
    else if (g.no === 3) node.name = s();
    else if (g.no === 4) node.opType = s();
    else if (g.no === 7) node.domain = s() === 'ai.onnx' ? '' : s();
  }
  return node;
}

/** The GraphProto `node` fields among `fields`, read. */
const readNodes = (buf: Uint8Array, fields: readonly WireField[]): NodeInfo[] =>
  fields.filter((f) => f.no === 1 && f.wireType === 2).map((f) => readNode(buf, f));

/** onnxruntime's blockwise-quantized linear layer (4-bit exports). */
const isMatMulNBits = (node: NodeInfo) => node.opType === 'MatMulNBits' && node.domain === 'com.microsoft';

/** A copy of a node (op type, domain, attributes kept) with new inputs, outputs and name. */
function cloneNode(
  buf: Uint8Array,
  node: NodeInfo,
  inputs: string[],
  outputs: string[],
  name: string,
): Uint8Array {
  const kept: Uint8Array[] = [];
  for (const g of wireFields(buf, node.field.dataStart, node.field.end))
    if (g.no !== 1 && g.no !== 2 && g.no !== 3) kept.push(buf.subarray(g.start, g.end));
  return lenField(
    1,
    concat([
      ...inputs.map((i) => str(1, i)),
      ...outputs.map((o) => str(2, o)),
      ...(name ? [str(3, name)] : []),
      ...kept,
    ]),
  );
}

/** Rewrites a node (a GraphProto `node` field), replacing its input number `index`. */
function withInput(buf: Uint8Array, node: NodeInfo, index: number, input: string): Uint8Array {
  const inputs = node.inputs.map((v, i) => (i === index ? input : v));
  return cloneNode(buf, node, inputs, node.outputs, node.name);
}

function nodeField(
  inputs: string[],
  outputs: string[],
  name: string,
  opType: string,
  attrs: Uint8Array[] = [],
): Uint8Array {
  return lenField(
    1,
    concat([
      ...inputs.map((i) => str(1, i)),
      ...outputs.map((o) => str(2, o)),
      str(3, name),
      str(4, opType),
      ...attrs,
    ]),
  );
}

/** AttributeProto { name, i, type: INT (2) } as a NodeProto `attribute` field. */
const intAttr = (name: string, value: number) =>
  lenField(5, concat([str(1, name), varintField(3, value), varintField(20, 2)]));

/** A node (a GraphProto `node` field of `buf`) with its attribute `name` set to the integer `value`. */
function withIntAttribute(buf: Uint8Array, node: WireField, name: string, value: number): Uint8Array {
  const kept: Uint8Array[] = [];
  for (const g of wireFields(buf, node.dataStart, node.end)) {
    if (g.no === 5 && g.wireType === 2) {
      const named = [...wireFields(buf, g.dataStart, g.end)].find((a) => a.no === 1 && a.wireType === 2);
      if (named && utf8.decode(buf.subarray(named.dataStart, named.end)) === name) continue;
    }
    kept.push(buf.subarray(g.start, g.end));
  }
  return lenField(1, concat([...kept, intAttr(name, value)]));
}

/**
 * A GraphProto `node` field with its `accuracy_level` set to `level` if it is a MatMulNBits node, or
 * with those of the MatMulNBits nodes in its subgraphs (a merged decoder's `If` branches) set; undefined
 * when it has none.
 */
function nodeWithLevel(buf: Uint8Array, node: WireField, level: number): Uint8Array | undefined {
  if (isMatMulNBits(readNode(buf, node))) return withIntAttribute(buf, node, 'accuracy_level', level);
  let changed = false;
  const parts: Uint8Array[] = [];
  for (const a of wireFields(buf, node.dataStart, node.end)) {
    if (a.no === 5 && a.wireType === 2) {
      // AttributeProto: g (6), graphs (11)
      let graphs = false;
      const attr: Uint8Array[] = [];
      for (const g of wireFields(buf, a.dataStart, a.end)) {
        const sub = isSubgraph(g) ? graphWithLevel(buf, g, level) : undefined;
        if (sub) graphs = true;
        attr.push(sub ? lenField(g.no, sub) : buf.subarray(g.start, g.end));
      }
      if (graphs) {
        changed = true;
        parts.push(lenField(5, concat(attr)));
        continue;
      }
    }
    parts.push(buf.subarray(a.start, a.end));
  }
  return changed ? lenField(1, concat(parts)) : undefined;
}

/** An attribute's field holding a GraphProto (AttributeProto `g` or one of `graphs`). */
const isSubgraph = (f: WireField) => (f.no === 6 || f.no === 11) && f.wireType === 2;

/** The body of a GraphProto field with every MatMulNBits node's level set (see `nodeWithLevel`); undefined when unchanged. */
function graphWithLevel(buf: Uint8Array, graph: WireField, level: number): Uint8Array | undefined {
  let changed = false;
  const parts: Uint8Array[] = [];
  for (const f of wireFields(buf, graph.dataStart, graph.end)) {
    const node = f.no === 1 && f.wireType === 2 ? nodeWithLevel(buf, f, level) : undefined;
    if (node) changed = true;
    parts.push(node ?? buf.subarray(f.start, f.end));
  }
  return changed ? concat(parts) : undefined;
}

/** GraphProto `node` fields (one, or an edit's several) with every MatMulNBits node's `accuracy_level` set. */
function withAccuracyLevel(nodes: Uint8Array, level: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of wireFields(nodes, 0, nodes.length))
    parts.push(nodeWithLevel(nodes, f, level) ?? nodes.subarray(f.start, f.end));
  return concat(parts);
}

/** Every GraphProto field of a graph and of its subgraphs (the branches of a merged decoder's If). */
function* allGraphs(buf: Uint8Array, graph: WireField): Generator<WireField> {
  yield graph;
  for (const f of wireFields(buf, graph.dataStart, graph.end)) {
    if (f.no !== 1 || f.wireType !== 2) continue;
    for (const a of wireFields(buf, f.dataStart, f.end)) {
      if (a.no !== 5 || a.wireType !== 2) continue;
      for (const g of wireFields(buf, a.dataStart, a.end)) if (isSubgraph(g)) yield* allGraphs(buf, g);
    }
  }
}

/** Every node of a GraphProto (its field `graph`) and of its subgraphs. */
function* allNodes(buf: Uint8Array, graph: WireField): Generator<NodeInfo> {
  for (const g of allGraphs(buf, graph))
    for (const f of wireFields(buf, g.dataStart, g.end))
      if (f.no === 1 && f.wireType === 2) yield readNode(buf, f);
}

function int64Initializer(name: string, value: bigint): Uint8Array {
  const raw = new Uint8Array(8);
  new DataView(raw.buffer).setBigInt64(0, value, true);
  // TensorProto: dims = [1], data_type = INT64 (7), name, raw_data
  return lenField(5, concat([varintField(1, 1), varintField(2, 7), str(8, name), lenField(9, raw)]));
}

/** Where the LM head reads the hidden state, and what must change to feed it a sliced one. */
interface HeadSite {
  /** the 3-D hidden state [batch, seq, hidden] */
  hidden: string;
  /** node whose input `index` is the hidden state */
  reader: NodeInfo;
  index: number;
  /** Reshape back to [batch, seq, vocab] whose shape input must follow the sliced length */
  unflatten?: NodeInfo;
}

function findHead(producer: Map<string, NodeInfo>, logits = 'logits'): HeadSite | string {
  let node = producer.get(logits);
  for (let hops = 0; node && (node.opType === 'Cast' || node.opType === 'Add') && hops < 3; hops++) {
    node = producer.get(node.inputs[0]!);
  }
  if (!node) return `no node produces "${logits}"`;
  // 8-bit exports (onnxruntime's dynamic quantization): Mul(Cast(MatMulInteger(DynamicQuantizeLinear(
  // hidden), W)), scales): the hidden state's one scale covers every position, so the logits of the
  // positions kept would change with the positions left out
  const integer = node.opType === 'Mul' ? producer.get(node.inputs[0]!) : undefined;
  const product = integer?.opType === 'Cast' ? producer.get(integer.inputs[0]!) : undefined;
  if (
    product?.opType === 'MatMulInteger' &&
    producer.get(product.inputs[0]!)?.opType === 'DynamicQuantizeLinear'
  )
    return 'the LM head rounds its input to 8 bits with one scale for all positions (DynamicQuantizeLinear), so computing fewer positions would change the logits of those kept';
  // optimum: logits = MatMul(hidden[B, S, H], W[H, V]); 4-bit exports: MatMulNBits(hidden, W_Q4, scales)
  if (node.opType === 'MatMul' || node.opType === 'MatMulNBits')
    return { hidden: node.inputs[0]!, reader: node, index: 0 };
  // flattened linear: Reshape(Gemm|MatMul(Reshape(hidden, [-1, H]), W), [B, S, V])
  if (node.opType === 'Reshape') {
    const lin = producer.get(node.inputs[0]!);
    const flat =
      lin && (lin.opType === 'Gemm' || lin.opType === 'MatMul') ? producer.get(lin.inputs[0]!) : undefined;
    if (flat?.opType === 'Reshape')
      return { hidden: flat.inputs[0]!, reader: flat, index: 0, unflatten: node };
  }
  return `the LM head is not MatMul(hidden, W), MatMulNBits(hidden, ...) or Reshape(Gemm(Reshape(hidden))) (found ${node.opType})`;
}

/**
 * The name of the int64 [1] input the patch adds: the first position whose logits are computed (-1: last).
 *
 * @example
 * import * as ort from 'onnxruntime-node';
 *
 * // fed to a graph patchLogitsSlice patched: -1 computes the last position's logits only
 * const feeds = { [LOGITS_START_INPUT]: new ort.Tensor('int64', BigInt64Array.of(-1n), [1]) };
 */
export const LOGITS_START_INPUT = 'implicit_it_logits_start';

/**
 * The prefix of the outputs the patch adds for this step's keys/values: `${prefix}0.key` is what `present.0.key` appends.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 * import * as ort from 'onnxruntime-node';
 *
 * const patch = patchDecoderGraph(readFileSync(onnxFile), { logitsSlice: false, kvOutputs: true });
 * const session = await ort.InferenceSession.create(patch.bytes!);
 * session.outputNames.filter((name) => name.startsWith(NEW_KV_PREFIX)); // ['implicit_it_new.0.key', 'implicit_it_new.0.value', 'implicit_it_new.1.key', 'implicit_it_new.1.value'] with 2 layers
 */
export const NEW_KV_PREFIX = 'implicit_it_new.';

/**
 * What `patchDecoderGraph` should do.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 *
 * const request: PatchRequest = { logitsSlice: true, kvOutputs: true, splitAttention: true, q4AccuracyLevel: 4 };
 * const { bytes, q4Nodes } = patchDecoderGraph(readFileSync(onnxFile), request);
 */
export interface PatchRequest {
  /** Slice the hidden state before the LM head (logits only where needed). */
  logitsSlice: boolean;
  /** Add outputs for each layer's new keys/values (what `present.*` appends to `past_key_values.*`). */
  kvOutputs: boolean;
  /**
   * With `kvOutputs`: attend to the past and the new keys/values separately, so that no step copies the
   * cache into a `present.*` Concat; the `present.*` outputs are removed (see `splitAttentionEdits`).
   */
  splitAttention?: boolean;
  /**
   * With `splitAttention`: where attention repeats KV heads (Hugging Face's repeat_kv: Unsqueeze,
   * Expand, Reshape), drop the repeat and view the queries (and probabilities) as KV-head groups
   * instead, so that no step copies the cache once per query head either. Default true.
   */
  groupQueries?: boolean;
  /**
   * Set the `accuracy_level` of every `MatMulNBits` node (onnxruntime's blockwise-quantized linear
   * layers, as in 4-bit exports) to this: 0 computes in float32 on the dequantized weights, 4 in int8
   * (activations rounded to 8 bits per block; onnxruntime's fastest CPU path).
   */
  q4AccuracyLevel?: number;
}

/**
 * What `patchDecoderGraph` did: the new bytes (when anything changed) and, per part, why it was not done.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 *
 * const patch: GraphPatch = patchDecoderGraph(readFileSync(onnxFile), { logitsSlice: true, kvOutputs: true });
 * if (patch.kvOutputs !== true) console.warn(`the whole cache is copied at every step: ${patch.kvOutputs}`);
 */
export interface GraphPatch {
  /** null when nothing was patched */
  bytes: Uint8Array | null;
  /** the graph's weights live in external data files (the patched bytes must be written beside them) */
  external: boolean;
  logitsSlice: true | string;
  kvOutputs: true | string;
  splitAttention: true | string;
  /** repeat_kv replaced by grouped queries in at least one layer (see `PatchRequest.groupQueries`) */
  groupQueries: true | string;
  /** `MatMulNBits` nodes given `PatchRequest.q4AccuracyLevel` (0 when not requested or none in the graph) */
  q4Nodes: number;
  /** The distinct accuracy levels the graph's `MatMulNBits` nodes run at after the patch (none: []) */
  q4Levels: number[];
  /**
   * `DynamicQuantizeLinear` nodes (subgraphs included): activations rounded to 8 bits with one scale
   * per tensor at run time, as in onnxruntime's dynamic quantization (transformers.js's `q8` files). A
   * position's logits then depend a little on the other positions and rows run with it.
   */
  dynamicQuantization: number;
}

/**
 * What `patchLogitsSlice` did.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 *
 * const result: LogitsPatch = patchLogitsSlice(readFileSync(onnxFile));
 * if (!result.patched) console.warn(`logits for every position: ${result.reason}`);
 */
export type LogitsPatch =
  | { patched: true; bytes: Uint8Array; external: boolean }
  | { patched: false; reason: string };

/**
 * Inserts `Slice(hidden, starts=[implicit_it_logits_start], ends=[INT64_MAX], axes=[1])` before the LM
 * head's MatMul, so that the graph computes logits only from a given position on. Follows the
 * `logits` output back through Cast/Add nodes to the MatMul. Returns `patched: false` with a reason
 * when the graph has another shape.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 *
 * const exported = readFileSync('onnx/model.onnx');
 * const sliced = patchLogitsSlice(exported);
 * const bytes = sliced.patched ? sliced.bytes : exported; // as exported: logits at every position
 */
export function patchLogitsSlice(model: Uint8Array): LogitsPatch {
  const result = patchDecoderGraph(model, { logitsSlice: true, kvOutputs: false });
  return result.logitsSlice === true && result.bytes
    ? { patched: true, bytes: result.bytes, external: result.external }
    : { patched: false, reason: result.logitsSlice === true ? 'nothing patched' : result.logitsSlice };
}

/**
 * Patches a decoder graph in memory: the logits slice (see `patchLogitsSlice`) and/or outputs named
 * `implicit_it_new.{layer}.key|value` for the keys and values each step appends to the cache. The
 * latter lets an engine keep the cache in its own buffers and fetch only what is new, instead of
 * copying the whole `present.*` cache out of onnxruntime at every step. It applies where every
 * `present.*` output is `Concat(past_key_values.*, new, axis=2)` at the top level of the graph
 * (optimum's and transformers.js' llama-family exports), or inside both branches of a merged
 * decoder's `If` (both patches are made in each branch; attention is left as exported there). With
 * those outputs, `splitAttention` also rewrites attention so that no step copies the cache (see
 * `splitAttentionEdits`), and `groupQueries` replaces repeat_kv by grouped queries; the rewrite
 * assumes what it cannot see, so engines should check the result at load (`checkSplitAttention`).
 *
 * @example
 * import { readFileSync, writeFileSync } from 'node:fs';
 *
 * const patch = patchDecoderGraph(readFileSync('onnx/model.onnx'), { logitsSlice: true, kvOutputs: true });
 * if (patch.bytes && !patch.external) writeFileSync('onnx/model_patched.onnx', patch.bytes);
 */
export function patchDecoderGraph(model: Uint8Array, request: PatchRequest): GraphPatch {
  try {
    return patch(model, request);
  } catch (e) {
    const reason = `cannot read the graph (${(e as Error).message})`;
    return {
      bytes: null,
      external: false,
      logitsSlice: reason,
      kvOutputs: reason,
      splitAttention: reason,
      groupQueries: reason,
      q4Nodes: 0,
      q4Levels: [],
      dynamicQuantization: 0,
    };
  }
}

interface ValueInfo {
  field: WireField;
  name: string;
  /** TensorProto.DataType of a tensor value, 0 when not given */
  elemType: number;
}

function readValueInfo(buf: Uint8Array, f: WireField): ValueInfo {
  const info: ValueInfo = { field: f, name: '', elemType: 0 };
  for (const g of wireFields(buf, f.dataStart, f.end)) {
    if (g.no === 1 && g.wireType === 2) info.name = utf8.decode(buf.subarray(g.dataStart, g.end));
    if (g.no !== 2 || g.wireType !== 2) continue;
    // TypeProto.tensor_type (1) -> TypeProto.Tensor.elem_type (1)
    for (const t of wireFields(buf, g.dataStart, g.end)) {
      if (t.no !== 1 || t.wireType !== 2) continue;
      for (const e of wireFields(buf, t.dataStart, t.end))
        if (e.no === 1 && e.wireType === 0) info.elemType = readVarint(buf, e.dataStart)[0];
    }
  }
  return info;
}

/** A node's attributes (NodeProto field 5): each one's name, field and own fields. */
function* attributesOf(
  buf: Uint8Array,
  node: NodeInfo,
): Generator<{ name: string; field: WireField; fields: WireField[] }> {
  for (const g of wireFields(buf, node.field.dataStart, node.field.end)) {
    if (g.no !== 5 || g.wireType !== 2) continue;
    const fields = [...wireFields(buf, g.dataStart, g.end)];
    const named = fields.find((a) => a.no === 1 && a.wireType === 2);
    yield { name: named ? utf8.decode(buf.subarray(named.dataStart, named.end)) : '', field: g, fields };
  }
}

/** The integer attribute `name` of a node, or undefined. */
function intAttribute(buf: Uint8Array, node: NodeInfo, name: string): number | undefined {
  for (const attribute of attributesOf(buf, node)) {
    if (attribute.name !== name) continue;
    const a = attribute.fields.find((f) => f.no === 3 && f.wireType === 0);
    return a ? readInt64(buf, a.dataStart)[0] : undefined;
  }
  return undefined;
}

/** A MatMulNBits node's `accuracy_level` (0, its default, where absent). */
const accuracyLevel = (buf: Uint8Array, node: NodeInfo) => intAttribute(buf, node, 'accuracy_level') ?? 0;

/**
 * What a graph is made of (see `summarizeGraph`).
 *
 * @example
 * import { readFileSync } from 'node:fs';
 *
 * const { nodes, ops, matMulNBits }: GraphSummary = summarizeGraph(readFileSync(onnxFile));
 * console.log(`${nodes} nodes, ${ops.MatMul ?? 0} MatMul, 4-bit: ${matMulNBits !== null}`);
 */
export interface GraphSummary {
  /** Nodes of the graph, those of its subgraphs included (each branch of a merged decoder's `If`). */
  nodes: number;
  /** Node counts by op type (`com.microsoft.MatMulNBits` for ops outside the default domain). */
  ops: Record<string, number>;
  /**
   * The blockwise-quantized linear layers (onnxruntime's `MatMulNBits`, as in 4-bit exports): their
   * distinct `bits`, `block_size` and `accuracy_level` values (0 where the attribute is absent, its
   * default); null when the graph has none.
   */
  matMulNBits: { count: number; bits: number[]; blockSizes: number[]; accuracyLevels: number[] } | null;
}

/**
 * Counts a graph's nodes by op type and reads its `MatMulNBits` attributes (what `q4AccuracyLevel`
 * changes), from the protobuf wire format without decoding the weights. Subgraphs count: a merged
 * decoder (`decoder_model_merged*.onnx`) is an `If` whose two branches each hold a whole decoder.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 *
 * summarizeGraph(readFileSync('onnx/model_q4.onnx')).matMulNBits; // { count: 211, bits: [4], blockSizes: [32], accuracyLevels: [0] } with SmolLM2-135M (30 layers)
 */
export function summarizeGraph(model: Uint8Array): GraphSummary {
  const graph = [...wireFields(model, 0, model.length)].find((f) => f.no === 7 && f.wireType === 2);
  const nodes = graph ? [...allNodes(model, graph)] : [];
  const ops: Record<string, number> = {};
  const bits = new Set<number>();
  const blockSizes = new Set<number>();
  const accuracyLevels = new Set<number>();
  let count = 0;
  for (const node of nodes) {
    const op = node.domain ? `${node.domain}.${node.opType}` : node.opType;
    ops[op] = (ops[op] ?? 0) + 1;
    if (!isMatMulNBits(node)) continue;
    count++;
    bits.add(intAttribute(model, node, 'bits') ?? 4);
    blockSizes.add(intAttribute(model, node, 'block_size') ?? 0);
    accuracyLevels.add(accuracyLevel(model, node));
  }
  const sorted = (values: Set<number>) => [...values].sort((a, b) => a - b);
  return {
    nodes: nodes.length,
    ops,
    matMulNBits:
      count === 0
        ? null
        : {
            count,
            bits: sorted(bits),
            blockSizes: sorted(blockSizes),
            accuracyLevels: sorted(accuracyLevels),
          },
  };
}

/**
 * A table a graph reads rows of by position: rotary cos/sin caches written as constants (some
 * exporters', onnxruntime's `RotaryEmbedding` and `GroupQueryAttention` caches), learned position
 * embeddings. Positions at or past `rows` are outside it: onnxruntime fails the run.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 *
 * const table: PositionTable | null = positionTable(readFileSync(onnxFile));
 * if (table !== null && table.rows < 4096) console.warn(`${table.tensor} holds ${table.rows} positions only`);
 */
export interface PositionTable {
  /** The initializer (or Constant node output) gathered; the Slice output, where a Slice cuts its rows. */
  tensor: string;
  rows: number;
}

/** A TensorProto's dims (field 1, packed or not) and name (field 8). */
function tensorDims(buf: Uint8Array, f: WireField): { name: string; dims: number[] } {
  const out = { name: '', dims: [] as number[] };
  for (const g of wireFields(buf, f.dataStart, f.end)) {
    if (g.no === 8 && g.wireType === 2) out.name = utf8.decode(buf.subarray(g.dataStart, g.end));
    if (g.no !== 1) continue;
    if (g.wireType === 0) out.dims.push(readVarint(buf, g.dataStart)[0]);
    else if (g.wireType === 2)
      for (let pos = g.dataStart; pos < g.end; ) {
        const [d, next] = readVarint(buf, pos);
        out.dims.push(d);
        pos = next;
      }
  }
  return out;
}

/** An int64 varint at `pos` (negative values are 10-byte two's complement), read exactly; and the position after it. */
function readInt64(buf: Uint8Array, pos: number): [number, number] {
  let raw = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new RangeError('truncated varint');
    const b = buf[pos++]!;
    raw |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [Number(BigInt.asIntN(64, raw)), pos];
    shift += 7n;
  }
}

/** The varints of a repeated integer field (packed or not) among `fields`, as signed 64-bit numbers. */
function repeatedInts(buf: Uint8Array, fields: Iterable<WireField>, no: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    if (f.wireType === 0) out.push(readInt64(buf, f.dataStart)[0]);
    else if (f.wireType === 2)
      for (let pos = f.dataStart; pos < f.end; ) {
        const [v, next] = readInt64(buf, pos);
        out.push(v);
        pos = next;
      }
  }
  return out;
}

/**
 * The values of an INT64 or INT32 TensorProto (`int64_data`, `int32_data` or `raw_data`), or
 * undefined for another type or data kept in an external file.
 */
function integerValues(buf: Uint8Array, f: WireField): number[] | undefined {
  const fields = [...wireFields(buf, f.dataStart, f.end)];
  const type = fields.find((g) => g.no === 2 && g.wireType === 0);
  const dataType = type ? readVarint(buf, type.dataStart)[0] : 0;
  if (dataType !== 7 && dataType !== 6) return undefined; // INT64, INT32
  const raw = fields.find((g) => g.no === 9 && g.wireType === 2);
  if (raw) {
    const width = dataType === 7 ? 8 : 4;
    const view = new DataView(buf.buffer, buf.byteOffset + raw.dataStart, raw.end - raw.dataStart);
    const out: number[] = [];
    for (let at = 0; at + width <= view.byteLength; at += width)
      out.push(width === 8 ? Number(view.getBigInt64(at, true)) : view.getInt32(at, true));
    return out;
  }
  // TensorProto.data_location (14) == EXTERNAL (1): the values are not in this file
  if (fields.some((g) => g.no === 14 && g.wireType === 0 && readVarint(buf, g.dataStart)[0] === 1))
    return undefined;
  return repeatedInts(buf, fields, dataType === 7 ? 7 : 5);
}

/**
 * The rows of axis 0 that `Slice` keeps of a table of `rows` rows and rank `rank` (ONNX's clamping of starts and ends, steps
 * either way), given its starts, ends, axes and steps; `rows` itself where the slice leaves axis 0
 * whole, undefined where the arguments are malformed (a zero step).
 */
function slicedRows(
  rows: number,
  rank: number,
  starts: readonly number[],
  ends: readonly number[],
  axes?: readonly number[],
  steps?: readonly number[],
): number | undefined {
  const j = (axes ?? starts.map((_, k) => k)).findIndex((a) => (a < 0 ? a + rank : a) === 0);
  if (j < 0) return rows;
  const step = steps?.[j] ?? 1;
  if (step === 0 || starts[j] === undefined || ends[j] === undefined) return undefined;
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  let start = starts[j]! < 0 ? starts[j]! + rows : starts[j]!;
  let end = ends[j]! < 0 ? ends[j]! + rows : ends[j]!;
  if (step > 0) {
    start = clamp(start, 0, rows);
    end = clamp(end, 0, rows);
    return Math.max(0, Math.ceil((end - start) / step));
  }
  start = clamp(start, 0, rows - 1);
  end = clamp(end, -1, rows - 1);
  return Math.max(0, Math.ceil((start - end) / -step));
}

/** Ops a table passes through before it is gathered, its rows unchanged (`Slice`: or cut, see `slicedRows`). */
const ROW_PRESERVING = new Set(['Cast', 'Identity', 'Slice']);
/** Ops whose output carries no values of their input (a shape): not followed back. */
const SHAPE_ONLY = new Set(['Shape', 'Size']);

/**
 * The position table of a decoder graph with the fewest rows (see `PositionTable`), read from the
 * protobuf wire format without decoding the weights; null where the graph has none, as when it
 * computes its rotary angles from `position_ids` at run time (transformers' exports since 4.38), and
 * then no position is out of its range, and for a file this reader cannot parse. A table is a
 * rank-2 constant gathered on its first axis by indices computed from `position_ids` or
 * `attention_mask` (not from `input_ids`: that is the embedding), or the `cos_cache` of a
 * `RotaryEmbedding` or `GroupQueryAttention` node (onnxruntime's), or of ONNX's own
 * `RotaryEmbedding` given `position_ids`; through Cast, Identity and Slice, whose constant bounds
 * may cut its rows (the Slice's output then names it).
 *
 * @example
 * import { readFileSync } from 'node:fs';
 *
 * positionTable(readFileSync('onnx/model.onnx')); // { tensor: 'rotary.cos_cached', rows: 2048 } with a modelkit graph of 2,048 positions
 */
export function positionTable(model: Uint8Array): PositionTable | null {
  try {
    return findPositionTable(model);
  } catch {
    return null; // not a graph this reader parses: onnxruntime's load says what is wrong with it
  }
}

function findPositionTable(model: Uint8Array): PositionTable | null {
  const graph = [...wireFields(model, 0, model.length)].find((f) => f.no === 7 && f.wireType === 2);
  if (!graph) return null;
  /** Constants (initializers, Constant nodes) by name: their dims, and their integer values when read. */
  const constants = new Map<string, { dims: number[]; values: () => number[] | undefined }>();
  const producer = new Map<string, NodeInfo>();
  const nodes: NodeInfo[] = [];
  const tensorConstant = (f: WireField) => ({
    dims: tensorDims(model, f).dims,
    values: () => integerValues(model, f),
  });
  for (const g of allGraphs(model, graph)) {
    for (const f of wireFields(model, g.dataStart, g.end)) {
      if (f.no === 5 && f.wireType === 2) constants.set(tensorDims(model, f).name, tensorConstant(f));
      if (f.no !== 1 || f.wireType !== 2) continue;
      const node = readNode(model, f);
      nodes.push(node);
      for (const o of node.outputs) producer.set(o, node);
      if (node.opType !== 'Constant') continue;
      for (const a of attributesOf(model, node)) {
        const t = a.name === 'value' ? a.fields.find((x) => x.no === 5 && x.wireType === 2) : undefined;
        if (t) constants.set(node.outputs[0]!, tensorConstant(t));
        if (a.name === 'value_ints') {
          const ints = repeatedInts(model, a.fields, 8);
          constants.set(node.outputs[0]!, { dims: [ints.length], values: () => ints });
        }
      }
    }
  }
  /** The integer values of the constant `name` (through Cast and Identity), or undefined. */
  const intsOf = (name: string | undefined): number[] | undefined => {
    for (let hops = 0; hops < 8 && name; hops++) {
      const c = constants.get(name);
      if (c) return c.values();
      const node = producer.get(name);
      if (!node || (node.opType !== 'Cast' && node.opType !== 'Identity')) return undefined;
      name = node.inputs[0];
    }
    return undefined;
  };
  /**
   * The table `name` is: the constant it comes from (through row-preserving ops) and its dims, the
   * rows those of the last `Slice` that cuts them where its bounds are constants (that Slice's
   * output then names the table: it has those rows); undefined where `name` is no such table. A
   * Slice whose bounds are computed (`cos_cached[:seq_len]`) keeps the constant's rows: positions
   * past them fail whatever it cuts.
   */
  const tableOf = (name: string): { tensor: string; dims: number[] } | undefined => {
    const slices: NodeInfo[] = [];
    for (let hops = 0; hops < 8; hops++) {
      const c = constants.get(name);
      if (c) {
        const dims = [...c.dims];
        let tensor = name;
        // the slices nearest the constant cut first
        for (const slice of slices.reverse()) {
          const [, starts, ends, axes, steps] = slice.inputs.map((i) => (i === '' ? undefined : intsOf(i)));
          if (starts === undefined || ends === undefined) continue;
          if ((slice.inputs[3] ?? '') !== '' && axes === undefined) continue;
          if ((slice.inputs[4] ?? '') !== '' && steps === undefined) continue;
          const rows = slicedRows(dims[0] ?? 0, dims.length, starts, ends, axes, steps);
          if (rows === undefined || rows === dims[0]) continue;
          dims[0] = rows;
          tensor = slice.outputs[0]!;
        }
        return { tensor, dims };
      }
      const node = producer.get(name);
      if (!node || !ROW_PRESERVING.has(node.opType)) return undefined;
      if (node.opType === 'Slice') slices.push(node);
      name = node.inputs[0]!;
    }
    return undefined;
  };
  /** The graph inputs (and outer names) whose values flow into `name`. */
  const sources = (name: string): Set<string> => {
    const found = new Set<string>();
    const seen = new Set<string>();
    const stack = [name];
    while (stack.length > 0 && seen.size < 256) {
      const n = stack.pop()!;
      if (n === '' || seen.has(n)) continue;
      seen.add(n);
      const node = producer.get(n);
      if (!node) found.add(n);
      else if (!SHAPE_ONLY.has(node.opType)) stack.push(...node.inputs);
    }
    return found;
  };
  let best: PositionTable | null = null;
  const consider = (name: string | undefined) => {
    const table = name ? tableOf(name) : undefined;
    if (table === undefined || table.dims.length !== 2 || !(table.dims[0]! > 0)) return;
    if (best === null || table.dims[0]! < best.rows) best = { tensor: table.tensor, rows: table.dims[0]! };
  };
  for (const node of nodes) {
    // cos_cache: [positions, rotary_dim / 2]
    if (node.domain === 'com.microsoft' && node.opType === 'RotaryEmbedding') consider(node.inputs[2]);
    else if (node.domain === 'com.microsoft' && node.opType === 'GroupQueryAttention')
      consider(node.inputs[7]);
    // ONNX's own (opset 23): X, cos_cache, sin_cache, position_ids; a table only with position_ids
    // (without, the caches are per-token [batch, seq, rotary_dim / 2] values)
    else if (node.domain === '' && node.opType === 'RotaryEmbedding' && (node.inputs[3] ?? '') !== '')
      consider(node.inputs[1]);
    else if (
      node.domain === '' &&
      node.opType === 'Gather' &&
      (intAttribute(model, node, 'axis') ?? 0) === 0
    ) {
      const from = sources(node.inputs[1] ?? '');
      if ((from.has('position_ids') || from.has('attention_mask')) && !from.has('input_ids'))
        consider(node.inputs[0]);
    }
  }
  return best;
}

/** A `present.*` output and the value its Concat appends to the past. */
interface KvSite {
  present: ValueInfo;
  appended: string;
}

/** For each `present.*` output, the value its Concat appends; or why the graph does not qualify. */
function findNewKv(
  buf: Uint8Array,
  producer: Map<string, NodeInfo>,
  inputNames: Set<string>,
  outputs: ValueInfo[],
): KvSite[] | string {
  const presents = outputs.filter((o) => o.name.startsWith('present.'));
  if (presents.length === 0) return 'the graph has no present.* outputs';
  const found: KvSite[] = [];
  for (const present of presents) {
    const node = producer.get(present.name);
    if (!node) return `${present.name} is not produced by a top-level node (a merged decoder?)`;
    const appended = concatAppends(buf, node, present.name);
    if (typeof appended !== 'string') return appended.reason;
    const past = node.inputs[0]!;
    if (!inputNames.has(past)) return `${past} is not a graph input`;
    found.push({ present, appended });
  }
  return found;
}

/** What `node`, producing the output `present`, appends to the past: it must be Concat(past_key_values.*, new, axis=2). */
function concatAppends(buf: Uint8Array, node: NodeInfo, present: string): string | { reason: string } {
  const past = present.replace('present.', 'past_key_values.');
  if (node.opType !== 'Concat' || node.inputs.length !== 2 || node.inputs[0] !== past)
    return { reason: `${present} is not Concat(${past}, new) (found ${node.opType})` };
  const axis = intAttribute(buf, node, 'axis');
  if (axis !== 2 && axis !== -2) return { reason: `${present} concatenates on axis ${axis}, not 2` };
  return node.inputs[1]!;
}

/** A graph input or output (GraphProto field 11 or 12): ValueInfoProto { name, type { tensor_type { elem_type, shape? } } }. */
function valueInfoField(fieldNo: 11 | 12, name: string, elemType: number, dims?: number[]): Uint8Array {
  const shape = dims ? [lenField(2, concat(dims.map((d) => lenField(1, varintField(1, d)))))] : [];
  return lenField(
    fieldNo,
    concat([str(1, name), lenField(2, lenField(1, concat([varintField(1, elemType), ...shape])))]),
  );
}

/** How a patch changes the graph: graph fields replaced (by their offset; empty = removed) and fields appended. */
interface Edits {
  replace: Map<number, Uint8Array>;
  added: Uint8Array[];
}

/** The logits slice (see `patchLogitsSlice`) as edits, or why it does not apply. */
function logitsSliceEdits(
  model: Uint8Array,
  producer: Map<string, NodeInfo>,
  inputNames: Set<string>,
): Edits | string {
  const site = inputNames.has(LOGITS_START_INPUT) ? 'already patched' : findHead(producer);
  if (typeof site === 'string') return site;
  const edits = headSliceEdits(model, site, 'implicit_it/logits_slice');
  edits.added.push(logitsStartInput());
  return edits;
}

/** The graph input the logits slice reads: the first position whose logits are computed. */
const logitsStartInput = () => valueInfoField(11, LOGITS_START_INPUT, 7 /* INT64 */, [1]);

/** A Slice of the hidden state before the LM head at `site` (values named under `p`), as edits of the graph holding it. */
function headSliceEdits(model: Uint8Array, site: HeadSite, p: string): Edits {
  const sliced = `${p}/hidden`;
  const replace = new Map<number, Uint8Array>();
  const inserted = [
    nodeField([site.hidden, LOGITS_START_INPUT, `${p}/ends`, `${p}/axes`], [sliced], p, 'Slice'),
  ];
  const added = [int64Initializer(`${p}/ends`, 0x7fffffffffffffffn), int64Initializer(`${p}/axes`, 1n)];
  if (site.unflatten) {
    // the reshape back to [batch, seq, vocab] takes its shape from the sliced hidden state: [B, k, -1]
    inserted.push(
      nodeField([sliced], [`${p}/shape`], `${p}/shape`, 'Shape'),
      nodeField([`${p}/shape`, `${p}/zero`, `${p}/two`, `${p}/zero`], [`${p}/bs`], `${p}/bs`, 'Slice'),
      nodeField([`${p}/bs`, `${p}/minus_one`], [`${p}/out_shape`], `${p}/out_shape`, 'Concat', [
        intAttr('axis', 0),
      ]),
    );
    added.push(
      int64Initializer(`${p}/zero`, 0n),
      int64Initializer(`${p}/two`, 2n),
      int64Initializer(`${p}/minus_one`, -1n),
    );
    replace.set(site.unflatten.field.start, withInput(model, site.unflatten, 1, `${p}/out_shape`));
  }
  replace.set(
    site.reader.field.start,
    concat([...inserted, withInput(model, site.reader, site.index, sliced)]),
  );
  return { replace, added };
}

/** `implicit_it_new.*` outputs (an Identity of what each present Concat appends) as edits. */
function newKvEdits(sites: KvSite[]): Edits {
  const added: Uint8Array[] = [];
  for (const { present, appended } of sites) {
    const name = present.name.replace('present.', NEW_KV_PREFIX);
    // the shape is left to inference
    added.push(
      nodeField([appended], [name], `implicit_it/${name}`, 'Identity'),
      valueInfoField(12, name, present.elemType),
    );
  }
  return { replace: new Map(), added };
}

/**
 * Ops a cache tensor may pass through on its way into attention: element-wise and layout ops (a Cast
 * back from float16, a transpose of the keys, a scale, Hugging Face's repeat_kv as Unsqueeze/Expand/
 * Reshape) and the shape arithmetic that feeds them. Nothing that mixes positions (no reductions, no
 * matmuls); the engine checks the patched graph against itself at load (`checkSplitAttention`).
 */
const PASS_THROUGH = new Set([
  'Cast',
  'Identity',
  'Transpose',
  'Unsqueeze',
  'Squeeze',
  'Expand',
  'Reshape',
  'Shape',
  'Gather',
  'Slice',
  'Concat',
  'Mul',
  'Div',
  'Add',
  'Sub',
  'Where',
  'Equal',
  'ConstantOfShape',
]);

/** One cache tensor's way into attention: `present` -> nodes that act per position -> MatMul(_, it). */
interface AttentionRead {
  present: string;
  past: string;
  appended: string;
  concat: NodeInfo;
  /** the nodes between the Concat and the matmul, in graph order (fp16 caches: a Cast; GQA: repeat_kv) */
  inside: NodeInfo[];
  /** values computed from `present` (itself included) */
  derived: Set<string>;
  matmul: NodeInfo;
}

/** Follows a `present.*` value to the attention MatMul that reads it, or says why it cannot. */
function findAttentionRead(
  readers: Map<string, { node: NodeInfo; index: number }[]>,
  producer: Map<string, NodeInfo>,
  order: Map<NodeInfo, number>,
  outputNames: Set<string>,
  present: string,
): AttentionRead | string {
  const concatNode = producer.get(present)!;
  const inside = new Set<NodeInfo>();
  const derived = new Set([present]);
  const queue = [present];
  let matmul: NodeInfo | null = null;
  while (queue.length > 0) {
    const value = queue.shift()!;
    for (const { node, index } of readers.get(value) ?? []) {
      if (node.opType === 'MatMul' && node.domain === '') {
        if (index !== 1) return `${present} reaches a MatMul as its first operand`;
        if (matmul && matmul !== node) return `${present} reaches more than one MatMul`;
        matmul = node;
      } else if (!PASS_THROUGH.has(node.opType) || node.domain !== '') {
        return `${present} reaches ${node.opType} before attention`;
      } else if (!inside.has(node)) {
        inside.add(node);
        for (const out of node.outputs) {
          if (outputNames.has(out)) return `${out}, computed from ${present}, is a graph output`;
          derived.add(out);
          queue.push(out);
        }
      }
    }
  }
  if (!matmul) return `${present} does not reach an attention MatMul`;
  if (derived.has(matmul.inputs[0]!)) return `both operands of ${present}'s MatMul are computed from it`;
  return {
    present,
    past: concatNode.inputs[0]!,
    appended: concatNode.inputs[1]!,
    concat: concatNode,
    inside: [...inside].sort((a, b) => order.get(a)! - order.get(b)!),
    derived,
    matmul,
  };
}

/**
 * Splits each layer's attention over `Concat(past, new)` into attention over the past and over the new
 * keys/values, the way the engine's slot cache needs it: scores = Concat(q·pastᵀ, q·newᵀ) (a small
 * [.., seq, positions] tensor instead of the whole cache) and context = probs[.., :T]·past_v +
 * probs[.., T:]·new_v. The nodes between each cache Concat and its MatMul are cloned for the past and
 * for the new part (shapes recomputed from each). The same products, summed in another order (results
 * agree to float rounding); the cache Concats and the `present.*` outputs they fed are removed, so no
 * step copies the cache. Keys and values are told apart by their names (`present.*.key|value`).
 */
function splitAttentionEdits(
  model: Uint8Array,
  nodes: NodeInfo[],
  producer: Map<string, NodeInfo>,
  graphFields: WireField[],
  outputs: ValueInfo[],
  sites: KvSite[],
  group: boolean,
): { edits: Edits; grouped: true | string } | string {
  const readers = new Map<string, { node: NodeInfo; index: number }[]>();
  for (const node of nodes)
    for (const [index, input] of node.inputs.entries()) {
      const list = readers.get(input) ?? [];
      list.push({ node, index });
      readers.set(input, list);
    }
  const order = new Map(nodes.map((n, i) => [n, i]));
  const outputNames = new Set(outputs.map((o) => o.name));
  const reads: AttentionRead[] = [];
  for (const { present } of sites) {
    const read = findAttentionRead(readers, producer, order, outputNames, present.name);
    if (typeof read === 'string') return read;
    reads.push(read);
  }
  const q = 'implicit_it/split';
  const replace = new Map<number, Uint8Array>();
  const removed = new Uint8Array(0);
  let grouped = 0;
  for (const r of reads) {
    const p = `${q}/${r.present.slice('present.'.length)}`;
    for (const n of [r.concat, ...r.inside]) replace.set(n.field.start, removed);
    const inserted: Uint8Array[] = [];
    const repeat = group ? findRepeatKv(r, readers) : null;
    if (repeat) grouped++;
    // with repeat_kv gone, the matmul reads the cache tensor as it was before its Unsqueeze
    const alias = new Map(repeat ? [[repeat.reshape.outputs[0]!, repeat.unsqueeze.inputs[0]!]] : []);
    const operandName = r.matmul.inputs[1]!;
    const used = neededNodes(r, operandName, alias, producer);
    // the matmul's cache operand computed from `source` (past or new) by clones of the same nodes
    const operand = (source: string, part: string): string => {
      const rename = (v: string): string => {
        const a = alias.get(v);
        if (a !== undefined) return rename(a);
        return v === r.present ? source : r.derived.has(v) ? `${p}/${part}/${v}` : v;
      };
      for (const n of r.inside) {
        if (!used.has(n)) continue;
        const outs = n.outputs.map(rename);
        inserted.push(cloneNode(model, n, n.inputs.map(rename), outs, `${p}/${part}/${n.name || outs[0]}`));
      }
      return rename(operandName);
    };
    const [first, rest] = [`${p}/past`, `${p}/new`];
    const result = r.matmul.outputs[0]!;
    const pastOperand = operand(r.past, 'past');
    const newOperand = operand(r.appended, 'new');
    const other = r.matmul.inputs[0]!; // the query (keys) or the probabilities (values): [B, heads, S, x]
    // grouped: [B, heads, S, x] viewed as [B, kvHeads, heads / kvHeads * S, x] (query head h reads KV
    // head floor(h / nRep), as repeat_kv arranged them), and the result viewed back
    let a = other;
    let joined = result;
    if (repeat) {
      a = `${p}/grouped`;
      joined = `${p}/joined`;
      // the Reshape target [0, heads of `of`, -1, 0]: batch and last dim kept, the rest folded
      const headsShape = (of: string, name: string): Uint8Array[] => [
        nodeField([of], [`${p}/${name}/of`], `${p}/${name}/of`, 'Shape'),
        nodeField([`${p}/${name}/of`, `${q}/one`], [`${p}/${name}/heads`], `${p}/${name}/heads`, 'Gather', [
          intAttr('axis', 0),
        ]),
        nodeField(
          [`${q}/zero`, `${p}/${name}/heads`, `${q}/last`, `${q}/zero`],
          [`${p}/${name}`],
          `${p}/${name}`,
          'Concat',
          [intAttr('axis', 0)],
        ),
      ];
      inserted.push(
        ...headsShape(r.past, 'groups_shape'),
        ...headsShape(other, 'heads_shape'),
        nodeField([other, `${p}/groups_shape`], [a], a, 'Reshape'),
      );
    }
    if (r.present.endsWith('.key')) {
      // keys: scores over the past positions, then over the new ones
      inserted.push(
        cloneNode(model, r.matmul, [a, pastOperand], [first], first),
        cloneNode(model, r.matmul, [a, newOperand], [rest], rest),
        nodeField([first, rest], [joined], `${p}/scores`, 'Concat', [intAttr('axis', -1)]),
      );
    } else {
      // values: the probabilities of the past positions weigh the past, the rest the new values
      inserted.push(
        nodeField([pastOperand], [`${p}/shape`], `${p}/shape`, 'Shape'),
        nodeField([`${p}/shape`, `${q}/minus_two`], [`${p}/length`], `${p}/length`, 'Gather', [
          intAttr('axis', 0),
        ]),
        nodeField(
          [a, `${q}/zero`, `${p}/length`, `${q}/last`],
          [`${p}/probs_past`],
          `${p}/probs_past`,
          'Slice',
        ),
        nodeField([a, `${p}/length`, `${q}/end`, `${q}/last`], [`${p}/probs_new`], `${p}/probs_new`, 'Slice'),
        cloneNode(model, r.matmul, [`${p}/probs_past`, pastOperand], [first], first),
        cloneNode(model, r.matmul, [`${p}/probs_new`, newOperand], [rest], rest),
        nodeField([first, rest], [joined], `${p}/context`, 'Add'),
      );
    }
    if (repeat) inserted.push(nodeField([joined, `${p}/heads_shape`], [result], `${p}/ungrouped`, 'Reshape'));
    replace.set(r.matmul.field.start, concat(inserted));
  }
  // the present.* outputs are gone with their Concats
  const presents = new Set(reads.map((r) => r.present));
  for (const f of graphFields)
    if (f.no === 12 && presents.has(readValueInfo(model, f).name)) replace.set(f.start, removed);
  // only what the inserted nodes read: onnxruntime warns about each unused initializer at load
  const added = [
    int64Initializer(`${q}/zero`, 0n),
    ...(grouped > 0 ? [int64Initializer(`${q}/one`, 1n)] : []),
    int64Initializer(`${q}/minus_two`, -2n),
    int64Initializer(`${q}/end`, 0x7fffffffffffffffn),
    int64Initializer(`${q}/last`, -1n),
  ];
  return {
    edits: { replace, added },
    grouped: grouped > 0 ? true : group ? 'no repeat_kv found' : 'not requested',
  };
}

/** Hugging Face's repeat_kv on a cache tensor's way to attention: Unsqueeze -> Expand -> Reshape. */
function findRepeatKv(
  r: AttentionRead,
  readers: Map<string, { node: NodeInfo; index: number }[]>,
): { unsqueeze: NodeInfo; reshape: NodeInfo } | null {
  const only = (value: string, op: string) => {
    const list = readers.get(value) ?? [];
    return list.length === 1 && list[0]!.index === 0 && list[0]!.node.opType === op ? list[0]!.node : null;
  };
  for (const unsqueeze of r.inside) {
    if (unsqueeze.opType !== 'Unsqueeze') continue;
    const expand = only(unsqueeze.outputs[0]!, 'Expand');
    const reshape = expand && only(expand.outputs[0]!, 'Reshape');
    if (reshape) return { unsqueeze, reshape };
  }
  return null;
}

/** The nodes of `r.inside` that `value` depends on (through `alias`: values replaced by others). */
function neededNodes(
  r: AttentionRead,
  value: string,
  alias: Map<string, string>,
  producer: Map<string, NodeInfo>,
): Set<NodeInfo> {
  const inside = new Set(r.inside);
  const needed = new Set<NodeInfo>();
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop()!;
    const a = alias.get(v);
    if (a !== undefined) {
      stack.push(a);
      continue;
    }
    const n = producer.get(v);
    if (!n || !inside.has(n) || needed.has(n)) continue;
    needed.add(n);
    stack.push(...n.inputs);
  }
  return needed;
}

/** One branch of a merged decoder's `If` (AttributeProto `then_branch` or `else_branch`). */
interface Branch {
  /** the attribute's name */
  name: string;
  /** the attribute's field in the If node, and its GraphProto (`g`) field */
  attribute: WireField;
  graph: WireField;
  fields: WireField[];
  nodes: NodeInfo[];
  producer: Map<string, NodeInfo>;
  /** the branch's outputs, in the If node's output order */
  outputs: string[];
}

function readBranches(buf: Uint8Array, node: NodeInfo): Branch[] {
  const branches: Branch[] = [];
  for (const { name, field: a, fields: attributeFields } of attributesOf(buf, node)) {
    // AttributeProto `g`: one graph
    const graph = attributeFields.find((g) => g.no === 6 && g.wireType === 2);
    if (!graph) continue;
    const fields = [...wireFields(buf, graph.dataStart, graph.end)];
    const nodes = readNodes(buf, fields);
    const producer = new Map<string, NodeInfo>();
    for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
    const outputs = fields.filter((f) => f.no === 12).map((f) => readValueInfo(buf, f).name);
    branches.push({ name, attribute: a, graph, fields, nodes, producer, outputs });
  }
  return branches;
}

/**
 * For each `present.*` output of a merged decoder's branch, the value that output appends to the
 * past: what its Concat(past_key_values.*, new) appends, or, in the branch that reads no past (the
 * first step's), the output itself. Or why the branch does not qualify.
 */
function branchNewKv(
  buf: Uint8Array,
  branch: Branch,
  presents: number[],
  ifNode: NodeInfo,
): string[] | string {
  const readsPast = branch.nodes.some((n) => n.inputs.some((i) => i.startsWith('past_key_values.')));
  const found: string[] = [];
  for (const k of presents) {
    const value = branch.outputs[k];
    const present = ifNode.outputs[k]!;
    if (value === undefined) return `${branch.name} has no output for ${present}`;
    if (!readsPast) {
      found.push(value);
      continue;
    }
    const node = branch.producer.get(value);
    if (!node)
      return `${branch.name}: ${present} is not Concat(${present.replace('present.', 'past_key_values.')}, new) (found no node)`;
    const appended = concatAppends(buf, node, present);
    if (typeof appended !== 'string') return `${branch.name}: ${appended.reason}`;
    found.push(appended);
  }
  return found;
}

/**
 * The logits slice and the new key/value outputs in a merged decoder (optimum's
 * `decoder_model_merged.onnx`: one `If` on `use_cache_branch` whose branches each hold a whole
 * decoder), as edits of the top-level graph: the If node rebuilt with both branches patched, the
 * graph's new input and outputs. Each part is done in both branches or in neither. Split attention
 * is not attempted there.
 */
function mergedEdits(
  model: Uint8Array,
  ifNode: NodeInfo,
  request: PatchRequest,
  inputNames: Set<string>,
  outputs: ValueInfo[],
): { edits: Edits; logitsSlice: true | string; kvOutputs: true | string } {
  const branches = readBranches(model, ifNode);
  const edits: Edits = { replace: new Map(), added: [] };
  let logitsSlice: true | string = 'not requested';
  let kvOutputs: true | string = 'not requested';
  if (branches.length !== 2) {
    const reason = `the If producing "logits" has ${branches.length} branches, not 2`;
    return {
      edits,
      logitsSlice: request.logitsSlice ? reason : logitsSlice,
      kvOutputs: request.kvOutputs ? reason : kvOutputs,
    };
  }
  const branchEdits = branches.map((): Edits => ({ replace: new Map(), added: [] }));
  if (request.logitsSlice) {
    const k = ifNode.outputs.indexOf('logits');
    const sites = branches.map((b) => findHead(b.producer, b.outputs[k] ?? 'logits'));
    const failed = sites.findIndex((site) => typeof site === 'string');
    if (inputNames.has(LOGITS_START_INPUT)) logitsSlice = 'already patched';
    else if (failed >= 0) logitsSlice = `${branches[failed]!.name}: ${sites[failed]}`;
    else {
      sites.forEach((site, i) => {
        const prefix = `implicit_it/${branches[i]!.name}/logits_slice`;
        mergeEdits(branchEdits[i]!, headSliceEdits(model, site as HeadSite, prefix));
      });
      edits.added.push(logitsStartInput());
      logitsSlice = true;
    }
  }
  const newOutputs: string[] = [];
  if (request.kvOutputs) {
    const presents = ifNode.outputs.flatMap((o, k) => (o.startsWith('present.') ? [k] : []));
    const found = branches.map((b) => branchNewKv(model, b, presents, ifNode));
    const failed = found.find((f) => typeof f === 'string');
    if (outputs.some((o) => o.name.startsWith(NEW_KV_PREFIX))) kvOutputs = 'already patched';
    else if (presents.length === 0) kvOutputs = 'the graph has no present.* outputs';
    else if (typeof failed === 'string') kvOutputs = failed;
    else {
      for (const k of presents) {
        const present = ifNode.outputs[k]!;
        const name = present.replace('present.', NEW_KV_PREFIX);
        newOutputs.push(name);
        const elemType = outputs.find((o) => o.name === present)?.elemType ?? 0;
        edits.added.push(valueInfoField(12, name, elemType));
        branches.forEach((b, i) => {
          // a branch's outputs are its own values: an Identity of what the present appends
          const local = `implicit_it/${b.name}/${name}`;
          const appended = (found[i] as string[])[presents.indexOf(k)]!;
          branchEdits[i]!.added.push(
            nodeField([appended], [local], local, 'Identity'),
            valueInfoField(12, local, elemType),
          );
        });
      }
      kvOutputs = true;
    }
  }
  if (logitsSlice !== true && kvOutputs !== true) return { edits, logitsSlice, kvOutputs };
  // the If node: its branches rebuilt, the new outputs appended
  const parts: Uint8Array[] = [];
  for (const f of wireFields(model, ifNode.field.dataStart, ifNode.field.end)) {
    const i = branches.findIndex((b) => b.attribute.start === f.start);
    if (i < 0) {
      parts.push(model.subarray(f.start, f.end));
      continue;
    }
    const b = branches[i]!;
    const body = graphBody(model, b.fields, branchEdits[i]!);
    const attribute: Uint8Array[] = [];
    for (const g of wireFields(model, f.dataStart, f.end))
      attribute.push(g.start === b.graph.start ? lenField(6, body) : model.subarray(g.start, g.end));
    parts.push(lenField(5, concat(attribute)));
  }
  parts.push(...newOutputs.map((o) => str(2, o)));
  edits.replace.set(ifNode.field.start, lenField(1, concat(parts)));
  return { edits, logitsSlice, kvOutputs };
}

/** Adds `from` to `into` (a later edit of the same field wins). */
function mergeEdits(into: Edits, from: Edits): void {
  for (const [at, bytes] of from.replace) into.replace.set(at, bytes);
  into.added.push(...from.added);
}

/** A GraphProto's body with `edits` applied: fields replaced (by offset) or kept, then those added. */
function graphBody(buf: Uint8Array, fields: readonly WireField[], edits: Edits): Uint8Array {
  return concat([
    ...fields.map((f) => edits.replace.get(f.start) ?? buf.subarray(f.start, f.end)),
    ...edits.added,
  ]);
}

function patch(model: Uint8Array, request: PatchRequest): GraphPatch {
  const top = [...wireFields(model, 0, model.length)];
  const graphField = top.find((f) => f.no === 7 && f.wireType === 2);
  const result: GraphPatch = {
    bytes: null,
    external: false,
    logitsSlice: 'not requested',
    kvOutputs: 'not requested',
    splitAttention: 'not requested',
    groupQueries: 'not requested',
    q4Nodes: 0,
    q4Levels: [],
    dynamicQuantization: 0,
  };
  if (!graphField) {
    if (request.logitsSlice) result.logitsSlice = 'no graph in the model file';
    if (request.kvOutputs) result.kvOutputs = 'no graph in the model file';
    if (request.splitAttention) result.splitAttention = 'no graph in the model file';
    if (request.splitAttention && request.groupQueries !== false)
      result.groupQueries = 'no graph in the model file';
    return result;
  }
  const graphFields = [...wireFields(model, graphField.dataStart, graphField.end)];
  const nodes = readNodes(model, graphFields);
  const producer = new Map<string, NodeInfo>();
  for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
  const inputs = graphFields.filter((f) => f.no === 11).map((f) => readValueInfo(model, f));
  const outputs = graphFields.filter((f) => f.no === 12).map((f) => readValueInfo(model, f));
  const inputNames = new Set(inputs.map((i) => i.name));

  const all: Edits = { replace: new Map(), added: [] };
  const { replace, added } = all;
  const apply = (edits: Edits | string): true | string => {
    if (typeof edits === 'string') return edits;
    mergeEdits(all, edits);
    return true;
  };
  const logitsNode = producer.get('logits');
  const merged = logitsNode?.opType === 'If' ? logitsNode : undefined;
  if (merged) {
    const done = mergedEdits(model, merged, request, inputNames, outputs);
    apply(done.edits);
    result.logitsSlice = done.logitsSlice;
    result.kvOutputs = done.kvOutputs;
  } else if (request.logitsSlice) result.logitsSlice = apply(logitsSliceEdits(model, producer, inputNames));
  // the present.* Concats, found once for both edits that build on them
  const sites = merged
    ? 'a merged decoder (split attention does not rewrite the branches of its If)'
    : outputs.some((o) => o.name.startsWith(NEW_KV_PREFIX))
      ? 'already patched'
      : findNewKv(model, producer, inputNames, outputs);
  if (request.kvOutputs && !merged)
    result.kvOutputs = apply(typeof sites === 'string' ? sites : newKvEdits(sites));
  if (request.splitAttention) {
    const group = request.groupQueries !== false;
    const split =
      result.kvOutputs !== true
        ? `needs the new key/value outputs (${result.kvOutputs})`
        : typeof sites === 'string'
          ? sites
          : splitAttentionEdits(model, nodes, producer, graphFields, outputs, sites, group);
    result.splitAttention = apply(typeof split === 'string' ? split : split.edits);
    if (group) result.groupQueries = typeof split === 'string' ? split : split.grouped;
  }

  // MatMulNBits nodes whose accuracy level changes (on top of any other edit of the same node)
  // (those in subgraphs too: a merged decoder's are in its If's branches)
  const level = request.q4AccuracyLevel;
  const everyNode = [...allNodes(model, graphField)];
  result.dynamicQuantization = everyNode.filter((n) => n.opType === 'DynamicQuantizeLinear').length;
  const quantized = everyNode.filter(isMatMulNBits);
  const rewrite = level !== undefined && quantized.length > 0;
  result.q4Nodes = rewrite ? quantized.length : 0;
  result.q4Levels = [...new Set(quantized.map((n) => level ?? accuracyLevel(model, n)))].sort(
    (a, b) => a - b,
  );
  if (result.logitsSlice !== true && result.kvOutputs !== true && !rewrite) return result;
  const parts: Uint8Array[] = [];
  for (const f of graphFields) {
    let replacement = replace.get(f.start);
    if (rewrite && f.no === 1 && f.wireType === 2) {
      replacement = replacement ? withAccuracyLevel(replacement, level) : nodeWithLevel(model, f, level);
    }
    if (replacement) {
      parts.push(replacement);
      continue;
    }
    if (f.no === 5 && !result.external) {
      // TensorProto.data_location (14) == EXTERNAL (1)
      for (const g of wireFields(model, f.dataStart, f.end)) {
        if (g.no === 14 && g.wireType === 0 && readVarint(model, g.dataStart)[0] === 1)
          result.external = true;
      }
    }
    parts.push(model.subarray(f.start, f.end));
  }
  parts.push(...added);
  // one copy of the (large) model: the graph's header is written by hand around its parts
  const graphLength = parts.reduce((n, p) => n + p.length, 0);
  const graphHeader = new Uint8Array([...varint(7 * 8 + 2), ...varint(graphLength)]);
  const out: Uint8Array[] = [];
  for (const f of top) {
    if (f === graphField) out.push(graphHeader, ...parts);
    else out.push(model.subarray(f.start, f.end));
  }
  result.bytes = concat(out);
  return result;
}

/**
 * A model of its own (not a patch): log Σ exp over the first `limit` entries of each row of `logits`
 * ([rows, vocab] float32), in float64: Slice, Cast to double, ReduceLogSumExp (max-shifted, as
 * `logSumExp` in JS). Inputs `logits` and `limit` (int64 [1]), output `lse` (float64 [rows]). What
 * scoring needs at every position, run by onnxruntime's vectorized kernels on its threads.
 */
export function logSumExpModel(): Uint8Array {
  const graph = concat([
    nodeField(['logits', 'zero', 'limit', 'columns'], ['ids'], 'ids', 'Slice'),
    nodeField(['ids'], ['wide'], 'wide', 'Cast', [intAttr('to', 11 /* DOUBLE */)]),
    nodeField(['wide', 'last'], ['lse'], 'lse', 'ReduceLogSumExp', [intAttr('keepdims', 0)]),
    str(2, 'implicit_it_logsumexp'),
    int64Initializer('zero', 0n),
    int64Initializer('columns', 1n),
    int64Initializer('last', -1n),
    valueInfoField(11, 'logits', 1 /* FLOAT */),
    valueInfoField(11, 'limit', 7 /* INT64 */, [1]),
    valueInfoField(12, 'lse', 11 /* DOUBLE */),
  ]);
  // ModelProto: ir_version 8, graph, opset_import { domain "", version 18 } (axes as an input)
  return concat([
    varintField(1, 8),
    lenField(7, graph),
    lenField(8, concat([str(1, ''), varintField(2, 18)])),
  ]);
}
