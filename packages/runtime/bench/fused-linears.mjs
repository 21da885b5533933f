#!/usr/bin/env node
// Would another layout of a layer's linear products help on this CPU? Two graphs of 30 smollm2-135m-shaped
// layers (linears only: no attention, no norms), one with the q, k, v, o, gate, up and down products as
// seven Gemms (x W^T, the weights prepacked by onnxruntime), one laid out as LAYOUT says:
// - `fused` (default): q/k/v as one Gemm and gate/up as another, each followed by a Split;
// - `transposed`: each product as (W x^T)^T, a Gemm whose weights are its first operand (read in place,
//   each weight used once for all rows) followed by a Transpose.
// Bare onnxruntime runs both at 1 and 8 rows, interleaved in rounds, and prints the medians side by side.
// `pnpm run bench:fused` (in this package); `THREADS=1` runs onnxruntime on one thread; `ROWS=1,2,4,6,7,8`
// times other row counts (the cost of 1-6 rows was nearly flat on a 2-core EPYC, 7 and 8 a step up). The
// answer on a 2-core EPYC was no for both layouts (within noise), which is why the engine does not
// rewrite a model's linears either way (README, "What bounds...").
import { cpus } from 'node:os';
import * as ort from 'onnxruntime-node';
import { disableOnnxTelemetry } from '../dist/index.js';

disableOnnxTelemetry(); // before the first session, as loadModel does

const H = 576; // hidden
const I = 1536; // intermediate
const KV = 192; // 3 KV heads x 64
const LAYERS = 30;
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const RUNS = 30;

// The protobuf wire format, for the few ONNX messages these graphs need.
const varint = (n) => {
  const out = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
};
/** Concatenates byte arrays (and arrays of byte values). */
const bytes = (parts) => Buffer.concat(parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p))));
const int = (no, n) => [...varint(no * 8), ...varint(n)];
const len = (no, payload) => bytes([varint(no * 8 + 2), varint(payload.length), payload]);
const str = (no, s) => len(no, new TextEncoder().encode(s));

const attr = (name, value) =>
  Array.isArray(value)
    ? bytes([str(1, name), int(20, 7), ...value.map((v) => int(8, v))]) // INTS
    : bytes([str(1, name), int(20, 2), int(3, value)]); // INT
const node = (op, inputs, outputs, attrs = {}) =>
  bytes([
    ...inputs.map((i) => str(1, i)),
    ...outputs.map((o) => str(2, o)),
    str(3, outputs[0]),
    str(4, op),
    ...Object.entries(attrs).map(([k, v]) => len(5, attr(k, v))),
  ]);
let seed = 1;
const random = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return (seed / 2 ** 32 - 0.5) * 0.05;
};
const tensor = (name, dims, data) =>
  bytes([
    ...dims.map((d) => int(1, d)),
    int(2, data instanceof BigInt64Array ? 7 : 1),
    str(8, name),
    len(9, new Uint8Array(data.buffer)),
  ]);
const weight = (name, rows, cols) =>
  tensor(name, [rows, cols], Float32Array.from({ length: rows * cols }, random));
const valueInfo = (name, cols) => {
  const shape = bytes([len(1, bytes([str(2, 'rows')])), len(1, bytes([int(1, cols)]))]);
  return bytes([str(1, name), len(2, bytes([len(1, bytes([int(1, 1), len(2, shape)]))]))]);
};

const LAYOUT = process.env.LAYOUT ?? 'fused';
if (LAYOUT !== 'fused' && LAYOUT !== 'transposed')
  throw new Error(`LAYOUT: expected fused or transposed, got ${LAYOUT}`);

