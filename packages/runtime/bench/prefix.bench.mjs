#!/usr/bin/env node
// The prefix cache (LoadOptions.prefixCache) on the smollm2-135m-shaped bench model, CPU: time to
// first token of prompts that begin as an earlier one, with the cache vs without, measured side by
// side (the two models alternate on each prompt). Workloads:
//   - a conversation: each turn re-sends the history (the last prompt, a reply, a new question), the
//     replies written elsewhere (edited, or tokenized otherwise), so only the last prompt is reused;
//   - requests sharing a long preamble (a system prompt, few-shot examples) before short questions;
//   - a chat with the model's own replies, which the cache keeps with their prompts;
//   - requests sharing a preamble arriving together at an empty cache (one prefills it for the rest),
//     and what the kept prompts weigh (the preamble held once);
//   - loglikelihood requests as lm-evaluation-harness sends them: answers after one context, each
//     prompt's log-probs asked (promptLogprobs).
// Prints a report and `BENCH {...}` lines.
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../dist/index.js';
import { bench, benchModelDir, median, promptMaker } from './bench-model.mjs';

const quick = process.env.BENCH_QUICK === '1';
const now = () => performance.now();

const dir = await benchModelDir();
const fresh = await loadModel(dir, { log: () => {} });
const reusing = await loadModel(dir, { log: () => {}, prefixCache: 512 << 20 });
console.log(`model: ${dir}; machine: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}`);
const promptOf = promptMaker(fresh);
const opts = { maxNewTokens: 1, rules: 'hewitt2024' };

/** Time to the first token of `ids` on `model`, and that token. */
async function ttft(model, ids) {
  const t0 = now();
  const [out] = await model.generate({ promptIds: ids, scopeStart: 0 }, opts);
  return { ms: now() - t0, token: out.tokenIds[0], cached: out.usage.cachedTokens ?? 0 };
}

// warm-up at these lengths (first runs at new shapes are slower), then an empty cache
for (const model of [fresh, reusing]) await ttft(model, promptOf(600, 5000));
reusing.clearPrefixCache();

let mismatches = 0;
async function side(ids) {
  const a = await ttft(fresh, ids);
  const b = await ttft(reusing, ids);
  if (a.token !== b.token) mismatches++;
  return { fresh: a.ms, reusing: b.ms, cached: b.cached };
}

// 1. a conversation: a 256-token first prompt, then each turn adds a 96-token reply (not the model's:
// the cache has not seen it) and a 32-token question
const turns = quick ? 4 : 8;
const text = promptOf(256 + turns * 128, 100);
const rows = [];
for (let t = 0; t < turns; t++)
  rows.push({ length: 256 + t * 128, ...(await side(text.slice(0, 256 + t * 128))) });
console.log(
  '\n1. a conversation, each turn re-sending the history, replies not generated here (time to first token, ms):',
);
for (const r of rows)
  console.log(
    `   ${String(r.length).padStart(5)} tokens: without ${r.fresh.toFixed(0).padStart(5)}, with ${r.reusing.toFixed(0).padStart(5)} (${r.cached} reused)`,
  );
const later = rows.slice(1);
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const turnsRatio = sum(later.map((r) => r.fresh)) / sum(later.map((r) => r.reusing));
console.log(
  `   turns 2-${turns}: ${sum(later.map((r) => r.fresh)).toFixed(0)} ms vs ${sum(later.map((r) => r.reusing)).toFixed(0)} ms -> ${turnsRatio.toFixed(2)}x`,
);
bench(
  `runtime: prefix cache, conversation turns 2-${turns} TTFT`,
  +turnsRatio.toFixed(2),
  'x',
  'report',
  mismatches === 0,
);

