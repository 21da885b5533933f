#!/usr/bin/env node
// Decoding benchmarks of issue 5 on a smollm2-135m-shaped modelkit model (random weights, the SmolLM
// tokenizer from ../shared when present), CPU, greedy. Every figure is a ratio measured side by side
// in this one run (runs interleaved, medians). Prints a report and `BENCH {...}` lines.
import { statSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { AutoModelForCausalLM, env, LogitsProcessorList, Tensor } from '@huggingface/transformers';
import * as Ort from 'onnxruntime-node';
import {
  generateWithoutCache,
  loadModel,
  loadModelInWorker,
  transformersRulesProcessor,
} from '../dist/index.js';
import {
  bench,
  benchModelDir,
  evalInstructions,
  median,
  promptMaker,
  weightBytesPerToken,
} from './bench-model.mjs';

const quick = process.env.BENCH_QUICK === '1';
const now = () => performance.now();
const RUNS = quick ? 1 : 3;

// --- the model: written once, reused
const dir = await benchModelDir();
const weightBytes = statSync(join(dir, 'onnx', 'model.onnx')).size;
const lines = [];
const model = await loadModel(dir, { log: (l) => lines.push(l) });
console.log(
  `model: ${dir} (${(weightBytes / 2 ** 20).toFixed(0)} MB), ${lines.join('; ')}, logits: ${model.info.logitsMode}, cache: ${model.info.cacheMode}, attention: ${model.info.attention}`,
);
console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}`);
env.allowRemoteModels = false;
env.localModelPath = dirname(dir);
const hf = await AutoModelForCausalLM.from_pretrained(dir.split('/').pop(), { dtype: 'fp32', device: 'cpu' });
const rules = model.rules('hewitt2024');

// --- prompts: real text (alpaca_eval instructions) cut to exact token counts
const instructions = evalInstructions();
const promptOf = promptMaker(model);

async function ours(ids, maxNewTokens, opts = {}) {
  const t0 = now();
  const [r] = await model.generate(
    { promptIds: ids, scopeStart: 0 },
    { maxNewTokens, ignoreEos: true, rules: 'hewitt2024', ...opts },
  );
  return { ms: now() - t0, ids: r.tokenIds };
}
async function theirs(ids, maxNewTokens, withRules = true) {
  const list = new LogitsProcessorList();
  if (withRules)
    list.push(await transformersRulesProcessor(rules, { scopeStart: 0, promptLength: ids.length }));
  const t0 = now();
  const out = await hf.generate({
    input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
    attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
    max_new_tokens: maxNewTokens,
    min_new_tokens: maxNewTokens,
    do_sample: false,
    logits_processor: list,
  });
  return { ms: now() - t0, ids: Array.from(out.data, Number).slice(ids.length) };
}

// warm-up both engines
await ours(promptOf(64), 4);
await theirs(promptOf(64), 4);

// 1. batch-1 decode and time to first token. transformers.js is held to every token with
// min_new_tokens (EOS set to -Infinity); this engine's ignoreEos only goes on past an EOS, so EOS is
// banned here as well: both sides then generate the same tokens, checked.
const p64 = promptOf(64);
const p512 = promptOf(512, 100);
const banEos = { logitBias: Object.fromEntries(model.info.eosIds.map((id) => [id, -1e6])) };
const r = { o1: [], o128: [], t1: [], t128: [], o512: [], t512: [] };
let same1 = true;
let generated128 = []; // this engine's 128 tokens (section 3 replays them through the rules)
let same512 = true;
const sameIds = (a, b) => JSON.stringify(a.ids) === JSON.stringify(b.ids);
for (let i = 0; i < RUNS; i++) {
  r.o1.push((await ours(p64, 1, banEos)).ms);
  r.t1.push((await theirs(p64, 1)).ms);
  const o = await ours(p64, 128, banEos);
  const t = await theirs(p64, 128);
  r.o128.push(o.ms);
  r.t128.push(t.ms);
  same1 &&= sameIds(o, t);
  generated128 = o.ids;
  const o5 = await ours(p512, 1, banEos);
  const t5 = await theirs(p512, 1);
  r.o512.push(o5.ms);
  r.t512.push(t5.ms);
  same512 &&= sameIds(o5, t5);
}
// the roofline's memory bandwidth (section 5), measured now, next to the decode rate it divides: the
// machine's load drifts over the minutes this script runs
const bw = await bandwidth();
const decodeOurs = 127 / ((median(r.o128) - median(r.o1)) / 1000);
const decodeTheirs = 127 / ((median(r.t128) - median(r.t1)) / 1000);
const ttftRatio = median(r.t512) / median(r.o512);
console.log(`\n1. batch 1, 64-token prompt, 128 new tokens, hewitt2024:`);
console.log(
  `   decode: this engine ${decodeOurs.toFixed(1)} tok/s, transformers.js ${decodeTheirs.toFixed(1)} tok/s -> ${(decodeOurs / decodeTheirs).toFixed(2)}x (same tokens: ${same1})`,
);
console.log(
  `   end to end (128 tokens): ${median(r.o128).toFixed(0)} ms vs ${median(r.t128).toFixed(0)} ms -> ${(median(r.t128) / median(r.o128)).toFixed(2)}x`,
);
console.log(
  `   time to first token, 512-token prompt: ${median(r.o512).toFixed(0)} ms vs ${median(r.t512).toFixed(0)} ms -> ${ttftRatio.toFixed(2)}x (same first token: ${same512})`,
);
// what "logits only where needed" can win at most: the prefill is compute-bound, and apart from the LM
// head both engines run the same onnxruntime kernels on the same graph
{
  const c = model.files.config;
  const H = c.hidden_size;
  const hd = c.head_dim ?? H / c.num_attention_heads;
  const q = c.num_attention_heads * hd;
  const kv = c.num_key_value_heads * hd;
  const S = 512;
  // attention FLOPs grow with the keys each query position is scored against: all S in one pass, the
  // positions up to the end of its chunk in a chunked prefill
  const chunk = model.info.prefillChunk || S;
  let scored = 0;
  for (let at = 0; at < S; at += chunk) scored += Math.min(chunk, S - at) * Math.min(S, at + chunk);
  const flops = (keys) =>
    c.num_hidden_layers *
    (2 * S * (H * (q + 2 * kv) + q * H + 3 * H * c.raw.intermediate_size) + 4 * keys * q);
  const head = 2 * c.vocab_size * H;
  const theirFlops = flops(S * S) + S * head;
  console.log(
    `   bound for the TTFT ratio: ${(theirFlops / (flops(S * S) + head)).toFixed(2)}x with the LM head at the last position only, ${(theirFlops / (flops(scored) + head)).toFixed(2)}x with it and chunks of ${chunk}, ${(theirFlops / (flops(0) + head)).toFixed(2)}x even with attention at no cost (prefill FLOPs of transformers.js / of this engine; the LM head is ${((100 * S * head) / theirFlops).toFixed(0)} % of theirs)`,
  );
}

bench(
  'runtime: batch-1 decode tok/s vs transformers.js',
  +(decodeOurs / decodeTheirs).toFixed(2),
  'x',
  '>= 1.0x, same tokens',
  decodeOurs / decodeTheirs >= 1 && same1,
);
bench(
  'runtime: TTFT 512-token prompt vs transformers.js',
  +ttftRatio.toFixed(2),
  'x',
  '>= 1.5x, same first token',
  ttftRatio >= 1.5 && same512,
);

// 1b. a long prompt prefilled in chunks (the default, prefillChunk) vs whole, in this engine
{
  const whole = await loadModel(dir, { log: () => {}, prefillChunk: 0 });
  const long = promptOf(quick ? 1024 : 2048, 600);
  const t = { chunked: [], whole: [] };
  const first = new Set();
  // warm-up at this length: a model's first run at new shapes is slower, and \`whole\` was just loaded
  for (const m of [model, whole]) await m.generate({ promptIds: long, scopeStart: 0 }, { maxNewTokens: 1 });
  for (let i = 0; i < (quick ? 1 : 2); i++) {
    for (const [name, m] of [
      ['chunked', model],
      ['whole', whole],
    ]) {
      const t0 = now();
      const [out] = await m.generate(
        { promptIds: long, scopeStart: 0 },
        { maxNewTokens: 1, rules: 'hewitt2024' },
      );
      t[name].push(now() - t0);
      first.add(out.tokenIds[0]);
    }
  }
  await whole.dispose();
  const ratio = median(t.whole) / median(t.chunked);
  console.log(
    `\n1b. prefill of a ${long.length}-token prompt, chunks of ${model.info.prefillChunk} vs whole: ${median(t.chunked).toFixed(0)} ms vs ${median(t.whole).toFixed(0)} ms -> ${ratio.toFixed(2)}x (first token ${first.size === 1 ? 'the same' : 'DIFFERENT'})`,
  );
  bench(
    `runtime: ${long.length}-token prefill, chunked vs whole`,
    +ratio.toFixed(2),
    'x',
    'report',
    first.size === 1,
  );
}

// 2. the no-cache loop of the reference code. The paper's code (combined_model.py, use_cache False)
// reruns the whole sequence through Hugging Face's forward every step, which computes the LM head at
// every position; `everyPosition` does the same here. The loop with the LM head at the last position
// only (this engine's own no-cache reference, faster than the paper's) is timed and printed beside it.
const nNew = quick ? 64 : 256;
const tc0 = now();
const cachedRun = await ours(p64, nNew);
const cachedMs = now() - tc0;
const noCacheRun = async (everyPosition) => {
  const t0 = now();
  const ids = await generateWithoutCache(
    model,
    { promptIds: p64, scopeStart: 0 },
    { maxNewTokens: nNew, rules: 'hewitt2024', ignoreEos: true, everyPosition },
  );
  return { ms: now() - t0, same: JSON.stringify(ids) === JSON.stringify(cachedRun.ids) };
};
const paperLoop = await noCacheRun(true);
const lastLoop = await noCacheRun(false);
console.log(`\n2. vs the no-cache loop (full sequence every step, as the paper's code), ${nNew} new tokens:`);
console.log(
  `   LM head at every position, as the paper's code: ${cachedMs.toFixed(0)} ms vs ${paperLoop.ms.toFixed(0)} ms -> ${(paperLoop.ms / cachedMs).toFixed(1)}x (same tokens: ${paperLoop.same})`,
);
console.log(
  `   LM head at the last position only: ${lastLoop.ms.toFixed(0)} ms -> ${(lastLoop.ms / cachedMs).toFixed(1)}x (same tokens: ${lastLoop.same})`,
);
bench(
  `runtime: KV cache vs no-cache loop (${nNew} tokens)`,
  +(paperLoop.ms / cachedMs).toFixed(1),
  'x',
  '>= 10x, same tokens',
  paperLoop.ms / cachedMs >= 10 && paperLoop.same && lastLoop.same,
);
bench(
  `runtime: KV cache vs no-cache loop, LM head at the last position only (${nNew} tokens)`,
  +(lastLoop.ms / cachedMs).toFixed(1),
  'x',
  'report',
  lastLoop.same,
);

// 3. rules on vs off
const on = [];
const off = [];
for (let i = 0; i < RUNS; i++) {
  off.push((await ours(p64, 128, { rules: false })).ms);
  on.push((await ours(p64, 128, { rules: 'hewitt2024' })).ms);
}
// the rules' own cost per step, measured directly: section 1's 64-token prompt and the 128 tokens this
// engine generated for it, replayed through a fresh rule state (apply, then append the token) as
// decoding runs them, over and over: a round once to warm up, then the median of 5 rounds (one round
// is about 20 ms, so a single collection of the garbage of section 2 could double it)
const row = new Float32Array(model.info.vocabSize);
const replays = Math.ceil(20000 / generated128.length);
const replayRound = () => {
  const ta = now();
  for (let k = 0; k < replays; k++) {
    const state = rules.createState({ promptIds: p64, scopeStart: 0 });
    for (const id of generated128) {
      rules.apply(row, state);
      state.append(id);
    }
  }
  return ((now() - ta) * 1000) / (replays * generated128.length);
};
replayRound();
const rulesRounds = Array.from({ length: 5 }, replayRound);
const rulesUs = median(rulesRounds);
// a decoding step with the rules off: the 128-token run less the prefill and first token (section 1's
// 1-token run), over the 127 steps after it
const stepMs = (median(off) - median(r.o1)) / 127;
const diff = median(on) - median(off);
const range = (xs) => Math.max(...xs) - Math.min(...xs);
const spread = RUNS > 1 ? Math.max(range(on), range(off)) : null;
const noise =
  spread === null
    ? 'one run each, no spread measured'
    : `runs of each spread over up to ${spread.toFixed(0)} ms: ${Math.abs(diff) <= spread ? 'within' : 'beyond'} run-to-run noise`;
console.log(
  `\n3. rules on vs off (128 tokens): ${median(on).toFixed(0)} ms vs ${median(off).toFixed(0)} ms end to end (${((diff / median(off)) * 100).toFixed(1)} %; ${noise});`,
);
console.log(
  `   measured directly: rules apply + append ${rulesUs.toFixed(2)} us per step (median of 5 rounds, ${Math.min(...rulesRounds).toFixed(2)}-${Math.max(...rulesRounds).toFixed(2)}) = ${((rulesUs / 1000 / stepMs) * 100).toFixed(3)} % of a ${stepMs.toFixed(1)} ms decoding step`,
);
bench(
  'runtime: rules cost per decoding step',
  +((rulesUs / 1000 / stepMs) * 100).toFixed(3),
  '%',
  '< 2 %',
  rulesUs / 1000 / stepMs < 0.02,
);

// 4. batch 8 vs batch 1, interleaved (the machine's load drifts: each round measures both)
const prompts8 = Array.from({ length: 8 }, (_, i) => ({
  promptIds: promptOf(64, 200 + i * 64),
  scopeStart: 0,
}));
const gen = (p, n) => model.generate(p, { maxNewTokens: n, ignoreEos: true, rules: 'hewitt2024' });
const timed = async (f) => {
  const t = now();
  await f();
  return now() - t;
};
await gen(prompts8, 2); // warm-up at batch 8 (see 4b)
const b1 = [];
const b8 = [];
const d1 = [];
const d8 = [];
for (let round = 0; round < (quick ? 1 : 3); round++) {
  const two = prompts8.slice(round * 2, round * 2 + 2);
  const t1 = await timed(async () => {
    for (const p of two) await gen(p, 128);
  });
  b1.push((2 * 128) / (t1 / 1000));
  const t8 = await timed(() => gen(prompts8, 128));
  b8.push((8 * 128) / (t8 / 1000));
  // decode alone, as in 1.: the prefill (compute-bound: 8 prompts cost 8 times one) differenced out
  const p1 = await timed(() => gen(two[0], 1));
  const p8 = await timed(() => gen(prompts8, 1));
  d1.push(127 / ((t1 / 2 - p1) / 1000));
  d8.push((8 * 127) / ((t8 - p8) / 1000));
}
// what onnxruntime itself allows on this graph: bare decoding steps (logits only, a 128-position
// cache, no engine around them) at batch 8 vs batch 1
async function bareStep(batch, past, runs) {
  const s = model.session;
  const zeros = () =>
    new Ort.Tensor('float32', new Float32Array(batch * s.kvHeads * past * s.headDim), [
      batch,
      s.kvHeads,
      past,
      s.headDim,
    ]);
  const cache = Array.from({ length: s.layers * 2 }, zeros);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = now();
    await s.run({
      batch,
      seq: 1,
      inputIds: new BigInt64Array(batch).fill(5n),
      attentionMask: new BigInt64Array(batch * (past + 1)).fill(1n),
      positionIds: new BigInt64Array(batch).fill(BigInt(past)),
      past: cache,
      logitsFrom: -1,
      fetch: 'none',
    });
    times.push(now() - t);
  }
  return median(times);
}
const bare = [];
for (let round = 0; round < 3; round++)
  bare.push((8 * (await bareStep(1, 128, 9))) / (await bareStep(8, 128, 9)));
