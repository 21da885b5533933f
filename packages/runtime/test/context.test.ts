import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel } from '@implicit-it/modelkit';
import { createTinyModel } from '@implicit-it/modelkit/test';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  GenerationError,
  generateWithoutCache,
  type LoadOptions,
  loadModel,
  ModelLoadError,
  positionTable,
} from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'runtime-context-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A tiny model whose graph has `rows` rotary positions, its config.json declaring `declared` (null: none). */
async function modelWith(rows: number, declared: number | null, name: string): Promise<string> {
  const { dir: made } = await createTinyModel({ seed: 1, initScale: 10, maxPositionEmbeddings: rows });
  const dir = join(work, name);
  cpSync(made, dir, { recursive: true });
  const file = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(file, 'utf8'));
  if (declared === null) delete config.max_position_embeddings;
  else config.max_position_embeddings = declared;
  writeFileSync(file, JSON.stringify(config));
  return dir;
}

const PROMPT = 'Name a prime.';
const ids = (n: number, from = 40) => ({ promptIds: Array.from({ length: n }, (_, i) => from + i) });

describe("the context is the graph's where its position table is shorter than config.json says", () => {
  it('positionTable finds the rotary table of every graph layout, not the embedding', async () => {
    // 2,048 rows: more than the 512-row embedding, which a table gathered by token ids would give
    for (const graph of [
      {},
      { merged: true },
      { positionIds: false },
      { repeatKv: 'expand', linear: 'matmul' },
      { kvDtype: 'float16' },
    ] as const) {
      const { dir } = await createTinyModel({ seed: 1, maxPositionEmbeddings: 2048, ...graph });
      const file = join(dir, 'onnx', 'merged' in graph ? 'decoder_model_merged.onnx' : 'model.onnx');
      expect(positionTable(readFileSync(file)), JSON.stringify(graph)).toEqual({
        tensor: 'rotary.cos_cached',
        rows: 2048,
      });
    }
    const { dir } = await createTinyModel({ seed: 1, maxPositionEmbeddings: 2048, dtypes: ['q4'] });
    expect(positionTable(readFileSync(join(dir, 'onnx', 'model_q4.onnx')))?.rows).toBe(2048);
  });

  it('generation stops at the table with finish reason length; longer prompts and scores are refused naming the file', async () => {
    const dir = await modelWith(32, 64, 'declares-more');
    const file = join(dir, 'onnx', 'model.onnx');
    for (const load of [
      {},
      { prefixCache: 2 ** 24, prefillChunk: 4 },
      { cacheOutputs: false },
    ] as LoadOptions[]) {
      const lines: string[] = [];
      const model = await loadModel(dir, { log: (l) => lines.push(l), ...load });
      expect(model.info.maxPositions).toBe(32);
      expect(lines).toContain(
        `context of 32 positions: the rows of rotary.cos_cached in ${file} (config.json's max_position_embeddings says 64)`,
      );
      // 20 prompt tokens: 12 fill the context (the last one sampled, never fed); before, onnxruntime
      // failed the step feeding position 32 ("indices element out of data bounds") and the text was lost
      const reference = await generateWithoutCache(model, ids(20), { maxNewTokens: 40, ignoreEos: true });
      expect(reference).toHaveLength(12);
      for (let round = 0; round < 2; round++) {
        // (the second round reuses the kept prompt and reply with a prefix cache)
        const [r] = await model.generate(ids(20), { maxNewTokens: 40, ignoreEos: true });
        expect([r!.finishReason, r!.tokenIds]).toEqual(['length', reference]);
      }
      let text = '';
      const kinds: string[] = [];
      for await (const part of model.stream(ids(20), { maxNewTokens: 40, ignoreEos: true })) {
        kinds.push(part.type);
        if (part.type === 'text-delta') text += part.text;
        if (part.type === 'finish') {
          expect([part.finishReason, part.text, part.usage.totalTokens]).toEqual(['length', text, 32]);
        }
      }
      expect(kinds.filter((k) => k === 'token')).toHaveLength(12);
      expect(kinds.at(-1)).toBe('finish');
      // a row in a batch reaching the table ends there; a shorter prompt beside it goes on to its own end
      const rows = await model.generate([ids(20), ids(3)], { maxNewTokens: 40, ignoreEos: true });
      expect(rows.map((r) => [r.finishReason, r.tokenIds.length])).toEqual([
        ['length', 12],
        ['length', 29],
      ]);
      const why = `this model's context is 32 (the rows of the position table in ${file}; config.json's max_position_embeddings says 64)`;
      const refused = await model.generate(ids(33), { maxNewTokens: 1 }).catch((e) => e);
      expect(refused).toBeInstanceOf(GenerationError);
      expect(refused.message).toBe(`the prompt has 33 tokens; ${why}`);
      await expect(model.score([{ prompt: ids(3), continuation: ids(30).promptIds }])).rejects.toThrow(
        `items[0]: prompt + continuation is 33 tokens; ${why}`,
      );
      const [scored] = await model.score([{ prompt: ids(3), continuation: ids(29).promptIds }]);
      expect([scored!.logprobs.length, Number.isFinite(scored!.sumLogprob)]).toEqual([29, true]);
      await model.dispose();
    }
  });

  it('without max_position_embeddings the table is the context; a config declaring fewer positions keeps its own', async () => {
    const none = await loadModel(await modelWith(32, null, 'declares-none'), { log: () => {} });
    expect(none.info.maxPositions).toBe(32);
    const [r] = await none.generate(ids(20), { maxNewTokens: 40, ignoreEos: true });
    expect([r!.finishReason, r!.tokenIds.length]).toEqual(['length', 12]);
    await expect(none.generate(ids(40))).rejects.toThrow(
      "the prompt has 40 tokens; this model's context is 32 (the rows of the position table in",
    );
    await none.dispose();
    const fewer = await loadModel(await modelWith(32, 16, 'declares-fewer'), { log: () => {} });
    expect(fewer.info.maxPositions).toBe(16);
    const [f] = await fewer.generate(ids(10), { maxNewTokens: 40, ignoreEos: true });
    expect([f!.finishReason, f!.tokenIds.length]).toEqual(['length', 6]);
    await expect(fewer.generate(ids(20))).rejects.toThrow(
      "the prompt has 20 tokens; this model's context is 16 (max_position_embeddings)",
    );
    await fewer.dispose();
  });
});