// 2. a shared 512-token preamble, then questions of 24 tokens
const preamble = promptOf(512, 3000);
const questions = Array.from({ length: quick ? 4 : 8 }, (_, i) => promptOf(24, 8000 + i * 40));
reusing.clearPrefixCache();
const shared = [];
for (const q of questions) shared.push(await side([...preamble, ...q]));
const rest = shared.slice(1); // the first one fills the cache
const sharedRatio = median(rest.map((r) => r.fresh)) / median(rest.map((r) => r.reusing));
console.log(
  `\n2. ${questions.length} requests sharing a 512-token preamble, 24-token questions: median TTFT ${median(rest.map((r) => r.fresh)).toFixed(0)} ms vs ${median(rest.map((r) => r.reusing)).toFixed(0)} ms -> ${sharedRatio.toFixed(2)}x (the first request, which fills the cache: ${shared[0].fresh.toFixed(0)} vs ${shared[0].reusing.toFixed(0)} ms)`,
);
bench(
  'runtime: prefix cache, shared 512-token preamble TTFT',
  +sharedRatio.toFixed(2),
  'x',
  'report',
  mismatches === 0,
);
// 3. a chat with the model's own replies: each turn re-sends the last prompt, the 64-token reply the
// model gave to it (generated with the cache, which keeps prompt and reply), and a 32-token question
reusing.clearPrefixCache();
const chatTurns = quick ? 3 : 6;
const chat = [];
let history = promptOf(256, 12000);
for (let t = 0; t < chatTurns; t++) {
  const row = { length: history.length, ...(await side(history)) };
  chat.push(row);
  const [reply] = await reusing.generate(
    { promptIds: history, scopeStart: 0 },
    { maxNewTokens: 64, rules: 'hewitt2024', ignoreEos: true },
  );
  history = [...history, ...reply.tokenIds, ...promptOf(32, 14000 + t * 40)];
}
console.log("\n3. a chat, each turn re-sending the model's own last reply (time to first token, ms):");
for (const r of chat)
  console.log(
    `   ${String(r.length).padStart(5)} tokens: without ${r.fresh.toFixed(0).padStart(5)}, with ${r.reusing.toFixed(0).padStart(5)} (${r.cached} reused)`,
  );
const chatLater = chat.slice(1);
const chatRatio = sum(chatLater.map((r) => r.fresh)) / sum(chatLater.map((r) => r.reusing));
console.log(
  `   turns 2-${chatTurns}: ${sum(chatLater.map((r) => r.fresh)).toFixed(0)} ms vs ${sum(chatLater.map((r) => r.reusing)).toFixed(0)} ms -> ${chatRatio.toFixed(2)}x`,
);
bench(
  `runtime: prefix cache, chat turns 2-${chatTurns} with the model's replies TTFT`,
  +chatRatio.toFixed(2),
  'x',
  'report',
  mismatches === 0,
);

// 4. requests arriving together at an empty cache, sharing a 512-token preamble: one is prefilled
// first, the others go on from its preamble (first tokens compared row by row)
reusing.clearPrefixCache();
const burst = Array.from({ length: 8 }, (_, i) => ({
  promptIds: [...preamble, ...promptOf(24, 9000 + i * 40)],
  scopeStart: 0,
}));
const burstRuns = [];
for (let round = 0; round < (quick ? 1 : 3); round++) {
  const times = {};
  for (const [name, model] of [
    ['fresh', fresh],
    ['reusing', reusing],
  ]) {
    model.clearPrefixCache();
    const t0 = now();
    const out = await model.generate(burst, opts);
    times[name] = {
      ms: now() - t0,
      tokens: out.map((r) => r.tokenIds[0]),
      cached: out.map((r) => r.usage.cachedTokens ?? 0),
    };
  }
  times.fresh.tokens.forEach((t, i) => {
    if (t !== times.reusing.tokens[i]) mismatches++;
  });
  burstRuns.push(times);
}
const burstRatio = median(burstRuns.map((r) => r.fresh.ms)) / median(burstRuns.map((r) => r.reusing.ms));
console.log(
  `\n4. 8 requests arriving together at an empty cache, sharing a 512-token preamble (24-token questions), all first tokens: ${median(burstRuns.map((r) => r.fresh.ms)).toFixed(0)} ms vs ${median(burstRuns.map((r) => r.reusing.ms)).toFixed(0)} ms -> ${burstRatio.toFixed(2)}x (reused per request: ${burstRuns[0].reusing.cached.join(', ')})`,
);
bench(
  'runtime: prefix cache, 8 requests sharing a 512-token preamble at once',
  +burstRatio.toFixed(2),
  'x',
  'report',
  mismatches === 0,
);