// the kernels' own ceilings: onnxruntime's product with one large weight (this shape's LM head,
// 49152 x 576 fp32, in a one-layer model) at 1 row (bytes/s: the best its matrix-vector product reaches
// here) and at 8 rows (how much batching can win when the weights are read once for all rows)
async function headKernel() {
  const headDir = await benchModelDir('lm-head', { numHiddenLayers: 1, intermediateSize: 8 });
  const m = await loadModel(headDir, { log: () => {} });
  const s = m.session;
  const step = (batch) => () =>
    s.run({
      batch,
      seq: 1,
      inputIds: new BigInt64Array(batch).fill(5n),
      attentionMask: new BigInt64Array(batch).fill(1n),
      positionIds: new BigInt64Array(batch),
      past: null,
      logitsFrom: -1,
      fetch: 'none',
    });
  for (let i = 0; i < 5; i++) {
    await step(1)();
    await step(8)();
  }
  const t1 = [];
  const t8 = [];
  for (let i = 0; i < 41; i++) {
    t1.push(await timed(step(1)));
    t8.push(await timed(step(8)));
  }
  const bytes = weightBytesPerToken(headDir);
  const flops = 2 * m.files.config.vocab_size * m.files.config.hidden_size;
  const headMB = (4 * m.files.config.vocab_size * m.files.config.hidden_size) / 1e6;
  await m.dispose();
  return {
    gemvGBs: bytes / (median(t1) / 1000) / 1e9,
    gemvMB: bytes / 1e6,
    headMB,
    batch8: (8 * median(t1)) / median(t8),
    gflops1: flops / (median(t1) / 1000) / 1e9,
    gflops8: (8 * flops) / (median(t8) / 1000) / 1e9,
  };
}
const head = await headKernel();
const b1Tps = median(b1);
const b8Tps = median(b8);
const decodeRatio = median(d8) / median(d1);
console.log(
  `\n4. throughput, 64-token prompts, 128 new tokens per row: batch 8 ${b8Tps.toFixed(1)} tok/s vs batch 1 ${b1Tps.toFixed(1)} tok/s -> ${(b8Tps / b1Tps).toFixed(2)}x end to end (rounds: ${b8.map((x, i) => (x / b1[i]).toFixed(2)).join(', ')})`,
);
console.log(
  `   decoding alone (prefill differenced out, as in 1.): ${median(d8).toFixed(1)} vs ${median(d1).toFixed(1)} tok/s -> ${decodeRatio.toFixed(2)}x; bare onnxruntime steps on this graph (128-position cache, logits only): ${median(bare).toFixed(2)}x`,
);
console.log(
  `   onnxruntime's product with the LM head alone (its weights read once for all rows): 8 rows vs 1 -> ${head.batch8.toFixed(2)}x (${head.gflops8.toFixed(0)} vs ${head.gflops1.toFixed(0)} GFLOP/s)`,
);
bench(
  'runtime: batch 8 vs batch 1 throughput',
  +(b8Tps / b1Tps).toFixed(2),
  'x',
  '>= 4x',
  b8Tps / b1Tps >= 4,
);
bench(
  'runtime: batch 8 vs batch 1 decode throughput (prefill excluded)',
  +decodeRatio.toFixed(2),
  'x',
  '>= 4x',
  decodeRatio >= 4,
);

