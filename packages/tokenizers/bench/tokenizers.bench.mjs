#!/usr/bin/env node
// Encode and incremental-decode throughput of @implicit-it/tokenizers next to the same work done by
// calling @huggingface/transformers directly, on a 10,000-token text, for the SmolLM (byte-level BPE)
// and Llama-2 (SentencePiece) fixture tokenizers in ../shared. Runs against dist/ (pnpm build first).
//
// Baselines: encode -> AutoTokenizer.encode(text); incremental decode -> the same window algorithm
// (left-context token + pending tokens, hold back trailing U+FFFD) written inline against
// AutoTokenizer.decode. A/B rounds are interleaved and the fastest round of each is compared, because
// the machine is shared (rounds scale to about 2 s per side, at least BENCH_ROUNDS, default 15). Besides the report, one `BENCH {...}` line per headline figure.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoTokenizer, env } from '@huggingface/transformers';
import { loadTokenizer } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const shared = process.env.IMPLICIT_IT_SHARED_DIR ?? join(root, '..', 'shared');
const fixtures = join(shared, 'fixtures', 'tokenizers');
const TOKENS = 10_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const TARGET = 10; // % overhead allowed

const PARAGRAPH =
  'The rule-based adapter adds a sparse score vector to the logits at every step: an EOS ramp, ' +
  'uniform token changes and a penalty on used tokens. Base models then follow instructions — ' +
  'surprisingly often! Ingredients: 3 eggs, 100 g sugar, 250 g mascarpone, café espresso. ' +
  '日本語のテキストと中文文本も少し。 Emoji too: 🎉🍰✨.\n\n';

/**
 * Runs each function ROUNDS times, interleaved and alternating the order, and keeps the fastest round:
 * on a machine shared with other builds the minimum is the least disturbed measurement.
 */
function bench(fns) {
  const entries = Object.entries(fns);
  const best = Object.fromEntries(entries.map(([k]) => [k, Number.POSITIVE_INFINITY]));
  const t0 = performance.now();
  for (const [, fn] of entries) fn(); // warm up, and size the rounds: at least ROUNDS, about 2 s per side
  const rounds = Math.min(200, Math.max(ROUNDS, Math.ceil((2 * 2000) / (performance.now() - t0))));
  for (let r = 0; r < rounds; r++) {
    for (const [k, fn] of r % 2 ? [...entries].reverse() : entries) {
      const t0 = performance.now();
      fn();
      best[k] = Math.min(best[k], performance.now() - t0);
    }
  }
  return best;
}

/** The window detokenization algorithm, inline against transformers.js's public decode. */
function rawIncrementalDecode(hf, ids) {
  const opts = { skip_special_tokens: false, clean_up_tokenization_spaces: false };
  const single = new Map();
  let window = [];
  let contextLength = 0;
  let emitted = 0;
  let out = '';
  for (const id of ids) {
    window.push(id);
    const text = hf.decode(window, opts);
    let held = 0;
    while (held < 3 && text.charCodeAt(text.length - 1 - held) === 0xfffd) held++;
    const start = contextLength + emitted;
    const end = text.length - held;
    if (end > start) {
      out += text.slice(start, end);
      emitted += end - start;
    }
    if (held === 0) {
      window = [id];
      let length = single.get(id);
      if (length === undefined) {
        length = hf.decode(window, opts).length;
        single.set(id, length);
      }
      contextLength = length;
      emitted = 0;
    }
  }
  if (window.length) out += hf.decode(window, opts).slice(contextLength + emitted);
  return out;
}

const rate = (ms) => Math.round(TOKENS / (ms / 1000));
const overhead = (ours, raw) => Math.round((ours / raw - 1) * 1000) / 10;
let failed = false;

env.allowRemoteModels = false;
env.localModelPath = fixtures;
for (const name of ['smollm', 'llama2']) {
  const dir = join(fixtures, name);
  if (!existsSync(join(dir, 'tokenizer.json'))) {
    console.log(`[skip] ${name}: ${dir}/tokenizer.json is missing (set up ../shared to run this benchmark)`);
    continue;
  }
  const tok = await loadTokenizer(dir);
  const hf = await AutoTokenizer.from_pretrained(name, { local_files_only: true });

  const perParagraph = hf.encode(PARAGRAPH.repeat(10), { add_special_tokens: false }).length / 10;
  let text = PARAGRAPH.repeat(Math.ceil((TOKENS * 1.1) / perParagraph));
  const ids = hf.encode(text, { add_special_tokens: false }).slice(0, TOKENS);
  text = hf.decode(ids, { clean_up_tokenization_spaces: false });
  const encodedLength = hf.encode(text, { add_special_tokens: false }).length;

  const enc = bench({
    ours: () => tok.encode(text, { addSpecialTokens: false }),
    raw: () => hf.encode(text, { add_special_tokens: false }),
  });
  const detok = () => {
    const d = tok.createDetokenizer();
    let out = '';
    for (const id of ids) out += d.push(id);
    return out + d.flush();
  };
  const ours = detok();
  const raw = rawIncrementalDecode(hf, ids);
  const full = hf.decode(ids, { clean_up_tokenization_spaces: false });
  if (ours !== full || raw !== full) {
    console.log(`${name}: streamed text differs from a full decode`);
    failed = true;
  }
  const dec = bench({ ours: detok, raw: () => rawIncrementalDecode(hf, ids) });
  const fullMs = bench({ raw: () => hf.decode(ids, { clean_up_tokenization_spaces: false }) }).raw;

  const encOver = overhead(enc.ours, enc.raw);
  const decOver = overhead(dec.ours, dec.raw);
  console.log(
    `\n${name} (${tok.pieceEncoding}): ${TOKENS} tokens (re-encoding the text gives ${encodedLength}), fastest of >= ${ROUNDS} interleaved rounds`,
  );
  console.log(
    `  encode               ours ${rate(enc.ours).toLocaleString('en')} tok/s   transformers.js ${rate(enc.raw).toLocaleString('en')} tok/s   overhead ${encOver} %`,
  );
  console.log(
    `  incremental decode   ours ${rate(dec.ours).toLocaleString('en')} tok/s   transformers.js ${rate(dec.raw).toLocaleString('en')} tok/s   overhead ${decOver} %`,
  );
  console.log(
    `  (one-shot decode of all ${TOKENS} tokens, transformers.js: ${rate(fullMs).toLocaleString('en')} tok/s)`,
  );
  const line = (o) => console.log(`BENCH ${JSON.stringify(o)}`);
  line({
    name: `tokenizers: encode tok/s (${name})`,
    value: rate(enc.ours),
    unit: 'tok/s',
    target: 'info',
    ok: true,
  });
  line({
    name: `tokenizers: encode overhead vs transformers.js (${name})`,
    value: encOver,
    unit: '%',
    target: `<= ${TARGET} %`,
    ok: encOver <= TARGET,
  });
  line({
    name: `tokenizers: incremental decode tok/s (${name})`,
    value: rate(dec.ours),
    unit: 'tok/s',
    target: 'info',
    ok: true,
  });
  line({
    name: `tokenizers: incremental decode overhead vs transformers.js (${name})`,
    value: decOver,
    unit: '%',
    target: `<= ${TARGET} %`,
    ok: decOver <= TARGET,
  });
  if (encOver > TARGET || decOver > TARGET) failed = true;
}
process.exit(failed ? 1 : 0);
