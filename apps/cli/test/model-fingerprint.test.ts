import {
  closeSync,
  cpSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel } from '@implicit-it/modelkit';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { afterAll, describe, expect, it } from 'vitest';
import { DIGEST_SAMPLE, modelFingerprint, sampledDigest } from '../src/model-fingerprint.js';

const tmp = mkdtempSync(join(tmpdir(), 'implicit-it-cli-fingerprint-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The fingerprint of the fp32 graph of model directory `dir`, as `eval` records it. */
const fingerprintOf = (dir: string, onnx = 'onnx/model.onnx') =>
  modelFingerprint({ info: { dir, onnxFile: join(dir, onnx), dtype: 'fp32', q4AccuracyLevel: null } });

/** The keys of two fingerprints' `files` whose digests differ (or that only one has). */
function differingFiles(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const [x, y] = [a.files, b.files] as Record<string, string>[];
  return [...new Set([...Object.keys(x!), ...Object.keys(y!)])].filter((k) => x![k] !== y![k]).sort();
}

/** Writes `byte` at `offset` of `file`, in place. */
function poke(file: string, offset: number, byte: number): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.of(byte), 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

describe('sampledDigest', () => {
  it('reads a bounded sample of a 4 GB file: milliseconds, and a byte changed in a window changes it', () => {
    const file = join(tmp, 'big.onnx_data');
    writeFileSync(file, '');
    const size = 4 * 2 ** 30;
    truncateSync(file, size); // sparse: no disk written
    const started = performance.now();
    const digest = sampledDigest(file);
    const ms = performance.now() - started;
    expect(digest).toMatch(new RegExp(`^${size} bytes, sampled sha256:[0-9a-f]{64}$`));
    // 6 MiB read whatever the size (whole, 4 GB of zeros take seconds to hash)
    expect(ms).toBeLessThan(1000);
    expect(sampledDigest(file)).toBe(digest);

    const { edge, window, windows } = DIGEST_SAMPLE;
    const span = size - 2 * edge - window;
    // a byte in the middle of the 10th window: the same size, another digest
    const inWindow = edge + Math.floor((span * 10) / (windows - 1)) + window / 2;
    poke(file, inWindow, 1);
    const changed = sampledDigest(file);
    expect(changed).not.toBe(digest);
    expect(changed.startsWith(`${size} bytes, `)).toBe(true);
    // in the first and the last MiB too
    poke(file, inWindow, 0);
    expect(sampledDigest(file)).toBe(digest);
    poke(file, size - 10, 7);
    expect(sampledDigest(file)).not.toBe(digest);
    poke(file, size - 10, 0);
    // what it does not catch: a byte between two windows (the sample is not all of the file)
    poke(file, inWindow + window, 1);
    expect(sampledDigest(file)).toBe(digest);
  });

  it('hashes a file no larger than the sample whole: any byte counts', () => {
    const file = join(tmp, 'small.onnx');
    writeFileSync(file, Buffer.alloc(3 * 2 ** 20));
    const digest = sampledDigest(file);
    expect(digest).toMatch(/^3145728 bytes, sha256:[0-9a-f]{64}$/);
    poke(file, 2 ** 21 + 12_345, 1);
    expect(sampledDigest(file)).not.toBe(digest);
  });
});

describe('modelFingerprint', () => {
  it('follows the files, not the directory: a copy elsewhere and a touched graph are the same model', async () => {
    const { dir } = await createTinyModel({ seed: 1 });
    const fingerprint = fingerprintOf(dir);
    expect(fingerprint).toEqual({
      onnx: 'onnx/model.onnx',
      dtype: 'fp32',
      files: {
        'config.json': expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        'generation_config.json': expect.stringMatching(/^sha256:/),
        'tokenizer.json': expect.stringMatching(/^sha256:/),
        'tokenizer_config.json': expect.stringMatching(/^sha256:/),
        'onnx/model.onnx': expect.stringMatching(/^\d+ bytes, sha256:[0-9a-f]{64}$/),
      },
    });
    const copy = join(tmp, 'copy');
    cpSync(dir, copy, { recursive: true });
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(copy, 'onnx', 'model.onnx'), later, later);
    utimesSync(join(copy, 'tokenizer.json'), later, later);
    expect(fingerprintOf(copy)).toEqual(fingerprint);
  });

  it("names the file that changed: generation_config.json's EOS ids, tokenizer_config.json", async () => {
    const { dir } = await createTinyModel({ seed: 1 });
    const copy = join(tmp, 'edited');
    cpSync(dir, copy, { recursive: true });
    const before = fingerprintOf(copy);
    const gen = join(copy, 'generation_config.json');
    writeFileSync(gen, JSON.stringify({ ...JSON.parse(readFileSync(gen, 'utf8')), eos_token_id: [2, 3] }));
    const eos = fingerprintOf(copy);
    expect(differingFiles(before, eos)).toEqual(['generation_config.json']);
    const config = join(copy, 'tokenizer_config.json');
    writeFileSync(config, readFileSync(config, 'utf8').replace('{', '{"legacy": false, '));
    expect(differingFiles(eos, fingerprintOf(copy))).toEqual(['tokenizer_config.json']);
    // a file added that the tokenizer reads (special tokens, a chat template) is a change too
    writeFileSync(join(copy, 'chat_template.jinja'), '{{ messages[0].content }}');
    expect(Object.keys(fingerprintOf(copy).files as object)).toContain('chat_template.jinja');
  });

  it('tells apart models of the same shape and different seeds, and edited external weights', async () => {
    const [one, two] = await Promise.all([createTinyModel({ seed: 1 }), createTinyModel({ seed: 2 })]);
    expect(differingFiles(fingerprintOf(one.dir), fingerprintOf(two.dir))).toEqual(['onnx/model.onnx']);
    // weights in onnx/model.onnx_data: hashed beside the graph (an edit there alone is another model)
    const { dir } = await createModel({
      preset: 'tiny',
      seed: 1,
      externalDataThreshold: 0,
      out: join(tmp, 'ext'),
    });
    const before = fingerprintOf(dir);
    expect(Object.keys(before.files as object)).toContain('onnx/model.onnx_data');
    poke(join(dir, 'onnx', 'model.onnx_data'), 1000, 0x7f);
    expect(differingFiles(before, fingerprintOf(dir))).toEqual(['onnx/model.onnx_data']);
  });
});