// 4b. the same shape exported the way optimum exports llama-family models (MatMul linears; repeat_kv:
// K/V heads repeated with Expand at every step): this engine's patched attention vs the attention as
// exported, batch 8
const expandDir = await benchModelDir('optimum', { repeatKv: 'expand', linear: 'matmul' });
/**
 * One graph loaded two ways (`a`, `b`: a label and load options) side by side on the batch-8 workload
 * (64 new tokens, hewitt2024), rounds interleaved: prints median wall times, the ratio b / a and
 * whether every row got the same tokens, and records the ratio as `benchName`.
 */
async function batch8SideBySide(dir, what, a, b, benchName) {
  const models = [];
  for (const side of [a, b]) models.push(await loadModel(dir, { log: () => {}, ...side.options }));
  // warm-up: a model's first batch-8 generation ran about 0.5 s slower than the next ones (onnxruntime's
  // first runs at new shapes), which is no part of the comparison
  for (const m of models) await m.generate(prompts8, { maxNewTokens: 2, ignoreEos: true });
  const ms = [[], []];
  let same = true;
  for (let round = 0; round < (quick ? 1 : 3); round++) {
    const outs = [];
    for (const [i, m] of models.entries()) {
      const t = now();
      outs.push(await m.generate(prompts8, { maxNewTokens: 64, ignoreEos: true, rules: 'hewitt2024' }));
      ms[i].push(now() - t);
    }
    same &&=
      JSON.stringify(outs[0].map((r) => r.tokenIds)) === JSON.stringify(outs[1].map((r) => r.tokenIds));
  }
  const [ta, tb] = ms.map(median);
  const label = (side, m) => (typeof side.label === 'function' ? side.label(m.info) : side.label);
  console.log(
    `   ${what}, batch 8 x 64 tokens: ${label(a, models[0])} ${ta.toFixed(0)} ms vs ${label(b, models[1])} ${tb.toFixed(0)} ms -> ${(tb / ta).toFixed(2)}x (same tokens: ${same})`,
  );
  bench(benchName, +(tb / ta).toFixed(2), 'x', 'report', same);
  for (const m of models) await m.dispose();
}

