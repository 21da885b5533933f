#!/usr/bin/env node
// What `n` buys a client of the API: 8 samples of one prompt asked as one request with n = 8, as 8
// requests at once (n = 1 each), and as 8 requests one after another, through the app (`serve`'s
// routes, in process), on a smollm2-135m-shaped modelkit model (random weights, the SmolLM tokenizer
// from ../shared when present) in a worker thread, as `implicit-it serve` runs it; CPU, sampled,
// hewitt2024, 64 new tokens each (EOS biased away, so every choice runs its 64 steps); then 8 choices
// of one 512-token prompt (which the runtime prefills once) vs 8 different prompts of that length.
// Every figure is a ratio measured side by side in this one run (runs interleaved, medians).
import { cpus } from 'node:os';
import { loadModelInWorker } from '@implicit-it/runtime';
// the runtime bench's model (its directory shared by both benches) and helpers
import { bench, benchModelDir, median } from '../../../packages/runtime/bench/bench-model.mjs';
import { createApp } from '../dist/index.js';

const quick = process.env.BENCH_QUICK === '1';
const RUNS = quick ? 1 : 3;
const N = 8;
const TOKENS = 64;
const dir = await benchModelDir();
const model = await loadModelInWorker(dir, { log: () => {} });
const app = createApp({ models: [{ id: 'bench', model }], log: () => {}, concurrency: N, playground: false });
console.log(`model: ${dir}, in a worker thread`);
console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}`);

const eos = model.info.eosIds[0];
const body = (extra) => ({
  model: 'bench',
  messages: [{ role: 'user', content: 'Write a short story about a lighthouse keeper and a storm.' }],
  max_tokens: TOKENS,
  temperature: 0.8,
  logit_bias: { [eos]: -100 },
  ...extra,
});
async function chat(extra) {
  const res = await app.request('/v1/chat/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body(extra)),
  });
  if (res.status !== 200) throw new Error(`${res.status}: ${await res.text()}`);
  return res.json();
}
/** Wall time of `work` and the completion tokens it got. */
async function timed(work) {
  const t0 = performance.now();
  const responses = await work();
  const ms = performance.now() - t0;
  const tokens = responses.reduce((sum, r) => sum + r.usage.completion_tokens, 0);
  if (tokens !== N * TOKENS) throw new Error(`expected ${N * TOKENS} tokens, got ${tokens}`);
  return ms;
}
const ways = {
  'one request, n = 8': () => chat({ n: N, seed: 1 }).then((r) => [r]),
  '8 requests at once': () => Promise.all(Array.from({ length: N }, (_, i) => chat({ seed: i }))),
  '8 requests one after another': async () => {
    const out = [];
    for (let i = 0; i < N; i++) out.push(await chat({ seed: i }));
    return out;
  },
};
await chat({ n: 2, max_tokens: 4 }); // warm-up
const t = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
for (let r = 0; r < RUNS; r++) for (const [k, work] of Object.entries(ways)) t[k].push(await timed(work));

// 2. long prompts: n = 8 of one 512-token prompt (prefilled once, its cache copied to the 8 rows) vs
// 8 different prompts of 512 tokens (8 prefills), 16 new tokens each
const LONG = 512;
const SHORT_OUT = 16;
const corpus = model.tokenizer.encode(
  Array.from({ length: 200 }, (_, i) => `Paragraph ${i}: the lighthouse keeper wrote in his log.`).join('\n'),
  { addSpecialTokens: false },
);
const promptAt = (i) => corpus.slice(i * 37, i * 37 + LONG);
if (promptAt(7).length < LONG) throw new Error('the corpus is too short for 8 prompts');
async function complete(prompt, n) {
  const res = await app.request('/v1/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'bench', prompt, n, max_tokens: SHORT_OUT, logit_bias: { [eos]: -100 } }),
  });
  if (res.status !== 200) throw new Error(`${res.status}: ${await res.text()}`);
  const body = await res.json();
  const choices = (Array.isArray(prompt[0]) ? prompt.length : 1) * n;
  if (body.usage.completion_tokens !== choices * SHORT_OUT) throw new Error('short of tokens');
}
const long = { same: [], different: [] };
await complete(promptAt(0), 2); // warm-up
for (let r = 0; r < RUNS; r++) {
  let t0 = performance.now();
  await complete(promptAt(0), N);
  long.same.push(performance.now() - t0);
  t0 = performance.now();
  await complete(
    Array.from({ length: N }, (_, i) => promptAt(i)),
    1,
  );
  long.different.push(performance.now() - t0);
}
await model.dispose();

const ms = (k) => median(t[k]);
const tps = (k) => (N * TOKENS) / (ms(k) / 1000);
console.log(`\n8 samples of one chat prompt, ${TOKENS} tokens each, through the API (median of ${RUNS}):`);
for (const k of Object.keys(ways))
  console.log(
    `   ${k.padEnd(30)} ${ms(k).toFixed(0).padStart(6)} ms  ${tps(k).toFixed(1).padStart(6)} tok/s`,
  );
const vsSequential = ms('8 requests one after another') / ms('one request, n = 8');
const vsConcurrent = ms('8 requests at once') / ms('one request, n = 8');
console.log(
  `   n = 8 vs one after another: ${vsSequential.toFixed(2)}x; vs 8 concurrent requests: ${vsConcurrent.toFixed(2)}x`,
);
bench(
  'api: one request with n = 8 vs 8 requests one after another',
  +vsSequential.toFixed(2),
  'x',
  'report',
  true,
);
bench('api: one request with n = 8 vs 8 concurrent requests', +vsConcurrent.toFixed(2), 'x', 'report', true);
const sharedPrefill = median(long.different) / median(long.same);
console.log(
  `\n8 choices of ${LONG}-token prompts, ${SHORT_OUT} tokens each (median of ${RUNS}): n = 8 of one prompt (one prefill) ${median(long.same).toFixed(0)} ms vs 8 different prompts ${median(long.different).toFixed(0)} ms -> ${sharedPrefill.toFixed(2)}x`,
);
bench(
  'api: n = 8 of one 512-token prompt vs 8 different prompts',
  +sharedPrefill.toFixed(2),
  'x',
  'report',
  true,
);
