import { DataType } from './onnx-schema.js';

/** An ONNX attribute value, tagged by type. */
export type Attr =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'ints'; value: number[] }
  | { type: 'string'; value: string }
  | { type: 'graph'; value: Record<string, unknown> };

/** Attribute constructors: `{ axis: int(1) }`. */
export const int = (value: number): Attr => ({ type: 'int', value });
export const float = (value: number): Attr => ({ type: 'float', value });
export const ints = (value: number[]): Attr => ({ type: 'ints', value });
/** A subgraph (a GraphProto as a plain object), e.g. an `If` node's branches. */
export const graph = (value: Record<string, unknown>): Attr => ({ type: 'graph', value });

/** A node as a plain object of the NodeProto schema. */
export interface NodeObject {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  domain?: string;
  attribute: Record<string, unknown>[];
}

/** A small constant tensor held in memory and written inline. */
export interface ConstantTensor {
  name: string;
  dims: number[];
  dataType: number;
  raw: Uint8Array;
}

const ATTR_TYPE = { float: 1, int: 2, string: 3, graph: 5, ints: 7 } as const;

function attributeObject(name: string, attr: Attr): Record<string, unknown> {
  const out: Record<string, unknown> = { name, type: ATTR_TYPE[attr.type] };
  if (attr.type === 'int') out.i = attr.value;
  else if (attr.type === 'float') out.f = attr.value;
  else if (attr.type === 'ints') out.ints = attr.value;
  else if (attr.type === 'graph') out.g = attr.value;
  else out.s = new TextEncoder().encode(attr.value);
  return out;
}

/**
 * Accumulates ONNX nodes and small constants with generated unique names; weights are referenced by
 * name and supplied when the model is written.
 */
export class GraphBuilder {
  readonly nodes: NodeObject[] = [];
  readonly constants: ConstantTensor[] = [];
  private counter = 0;
  /** domains of every node added, those moved into subgraphs included */
  private readonly usedDomains = new Set<string>();
  private readonly constantCache = new Map<string, string>();

  /**
   * Adds a node and returns its output names (`outputs` fixes them, else generated). `domain`: an
   * operator set other than the default one (`com.microsoft` for onnxruntime's contrib ops).
   */
  opN(
    opType: string,
    inputs: string[],
    attrs: Record<string, Attr> = {},
    outputs?: string[] | number,
    domain?: string,
  ): string[] {
    const id = this.counter++;
    if (domain) this.usedDomains.add(domain);
    const outs = Array.isArray(outputs)
      ? outputs
      : Array.from({ length: outputs ?? 1 }, (_, k) => `/${opType}_${id}_out${k}`);
    this.nodes.push({
      input: inputs,
      output: outs,
      name: `/${opType}_${id}`,
      op_type: opType,
      ...(domain ? { domain } : {}),
      attribute: Object.entries(attrs).map(([n, a]) => attributeObject(n, a)),
    });
    return outs;
  }

  /** Adds a single-output node and returns its output name. */
  op(
    opType: string,
    inputs: string[],
    attrs: Record<string, Attr> = {},
    output?: string,
    domain?: string,
  ): string {
    return this.opN(opType, inputs, attrs, output ? [output] : 1, domain)[0]!;
  }

  /** The operator-set domains the nodes use besides the default one (subgraphs' nodes included). */
  domains(): string[] {
    return [...this.usedDomains].sort();
  }

  /** An int64 constant (dims `[]` for a scalar), deduplicated by value. */
  int64(values: number[], dims: number[] = [values.length]): string {
    return this.integerConstant('i64', DataType.INT64, values, dims, () => {
      const raw = new Uint8Array(values.length * 8);
      const view = new DataView(raw.buffer);
      values.forEach((v, i) => {
        view.setBigInt64(i * 8, BigInt(v), true);
      });
      return raw;
    });
  }

  /** An int8 constant (dims `[]` for a scalar), deduplicated by value. */
  int8(values: number[], dims: number[] = [values.length]): string {
    return this.integerConstant(
      'i8',
      DataType.INT8,
      values,
      dims,
      () => new Uint8Array(Int8Array.from(values).buffer),
    );
  }

  /** The constant of these values, made by `raw` (its bytes) the first time. */
  private integerConstant(
    kind: string,
    dataType: number,
    values: number[],
    dims: number[],
    raw: () => Uint8Array,
  ): string {
    const key = `${kind}:${dims.join('x')}:${values.join(',')}`;
    const cached = this.constantCache.get(key);
    if (cached) return cached;
    const name = `/const_${kind}_${this.constants.length}`;
    this.constants.push({ name, dims, dataType, raw: raw() });
    this.constantCache.set(key, name);
    return name;
  }

  /** A float32 constant; scalars deduplicated by value. */
  float32(values: Float32Array | number[], dims: number[] = [values.length], name?: string): string {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    const key = name ? undefined : `f32:${dims.join('x')}:${Array.from(data).join(',')}`;
    if (key && data.length <= 4) {
      const cached = this.constantCache.get(key);
      if (cached) return cached;
    }
    const constName = name ?? `/const_f32_${this.constants.length}`;
    this.constants.push({
      name: constName,
      dims,
      dataType: DataType.FLOAT,
      raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    if (key && data.length <= 4) this.constantCache.set(key, constName);
    return constName;
  }
}