await batch8SideBySide(
  expandDir,
  'optimum-style graph (MatMul linears, repeat_kv)',
  { label: (info) => `attention ${info.attention}`, options: {} },
  { label: 'as exported', options: { splitAttention: false } },
  'runtime: repeat_kv graph, patched vs exported attention (batch 8)',
);

// 4c. quantized weights: the same model's onnx/model_q4.onnx (modelkit: MatMulNBits, blocks of 32), at
// accuracy level 4 (int8 compute, as written) and 0 (float32 compute, what hub q4 files carry), and its
// onnx/model_quantized.onnx (q8: onnxruntime's dynamic quantization, as transformers.js's q8 files)
{
  const q4Dir = await benchModelDir('q4', { dtypes: ['q4'] });
  const q4Bytes = statSync(join(q4Dir, 'onnx', 'model_q4.onnx')).size;
  const q8Dir = await benchModelDir('q8', { dtypes: ['q8'] });
  const q8Bytes = statSync(join(q8Dir, 'onnx', 'model_quantized.onnx')).size;
  const variants = [
    ['fp32', model],
    ['q4', await loadModel(q4Dir, { dtype: 'q4', log: () => {} })],
    ['q4, level 0', await loadModel(q4Dir, { dtype: 'q4', q4AccuracyLevel: 0, log: () => {} })],
    ['q8', await loadModel(q8Dir, { dtype: 'q8', log: () => {} })],
  ];
  const run = (m, ids, n) =>
    m.generate({ promptIds: ids, scopeStart: 0 }, { maxNewTokens: n, ignoreEos: true, rules: 'hewitt2024' });
  for (const [, m] of variants) await run(m, p64, 4); // warm-up
  const t = Object.fromEntries(variants.map(([name]) => [name, { one: [], all: [], ttft: [], b8: [] }]));
  for (let i = 0; i < RUNS; i++) {
    for (const [name, m] of variants) {
      t[name].one.push(await timed(() => run(m, p64, 1)));
      t[name].all.push(await timed(() => run(m, p64, 128)));
      t[name].ttft.push(await timed(() => run(m, p512, 1)));
      t[name].b8.push(
        await timed(() => m.generate(prompts8, { maxNewTokens: 128, ignoreEos: true, rules: 'hewitt2024' })),
      );
    }
  }
  const decode = (name) => 127 / ((median(t[name].all) - median(t[name].one)) / 1000);
  const [d32, d4, d40, d8] = ['fp32', 'q4', 'q4, level 0', 'q8'].map(decode);
  const ttft = (name) => median(t[name].ttft);
  const b8 = (name) => (8 * 128) / (median(t[name].b8) / 1000);
  console.log(
    `\n4c. 4-bit weights (onnx/model_q4.onnx, ${(q4Bytes / 2 ** 20).toFixed(0)} MB vs ${(weightBytes / 2 ** 20).toFixed(0)} MB), this engine, hewitt2024:`,
  );
  console.log(
    `   batch-1 decode: q4 ${d4.toFixed(1)} tok/s, q4 at accuracy level 0 ${d40.toFixed(1)} tok/s, fp32 ${d32.toFixed(1)} tok/s -> ${(d4 / d32).toFixed(2)}x (level 0: ${(d40 / d32).toFixed(2)}x)`,
  );
  console.log(
    `   time to first token, 512-token prompt: q4 ${ttft('q4').toFixed(0)} ms, level 0 ${ttft('q4, level 0').toFixed(0)} ms, fp32 ${ttft('fp32').toFixed(0)} ms`,
  );
  console.log(
    `   batch 8 x 128 tokens: q4 ${b8('q4').toFixed(1)} tok/s, level 0 ${b8('q4, level 0').toFixed(1)} tok/s, fp32 ${b8('fp32').toFixed(1)} tok/s -> ${(b8('q4') / b8('fp32')).toFixed(2)}x`,
  );
  bench('runtime: q4 vs fp32 batch-1 decode', +(d4 / d32).toFixed(2), 'x', 'report', true);
  console.log(
    `   q8 (onnx/model_quantized.onnx, ${(q8Bytes / 2 ** 20).toFixed(0)} MB; LM head over every prompt position, prompts whole): batch-1 decode ${d8.toFixed(1)} tok/s -> ${(d8 / d32).toFixed(2)}x fp32; first token of 512 ${ttft('q8').toFixed(0)} ms; batch 8 ${b8('q8').toFixed(1)} tok/s -> ${(b8('q8') / b8('fp32')).toFixed(2)}x`,
  );
  bench('runtime: q8 vs fp32 batch-1 decode', +(d8 / d32).toFixed(2), 'x', 'report', true);
  for (const [, m] of variants.slice(1)) await m.dispose();
}

