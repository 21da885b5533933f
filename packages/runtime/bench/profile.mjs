#!/usr/bin/env node
// Where a step's time goes, per onnxruntime op type, on the smollm2-135m bench model (CPU): a 512-token
// prefill, decoding steps at batch 1 and at batch 8 (64-token prompts, a cache of about 100 positions),
// read from onnxruntime's own profile (the `profile` load option) and set side by side, by op type and,
// for the linear products (Gemm; MatMulNBits, or MatMulInteger as onnxruntime fuses it, in q4 / q8
// graphs), by shape. Profiling adds a few microseconds to every kernel run, so small kernels (Reshape,
// Slice...) look larger than they are; compare columns, not absolute sums.
// `PROFILE_KEEP=1` keeps the trace (open it in chrome://tracing or Perfetto); `PROFILE_DTYPE=q4` or `q8`
// profiles the model's 4-bit or 8-bit graph (as bench 4c writes them) instead of the float32 one.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../dist/index.js';
import { benchModelDir, promptMaker } from './bench-model.mjs';

const out = mkdtempSync(join(tmpdir(), 'implicit-it-profile-'));
const dtype = process.env.PROFILE_DTYPE ?? 'fp32';
const dir = dtype === 'fp32' ? await benchModelDir() : await benchModelDir(dtype, { dtypes: [dtype] });
const model = await loadModel(dir, { dtype, log: () => {}, profile: join(out, 'runtime') });
const promptOf = promptMaker(model);

// every onnxruntime run, labelled with the phase and the generate() call that made it (runs at load are
// not labelled): a prefill in chunks (`prefillChunk`) is several runs of one call
const labels = [];
let phase = 'warm-up';
let call = 0;
const run = model.session.run.bind(model.session);
model.session.run = (step) => {
  labels.push({ phase, call });
  return run(step);
};
async function measure(name, prompts, maxNewTokens) {
  phase = name;
  call++;
  await model.generate(prompts, { maxNewTokens, ignoreEos: true, rules: 'hewitt2024' });
}
const rows = (n, len) =>
  Array.from({ length: n }, (_, i) => ({ promptIds: promptOf(len, i * len), scopeStart: 0 }));

await measure('warm-up', rows(8, 64), 4);
for (let i = 0; i < 3; i++) await measure('prefill 512', rows(1, 512), 1);
await measure('batch 1', rows(1, 64), 41);
await measure('batch 8', rows(8, 64), 41);
const file = model.endProfiling();
await model.dispose();

// the trace: one `model_run` event per run, one `*_kernel_time` event per kernel run inside it
const events = JSON.parse(readFileSync(file, 'utf8'));
const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
const atLoad = runs.length - labels.length;
let k = 0;
// the float32 graph's linear products, and the q4 / q8 graphs' (the q8 graph's MatMulInteger as onnxruntime
// fuses it at load); attention's MatMuls are left out
const LINEAR_OPS = new Set(['Gemm', 'MatMulNBits', 'DynamicQuantizeMatMul', 'MatMulIntegerToFloat']);
/** A kernel event's first input or output shape, from its `*_type_shape` argument. */
const firstShape = (shapes) => Object.values(shapes?.[0] ?? {})[0] ?? [];
/** Adds `ms` to the time of op type `op` in `ops` (a Map of milliseconds). */
const addMs = (ops, op, ms) => ops.set(op, (ops.get(op) ?? 0) + ms);
/** Adds `ms` and `nodes` to the linear products of shape `key` in `shapes` (a Map of { ms, nodes }). */
function addShape(shapes, key, ms, nodes) {
  const g = shapes.get(key) ?? { ms: 0, nodes: 0 };
  shapes.set(key, { ms: g.ms + ms, nodes: g.nodes + nodes });
}
const profiled = runs.map((r, i) => {
  const { phase: label, call } = i < atLoad ? { phase: 'load', call: 0 } : labels[i - atLoad];
  const entry = { label, call, ms: r.dur / 1000, kernelMs: 0, nodes: 0, ops: new Map(), gemms: new Map() };
  while (k < kernels.length && kernels[k].ts < r.ts) k++;
  for (; k < kernels.length && kernels[k].ts <= r.ts + r.dur; k++) {
    const op = kernels[k].args.op_name;
    const ms = kernels[k].dur / 1000;
    addMs(entry.ops, op, ms);
    if (LINEAR_OPS.has(op)) {
      // the linear products by shape, inner dimension -> outputs (q, k, v, o, gate, up, down, LM head)
      const key = `${op === 'Gemm' ? '' : `${op} `}${firstShape(kernels[k].args.input_type_shape).at(-1)} -> ${firstShape(kernels[k].args.output_type_shape).at(-1)}`;
      addShape(entry.gemms, key, ms, 1);
    }
    entry.kernelMs += ms;
    entry.nodes++;
  }
  return entry;
});
/** Adds up the runs of each generate() call: one entry per call. */
function perCall(runs) {
  const calls = new Map();
  for (const r of runs) {
    const c = calls.get(r.call) ?? {
      ms: 0,
      kernelMs: 0,
      nodes: 0,
      runs: 0,
      ops: new Map(),
      gemms: new Map(),
    };
    c.ms += r.ms;
    c.kernelMs += r.kernelMs;
    c.nodes += r.nodes;
    c.runs++;
    for (const [op, ms] of r.ops) addMs(c.ops, op, ms);
    for (const [key, g] of r.gemms) addShape(c.gemms, key, g.ms, g.nodes);
    calls.set(r.call, c);
  }
  return [...calls.values()];
}
/**
 * The mean prefill of a phase (all its runs, chunks included, per generate() call) or, for the decoding
 * phases, the mean decoding step (the runs after the call's first token).
 */