/** Protobuf varint bytes. */
function varint(n: number): number[] {
  const out: number[] = [];
  for (; n >= 128; n = Math.floor(n / 128)) out.push((n % 128) | 128);
  out.push(n);
  return out;
}
const field = (no: number, payload: Uint8Array | number[]) =>
  Buffer.concat([Buffer.from([...varint(no * 8 + 2), ...varint(payload.length)]), Buffer.from(payload)]);

/** The top-level fields of a protobuf message: [field number, whole field bytes, payload]. */
function fieldsOf(buf: Buffer): [number, Buffer, Buffer][] {
  const out: [number, Buffer, Buffer][] = [];
  const read = (p: number): [number, number] => {
    let n = 0;
    for (let shift = 1; ; shift *= 128) {
      const b = buf[p++]!;
      n += (b & 127) * shift;
      if (b < 128) return [n, p];
    }
  };
  for (let p = 0; p < buf.length; ) {
    const start = p;
    const [tag, at] = read(p);
    let payload = at;
    if ((tag & 7) === 0) p = read(at)[1];
    else if ((tag & 7) === 2) {
      const [n, from] = read(at);
      payload = from;
      p = from + n;
    } else p = at + ((tag & 7) === 1 ? 8 : 4);
    out.push([tag >> 3, buf.subarray(start, p), buf.subarray(payload, p)]);
  }
  return out;
}