// what the 8 kept prompts weigh: the preamble is held once, each prompt holding only its question
const burstStats = reusing.prefixCacheStats;
const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
const perPosition = config.num_hidden_layers * 2 * config.num_key_value_heads * headDim * 4;
const separate = sum(burst.map((p) => p.promptIds.length)) * perPosition;
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
console.log(
  `   kept: ${burstStats.entries} prompts in ${mb(burstStats.bytes)} of keys/values; each on its own copy: ${mb(separate)} -> ${(separate / burstStats.bytes).toFixed(2)}x less`,
);
bench(
  'runtime: prefix cache, memory of 8 prompts sharing a 512-token preamble, own copies vs shared',
  +(separate / burstStats.bytes).toFixed(2),
  'x',
  'report',
  burstStats.entries === burst.length,
);

// 5. loglikelihood requests as lm-evaluation-harness sends them: questions after a shared few-shot
// preamble, each with 4 one-token answers, every prompt scored whole (promptLogprobs); one at a time
// (its default batch size), then 8 prompts a request (batch_size=8: two questions' answers). With
// the cache, a prompt kept with its log-probs serves the next: an answer's context is run once, and
// the preamble once for all questions.
const llQuestions = quick ? 2 : 6;
const fewShot = promptOf(256, 12000);
const requests = [];
for (let q = 0; q < llQuestions; q++) {
  const context = [...fewShot, ...promptOf(64, 14000 + q * 100)];
  for (const answer of promptOf(4, 13000 + q * 7)) requests.push([...context, answer]);
}
const promptTokens = sum(requests.map((r) => r.length));
const scoreOpts = { maxNewTokens: 0, promptLogprobs: 1 };
for (const batch of [1, 8]) {
  const llRuns = [];
  let llWorst = 0;
  for (let round = 0; round < (quick ? 1 : 3); round++) {
    const times = {};
    const answers = {};
    for (const [name, model] of [
      ['fresh', fresh],
      ['reusing', reusing],
    ]) {
      model.clearPrefixCache();
      const t0 = now();
      answers[name] = [];
      let cached = 0;
      for (let at = 0; at < requests.length; at += batch) {
        const inputs = requests.slice(at, at + batch).map((promptIds) => ({ promptIds, scopeStart: 0 }));
        for (const r of await model.generate(inputs, scoreOpts)) {
          answers[name].push(r.promptLogprobs.at(-1).logprob);
          cached += r.usage.cachedTokens ?? 0;
        }
      }
      times[name] = { ms: now() - t0, cached };
    }
    answers.fresh.forEach((lp, i) => {
      llWorst = Math.max(llWorst, Math.abs(lp - answers.reusing[i]));
    });
    llRuns.push(times);
  }
  const llRatio = median(llRuns.map((r) => r.fresh.ms)) / median(llRuns.map((r) => r.reusing.ms));
  const how = batch === 1 ? 'one at a time' : `${batch} prompts a request`;
  console.log(
    `${batch === 1 ? '\n5.' : '  '} ${requests.length} loglikelihood requests, ${how} (${llQuestions} questions after a 256-token few-shot preamble, 64-token questions, 4 one-token answers each; promptLogprobs 1): ${median(llRuns.map((r) => r.fresh.ms)).toFixed(0)} ms vs ${median(llRuns.map((r) => r.reusing.ms)).toFixed(0)} ms -> ${llRatio.toFixed(2)}x (${llRuns[0].reusing.cached} of ${promptTokens} prompt positions reused; answers' log-probs within ${llWorst.toExponential(1)})`,
  );
  bench(
    `runtime: prefix cache, lm-eval loglikelihood requests, ${how} (4 answers per question, shared few-shot preamble)`,
    +llRatio.toFixed(2),
    'x',
    'report',
    llWorst < 1e-3,
  );
}

console.log(
  `\nfirst tokens ${mismatches === 0 ? 'identical' : `DIFFERENT in ${mismatches} prompt(s)`} with and without the cache; cache: ${JSON.stringify(reusing.prefixCacheStats)}`,
);
await Promise.all([fresh.dispose(), reusing.dispose()]);
