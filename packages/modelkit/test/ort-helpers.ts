import * as ort from 'onnxruntime-node';
import type { DecoderConfig } from '../src/index.js';

export type Past = Record<string, ort.Tensor>;

/** An empty KV cache (0-length past axis) for `batch` rows. */
export function emptyPast(config: DecoderConfig, batch: number): Past {
  const past: Past = {};
  for (let i = 0; i < config.numHiddenLayers; i++) {
    for (const kind of ['key', 'value']) {
      past[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [
        batch,
        config.numKeyValueHeads,
        0,
        config.headDim,
      ]);
    }
  }
  return past;
}

/** Rows of ids as an int64 [rows, columns] tensor. */
export const i64 = (rows: number[][]) =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0]!.length]);

/** One session.run: returns logits as [row][position] -> Float32Array(vocab), and the next past. */
export async function step(
  session: ort.InferenceSession,
  config: DecoderConfig,
  ids: number[][],
  mask: number[][],
  positions: number[][],
  past: Past,
): Promise<{ logits: Float32Array[][]; past: Past }> {
  const out = await session.run({
    input_ids: i64(ids),
    attention_mask: i64(mask),
    position_ids: i64(positions),
    ...past,
  });
  const data = out.logits!.data as Float32Array;
  const [b, s, v] = out.logits!.dims as number[];
  const logits = Array.from({ length: b! }, (_, r) =>
    Array.from({ length: s! }, (_, p) => data.slice((r * s! + p) * v!, (r * s! + p + 1) * v!)),
  );
  const next: Past = {};
  for (let i = 0; i < config.numHiddenLayers; i++) {
    next[`past_key_values.${i}.key`] = out[`present.${i}.key`]!;
    next[`past_key_values.${i}.value`] = out[`present.${i}.value`]!;
  }
  return { logits, past: next };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** The logits of one unpadded prompt run from an empty cache through the graph `file`, per position. */
export async function promptLogits(
  file: string,
  config: DecoderConfig,
  prompt: number[],
): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(file);
  try {
    const { logits } = await step(
      session,
      config,
      [prompt],
      [prompt.map(() => 1)],
      [prompt.map((_, i) => i)],
      emptyPast(config, 1),
    );
    return logits[0]!;
  } finally {
    await session.release();
  }
}