/** `file` with its past_key_values.* inputs declared [batch_size, kvHeads, length, headDim]: a static cache. */
function fixPastLength(file: string, kvHeads: number, length: number, headDim: number): void {
  const dim = (d: number | string) =>
    field(1, typeof d === 'string' ? field(2, Buffer.from(d)) : Buffer.from([8, ...varint(d)]));
  const model = readFileSync(file);
  const parts = fieldsOf(model).map(([no, whole, graph]) => {
    if (no !== 7) return whole;
    const body = fieldsOf(graph).map(([gno, input, info]) => {
      const name =
        fieldsOf(info)
          .find(([n]) => n === 1)?.[2]
          .toString() ?? '';
      if (gno !== 11 || !name.startsWith('past_key_values.')) return input;
      const shape = field(2, Buffer.concat(['batch_size', kvHeads, length, headDim].map(dim)));
      // ValueInfoProto { name, type: TypeProto { tensor_type: { elem_type: FLOAT, shape } } }
      const type = field(2, field(1, Buffer.concat([Buffer.from([8, 1]), shape])));
      return field(11, Buffer.concat([field(1, Buffer.from(name)), type]));
    });
    return field(7, Buffer.concat(body));
  });
  writeFileSync(file, Buffer.concat(parts));
}

describe('a graph whose cache inputs have a fixed length', () => {
  it('frees the onnxruntime session of the refused graph: the refusal leaks no session', async () => {
    const dir = await modelWith(512, 512, 'static-cache-release');
    fixPastLength(join(dir, 'onnx', 'model.onnx'), 2, 64, 16);
    const create = ort.InferenceSession.create.bind(ort.InferenceSession);
    const sessions: { released: boolean }[] = [];
    const spy = vi.spyOn(ort.InferenceSession, 'create').mockImplementation((async (...args: never[]) => {
      const session = await (create as (...a: never[]) => Promise<ort.InferenceSession>)(...args);
      const seen = { released: false };
      sessions.push(seen);
      const release = session.release.bind(session);
      session.release = async () => {
        seen.released = true;
        await release();
      };
      return session;
    }) as never);
    try {
      for (const load of [{}, { cacheOutputs: false }] as LoadOptions[]) {
        await expect(loadModel(dir, { log: () => {}, ...load })).rejects.toMatchObject({
          code: 'runtime.bad_graph',
        });
      }
    } finally {
      spy.mockRestore();
    }
    // one session a load, each freed
    expect(sessions).toEqual([{ released: true }, { released: true }]);
  });

  it('is refused at load, naming the file and the input (every run failed in onnxruntime before)', async () => {
    const dir = await modelWith(512, 512, 'static-cache');
    const file = join(dir, 'onnx', 'model.onnx');
    fixPastLength(file, 2, 64, 16);
    for (const load of [{}, { cacheOutputs: false }] as LoadOptions[]) {
      const error = await loadModel(dir, { log: () => {}, ...load }).catch((e) => e);
      expect(error).toBeInstanceOf(ModelLoadError);
      expect([error.file, error.message]).toEqual([
        file,
        `${file}: input past_key_values.0.key has a fixed length of 64 cache positions ([batch_size, 2, 64, 16]), as static-cache exports have it; this engine grows the cache a position per step and needs a dynamic past_sequence_length (optimum's "text-generation-with-past" export)`,
      ]);
    }
  });
});

describe('a graph loaded as exported', () => {
  it('is read once: onnxruntime gets the bytes read for the position table, external data found beside it', async () => {
    const { dir: inline } = await createTinyModel({ seed: 1 });
    const external = join(work, 'external-data');
    await createModel({ preset: 'tiny', seed: 1, out: external, externalDataThreshold: 0 });
    expect(readdirSync(join(external, 'onnx')).sort()).toEqual(['model.onnx', 'model.onnx_data']);
    const asExported = { sliceLogits: false, cacheOutputs: false, log: () => {} };
    const create = vi.spyOn(ort.InferenceSession, 'create');
    const results = [];
    try {
      for (const dir of [inline, external]) {
        create.mockClear();
        const model = await loadModel(dir, asExported);
        const graph = create.mock.calls.map(([given]) =>
          given instanceof Uint8Array ? given.length : given,
        );
        expect(graph).toEqual([statSync(join(dir, 'onnx', 'model.onnx')).size]);
        expect([model.info.logitsMode, model.info.cacheMode, model.info.maxPositions]).toEqual([
          'all',
          'present',
          512,
        ]);
        results.push((await model.generate(PROMPT, { maxNewTokens: 8, ignoreEos: true }))[0]!.tokenIds);
        await model.dispose();
      }
    } finally {
      create.mockRestore();
    }
    expect(results[1]).toEqual(results[0]);
  });
});

