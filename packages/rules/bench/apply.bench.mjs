// Cost of the hewitt2024 rules per decoding step, next to the unavoidable O(V) work of greedy decoding
// (one argmax over the logits row). Measured side by side, interleaved, in one run.
import { argmax, compileRules, createVocabulary, HEWITT2024_UNIFORM } from '../dist/index.js';

const V = 49152;
const USED = 300;
const surfaces = Array.from({ length: V }, (_, i) => `t${i}`);
// the spec's 15 surfaces, spread over the vocabulary so every uniform entry resolves
for (const [i, { text }] of HEWITT2024_UNIFORM.entries()) surfaces[1000 + i * 7] = text;
const vocab = createVocabulary({ surfaces, eosIds: [0] });
const rules = compileRules('hewitt2024', vocab);

// a prompt of 300 distinct ids in scope: 300 used tokens
const prompt = Array.from({ length: USED }, (_, i) => (i * 163) % V);
const state = rules.createState({ promptIds: prompt, scopeStart: 0 });
const row = new Float32Array(V).map((_, i) => Math.sin(i) * 3);

function time(fn, iters) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) fn(i);
  return Number(process.hrtime.bigint() - start) / iters;
}

let sink = 0;
const rulesStep = (i) => {
  rules.apply(row, state);
  state.append(prompt[i % USED]); // keeps the used set at 300 ids; t grows as in decoding
};
const argmaxStep = () => {
  sink += argmax(row);
};
// warm up both, then interleave rounds and keep the median of each
for (let i = 0; i < 3; i++) {
  time(rulesStep, 20000);
  time(argmaxStep, 2000);
}
const rulesNs = [];
const argmaxNs = [];
for (let round = 0; round < 15; round++) {
  rulesNs.push(time(rulesStep, 20000));
  argmaxNs.push(time(argmaxStep, 2000));
}
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
const r = median(rulesNs);
const a = median(argmaxNs);
const pct = (100 * r) / a;
console.log(`vocabulary ${V}, used tokens ${USED}, rules hewitt2024 (${rules.enabled.join(', ')})`);
console.log(`rules apply + state append: ${r.toFixed(0)} ns/step`);
console.log(`argmax over the row:        ${a.toFixed(0)} ns/step`);
console.log(`ratio: ${pct.toFixed(2)} % of one argmax (target <= 5 %)`);
console.log(
  `BENCH ${JSON.stringify({ name: 'rules apply+append / argmax (V=49152, 300 used)', value: +pct.toFixed(2), unit: '%', target: '<= 5 %', ok: pct <= 5 })}`,
);
if (sink === -1) console.log(sink);
if (pct > 5) process.exitCode = 1;
