import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeShared, SHARED_DIR, sharedPath } from '@implicit-it/testkit';
import { describe, expect, it } from 'vitest';
import {
  encodeDataset,
  FinetuneOptionError,
  JobError,
  MissingPythonError,
  planJob,
  planSweep,
  readEncodedShard,
  runJob,
  writeEncodedShard,
} from '../src/index.js';

const charTok = {
  encode: (t: string) => [...t].map((c) => c.charCodeAt(0) % 250),
  addsBos: true,
  bosId: 1,
  eosToken: '#',
  name: 'chars',
  hash: 'abc',
};

describe('encoded shards', () => {
  it('round-trip ids, labels and the manifest', async () => {
    const examples = [
      {
        dataset: 't',
        id: 'a',
        messages: [
          { role: 'user' as const, content: 'hi' },
          { role: 'assistant' as const, content: 'yo' },
        ],
      },
      {
        dataset: 't',
        id: 'b',
        messages: [
          { role: 'user' as const, content: '' },
          { role: 'assistant' as const, content: 'ok!' },
        ],
      },
    ];
    const dir = mkdtempSync(join(tmpdir(), 'ft-shard-'));
    const enc = await encodeDataset({ examples, tokenizer: charTok, recipe: 'toy', outDir: dir });
    const back = await readEncodedShard(dir);
    expect(back.examples.map((e) => [e.inputIds, e.labels])).toEqual(
      enc.encoded.map((e) => [e.inputIds, e.labels]),
    );
    expect(back.manifest).toMatchObject({
      recipe: 'toy',
      count: 2,
      tokens: enc.tokens,
      trainedTokens: enc.trainedTokens,
      tokenizer: { hash: 'abc' },
    });
    expect(statSync(join(dir, 'input_ids.i32')).size).toBe(enc.tokens * 4);
  });
  it('drops examples with no trained token, as open-instruct does', async () => {
    const ex = {
      dataset: 't',
      id: 'long',
      messages: [
        { role: 'user' as const, content: 'x'.repeat(50) },
        { role: 'assistant' as const, content: 'y' },
      ],
    };
    const r = await encodeDataset({ examples: [ex], tokenizer: charTok, recipe: 'toy', maxSeqLength: 10 });
    expect(r.encoded).toHaveLength(0);
    expect(r.dropped).toEqual(['long']);
  });
});

describeShared(
  'planJob and planSweep',
  ['data/mbpp/mbpp.jsonl', 'fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    const base = {
      recipe: 'mbpp',
      model: 'meta-llama/Llama-2-7b-hf',
      tokenizer: sharedPath('fixtures/tokenizers/llama2'),
      dataDir: join(SHARED_DIR, 'data'),
    };

    it('writes a self-contained multi-node ZeRO-3 job', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'ft-plan-')), 'job');
      const r = await planJob({ ...base, gpus: 4, nodes: 2, out, validation: { count: 10 } });
      for (const f of [
        'job.json',
        'accelerate.yaml',
        'ds_zero3.json',
        'launch.sh',
        'train.py',
        'data/train/manifest.json',
        'data/validation/manifest.json',
      ]) {
        expect(existsSync(join(out, f)), f).toBe(true);
      }
      expect(r.job.training).toMatchObject({
        learningRate: 1e-5,
        warmupRatio: 0.03,
        weightDecay: 0,
        gradientAccumulationSteps: 8,
        maxSeqLength: 2048,
        bf16: true,
      });
      expect(r.job.launch).toMatchObject({ processes: 8, nodes: 2, zero3: true });
      expect(r.job.counts.train + r.job.counts.validation).toBe(374);
      expect(r.train.tokenizer.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(readFileSync(join(out, 'accelerate.yaml'), 'utf8')).toContain('num_processes: 8');
      expect(readFileSync(join(out, 'launch.sh'), 'utf8')).toContain('MACHINE_RANK');
      expect(statSync(join(out, 'launch.sh')).mode & 0o111).not.toBe(0);
    }, 30_000); // tokenizes MBPP with the Llama-2 tokenizer: ~4 s alone on 2 cores, more under a parallel CI run

    it('refuses a hub id without a tokenizer directory, and inexact batch sizes', async () => {
      const out = mkdtempSync(join(tmpdir(), 'ft-plan-'));
      await expect(planJob({ ...base, tokenizer: undefined, out })).rejects.toThrow(/--tokenizer DIR/);
      await expect(planJob({ ...base, gpus: 3, out })).rejects.toThrow(FinetuneOptionError);
    });

    it('writes the epoch x seed grid', async () => {
      const out = mkdtempSync(join(tmpdir(), 'ft-sweep-'));
      const r = await planSweep({ ...base, gpus: 1, out, epochs: [5, 7], seeds: [1, 2] });
      expect(r.jobs.map((j) => j.name)).toEqual([
        'mbpp-ep5-seed1',
        'mbpp-ep5-seed2',
        'mbpp-ep7-seed1',
        'mbpp-ep7-seed2',
      ]);
      expect(r.jobs.map((j) => [j.job.training.epochs, j.job.training.seed])).toEqual([
        [5, 1],
        [5, 2],
        [7, 1],
        [7, 2],
      ]);
      expect(JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')).jobs).toHaveLength(4);
    }, 30_000);

    it('runJob lists exactly what to install when Python lacks the stack', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'ft-run-')), 'job');
      await planJob({ ...base, gpus: 0, out });
      const err = await runJob(out, { python: '/nonexistent/python3' }).catch((e) => e);
      expect(err).toBeInstanceOf(MissingPythonError);
      expect(err.missing).toEqual(['torch', 'transformers', 'accelerate']);
      expect(err.message).toMatch(/pip install torch transformers accelerate/);
      expect(err.message).toMatch(
        /^\/nonexistent\/python3 could not be started \(not found, or not an executable\)/,
      );
    });
  },
);

describe('runJob on a directory that is not a job', () => {
  it('throws JobError', async () => {
    await expect(runJob(mkdtempSync(join(tmpdir(), 'ft-nojob-')))).rejects.toThrow(JobError);
  });
});

// Keeps writeEncodedShard in the public surface exercised from outside encodeDataset.
it('writeEncodedShard handles an empty shard', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ft-empty-'));
  const m = await writeEncodedShard(dir, [], {
    recipe: 'x',
    split: 'train',
    dropped: [],
    maxSeqLength: 8,
    addBos: false,
    tokenizer: { addsBos: false, eosToken: '#' },
  });
  expect(m.count).toBe(0);
  expect((await readEncodedShard(dir)).examples).toEqual([]);
});
