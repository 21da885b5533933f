// What the runtime's bench scripts (and the api's) share: the smollm2-135m-shaped modelkit model (random weights, the
// SmolLM tokenizer from ../shared when present), written once into the cache and reused, and prompts of
// exact token counts cut from real text (alpaca_eval instructions).
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createModel, fromHfConfig, graphFileName, weightSpecs } from '@implicit-it/modelkit';
import { TINY_MODEL_FORMAT } from '@implicit-it/modelkit/test';
import { disableOnnxTelemetry } from '../dist/index.js';

// before any session of a bench (transformers.js' and bare onnxruntime's included): onnxruntime's
// telemetry off, as this package's loadModel turns it off (ORT_DISABLE_TELEMETRY=0 keeps it on)
disableOnnxTelemetry();

const here = new URL('.', import.meta.url).pathname;
export const shared = process.env.IMPLICIT_IT_SHARED_DIR ?? resolve(here, '../../../../shared');
export const smollmTokenizer = join(shared, 'fixtures/tokenizers/smollm');

/**
 * One headline figure, as the root `pnpm bench` collects them into its summary table. Under
 * BENCH_QUICK=1 (fewer runs, shorter workloads) its name says so: such figures are not the targets'.
 * A figure short of its target makes the script exit 1 once it has printed everything else.
 */
export const bench = (name, value, unit, target, ok) => {
  if (ok === false) process.exitCode = 1;
  console.log(
    `BENCH ${JSON.stringify({ name: process.env.BENCH_QUICK === '1' ? `${name} [BENCH_QUICK]` : name, value, unit, target, ok })}`,
  );
};

/** Of an even count, the mean of the middle two (the upper one alone would be the larger of two runs). */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * The directory of the smollm2-135m bench model, written on first use. A variant (`name`, with
 * createModel options that override the preset's: fewer layers, another graph layout) gets its own
 * directory.
 */
export async function benchModelDir(name = '', options = {}) {
  const dir = join(
    process.env.IMPLICIT_IT_CACHE ?? tmpdir(),
    `implicit-it-bench-smollm2-135m-s1-g${TINY_MODEL_FORMAT}${name ? `-${name}` : ''}`,
  );
  if (!existsSync(join(dir, 'onnx', graphFileName(options.dtypes?.[0] ?? 'fp32', options.merged)))) {
    const t0 = performance.now();
    await createModel({
      preset: 'smollm2-135m',
      seed: 1,
      out: dir,
      tokenizerDir: existsSync(smollmTokenizer) ? smollmTokenizer : undefined,
      ...options,
    });
    console.log(`wrote ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return dir;
}

/** The alpaca_eval instructions from ../shared (64 made-up ones when it is missing). */
export function evalInstructions() {
  const file = join(shared, 'data/alpaca_eval/alpaca_eval.jsonl');
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).instruction)
    : Array.from(
        { length: 64 },
        (_, i) => `Instruction number ${i}: explain a topic you know well, step by step.`,
      );
}

/** `promptOf(n, offset)`: n token ids of the instructions' text, from token `offset` on. */
export function promptMaker(model) {
  const corpus = model.tokenizer.encode(evalInstructions().join('\n\n'), { addSpecialTokens: false });
  return (n, offset = 0) => corpus.slice(offset, offset + n);
}

/**
 * The bytes of fp32 weights one decoding step reads for one token of the model in `dir`: every
 * parameter once, the embedding matrix as the LM head when tied (its Gather reads one row), only the
 * LM head when not. Not the model.onnx size: that also holds the rotary cos/sin tables (read one row
 * a step; 4 MB at 8,192 positions) and the graph itself.
 */
export function weightBytesPerToken(dir) {
  const config = fromHfConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const specs = weightSpecs(config).filter((s) => config.tieWordEmbeddings || s.kind !== 'embedding');
  return 4 * specs.reduce((sum, s) => sum + s.shape.reduce((a, b) => a * b, 1), 0);
}