// 4d. the same model as a merged decoder (decoder_model_merged.onnx: one If on use_cache_branch, as
// older optimum and transformers.js exports have it): both branches patched (logits sliced, new
// keys/values as outputs) vs the graph as exported (every position's logits, present.* fed back)
await batch8SideBySide(
  await benchModelDir('merged', { merged: true }),
  'merged decoder (If on use_cache_branch)',
  { label: 'both branches patched', options: {} },
  { label: 'as exported', options: { sliceLogits: false, cacheOutputs: false } },
  'runtime: merged decoder, patched vs as exported (batch 8)',
);

// 5. roofline: bytes read per decoded token vs this machine's memory bandwidth
// read bandwidth with native scans (memchr over zeroed buffers, 1 GiB per thread): `k` threads scan at
// once, started together by a barrier, each round's bandwidth the bytes of all k scans over the time
// from the first start to the last end. A sum of each thread's own best would add up rounds that did
// not overlap (a thread scanning while the others still fill their buffers) and count the machine's
// bandwidth about twice on 2 cores.
// One set of buffers gives the same figure round after round, but fresh buffers do not: on this VM two
// threads read 27-33 GB/s from most placements of their pages and about 46 GB/s from a few (one thread
// reads 22 GB/s from all of them). So each thread count is measured on `placements` fresh sets of buffers,
// each the best of 5 rounds, and the machine's bandwidth is the median placement of the best k; the
// range is printed with it, and the roofline against the best placement too.
async function bandwidth(placements = 7) {
  const cores = cpus().length;
  const counts = [
    ...new Set([...Array.from({ length: (Math.log2(cores) + 1) | 0 }, (_, i) => 2 ** i), cores]),
  ];
  const code = `const { parentPort, workerData } = require('node:worker_threads');
    const { sab, k, rounds } = workerData; const sync = new Int32Array(sab);
    const buf = Buffer.allocUnsafe(2 ** 30).fill(0); // written: untouched pages all map the one zero page
    const spans = [];
    for (let r = 0; r < rounds; r++) {
      // barrier: the last thread to arrive starts round r for all
      if (Atomics.add(sync, 0, 1) === (r + 1) * k - 1) { Atomics.store(sync, 1, r + 1); Atomics.notify(sync, 1); }
      else while (Atomics.load(sync, 1) < r + 1) Atomics.wait(sync, 1, r);
      const t = process.hrtime.bigint();
      if (buf.indexOf(1) !== -1) throw new Error('x');
      spans.push([Number(t) / 1e6, Number(process.hrtime.bigint()) / 1e6]);
    }
    parentPort.postMessage(spans);`;
  const placement = async (k) => {
    const rounds = 5;
    const sab = new SharedArrayBuffer(8);
    const spans = await Promise.all(
      Array.from(
        { length: k },
        () =>
          new Promise((res, rej) =>
            new Worker(code, { eval: true, workerData: { sab, k, rounds } })
              .once('message', res)
              .once('error', rej),
          ),
      ),
    );
    let best = 0;
    for (let r = 0; r < rounds; r++) {
      const ms = Math.max(...spans.map((s) => s[r][1])) - Math.min(...spans.map((s) => s[r][0]));
      best = Math.max(best, (k * 2 ** 30) / (ms / 1000) / 1e9);
    }
    return best;
  };
  let out = { gbs: 0 };
  for (const k of counts) {
    const each = [];
    for (let i = 0; i < placements; i++) each.push(await placement(k));
    const gbs = median(each);
    if (gbs > out.gbs) out = { gbs, threads: k, placements, min: Math.min(...each), max: Math.max(...each) };
  }
  return out;
}
const gemv = head.gemvGBs;
const kvBytesPerToken = model.info.layers * 2 * model.info.kvHeads * model.info.headDim * 4 * (64 + 64); // mean context 128
const bytesPerToken = weightBytesPerToken(dir) + kvBytesPerToken;
const achieved = (decodeOurs * bytesPerToken) / 1e9;
console.log(
  `\n5. roofline: ${decodeOurs.toFixed(1)} tok/s x ${(bytesPerToken / 1e6).toFixed(0)} MB/token = ${achieved.toFixed(1)} GB/s; measured read bandwidth ${bw.gbs.toFixed(1)} GB/s (${bw.threads} threads, the median of ${bw.placements} placements of the buffers, ${bw.min.toFixed(1)}-${bw.max.toFixed(1)} GB/s, right after the decode runs of 1.) -> ${((achieved / bw.gbs) * 100).toFixed(0)} % (${((achieved / bw.max) * 100).toFixed(0)} % of the best placement)`,
);
console.log(
  `   onnxruntime's own matrix-vector product over a one-layer model's ${head.gemvMB.toFixed(0)} MB of weights (${head.headMB.toFixed(0)} MB of it the LM head) reaches ${gemv.toFixed(1)} GB/s (${((gemv / bw.gbs) * 100).toFixed(0)} % of the bandwidth): decoding runs at ${((achieved / gemv) * 100).toFixed(0)} % of that kernel ceiling`,
);
bench(
  'runtime: roofline (decode bytes/s over measured bandwidth)',
  +((achieved / bw.gbs) * 100).toFixed(0),
  '%',
  '>= 60 %',
  achieved / bw.gbs >= 0.6,
);

