import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EncodedExample } from './encode-messages.js';
import { IGNORE_INDEX } from './encode-messages.js';
import { DataFileError } from './errors.js';

/**
 * Format tag of encoded shards; the Python entry point checks it.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 * const manifest = JSON.parse(readFileSync('jobs/res/data/train/manifest.json', 'utf8'));
 * if (manifest.format !== SHARD_FORMAT) console.warn('written by another version: plan the job again');
 */
export const SHARD_FORMAT = 'implicit-it/encoded-shard@1';

/**
 * The manifest of an encoded shard directory (`manifest.json`). Tokens live in three little-endian
 * files: `input_ids.i32` (int32 per token), `loss_mask.u8` (1 where the label is the token, 0 where
 * it is -100) and `offsets.i64` (count + 1 int64 example boundaries).
 *
 * @example
 * const manifest: ShardManifest = (await readEncodedShard('jobs/res/data/train')).manifest;
 * console.log(`${manifest.count} examples, ${manifest.trainedTokens} of ${manifest.tokens} tokens trained`);
 */
export interface ShardManifest {
  format: typeof SHARD_FORMAT;
  recipe: string;
  split: 'train' | 'validation';
  count: number;
  tokens: number;
  trainedTokens: number;
  /** Examples cut at maxSeqLength. */
  truncated: number;
  /**
   * Ids of those examples (an example of exactly `maxSeqLength` tokens may or may not have been cut);
   * absent in shards written before 0.x.
   */
  truncatedIds?: string[];
  /** Ids of examples dropped because no label survived (open-instruct drops them too). */
  dropped: string[];
  maxSeqLength: number;
  addBos: boolean;
  tokenizer: { name?: string; hash?: string; addsBos: boolean; bosId?: number; eosToken: string };
  /** Example ids in shard order. */
  ids: string[];
  files: { inputIds: 'input_ids.i32'; lossMask: 'loss_mask.u8'; offsets: 'offsets.i64' };
}

/**
 * Writes encoded examples to `dir` (created if needed) with their manifest.
 *
 * @example
 * const tokenizer = { addsBos: true, bosId: 1, eosToken: '</s>' };
 * await writeEncodedShard('job/data/train', encoded, { recipe: 'gsm', split: 'train', dropped: [], maxSeqLength: 2048, addBos: false, tokenizer });
 */
export async function writeEncodedShard(
  dir: string,
  examples: EncodedExample[],
  meta: Omit<
    ShardManifest,
    'format' | 'count' | 'tokens' | 'trainedTokens' | 'truncated' | 'truncatedIds' | 'ids' | 'files'
  >,
): Promise<ShardManifest> {
  const tokens = examples.reduce((n, e) => n + e.inputIds.length, 0);
  const ids = new Int32Array(tokens);
  const mask = new Uint8Array(tokens);
  const offsets = new BigInt64Array(examples.length + 1);
  let at = 0;
  let trained = 0;
  examples.forEach((e, i) => {
    offsets[i] = BigInt(at);
    for (let t = 0; t < e.inputIds.length; t++) {
      ids[at + t] = e.inputIds[t]!;
      const on = e.labels[t] !== IGNORE_INDEX;
      mask[at + t] = on ? 1 : 0;
      if (on) trained++;
    }
    at += e.inputIds.length;
  });
  offsets[examples.length] = BigInt(at);
  const manifest: ShardManifest = {
    format: SHARD_FORMAT,
    ...meta,
    count: examples.length,
    tokens,
    trainedTokens: trained,
    truncated: examples.filter((e) => e.truncated).length,
    truncatedIds: examples.filter((e) => e.truncated).map((e) => e.id),
    ids: examples.map((e) => e.id),
    files: { inputIds: 'input_ids.i32', lossMask: 'loss_mask.u8', offsets: 'offsets.i64' },
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'input_ids.i32'), le(ids));
  await writeFile(join(dir, 'loss_mask.u8'), mask);
  await writeFile(join(dir, 'offsets.i64'), le(offsets));
  await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** The fix for a shard whose files do not match its manifest, as train.py's load_shard says it. */
const REPLAN = 'copy the job directory again, or plan the job again';

