#!/usr/bin/env node
// A first look at the rule-based adapter: the scores hewitt2024 adds when predicting response token t
// for the spec's tiramisu prompt (Llama-2 ids, as the paper's reference code names them).
import { compileRules, idVocabulary } from '@implicit-it/rules';

const prompt = [
  1, 529, 29989, 1792, 29989, 29958, 13, 29954, 573, 592, 263, 9522, 412, 363, 19493, 314, 28311, 29889, 13,
  29966, 29989, 465, 22137, 29989, 29958, 13,
];
const rules = compileRules('hewitt2024-llama2-ids', idVocabulary({ size: 32000, eosIds: [2] }));
const state = rules.createState({ promptIds: prompt, scopeStart: 7 });
console.log('<s><|user|>\\nGive me a recipe for tiramisu.\\n<|assistant|>\\n  (S = 7, P = 26)');
for (const id of [323, 2126, 275]) state.append(id);
const scores = rules.scores(state);
console.log(`rules ${rules.enabled.join(' + ')}; after 3 response tokens, ${scores.size} ids are scored:`);
for (const [id, score] of scores)
  if (score !== -1.5) console.log(`  id ${String(id).padStart(5)}  ${score > 0 ? '+' : ''}${score}`);
console.log(
  `  ...and -1.5 for each of ${[...scores.values()].filter((s) => s === -1.5).length} other ids already used`,
);
