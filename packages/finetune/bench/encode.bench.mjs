// Encodes all seven dataset recipes with the Llama-2 fixture tokenizer, exactly as training jobs do
// (open-instruct's encoding with loss masks, max_seq_length 2048), and reports time and throughput.
// Target: under 60 s for all seven on the development machine (2 cores). Run after `pnpm build`.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildDataset, DATASET_RECIPE_NAMES, encodeDataset, loadEncodingTokenizer } from '../dist/index.js';

const shared = process.env.IMPLICIT_IT_SHARED_DIR ?? resolve(import.meta.dirname, '../../../../shared');
const tokDir = join(shared, 'fixtures/tokenizers/llama2');
const dataDir = join(shared, 'data');
if (!existsSync(join(tokDir, 'tokenizer.json')) || !existsSync(dataDir)) {
  console.log(`[skip] ${shared} has no llama2 tokenizer or data; set IMPLICIT_IT_SHARED_DIR`);
  process.exit(0);
}

const tokenizer = await loadEncodingTokenizer(tokDir);
const rows = [];
const t0 = performance.now();
for (const recipe of DATASET_RECIPE_NAMES) {
  const a = performance.now();
  const built = await buildDataset({ recipe, dataDir });
  const b = performance.now();
  const enc = await encodeDataset({ examples: built.train, tokenizer, recipe, maxSeqLength: 2048 });
  const c = performance.now();
  rows.push({
    recipe,
    examples: built.count,
    tokens: enc.tokens,
    trained: enc.trainedTokens,
    truncated: enc.truncated,
    buildMs: Math.round(b - a),
    encodeMs: Math.round(c - b),
    ktokPerS: Math.round(enc.tokens / (c - b)),
  });
}
const totalS = (performance.now() - t0) / 1000;
console.table(rows);
const tokens = rows.reduce((n, r) => n + r.tokens, 0);
console.log(
  `all seven recipes: ${tokens} tokens in ${totalS.toFixed(1)} s (${Math.round(tokens / totalS / 1000)} k tokens/s)`,
);
// a figure short of its target makes the script exit 1 once it has printed everything else
const line = (o) => {
  if (o.ok === false) process.exitCode = 1;
  console.log(`BENCH ${JSON.stringify(o)}`);
};
line({
  name: 'finetune: build + encode all 7 recipes (llama2)',
  value: Number(totalS.toFixed(2)),
  unit: 's',
  target: '< 60 s',
  ok: totalS < 60,
});
line({
  name: 'finetune: encode throughput (llama2)',
  value: Math.round(tokens / totalS / 1000),
  unit: 'k tokens/s',
  target: 'report',
  ok: true,
});