/** The model's bytes: LAYERS layers, the linears as seven Gemms (`separate`) or in `layout`. */
function linearsModel(layout) {
  const fused = layout === 'fused';
  const nodes = [];
  const inits = [];
  const outputs = [];
  let x = 'x';
  const gemm = (input, w, out) => {
    if (layout !== 'transposed') return nodes.push(node('Gemm', [input, w], [out], { transB: 1 }));
    // W [out, in] x^T -> [out, rows], then back to [rows, out]
    nodes.push(node('Gemm', [w, input], [`${out}_t`], { transB: 1 }));
    nodes.push(node('Transpose', [`${out}_t`], [out], { perm: [1, 0] }));
  };
  for (let l = 0; l < LAYERS; l++) {
    const [q, k, v, gate, up] = ['q', 'k', 'v', 'gate', 'up'].map((n) => `${n}${l}`);
    if (fused) {
      inits.push(
        weight(`wqkv${l}`, H + 2 * KV, H),
        tensor(`splits${l}`, [3], new BigInt64Array([576n, 192n, 192n])),
      );
      gemm(x, `wqkv${l}`, `qkv${l}`);
      nodes.push(node('Split', [`qkv${l}`, `splits${l}`], [q, k, v], { axis: 1 }));
    } else {
      inits.push(weight(`wq${l}`, H, H), weight(`wk${l}`, KV, H), weight(`wv${l}`, KV, H));
      gemm(x, `wq${l}`, q);
      gemm(x, `wk${l}`, k);
      gemm(x, `wv${l}`, v);
    }
    outputs.push(valueInfo(k, KV), valueInfo(v, KV)); // the new keys/values leave the graph, as a cache would take them
    inits.push(weight(`wo${l}`, H, H));
    gemm(q, `wo${l}`, `o${l}`);
    nodes.push(node('Add', [x, `o${l}`], [`x1_${l}`]));
    if (fused) {
      inits.push(weight(`wgu${l}`, 2 * I, H));
      gemm(`x1_${l}`, `wgu${l}`, `gu${l}`);
      nodes.push(node('Split', [`gu${l}`], [gate, up], { axis: 1, num_outputs: 2 }));
    } else {
      inits.push(weight(`wg${l}`, I, H), weight(`wu${l}`, I, H));
      gemm(`x1_${l}`, `wg${l}`, gate);
      gemm(`x1_${l}`, `wu${l}`, up);
    }
    inits.push(weight(`wd${l}`, H, I));
    nodes.push(node('Sigmoid', [gate], [`sg${l}`]), node('Mul', [`sg${l}`, gate], [`silu${l}`]));
    nodes.push(node('Mul', [`silu${l}`, up], [`act${l}`]));
    gemm(`act${l}`, `wd${l}`, `d${l}`);
    nodes.push(node('Add', [`x1_${l}`, `d${l}`], [`x${l + 1}`]));
    x = `x${l + 1}`;
  }
  const graph = bytes([
    ...nodes.map((n) => len(1, n)),
    str(2, 'linears'),
    ...inits.map((t) => len(5, t)),
    len(11, valueInfo('x', H)),
    len(12, valueInfo(x, H)),
    ...outputs.map((o) => len(12, o)),
  ]);
  return bytes([int(1, 8), len(7, graph), len(8, bytes([str(1, ''), int(2, 18)]))]);
}

const sessions = {};
for (const layout of ['separate', LAYOUT])
  sessions[layout] = await ort.InferenceSession.create(linearsModel(layout), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: Number(process.env.THREADS ?? 0), // 0: onnxruntime's default, one per core
  });
const ROWS = (process.env.ROWS ?? '1,8').split(',').map(Number);
if (!ROWS.every((r) => Number.isInteger(r) && r > 0))
  throw new Error(`ROWS: expected row counts such as 1,8, got ${process.env.ROWS}`);
const times = { separate: {}, [LAYOUT]: {} };
for (const rows of ROWS) for (const t of Object.values(times)) t[rows] = [];
for (let round = 0; round < ROUNDS; round++)
  for (const name of ['separate', LAYOUT])
    for (const rows of ROWS) {
      const feeds = {
        x: new ort.Tensor('float32', Float32Array.from({ length: rows * H }, random), [rows, H]),
      };
      for (let i = 0; i < 3; i++) await sessions[name].run(feeds);
      const t0 = performance.now();
      for (let i = 0; i < RUNS; i++) await sessions[name].run(feeds);
      times[name][rows].push((performance.now() - t0) / RUNS);
    }
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
};
console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}`);
const flops = (rows) => 2 * rows * LAYERS * H * (2 * H + 2 * KV + 3 * I);
console.log(
  `${LAYERS} layers of smollm2-135m linears, bare onnxruntime (threads: ${process.env.THREADS ?? 'one per core'}), median of ${ROUNDS} rounds of ${RUNS} runs:`,
);
for (const rows of ROWS) {
  const [a, b] = [median(times.separate[rows]), median(times[LAYOUT][rows])];
  const what = LAYOUT === 'fused' ? 'fused q/k/v and gate/up' : 'transposed, (W x^T)^T';
  console.log(
    `   ${rows} row(s): seven Gemms ${a.toFixed(2)} ms (${(flops(rows) / a / 1e6).toFixed(0)} GFLOP/s), ${what} ${b.toFixed(2)} ms -> ${LAYOUT} is ${(a / b).toFixed(2)}x`,
  );
}
for (const s of Object.values(sessions)) await s.release();
