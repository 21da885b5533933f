#!/usr/bin/env node
// Teacher-forced scoring (`Model.score`, what the evaluation's response ranking and token-shift
// analysis run on, and the API's echoed prompt log-probs): each scored position needs log Σ exp of its
// logits over the whole vocabulary. Under the base model the engine has onnxruntime sum a row's scored
// positions at once (float64, vectorized, on its threads); under rules it sums each changed row in JS.
// A rule set that changes nothing (a uniform rule without entries: the very same log-probs) takes the
// JS way: the two are measured side by side, interleaved in rounds, on the smollm2-135m shape (49,152
// ids) and on a small shape with that vocabulary, where the sums are most of the work.
// Generation's log-probs (the API's `logprobs`) sum each step's processed rows at once the same way:
// their cost is measured against generating without them.
import { loadModel } from '../dist/index.js';
import { bench, benchModelDir, median, promptMaker } from './bench-model.mjs';

const quick = process.env.BENCH_QUICK === '1';
const ROUNDS = quick ? 1 : 3;
const ITEMS = quick ? 4 : 16;
const LENGTHS = [40, 310, 120, 200, 75, 260, 160, 30];
const UNCHANGED = { uniform: { entries: [] } };
const SMALL = {
  numHiddenLayers: 2,
  hiddenSize: 64,
  intermediateSize: 128,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
};

console.log(
  `score(): ${ITEMS} items of 64 prompt + ${LENGTHS.join('/')} continuation tokens, base model; median of ${ROUNDS} rounds`,
);
for (const [label, name, options] of [
  ['smollm2-135m shape', '', {}],
  ['2 layers x 64, 49,152 ids', 'small-vocab', SMALL],
]) {
  const model = await loadModel(await benchModelDir(name, options), { log: () => {} });
  const promptOf = promptMaker(model);
  const items = Array.from({ length: ITEMS }, (_, i) => ({
    prompt: { promptIds: promptOf(64, i * 500), scopeStart: 0 },
    continuation: promptOf(LENGTHS[i % LENGTHS.length], i * 500 + 64), // of mixed lengths, as responses are
  }));
  await model.score(items.slice(0, 2)); // warm-up: both ways, the log-sum-exp session opened
  await model.score(items.slice(0, 2), { rules: UNCHANGED });
  const js = [];
  const onnx = [];
  let diff = 0;
  for (let round = 0; round < ROUNDS; round++) {
    let t = performance.now();
    const a = await model.score(items, { rules: UNCHANGED });
    js.push(performance.now() - t);
    t = performance.now();
    const b = await model.score(items);
    onnx.push(performance.now() - t);
    for (const [i, r] of a.entries())
      for (const [j, lp] of r.logprobs.entries()) diff = Math.max(diff, Math.abs(lp - b[i].logprobs[j]));
  }
  const ratio = median(js) / median(onnx);
  console.log(
    `   ${label}: sums in onnxruntime ${median(onnx).toFixed(0)} ms vs in JS ${median(js).toFixed(0)} ms -> ${ratio.toFixed(2)}x (largest log-prob difference ${diff.toExponential(1)})`,
  );
  bench(
    `runtime: score() base model, log-sum-exp in onnxruntime vs JS (${label})`,
    +ratio.toFixed(2),
    'x',
    'report',
    true,
  );
  await model.dispose();
}

// generation's log-probs: the time of generating with them over the time without, each round both
{
  const TOKENS = quick ? 16 : 64;
  const model = await loadModel(await benchModelDir(), { log: () => {} });
  const promptOf = promptMaker(model);
  const prompts = Array.from({ length: 8 }, (_, i) => ({
    promptIds: promptOf(64, 300 + i * 64),
    scopeStart: 0,
  }));
  console.log(
    `\ngenerate(): ${TOKENS} new tokens a row, hewitt2024, with log-probs (top 5) vs without, median of ${ROUNDS + 2} rounds`,
  );
  for (const [label, input] of [
    ['batch 8', prompts],
    ['batch 1', prompts[0]],
  ]) {
    await model.generate(input, { maxNewTokens: 2, logprobs: 5 }); // warm-up, the sum session opened
    const [without, withLogprobs, ratios] = [[], [], []];
    for (let round = 0; round < ROUNDS + 2; round++) {
      for (const [times, options] of [
        [without, {}],
        [withLogprobs, { logprobs: 5 }],
      ]) {
        const t = performance.now();
        await model.generate(input, {
          maxNewTokens: TOKENS,
          ignoreEos: true,
          rules: 'hewitt2024',
          ...options,
        });
        times.push(performance.now() - t);
      }
      ratios.push(withLogprobs.at(-1) / without.at(-1));
    }
    const ratio = median(ratios);
    console.log(
      `   ${label}: ${median(withLogprobs).toFixed(0)} ms vs ${median(without).toFixed(0)} ms -> ${ratio.toFixed(2)}x the time (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
    );
    bench(`runtime: generate() with log-probs vs without (${label})`, +ratio.toFixed(2), 'x', 'report', true);
  }
  await model.dispose();
}