function mean(label) {
  let these = profiled.filter((r) => r.label === label);
  // a 64-token prompt is shorter than a chunk: one run of prefill, then the steps
  if (label.startsWith('batch')) these = these.slice(1);
  else these = perCall(these);
  const n = these.length;
  const ops = new Map();
  for (const r of these) for (const [op, ms] of r.ops) addMs(ops, op, ms / n);
  const gemms = new Map();
  for (const r of these) for (const [key, g] of r.gemms) addShape(gemms, key, g.ms / n, g.nodes / n);
  const sum = (f) => these.reduce((a, r) => a + f(r), 0) / n;
  const runs = sum((r) => r.runs ?? 1);
  return {
    n,
    runs,
    ops,
    gemms,
    ms: sum((r) => r.ms),
    kernelMs: sum((r) => r.kernelMs),
    nodes: sum((r) => r.nodes),
  };
}
const pre = mean('prefill 512');
const s1 = mean('batch 1');
const s8 = mean('batch 8');

console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}; ${file}`);
console.log(
  `nodes per decoding step: ${Math.round(s1.nodes)}; the prefill of 512 positions takes ${pre.runs} run(s) (prefillChunk ${model.info.prefillChunk}).\nMilliseconds per prefill and per step, by op type (kernel time under the profiler):\n`,
);
const pad = (x, n) => String(x).padStart(n);
console.log(
  `${'op type'.padEnd(30)}${pad('prefill 512', 13)}${pad('%', 6)}${pad('step, batch 1', 15)}${pad('%', 6)}${pad('step, batch 8', 15)}${pad('%', 6)}${pad('8 / 1', 8)}`,
);
const order = [...new Set([...pre.ops.keys(), ...s1.ops.keys(), ...s8.ops.keys()])].sort(
  (a, b) => (s8.ops.get(b) ?? 0) - (s8.ops.get(a) ?? 0),
);
for (const op of order) {
  const a = pre.ops.get(op) ?? 0;
  const x = s1.ops.get(op) ?? 0;
  const y = s8.ops.get(op) ?? 0;
  if (a < 0.5 && x < 0.05 && y < 0.05) continue;
  console.log(
    `${op.padEnd(30)}${pad(a.toFixed(1), 13)}${pad(((100 * a) / pre.kernelMs).toFixed(1), 6)}${pad(x.toFixed(2), 15)}${pad(((100 * x) / s1.kernelMs).toFixed(1), 6)}${pad(y.toFixed(2), 15)}${pad(((100 * y) / s8.kernelMs).toFixed(1), 6)}${pad(x > 0 ? (y / x).toFixed(2) : '-', 8)}`,
  );
}
console.log(
  `${'all kernels'.padEnd(30)}${pad(pre.kernelMs.toFixed(1), 13)}${pad('', 6)}${pad(s1.kernelMs.toFixed(2), 15)}${pad('', 6)}${pad(s8.kernelMs.toFixed(2), 15)}${pad('', 6)}${pad((s8.kernelMs / s1.kernelMs).toFixed(2), 8)}`,
);
console.log('\nThe linear products by shape, inner dimension -> outputs, in milliseconds:\n');
const keyWidth = Math.max(18, ...[...s8.gemms.keys()].map((key) => key.length + 2));
console.log(
  `${'shape'.padEnd(keyWidth)}${pad('nodes', 9)}${pad('prefill 512', 13)}${pad('step, batch 1', 15)}${pad('step, batch 8', 15)}${pad('8 / 1', 8)}`,
);
for (const [key, g8] of [...s8.gemms].sort((a, b) => b[1].ms - a[1].ms)) {
  const [a, x] = [pre.gemms.get(key)?.ms ?? 0, s1.gemms.get(key)?.ms ?? 0];
  console.log(
    `${key.padEnd(keyWidth)}${pad(Math.round(g8.nodes), 9)}${pad(a.toFixed(1), 13)}${pad(x.toFixed(2), 15)}${pad(g8.ms.toFixed(2), 15)}${pad(x > 0 ? (g8.ms / x).toFixed(2) : '-', 8)}`,
  );
}
console.log(`\nper decoding step (${s1.n} steps each), under the profiler:`);
for (const [name, s] of [
  ['batch 1', s1],
  ['batch 8', s8],
])
  console.log(
    `   ${name}: onnxruntime runs ${s.ms.toFixed(2)} ms, of which kernels ${s.kernelMs.toFixed(2)} ms and the executor between them ${(s.ms - s.kernelMs).toFixed(2)} ms`,
  );
console.log(
  `   batch 8 vs batch 1 throughput of the kernels alone: ${((8 * s1.kernelMs) / s8.kernelMs).toFixed(2)}x (the profiler's own time, outside the kernels, is left out)`,
);
if (process.env.PROFILE_KEEP === '1') console.log(`kept ${file}`);
else rmSync(out, { recursive: true, force: true });