// 6. the evaluation workload
const n6 = quick ? 8 : 64;
const tasks = instructions.slice(0, n6);
const te0 = now();
const batched = await model.generate(tasks, { maxNewTokens: 128, rules: 'hewitt2024' }); // the engine batches as it sees fit
const oursMs = now() - te0;
const th0 = now();
let identical = 0;
for (const [i, instruction] of tasks.entries()) {
  const p = model.prompt(instruction);
  const list = new LogitsProcessorList();
  list.push(await transformersRulesProcessor(rules, p));
  const out = await hf.generate({
    input_ids: new Tensor('int64', BigInt64Array.from(p.ids, BigInt), [1, p.ids.length]),
    attention_mask: new Tensor('int64', new BigInt64Array(p.ids.length).fill(1n), [1, p.ids.length]),
    max_new_tokens: 128,
    do_sample: false,
    logits_processor: list,
  });
  const theirIds = Array.from(out.data, Number).slice(p.ids.length);
  if (JSON.stringify(theirIds) === JSON.stringify(batched[i].tokenIds)) identical++;
}
const theirMs = now() - th0;
const tokens = batched.reduce((a, b) => a + b.tokenIds.length, 0);
console.log(
  `\n6. evaluation workload: ${n6} alpaca_eval instructions, <= 128 new tokens, hewitt2024 (${tokens} tokens generated):`,
);
console.log(
  `   this engine (continuous batching, up to ${model.info.maxBatchSize} rows) ${(oursMs / 1000).toFixed(1)} s vs transformers.js one after another ${(theirMs / 1000).toFixed(1)} s -> ${(theirMs / oursMs).toFixed(2)}x; identical outputs ${identical}/${n6}`,
);
bench(
  `runtime: eval workload (${n6} instructions) wall time vs transformers.js`,
  +(theirMs / oursMs).toFixed(2),
  'x',
  '>= 3x',
  theirMs / oursMs >= 3,
);
bench('runtime: eval workload identical outputs', identical, `/${n6}`, `${n6}/${n6}`, identical === n6);
await hf.dispose();
await model.dispose();

