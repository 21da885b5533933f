#!/usr/bin/env node
// Times writing model directories (run `pnpm build` first; the root `pnpm bench` does).
// Prints a report and one `BENCH {...}` line per headline figure (see scripts/bench.mjs).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createModel, exportOnnx, randomWeights, weightSpecs, writeSafetensors } from '../dist/index.js';

const here = new URL('.', import.meta.url).pathname;
const sharedDir = process.env.IMPLICIT_IT_SHARED_DIR ?? resolve(here, '../../../../shared');
const smollm = join(sharedDir, 'fixtures/tokenizers/smollm');
const tokenizerDir = existsSync(join(smollm, 'tokenizer.json')) ? smollm : undefined;
const root = mkdtempSync(join(tmpdir(), 'modelkit-bench-'));
// a figure short of its target makes the script exit 1 once it has printed everything else
const bench = (name, value, unit, target, ok) => {
  if (ok === false) process.exitCode = 1;
  console.log(`BENCH ${JSON.stringify({ name, value, unit, target, ok })}`);
};
const mb = (bytes) => Math.round(bytes / 1024 / 1024);

try {
  // Warm-up (JIT, tokenizer training) then the tiny preset.
  await createModel({ preset: 'tiny', seed: 0, out: join(root, 'warm') });
  const tinyRuns = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await createModel({ preset: 'tiny', seed: i, out: join(root, `tiny-${i}`) });
    tinyRuns.push(performance.now() - t0);
  }
  const tinyMs = Math.round(Math.min(...tinyRuns) * 10) / 10;
  console.log(`tiny: best of 5 ${tinyMs} ms (runs: ${tinyRuns.map((r) => r.toFixed(1)).join(', ')} ms)`);

  const rssBefore = process.memoryUsage().rss;
  let peakRss = rssBefore;
  const t0 = performance.now();
  const created = await createModel({
    preset: 'smollm2-135m',
    seed: 1,
    out: join(root, 'smollm2-135m'),
    tokenizerDir,
    onProgress: () => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    },
  });
  const seconds = Math.round((performance.now() - t0) / 10) / 100;
  const onnxBytes = statSync(join(created.dir, 'onnx', 'model.onnx')).size;
  console.log(
    `smollm2-135m: ${seconds} s, ${(created.parameters / 1e6).toFixed(1)}M parameters, model.onnx ${mb(onnxBytes)} MB, ` +
      `tokenizer ${tokenizerDir ?? 'built-in (shared smollm fixture not found)'}, ` +
      `RSS ${mb(rssBefore)} MB before, ${mb(peakRss)} MB peak while writing`,
  );

  // The written model loads and runs (what the runtime benchmarks will do with it).
  // onnxruntime's telemetry off, as @implicit-it/runtime turns it off (modelkit cannot import it)
  if (!process.env.ORT_DISABLE_TELEMETRY?.trim()) process.env.ORT_DISABLE_TELEMETRY = '1';
  const ort = await import('onnxruntime-node');
  const t1 = performance.now();
  const session = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
  const loadMs = Math.round(performance.now() - t1);
  const { numHiddenLayers: layers, numKeyValueHeads: kvh, headDim: hd } = created.config;
  const feeds = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from([1n, 2n, 3n, 4n]), [1, 4]),
    attention_mask: new ort.Tensor('int64', BigInt64Array.from([1n, 1n, 1n, 1n]), [1, 4]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from([0n, 1n, 2n, 3n]), [1, 4]),
  };
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, kvh, 0, hd]);
    }
  }
  const t2 = performance.now();
  const out = await session.run(feeds);
  console.log(
    `onnxruntime-node: session ${loadMs} ms, 4-token forward ${Math.round(performance.now() - t2)} ms, logits [${out.logits.dims.join(', ')}]`,
  );
  await session.release();

  bench('modelkit: write smollm2-135m directory', seconds, 's', '< 60 s', seconds < 60);
  bench('modelkit: write tiny directory', tinyMs, 'ms', '< 1000 ms', tinyMs < 1000);
  bench(
    'modelkit: RSS growth writing smollm2-135m (540 MB of weights)',
    mb(peakRss - rssBefore),
    'MB',
    '< 540 MB (streamed)',
    peakRss - rssBefore < 540 * 1024 * 1024,
  );

  // The same weights as a safetensors checkpoint, exported back to ONNX: time against writing them
  // from the seed, peak memory (one tensor at a time), and the graph byte for byte.
  const ckpt = join(root, 'ckpt');
  mkdirSync(ckpt);
  copyFileSync(join(created.dir, 'config.json'), join(ckpt, 'config.json'));
  {
    const weights = randomWeights(created.config, 1);
    writeSafetensors(
      join(ckpt, 'model.safetensors'),
      Object.fromEntries(
        weightSpecs(created.config).map((s) => [s.name, { shape: s.shape, data: weights[s.name] }]),
      ),
    );
  }
  globalThis.gc?.();
  const rssBeforeExport = process.memoryUsage().rss;
  let peakExport = rssBeforeExport;
  const t3 = performance.now();
  await exportOnnx({
    dir: ckpt,
    onProgress: () => {
      peakExport = Math.max(peakExport, process.memoryUsage().rss);
    },
  });
  const exportSeconds = Math.round((performance.now() - t3) / 10) / 100;
  const same = readFileSync(join(ckpt, 'onnx', 'model.onnx')).equals(
    readFileSync(join(created.dir, 'onnx', 'model.onnx')),
  );
  const exportRatio = exportSeconds / seconds;
  console.log(
    `export of the same weights from model.safetensors: ${exportSeconds} s vs ${seconds} s written from the seed -> ${exportRatio.toFixed(2)}x the time; ` +
      `graph ${same ? 'byte-identical' : 'DIFFERENT'}; RSS ${mb(rssBeforeExport)} MB before, ${mb(peakExport)} MB peak`,
  );
  bench(
    'modelkit: export smollm2-135m from safetensors',
    exportSeconds,
    's',
    '< 60 s, identical graph',
    exportSeconds < 60 && same,
  );
  bench(
    'modelkit: RSS growth exporting smollm2-135m',
    mb(peakExport - rssBeforeExport),
    'MB',
    '< 540 MB (one tensor at a time)',
    peakExport - rssBeforeExport < 540 * 1024 * 1024,
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