/** Protobuf varint bytes of a signed 64-bit integer (negative: ten bytes of two's complement). */
const int64 = (v: number | bigint): number[] => {
  let u = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  for (; u >= 128n; u >>= 7n) out.push(Number(u & 127n) | 128);
  out.push(Number(u));
  return out;
};
const INT64_MAX = 2n ** 63n - 1n;
const text = (no: number, s: string) => field(no, Buffer.from(s));
const varintField = (no: number, v: number | bigint) => Buffer.from([...varint(no * 8), ...int64(v)]);
/** TensorProto: a float table's dims (its values unread by positionTable), or int64 values (packed, or as raw_data). */
const tensorProto = (name: string, dims: number[], values?: (number | bigint)[], raw = false) => {
  const data =
    values === undefined
      ? []
      : raw
        ? [field(9, Buffer.concat(values.map((v) => Buffer.from(new BigInt64Array([BigInt(v)]).buffer))))]
        : [field(7, values.flatMap(int64))];
  return Buffer.concat([
    ...dims.map((d) => varintField(1, d)),
    varintField(2, values ? 7 : 1),
    ...data,
    text(8, name),
  ]);
};
const initializer = (name: string, dims: number[], values?: (number | bigint)[], raw = false) =>
  field(5, tensorProto(name, dims, values, raw));
/** An int64 vector initializer (Slice's starts, ends, axes, steps). */
const ints = (name: string, values: (number | bigint)[], raw = false) =>
  initializer(name, [values.length], values, raw);
const node = (op: string, inputs: string[], outputs: string[], domain = '', attributes: Buffer[] = []) =>
  field(
    1,
    Buffer.concat([
      ...inputs.map((i) => text(1, i)),
      ...outputs.map((o) => text(2, o)),
      text(4, op),
      ...(domain ? [text(7, domain)] : []),
      ...attributes.map((a) => field(5, a)),
    ]),
  );
const graphInput = (name: string) => field(11, text(1, name));
/** A ModelProto of these GraphProto fields. */
const modelOf = (...graph: Buffer[]) => Buffer.concat([varintField(1, 8), field(7, Buffer.concat(graph))]);
const COS = initializer('cos_cache', [4096, 32]);
const SIN = initializer('sin_cache', [4096, 32]);

