import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import type { ModelInfo } from '@implicit-it/runtime';
import { TOKENIZER_FILE_NAMES } from '@implicit-it/tokenizers';

/**
 * The files of a model directory that shape its outputs besides the weights (the decoder's config,
 * and what the tokenizer reads: its vocabulary, special tokens, EOS ids, chat template), hashed whole.
 */
export const MODEL_TEXT_FILES: readonly string[] = ['config.json', ...Object.values(TOKENIZER_FILE_NAMES)];

/**
 * What {@link sampledDigest} reads of a file larger than `2 * edge + windows * window` bytes (6 MiB):
 * its first and last `edge` bytes, and `windows` windows of `window` bytes spread evenly between.
 */
export const DIGEST_SAMPLE = { edge: 1 << 20, window: 64 << 10, windows: 64 } as const;

/**
 * A digest of `file` that costs no more for 14 GB than for 6 MiB: `${size} bytes, sha256:HEX` of the
 * whole file where it is no larger than what {@link DIGEST_SAMPLE} reads, else
 * `${size} bytes, sampled sha256:HEX` of those ranges (read at their offsets, never the whole file).
 *
 * @example
 * sampledDigest('m/onnx/model.onnx_data'); // '14221875200 bytes, sampled sha256:b69dae56a14d1a8314ed40664c4033ea0a550eea2673e04df42a66ac6b9faf2c' for a file of that many zero bytes
 */
export function sampledDigest(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const hash = createHash('sha256');
    const read = (offset: number, length: number) => {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, got, length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      hash.update(buf.subarray(0, got));
    };
    const { edge, window, windows } = DIGEST_SAMPLE;
    if (size <= 2 * edge + windows * window) {
      read(0, size);
      return `${size} bytes, sha256:${hash.digest('hex')}`;
    }
    read(0, edge);
    // window starts from `edge` to `size - edge - window`, evenly spaced
    const span = size - 2 * edge - window;
    for (let i = 0; i < windows; i++) read(edge + Math.floor((span * i) / (windows - 1)), window);
    read(size - edge, edge);
    return `${size} bytes, sampled sha256:${hash.digest('hex')}`;
  } finally {
    closeSync(fd);
  }
}

/**
 * The external data files of an ONNX graph, as exporters name them beside it: `model.onnx_data`
 * (optimum, transformers.js, modelkit), `model.onnx_data_1` (further chunks), `model.onnx.data`
 * (torch's exporter). Names a graph gives otherwise are not found (its own bytes are still hashed).
 */
export function externalDataFiles(onnxFile: string): string[] {
  const graph = basename(onnxFile);
  return readdirSync(dirname(onnxFile))
    .filter((name) => name.startsWith(graph) && /^[._]data/.test(name.slice(graph.length)))
    .sort()
    .map((name) => join(dirname(onnxFile), name));
}

/** A path in the model directory, with `/` on every system (a record is read on other machines too). */
const inDir = (dir: string, file: string) => relative(dir, file).split(sep).join('/');

/** A small file's digest (a tokenizer.json is at most tens of MB): read whole. */
const sha256 = (file: string) => `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;

/**
 * What identifies a loaded model in resume journals and finished-run records: its ONNX graph's name
 * in the directory (`onnx/model.onnx`), `dtype`, and under `files` a digest of each file that shapes
 * its outputs, by path in the directory: {@link MODEL_TEXT_FILES} that exist, hashed whole, and the
 * graph and its external data files, their size and {@link sampledDigest}.
 *
 * Contents, not where or when: a model directory moved, copied, or used from another checkout or
 * machine resumes the runs it started, and `touch` changes nothing; an edited tokenizer,
 * tokenizer_config.json, generation_config.json (EOS ids) or config.json is another model, named by
 * its file (`fingerprint.model.files.generation_config.json`) where a run is refused.
 *
 * The weights' digest is a sample, not a cryptographic identity of a multi-GB file: it tells apart
 * weights written anew (another seed, a finetune of the same base, a requantization), a file of
 * another size, and any change in its first or last MiB or in one of its sampled windows (a file
 * up to 6 MiB, as a graph whose weights are external, is hashed whole); an edit of a few bytes
 * between the windows of a large file goes unnoticed.
 *
 * @example
 * import { generateRun, runtimeGenerator } from '@implicit-it/eval';
 * import { loadModel } from '@implicit-it/runtime';
 *
 * const model = await loadModel('./models/llama2');
 * await generateRun({
 *   generator: runtimeGenerator(model, { rules: 'hewitt2024' }),
 *   generatorName: 'llama2-rules',
 *   instructions: '../shared/data/alpaca_eval/alpaca_eval.jsonl',
 *   out: 'runs/llama2/outputs/rules.json',
 *   // a resumed run refuses a journal another model (or rule set) wrote
 *   fingerprint: { model: modelFingerprint(model), rules: 'hewitt2024' },
 * });
 */
export function modelFingerprint(model: {
  info: Pick<ModelInfo, 'dir' | 'onnxFile' | 'dtype' | 'q4AccuracyLevel'>;
}): Record<string, unknown> {
  const { dir, onnxFile, dtype, q4AccuracyLevel } = model.info;
  const files: Record<string, string> = {};
  for (const name of MODEL_TEXT_FILES) if (existsSync(join(dir, name))) files[name] = sha256(join(dir, name));
  for (const file of [onnxFile, ...externalDataFiles(onnxFile)])
    files[inDir(dir, file)] = sampledDigest(file);
  return {
    onnx: inDir(dir, onnxFile),
    dtype,
    files,
    // only for graphs with MatMulNBits layers (the level they run at)
    ...(q4AccuracyLevel !== null ? { q4AccuracyLevel } : {}),
  };
}