// 7. the same engine with its session in a worker thread (loadModelInWorker, what `implicit-it serve`
// runs): throughput of 8 concurrent streams, and the caller's longest event-loop gap while one
// 512-token prompt is answered (a server answers nothing, /health included, during such a gap)
{
  const inThread = await loadModel(dir, { log: () => {} });
  const inWorker = await loadModelInWorker(dir, { log: () => {} });
  const kinds = [
    ['this thread', inThread],
    ['worker thread', inWorker],
  ];
  const streamsOf = async (m) => {
    let tokens = 0;
    const one = async (i) => {
      const input = { promptIds: promptOf(64, 64 * i), scopeStart: 0 };
      for await (const part of m.stream(input, { maxNewTokens: 64, ignoreEos: true, rules: 'hewitt2024' }))
        if (part.type === 'token') tokens++;
    };
    const t0 = now();
    await Promise.all(Array.from({ length: 8 }, (_, i) => one(i)));
    return tokens / ((now() - t0) / 1000);
  };
  const gapOf = async (m) => {
    let last = now();
    let gap = 0;
    const timer = setInterval(() => {
      gap = Math.max(gap, now() - last);
      last = now();
    }, 5);
    await m.generate({ promptIds: promptOf(512), scopeStart: 0 }, { maxNewTokens: 16, ignoreEos: true });
    clearInterval(timer);
    return Math.max(gap, now() - last);
  };
  for (const [, m] of kinds) await streamsOf(m); // warm-up
  const t = Object.fromEntries(kinds.map(([k]) => [k, { tps: [], gap: [] }]));
  for (let r = 0; r < RUNS; r++)
    for (const [k, m] of kinds) {
      t[k].tps.push(await streamsOf(m));
      t[k].gap.push(await gapOf(m));
    }
  const tps = (k) => median(t[k].tps);
  const gap = (k) => median(t[k].gap);
  console.log('\n7. the session in a worker thread (loadModelInWorker) vs on this thread (loadModel):');
  console.log(
    `   8 concurrent streams x 64 tokens: worker ${tps('worker thread').toFixed(1)} tok/s vs this thread ${tps('this thread').toFixed(1)} tok/s -> ${(tps('worker thread') / tps('this thread')).toFixed(2)}x`,
  );
  console.log(
    `   longest wait of this thread's event loop while a 512-token prompt is answered: ${gap('this thread').toFixed(0)} ms on this thread, ${gap('worker thread').toFixed(0)} ms with the worker`,
  );
  bench(
    'runtime: worker thread vs this thread, 8 streams',
    +(tps('worker thread') / tps('this thread')).toFixed(2),
    'x',
    'report',
    true,
  );
  bench(
    'runtime: event-loop gap during a 512-token prompt, this thread / worker',
    +(gap('this thread') / gap('worker thread')).toFixed(1),
    'x',
    'report',
    true,
  );
  await inThread.dispose();
  await inWorker.dispose();
}