describe("positionTable on onnxruntime's fused rotary ops and on tables cut by Slice", () => {
  it("reads the cos_cache rows of RotaryEmbedding and GroupQueryAttention (com.microsoft) and of ONNX's RotaryEmbedding", () => {
    const rotary = modelOf(
      graphInput('x'),
      graphInput('position_ids'),
      COS,
      SIN,
      node('RotaryEmbedding', ['x', 'position_ids', 'cos_cache', 'sin_cache'], ['y'], 'com.microsoft'),
    );
    expect(positionTable(rotary)).toEqual({ tensor: 'cos_cache', rows: 4096 });
    const gqaInputs = ['q', 'k', 'v', 'past_key', 'past_value', 'seqlens_k', 'total_sequence_length'];
    const gqa = (cos: string) =>
      node('GroupQueryAttention', [...gqaInputs, cos, 'sin_cache'], ['o', 'pk', 'pv'], 'com.microsoft');
    expect(positionTable(modelOf(COS, SIN, gqa('cos_cache')))).toEqual({ tensor: 'cos_cache', rows: 4096 });
    // a GroupQueryAttention that does no rotary (no caches) has no table
    expect(
      positionTable(modelOf(COS, node('GroupQueryAttention', gqaInputs, ['o', 'pk', 'pv'], 'com.microsoft'))),
    ).toBeNull();
    // a cache written as a Constant node; the fewest rows of several tables
    const constant = node('Constant', [], ['short_cos'], '', [
      Buffer.concat([text(1, 'value'), field(5, tensorProto('', [1024, 32])), varintField(20, 4)]),
    ]);
    expect(positionTable(modelOf(COS, SIN, constant, gqa('cos_cache'), gqa('short_cos')))).toEqual({
      tensor: 'short_cos',
      rows: 1024,
    });
    // ONNX's own RotaryEmbedding (opset 23): X, cos_cache, sin_cache, position_ids; without
    // position_ids its caches are per-token values, no table
    const onnxRotary = (inputs: string[]) => modelOf(COS, SIN, node('RotaryEmbedding', inputs, ['y']));
    expect(positionTable(onnxRotary(['x', 'cos_cache', 'sin_cache', 'position_ids']))).toEqual({
      tensor: 'cos_cache',
      rows: 4096,
    });
    expect(positionTable(onnxRotary(['x', 'cos_cache', 'sin_cache']))).toBeNull();
  });

  it('counts the rows a Slice with constant bounds keeps on axis 0, naming its output; a computed bound keeps the rows', () => {
    const TABLE = initializer('table', [2048, 64]);
    /** The table sliced by `slice` (its starts, ends, axes, steps initializers given), then gathered by position. */
    const gathered = (bounds: Buffer[], sliceInputs: string[], ...more: Buffer[]) =>
      positionTable(
        modelOf(
          graphInput('input_ids'),
          graphInput('position_ids'),
          TABLE,
          ...bounds,
          ...more,
          node('Slice', ['table', ...sliceInputs], ['cut']),
          node('Gather', ['cut', 'position_ids'], ['rows']),
        ),
      );
    const cut = (rows: number) => ({ tensor: 'cut', rows });
    const whole = { tensor: 'table', rows: 2048 };
    const cases: [Buffer[], string[], { tensor: string; rows: number }][] = [
      [[ints('s', [0]), ints('e', [1024]), ints('a', [0])], ['s', 'e', 'a'], cut(1024)],
      // axes left out: the first; ends past the table (INT64_MAX, as exporters write "to the end")
      [[ints('s', [16]), ints('e', [INT64_MAX])], ['s', 'e'], cut(2032)],
      // negative bounds and axis, values as raw_data
      [[ints('s', [-512], true), ints('e', [-1], true), ints('a', [-2], true)], ['s', 'e', 'a'], cut(511)],
      // every other row; backwards
      [[ints('s', [0]), ints('e', [2048]), ints('a', [0]), ints('p', [2])], ['s', 'e', 'a', 'p'], cut(1024)],
      [
        [ints('s', [-1]), ints('e', [-INT64_MAX]), ints('a', [0]), ints('p', [-1])],
        ['s', 'e', 'a', 'p'],
        whole,
      ],
      // columns only (cos[:, :rotary_dim / 2]): the rows stay the table's
      [[ints('s', [0]), ints('e', [32]), ints('a', [1])], ['s', 'e', 'a'], whole],
      [[ints('s', [0, 0]), ints('e', [INT64_MAX, 32])], ['s', 'e'], whole],
      [[ints('s', [0, 0]), ints('e', [100, 32])], ['s', 'e'], cut(100)],
    ];
    for (const [bounds, inputs, expected] of cases)
      expect(gathered(bounds, inputs), JSON.stringify(inputs)).toEqual(expected);
    // a computed end (cos_cached[:seq_len], seq_len read from position_ids' shape): the table's rows
    const seqLen = [
      node('Shape', ['position_ids'], ['shape']),
      ints('one', [1]),
      node('Gather', ['shape', 'one'], ['seq_len']),
    ];
    expect(gathered([ints('s', [0]), ints('a', [0])], ['s', 'seq_len', 'a'], ...seqLen)).toEqual(whole);
    // bounds as Constant nodes (value_ints), through a Cast
    const constantInts = (name: string, values: number[]) =>
      node('Constant', [], [name], '', [
        Buffer.concat([text(1, 'value_ints'), field(8, values.flatMap(int64)), varintField(20, 7)]),
      ]);
    expect(
      gathered(
        [constantInts('s', [0]), constantInts('e32', [300]), node('Cast', ['e32'], ['e'])],
        ['s', 'e'],
      ),
    ).toEqual(cut(300));
    // a table of token ids (the embedding) is no position table, sliced or not
    expect(
      positionTable(
        modelOf(
          graphInput('input_ids'),
          TABLE,
          ints('s', [0]),
          ints('e', [100]),
          node('Slice', ['table', 's', 'e'], ['cut']),
          node('Gather', ['cut', 'input_ids'], ['rows']),
        ),
      ),
    ).toBeNull();
  });
});