/**
 * Reads a shard directory back into examples (labels rebuilt from the loss mask). Each file's size is
 * checked against the manifest first, and the offsets against the token count, as train.py checks
 * them: a shard cut short (a job directory copied in part) or mixed with another throws a
 * `DataFileError` naming the file, its size and the size the manifest implies.
 *
 * @example
 * const { manifest, examples } = await readEncodedShard('job/data/train');
 */
export async function readEncodedShard(
  dir: string,
): Promise<{ manifest: ShardManifest; examples: EncodedExample[] }> {
  const manifestPath = join(dir, 'manifest.json');
  let manifest: ShardManifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as ShardManifest;
  } catch (cause) {
    throw new DataFileError(manifestPath, 'cannot read the shard manifest; encode the data again', { cause });
  }
  if (manifest?.format !== SHARD_FORMAT) {
    throw new DataFileError(
      manifestPath,
      `format is ${JSON.stringify(manifest?.format)}, expected ${SHARD_FORMAT}`,
    );
  }
  const { count, tokens } = manifest;
  for (const [field, value] of [
    ['count', count],
    ['tokens', tokens],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new DataFileError(
        manifestPath,
        `${field} is ${JSON.stringify(value)}, expected an integer >= 0; encode the data again`,
      );
  }
  if (!Array.isArray(manifest.ids) || manifest.ids.length !== count)
    throw new DataFileError(
      manifestPath,
      `ids lists ${Array.isArray(manifest.ids) ? manifest.ids.length : 'no'} example ids, and count says ${count}; encode the data again`,
    );
  // sizes checked before anything is read: a cut file would give examples that end early, or a
  // RangeError from the Buffer reads
  const read = async (file: string, width: number, expected: number): Promise<Buffer> => {
    const path = join(dir, file);
    const size = await stat(path).then(
      (s) => (s.isFile() ? s.size : undefined),
      () => undefined,
    );
    if (size !== width * expected) {
      const found = size === undefined ? 'missing' : `holds ${size} bytes`;
      throw new DataFileError(
        path,
        `${found}, and ${manifestPath} says ${width * expected} (${expected} x ${width}); the shard is incomplete: ${REPLAN}`,
      );
    }
    return readFile(path);
  };
  const idsBuf = await read(manifest.files.inputIds, 4, tokens);
  const mask = await read(manifest.files.lossMask, 1, tokens);
  const offBuf = await read(manifest.files.offsets, 8, count + 1);
  // the offsets rise from 0 to the token count: those of another shard would slice garbage
  const offsets: number[] = [];
  for (let i = 0; i <= count; i++) {
    const at = Number(offBuf.readBigInt64LE(i * 8));
    const [low, high] = i === count ? [tokens, tokens] : i === 0 ? [0, 0] : [offsets[i - 1]!, tokens];
    if (at < low || at > high)
      throw new DataFileError(
        join(dir, manifest.files.offsets),
        `offset ${i} is ${at}, expected ${low === high ? low : `${low} to ${high}`} (the offsets rise from 0 to the ${tokens} tokens of ${manifestPath}); the file is damaged or belongs to another shard: ${REPLAN}`,
      );
    offsets.push(at);
  }
  const examples: EncodedExample[] = [];
  const truncatedIds = manifest.truncatedIds ? new Set(manifest.truncatedIds) : undefined;
  for (let i = 0; i < count; i++) {
    const a = offsets[i]!;
    const b = offsets[i + 1]!;
    const inputIds: number[] = [];
    const labels: number[] = [];
    let trainedTokens = 0;
    for (let t = a; t < b; t++) {
      const id = idsBuf.readInt32LE(t * 4);
      inputIds.push(id);
      labels.push(mask[t] ? id : IGNORE_INDEX);
      if (mask[t]) trainedTokens++;
    }
    examples.push({
      id: manifest.ids[i]!,
      inputIds,
      labels,
      trainedTokens,
      // as encodeMessages says it: cut, not merely maxSeqLength tokens long (older shards: a guess)
      truncated: truncatedIds
        ? truncatedIds.has(manifest.ids[i]!)
        : manifest.truncated > 0 && b - a >= manifest.maxSeqLength,
    });
  }
  return { manifest, examples };
}

function le(view: Int32Array | BigInt64Array): Uint8Array {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  // Typed arrays use the platform's byte order; every platform Node supports is little-endian, but check.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
    throw new Error('big-endian platforms are not supported');
  return bytes;
}
