import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describeShared, SHARED_DIR, sharedPath } from '@implicit-it/testkit';
import { TOKENIZER_FILE_NAMES } from '@implicit-it/tokenizers';
import { describe, expect, it } from 'vitest';
import { jobIdentity } from '../src/earlier-run.js';
import {
  DataFileError,
  encodeDataset,
  FinetuneOptionError,
  JobError,
  loadEncodingTokenizer,
  MissingPythonError,
  modelContextLength,
  planJob,
  planSweep,
  readEncodedShard,
  runJob,
  TrainingFailedError,
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
  it('refuses a shard whose files do not match its manifest, naming the file and both sizes, as train.py does', async () => {
    const examples = ['hi', 'hello there', 'hey'].map((content, i) => ({
      dataset: 't',
      id: `e${i}`,
      messages: [
        { role: 'user' as const, content },
        { role: 'assistant' as const, content: 'ok!' },
      ],
    }));
    const dir = mkdtempSync(join(tmpdir(), 'ft-shard-cut-'));
    const { tokens, encoded } = await encodeDataset({
      examples,
      tokenizer: charTok,
      recipe: 'toy',
      outDir: dir,
    });
    const manifest = join(dir, 'manifest.json');
    const refusal = async () => {
      const error = await readEncodedShard(dir).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DataFileError);
      expect((error as DataFileError).code).toBe('finetune.missing_data');
      return (error as DataFileError).message;
    };
    const fix = 'copy the job directory again, or plan the job again';
    // a job directory copied in part: the ids stop after 5 tokens (they read as examples ending early)
    const ids = join(dir, 'input_ids.i32');
    const idsBytes = readFileSync(ids);
    truncateSync(ids, 20);
    expect(await refusal()).toBe(
      `${ids}: holds 20 bytes, and ${manifest} says ${4 * tokens} (${tokens} x 4); the shard is incomplete: ${fix}`,
    );
    writeFileSync(ids, idsBytes);
    const mask = join(dir, 'loss_mask.u8');
    writeFileSync(mask, Buffer.concat([readFileSync(mask), Buffer.from([1])]));
    expect(await refusal()).toBe(
      `${mask}: holds ${tokens + 1} bytes, and ${manifest} says ${tokens} (${tokens} x 1); the shard is incomplete: ${fix}`,
    );
    truncateSync(mask, tokens);
    const offsets = join(dir, 'offsets.i64');
    const offsetBytes = readFileSync(offsets);
    rmSync(offsets);
    expect(await refusal()).toBe(
      `${offsets}: missing, and ${manifest} says 32 (4 x 8); the shard is incomplete: ${fix}`,
    );
    // offsets of the right size that do not rise to the manifest's tokens (another shard's): a
    // RangeError from the Buffer reads before
    const other = new BigInt64Array([0n, 3n, 2n, BigInt(tokens)]);
    writeFileSync(offsets, new Uint8Array(other.buffer));
    expect(await refusal()).toBe(
      `${offsets}: offset 2 is 2, expected 3 to ${tokens} (the offsets rise from 0 to the ${tokens} tokens of ${manifest}); the file is damaged or belongs to another shard: ${fix}`,
    );
    other.set([0n, 3n, 5n, BigInt(tokens + 9)]);
    writeFileSync(offsets, new Uint8Array(other.buffer));
    expect(await refusal()).toBe(
      `${offsets}: offset 3 is ${tokens + 9}, expected ${tokens} (the offsets rise from 0 to the ${tokens} tokens of ${manifest}); the file is damaged or belongs to another shard: ${fix}`,
    );
    writeFileSync(offsets, offsetBytes);
    const json = JSON.parse(readFileSync(manifest, 'utf8'));
    writeFileSync(manifest, JSON.stringify({ ...json, ids: ['e0', 'e1'] }));
    expect(await refusal()).toBe(
      `${manifest}: ids lists 2 example ids, and count says 3; encode the data again`,
    );
    writeFileSync(manifest, JSON.stringify({ ...json, tokens: -1 }));
    expect(await refusal()).toBe(
      `${manifest}: tokens is -1, expected an integer >= 0; encode the data again`,
    );
    // restored, it reads as written
    writeFileSync(manifest, JSON.stringify(json));
    expect((await readEncodedShard(dir)).examples.map((e) => e.inputIds)).toEqual(
      encoded.map((e) => e.inputIds),
    );
  });
  it('reads back which examples were cut as the encoder says it: exactly maxSeqLength tokens is not', async () => {
    const ex = {
      dataset: 't',
      id: 'fits',
      messages: [
        { role: 'user' as const, content: 'hi' },
        { role: 'assistant' as const, content: 'a short answer' },
      ],
    };
    const full = await encodeDataset({ examples: [ex], tokenizer: charTok, recipe: 'toy' });
    const length = full.encoded[0]!.inputIds.length;
    for (const [maxSeqLength, truncated] of [
      [length, false],
      [length - 1, true],
    ] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'ft-shard-'));
      const enc = await encodeDataset({
        examples: [ex],
        tokenizer: charTok,
        recipe: 'toy',
        maxSeqLength,
        outDir: dir,
      });
      expect(enc.encoded[0]!.truncated).toBe(truncated);
      const back = await readEncodedShard(dir);
      expect(back.manifest.truncated).toBe(truncated ? 1 : 0);
      expect(back.examples[0]!.truncated).toBe(truncated);
    }
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

    it("planned again into a job directory, leaves none of the earlier plan's files this one does not write", async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'ft-replan-')), 'job');
      await planJob({ ...base, gpus: 4, out, validation: { count: 10 } }); // llama2: with chat_template.jinja
      for (const f of ['ds_zero3.json', 'data/validation/manifest.json', 'tokenizer/chat_template.jinja'])
        expect(existsSync(join(out, f)), f).toBe(true);
      const smollm = sharedPath('fixtures/tokenizers/smollm');
      const again = await planJob({ ...base, tokenizer: smollm, gpus: 0, out });
      expect(readdirSync(join(out, 'tokenizer')).sort()).toEqual(
        readdirSync(smollm)
          .filter((f) => (Object.values(TOKENIZER_FILE_NAMES) as string[]).includes(f))
          .sort(),
      );
      expect(existsSync(join(out, 'ds_zero3.json'))).toBe(false);
      expect(existsSync(join(out, 'data/validation'))).toBe(false);
      expect(again.files.every((f) => existsSync(join(out, f)))).toBe(true);
      // a directory that holds no planned job keeps its files
      const other = mkdtempSync(join(tmpdir(), 'ft-notjob-'));
      writeFileSync(join(other, 'ds_zero3.json'), '{}');
      mkdirSync(join(other, 'tokenizer'));
      writeFileSync(join(other, 'tokenizer', 'notes.txt'), 'mine');
      await planJob({ ...base, tokenizer: smollm, gpus: 0, out: other });
      expect(readFileSync(join(other, 'ds_zero3.json'), 'utf8')).toBe('{}');
      expect(readFileSync(join(other, 'tokenizer', 'notes.txt'), 'utf8')).toBe('mine');
    }, 60_000);

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
        'tokenizer/tokenizer.json',
        'tokenizer/tokenizer_config.json',
        'tokenizer/generation_config.json',
      ]) {
        expect(existsSync(join(out, f)), f).toBe(true);
      }
      // the job keeps its own tokenizer copy, named relative to the job: it moves to a cluster whole
      expect(r.job.tokenizerDir).toBe('tokenizer');
      expect(
        readFileSync(join(out, 'tokenizer/tokenizer.json')).equals(
          readFileSync(join(base.tokenizer, 'tokenizer.json')),
        ),
      ).toBe(true);
      expect(r.files).toContain('tokenizer/tokenizer.json');
      expect(r.job.training).toMatchObject({
        learningRate: 1e-5,
        scheduleSteps: 'reference', // sized as the paper's finetune.py sizes it
        warmupRatio: 0.03,
        weightDecay: 0,
        gradientAccumulationSteps: 8,
        maxSeqLength: 2048,
        bf16: true,
      });
      expect(r.job.launch).toMatchObject({ processes: 8, nodes: 2, zero3: true });
      expect(JSON.parse(readFileSync(join(out, 'job.json'), 'utf8')).training.scheduleSteps).toBe(
        'reference',
      );
      expect(r.job.counts.train + r.job.counts.validation).toBe(374);
      expect(r.train.tokenizer.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(readFileSync(join(out, 'accelerate.yaml'), 'utf8')).toContain('num_processes: 8');
      expect(readFileSync(join(out, 'launch.sh'), 'utf8')).toContain('MACHINE_RANK');
      expect(statSync(join(out, 'launch.sh')).mode & 0o111).not.toBe(0);
    }, 30_000); // tokenizes MBPP with the Llama-2 tokenizer: ~4 s alone on 2 cores, more under a parallel CI run

    it('refuses a job with no training example left, saying why', async () => {
      const out = mkdtempSync(join(tmpdir(), 'ft-plan-'));
      await expect(planJob({ ...base, gpus: 0, training: { maxSeqLength: 16 }, out })).rejects.toThrow(
        'maxSeqLength: no training example is left: all 374 were dropped (no response token fits in 16 tokens); raise `maxSeqLength` (CLI: --max-seq-length)',
      );
      await expect(planJob({ ...base, gpus: 0, validation: { count: 374 }, out })).rejects.toThrow(
        'validation: holds out all 374 mbpp examples, which leaves nothing to train on; hold out fewer (a count below 374, or a smaller fraction)',
      );
    }, 30_000);

    it("fits maxSeqLength to a local model's context: the paper's 2048 lowered with a note, more refused", async () => {
      const model = mkdtempSync(join(tmpdir(), 'ft-model-'));
      writeFileSync(join(model, 'config.json'), JSON.stringify({ max_position_embeddings: 300 }));
      writeFileSync(join(model, 'model.safetensors'), ''); // planning reads the names only
      const config = join(model, 'config.json');
      const out = join(mkdtempSync(join(tmpdir(), 'ft-plan-')), 'job');
      // refused before any data is built or file written
      await expect(
        planJob({ ...base, model, gpus: 0, training: { maxSeqLength: 301 }, out }),
      ).rejects.toThrow(
        `maxSeqLength: 301 tokens is more than the model's context of 300 positions (max_position_embeddings in ${config}); use 300 or less`,
      );
      expect(existsSync(out)).toBe(false);
      const r = await planJob({ ...base, model, gpus: 0, out });
      expect(r.job.training.maxSeqLength).toBe(300);
      expect(r.notes).toEqual([
        `maxSeqLength 300, not the paper's 2048: the model's context is 300 positions (max_position_embeddings in ${config}); examples are truncated to 300 tokens`,
      ]);
      expect(JSON.parse(readFileSync(join(out, 'data/train/manifest.json'), 'utf8')).maxSeqLength).toBe(300);
      // a hub id has no local config.json: the paper's length, no note
      expect(modelContextLength('meta-llama/Llama-2-7b-hf')).toBeUndefined();
    }, 30_000);

    it("refuses a tokenizer with ids beyond a local model's vocabulary, before writing anything", async () => {
      const model = mkdtempSync(join(tmpdir(), 'ft-model-'));
      const config = join(model, 'config.json');
      writeFileSync(config, JSON.stringify({ max_position_embeddings: 4096, vocab_size: 1000 }));
      writeFileSync(join(model, 'model.safetensors'), ''); // planning reads the names only
      const out = join(mkdtempSync(join(tmpdir(), 'ft-plan-')), 'job');
      const err = await planJob({ ...base, model, gpus: 0, out }).catch((e) => e);
      expect(err).toBeInstanceOf(FinetuneOptionError);
      expect(err.field).toBe('tokenizer');
      expect(err.message).toMatch(
        new RegExp(
          `^tokenizer: ${base.tokenizer} encodes token id \\d+ \\(in example mbpp_\\d+\\), which the model has no embedding for: its vocabulary is 1000 tokens \\(vocab_size in ${config}\\); it is not this model's tokenizer: give the tokenizer of "${model}" with the \`tokenizer\` option \\(CLI: --tokenizer DIR\\), or leave it out to use the model directory's own$`,
        ),
      );
      const sweep = join(mkdtempSync(join(tmpdir(), 'ft-sweep-')), 'sweep');
      await expect(
        planSweep({ ...base, model, gpus: 0, out: sweep, epochs: [5], seeds: [1] }),
      ).rejects.toThrow(/^tokenizer: .* encodes token id \d+/);
      expect([existsSync(out), existsSync(sweep)]).toEqual([false, false]);
      // the Llama-2 vocabulary holds every id its tokenizer writes
      writeFileSync(config, JSON.stringify({ max_position_embeddings: 4096, vocab_size: 32000 }));
      expect((await planJob({ ...base, model, gpus: 0, out })).job.counts.train).toBe(374);
    }, 60_000);

    it('refuses ZeRO-3 on a CPU job (gpus 0) before writing anything', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'ft-plan-')), 'job');
      const err = await planJob({ ...base, gpus: 0, zero3: true, out }).catch((e) => e);
      expect(err).toBeInstanceOf(FinetuneOptionError);
      expect(err.field).toBe('zero3');
      expect(err.message).toBe(
        'zero3: DeepSpeed ZeRO-3 shards a model across GPUs, and a CPU job (gpus 0) trains in one plain process; leave zero3 out, or give gpus',
      );
      await expect(
        planSweep({ ...base, gpus: 0, zero3: true, out, epochs: [5], seeds: [1] }),
      ).rejects.toThrow(FinetuneOptionError);
      expect(existsSync(out)).toBe(false);
    });

    it('refuses unknown options before writing anything, naming the one meant or where it goes', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'ft-plan-')), 'job');
      const refused = (o: object, plan: (o: never) => Promise<unknown> = planJob) =>
        plan({ ...base, out, ...o } as never).then(
          () => 'planned',
          (e: Error) => e.message,
        );
      expect(await refused({ gpu: 8 })).toMatch(
        /^gpu: not an option of planJob \(did you mean gpus\?\); the options are recipe, data, removeInstructions, model, out, gpus, /,
      );
      expect(await refused({ seed: 3 })).toBe(
        'seed: a training option, not an option of planJob: give it in training (training: { seed: 3 })',
      );
      expect(await refused({ epochs: [5] })).toBe(
        'epochs: a training option, not an option of planJob: give it in training (training: { epochs: [5] })',
      );
      // planSweep: its own grid options, and `seed` is a near miss of `seeds`
      expect(await refused({ seed: 3 }, planSweep)).toMatch(
        /^seed: not an option of planSweep \(did you mean seeds\?\)/,
      );
      expect(await refused({ learningRate: 1e-4 }, planSweep)).toBe(
        'learningRate: a training option, not an option of planSweep: give it in training (training: { learningRate: 0.0001 })',
      );
      expect(existsSync(out)).toBe(false);
    });

    it('refuses a hub id without a tokenizer directory, and inexact batch sizes', async () => {
      const out = mkdtempSync(join(tmpdir(), 'ft-plan-'));
      await expect(planJob({ ...base, tokenizer: undefined, out })).rejects.toThrow(
        `tokenizer: ${resolve('meta-llama/Llama-2-7b-hf')} has no tokenizer.json: "meta-llama/Llama-2-7b-hf" is read as a local model directory here; for a hub model, give the \`tokenizer\` option (CLI: --tokenizer DIR), a directory with the tokenizer files of "meta-llama/Llama-2-7b-hf"`,
      );
      await expect(planJob({ ...base, tokenizer: out, out: join(out, 'job') })).rejects.toThrow(
        `tokenizer: ${out} has no tokenizer.json; give a tokenizer directory that matches the model "meta-llama/Llama-2-7b-hf"`,
      );
      // the tokenizer.json file itself, for its directory: named as a file, with the directory meant
      const file = join(out, 'tokenizer.json');
      writeFileSync(file, '{}');
      await expect(planJob({ ...base, tokenizer: file, out: join(out, 'job') })).rejects.toThrow(
        `tokenizer: ${file} is a file; give the directory that holds the tokenizer files (${out})`,
      );
      await expect(loadEncodingTokenizer(file)).rejects.toThrow(
        `${file}: is a file; pass the directory that holds the tokenizer files (${out})`,
      );
      expect(existsSync(join(out, 'job'))).toBe(false);
      await expect(planJob({ ...base, gpus: 3, out })).rejects.toThrow(FinetuneOptionError);
    });

    it('writes the epoch x seed grid', async () => {
      const out = mkdtempSync(join(tmpdir(), 'ft-sweep-'));
      const r = await planSweep({
        ...base,
        gpus: 1,
        out,
        epochs: [5, 7],
        seeds: [1, 2],
        training: { scheduleSteps: 'run' },
      });
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
      for (const j of r.jobs)
        expect(JSON.parse(readFileSync(join(j.jobDir, 'job.json'), 'utf8')).training.scheduleSteps).toBe(
          'run',
        );
      // refused, naming the field, before any job is written
      const bad = join(out, 'bad');
      await expect(
        planSweep({ ...base, gpus: 1, out: bad, training: { scheduleSteps: 'unsplit' as never } }),
      ).rejects.toThrow(`scheduleSteps: must be 'reference' (the paper's) or 'run', got "unsplit"`);
      expect(existsSync(bad)).toBe(false);
    }, 30_000);

    /** A job as train.py leaves it once finished: the model in output/, result.json, no checkpoints. */
    const finish = (dir: string, steps = 6) => {
      mkdirSync(join(dir, 'output'), { recursive: true });
      writeFileSync(join(dir, 'output', 'config.json'), '{}');
      writeFileSync(join(dir, 'result.json'), JSON.stringify({ steps, total_steps: steps }));
    };
    /** A checkpoint as train.py writes it, of `job`'s settings with `changed` ones, at `step`. */
    const checkpoint = async (dir: string, step: number, changed: Record<string, unknown> = {}) => {
      const path = join(dir, 'checkpoints', `step-${String(step).padStart(8, '0')}`);
      mkdirSync(path, { recursive: true });
      const identity = await jobIdentity(JSON.parse(readFileSync(join(dir, 'job.json'), 'utf8')), dir, {
        maxSteps: null,
      });
      const meta = { format: 'implicit-it/checkpoint@1', ...identity, ...changed, step, epoch: 0 };
      writeFileSync(join(path, 'meta.json'), JSON.stringify(meta));
      return path;
    };
    const noPython = '/nonexistent/python3';

    it('runJob refuses a finished job before Python starts, naming its model; replace goes on', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'ft-finished-')), 'job');
      await planJob({ ...base, gpus: 0, out });
      finish(out);
      const model = `the trained model in ${join(out, 'output')} (6 of 6 steps, as its result.json says)`;
      // refused before Python is looked for (a missing interpreter would say so otherwise)
      const again = await runJob(out, { python: noPython, args: ['--max-steps', '2'] }).catch((e) => e);
      expect(again).toBeInstanceOf(JobError);
      expect(again.message).toBe(
        `${out}: the job is finished: it holds ${model}; running it again would train a new model over it. To do so, from the start, pass \`replace: true\` (CLI: --replace); to keep it, plan a new job elsewhere`,
      );
      const resumed = await runJob(out, { python: noPython, resume: true }).catch((e) => e);
      expect(resumed).toBeInstanceOf(JobError);
      expect(resumed.message).toContain(`the job is finished: it holds ${model}, and no checkpoint`);
      expect(resumed.message).toContain('nothing to resume');
      expect(resumed.message).not.toContain('run without');
      // a model saved without its result.json is finished too
      rmSync(join(out, 'result.json'));
      await expect(runJob(out, { python: noPython })).rejects.toThrow(
        `the trained model in ${join(out, 'output')} (no result.json)`,
      );
      // replace: on to Python, which is missing here; nothing is removed before training can start
      finish(out);
      await expect(runJob(out, { python: noPython, replace: true })).rejects.toThrow(MissingPythonError);
      expect(existsSync(join(out, 'result.json'))).toBe(true);
      await expect(runJob(out, { python: noPython, replace: true, resume: true })).rejects.toThrow(
        FinetuneOptionError,
      );
    });

    it('runJob checks checkpoints against job.json before Python starts, with hints that lead on', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'ft-checkpoints-')), 'job');
      await planJob({ ...base, gpus: 0, out, training: { effectiveBatchSize: 8 } });
      const path = await checkpoint(out, 2);
      // without resume: continue it, or replace
      const fresh = await runJob(out, { python: noPython }).catch((e) => e);
      expect(fresh).toBeInstanceOf(JobError);
      expect(fresh.message).toBe(
        `${out}: ${join(out, 'checkpoints')} holds a checkpoint of an earlier run that did not finish (newest: step 2): continue it with \`resume: true\` (CLI: --resume), or pass \`replace: true\` (CLI: --replace) to discard the checkpoints and start over`,
      );
      // the same settings: resumed (on to Python)
      await expect(runJob(out, { python: noPython, resume: true })).rejects.toThrow(MissingPythonError);
      // written with --max-steps 4: resumed with the same
      await checkpoint(out, 3, { total_steps: 4 });
      const steps = await runJob(out, { python: noPython, resume: true }).catch((e) => e);
      expect(steps.message).toContain(
        "was written by a run of 4 optimizer steps, and this one would take 235: resume it with `args: ['--max-steps', '4']` (CLI: --resume --max-steps 4)",
      );
      await expect(
        runJob(out, { python: noPython, resume: true, args: ['--max-steps', '4'] }),
      ).rejects.toThrow(MissingPythonError);
      // other settings (a job planned again with another seed and data): neither resumed nor run over
      rmSync(join(out, 'checkpoints'), { recursive: true });
      await checkpoint(out, 2, { seed: 3, data: '0123456789abcdef' });
      for (const resume of [true, false]) {
        const other = await runJob(out, { python: noPython, resume }).catch((e) => e);
        expect(other).toBeInstanceOf(JobError);
        expect(other.message).toMatch(
          /was written by a run with seed 3 \(now 1\), training data \(digest\) "0123456789abcdef" \(now "[0-9a-f]{16}"\), so this job\.json cannot (resume|continue) it: pass `replace: true` \(CLI: --replace\) to discard the checkpoints and start over, or plan the job again with the settings it was written with and resume it$/,
        );
      }
      // resume with no checkpoint: run without it
      rmSync(join(out, 'checkpoints'), { recursive: true });
      await expect(runJob(out, { python: noPython, resume: true })).rejects.toThrow(
        `no complete checkpoint in ${join(out, 'checkpoints')} to resume from: run it without \`resume\` (CLI: --resume) to start`,
      );
      expect(path).toContain('step-00000002');
    });

    it('planJob refuses to relabel what a run of the earlier plan left, unless replace removes it', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'ft-replan-run-')), 'job');
      await planJob({ ...base, gpus: 0, out });
      // a job that never ran (a failed run's log aside) is planned over
      writeFileSync(join(out, 'train.log'), 'failed\n');
      await planJob({ ...base, gpus: 0, out, training: { seed: 2 } });
      expect(readFileSync(join(out, 'train.log'), 'utf8')).toBe('failed\n');
      // checkpoints of this plan's settings stay, to be resumed; of other settings, refused
      const kept = await checkpoint(out, 2);
      await planJob({ ...base, gpus: 0, out, training: { seed: 2 }, keepCheckpoints: 2 });
      expect(existsSync(kept)).toBe(true);
      const other = await planJob({ ...base, recipe: 'poetry', gpus: 0, out }).catch((e) => e);
      expect(other).toBeInstanceOf(JobError);
      expect(other.message).toMatch(
        /holds a checkpoint of an unfinished run of the job planned there before \(mbpp, 5 epochs, seed 2\) \(newest: step 2\) with steps per epoch 6 \(now 9\), training examples 374 \(now 571\), seed 2 \(now 1\), training data \(digest\) "[0-9a-f]{16}" \(now "[0-9a-f]{16}"\): this plan could not resume it; plan with those settings to resume it, or give another `out`/,
      );
      expect(JSON.parse(readFileSync(join(out, 'job.json'), 'utf8')).recipe).toBe('mbpp');
      // a finished run: refused before any data is built, whatever the new plan's settings
      rmSync(join(out, 'checkpoints'), { recursive: true });
      finish(out);
      const relabel = await planJob({ ...base, dataDir: '/nonexistent', gpus: 0, out }).catch((e) => e);
      expect(relabel).toBeInstanceOf(JobError);
      expect(relabel.message).toBe(
        `${out}: holds the trained model in ${join(out, 'output')} (6 of 6 steps, as its result.json says) of the job planned there before (mbpp, 5 epochs, seed 2): planning again would label that model with this plan's settings; give another \`out\` (CLI: --out), or pass \`replace: true\` (CLI: --replace) to remove what it left (output/, result.json, checkpoints/, train logs) and plan afresh`,
      );
      // replace: the run's model, result, checkpoints and logs go
      await checkpoint(out, 2);
      writeFileSync(join(out, 'train.log.1'), 'earlier\n');
      await planJob({ ...base, recipe: 'poetry', gpus: 0, out, replace: true });
      for (const f of ['output', 'result.json', 'checkpoints', 'train.log', 'train.log.1'])
        expect(existsSync(join(out, f)), f).toBe(false);
      expect(JSON.parse(readFileSync(join(out, 'job.json'), 'utf8')).recipe).toBe('poetry');
    }, 60_000);

    it("planSweep refuses an earlier sweep's jobs outside the grid, and trained ones in it, unless replace", async () => {
      const out = mkdtempSync(join(tmpdir(), 'ft-resweep-'));
      await planSweep({ ...base, gpus: 0, out, epochs: [5, 7], seeds: [1] });
      const stale = await planSweep({ ...base, gpus: 0, out, epochs: [10], seeds: [1] }).catch((e) => e);
      expect(stale).toBeInstanceOf(JobError);
      expect(stale.message).toBe(
        `${out}: holds 2 jobs of an earlier sweep that are not in this grid (mbpp-ep5-seed1, mbpp-ep7-seed1), which running every job of the directory would train too; give another \`out\` (CLI: --out), or pass \`replace: true\` (CLI: --replace) to remove them`,
      );
      expect(existsSync(join(out, 'mbpp-ep10-seed1'))).toBe(false);
      // a job of the grid trained: refused before any job is written
      finish(join(out, 'mbpp-ep7-seed1'));
      await expect(planSweep({ ...base, gpus: 0, out, epochs: [5, 7], seeds: [1] })).rejects.toThrow(
        'holds the trained model in',
      );
      const r = await planSweep({ ...base, gpus: 0, out, epochs: [10, 7], seeds: [1], replace: true });
      expect(readdirSync(out).sort()).toEqual(['mbpp-ep10-seed1', 'mbpp-ep7-seed1', 'sweep.json']);
      expect(existsSync(join(out, 'mbpp-ep7-seed1', 'result.json'))).toBe(false);
      expect(r.jobs.map((j) => j.name)).toEqual(['mbpp-ep10-seed1', 'mbpp-ep7-seed1']);
    }, 60_000);

    it('runJob lists exactly what to install when Python lacks the stack', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'ft-run-')), 'job');
      await planJob({ ...base, gpus: 0, out });
      const err = await runJob(out, { python: '/nonexistent/python3' }).catch((e) => e);
      expect(err).toBeInstanceOf(MissingPythonError);
      expect(err.missing).toEqual(['torch', 'transformers', 'accelerate']);
      // the library's option first, then the flag that sets it (the CLI shows the flag alone)
      expect(err.message).toBe(
        '/nonexistent/python3 could not be started (not found, or not an executable); install Python 3.9+ then: pip install torch transformers accelerate; or point the `python` option (CLI: --python) or IMPLICIT_IT_PYTHON at an interpreter that has them',
      );
      // graphs modelkit cannot write are refused before Python is even looked for
      for (const onnxDtypes of [['fp16'], ['q4', 'q4']] as const) {
        const bad = await runJob(out, {
          python: '/nonexistent/python3',
          onnxDtypes: onnxDtypes as never,
        }).catch((e) => e);
        expect(bad).toBeInstanceOf(FinetuneOptionError);
        expect(bad.message).toBe(
          `onnxDtypes: expected distinct dtypes of fp32, q4, q8, got ${JSON.stringify(onnxDtypes)}`,
        );
      }
    });
  },
);

describe('planJob on a local model directory', () => {
  it('refuses one without PyTorch weights (an ONNX-only model create directory) before writing anything', async () => {
    const model = mkdtempSync(join(tmpdir(), 'ft-onnx-model-'));
    writeFileSync(join(model, 'config.json'), JSON.stringify({ max_position_embeddings: 300 }));
    mkdirSync(join(model, 'onnx'));
    writeFileSync(join(model, 'onnx', 'model.onnx'), '');
    writeFileSync(join(model, 'adapter_model.safetensors'), ''); // a LoRA adapter is no base model
    const out = join(mkdtempSync(join(tmpdir(), 'ft-plan-')), 'job');
    const options = { recipe: 'mbpp', model, gpus: 0, out };
    const message = `model: ${model} has no PyTorch weights for train.py to load (it holds ONNX graphs only, as \`implicit-it model create\` writes them without --safetensors): expected *.safetensors or pytorch_model*.bin (or their .index.json) beside config.json; give a Hugging Face checkpoint directory, or a hub id with a tokenizer directory (a random-weights model to try the mechanics: \`implicit-it model create --safetensors\`, or createModel with safetensors: true)`;
    const err = await planJob(options).catch((e) => e);
    expect(err).toBeInstanceOf(FinetuneOptionError);
    expect(err.field).toBe('model');
    expect(err.message).toBe(message);
    await expect(planSweep({ ...options, epochs: [5], seeds: [1] })).rejects.toThrow(message);
    expect(existsSync(out)).toBe(false);
    const file = join(model, 'config.json');
    await expect(planJob({ ...options, model: file })).rejects.toThrow(
      `model: ${file} is a file; give a Hugging Face model directory (config.json and its weights) or a hub id`,
    );
    // sharded weights and their index pass this check (planning goes on to the tokenizer)
    for (const name of ['model-00001-of-00002.safetensors', 'pytorch_model.bin.index.json']) {
      const dir = mkdtempSync(join(tmpdir(), 'ft-pt-model-'));
      writeFileSync(join(dir, name), '');
      await expect(planJob({ ...options, model: dir })).rejects.toThrow(/^tokenizer: /);
    }
  });
});

describe('planSweep grid', () => {
  it('checks the whole grid before writing anything: bad values, repeats and empty lists', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'ft-sweep-grid-')), 'sweep');
    const options = { recipe: 'mbpp', model: 'meta-llama/Llama-2-7b-hf', tokenizer: out, gpus: 0, out };
    for (const [grid, message] of [
      [{ epochs: [5, 0] }, 'epochs: must be a positive integer, got 0'],
      [{ seeds: [1, -1] }, "seed: must be an integer in [0, 4294967295] (accelerate's set_seed), got -1"],
      [{ seeds: [1, 2, 1] }, 'seeds: 1 is repeated in [1,2,1]; each job of the grid needs its own value'],
      [{ epochs: [] }, 'epochs: must be a non-empty array, got []'],
      [{ seeds: [] }, 'seeds: must be a non-empty array, got []'],
    ] as const) {
      const err = await planSweep({ ...options, ...grid } as never).catch((e) => e);
      expect(err).toBeInstanceOf(FinetuneOptionError);
      expect(err.message).toBe(message);
    }
    expect(existsSync(out)).toBe(false);
  });
});

describe('planJob checkpointing options', () => {
  it('are checked with the other options, before any data is built', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'ft-ckpt-')), 'job');
    // the tokenizer does not exist: an error about it would mean the data came first
    const options = { recipe: 'mbpp', model: 'meta-llama/Llama-2-7b-hf', tokenizer: out, gpus: 0, out };
    for (const [bad, message] of [
      [
        { checkpointing: 0 },
        "checkpointing: must be 'epoch', a positive integer (optimizer steps) or false, got 0",
      ],
      [{ keepCheckpoints: 0 }, 'keepCheckpoints: must be a positive integer, got 0'],
    ] as const) {
      await expect(planJob({ ...options, ...bad } as never)).rejects.toThrow(message);
      await expect(planSweep({ ...options, ...bad, epochs: [5], seeds: [1] } as never)).rejects.toThrow(
        message,
      );
    }
    expect(existsSync(out)).toBe(false);
  });
});

describe('runJob on a directory that is not a job', () => {
  it('throws JobError', async () => {
    await expect(runJob(mkdtempSync(join(tmpdir(), 'ft-nojob-')))).rejects.toThrow(JobError);
  });
  it('throws JobError naming a corrupt job.json and saying to plan again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-badjob-'));
    writeFileSync(join(dir, 'job.json'), '{bad');
    const err = await runJob(dir).catch((e) => e);
    expect(err).toBeInstanceOf(JobError);
    expect(err.message).toMatch(
      new RegExp(
        `^${dir}: ${join(dir, 'job.json')} is not valid JSON \\(.+\\); plan the job again \\(implicit-it finetune plan\\)$`,
      ),
    );
    writeFileSync(join(dir, 'job.json'), 'null');
    await expect(runJob(dir)).rejects.toThrow(`${dir}: job.json format is undefined, expected`);
  });
});

describe('runJob abort', () => {
  /**
   * A job directory whose launch.sh behaves like accelerate's launcher: it starts a worker (the
   * stand-in for train.py), ignores SIGTERM itself and does not pass it on. The interpreter answers
   * the module probe as if the training stack were installed.
   */
  function launcherJob(worker: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'ft-abort-'));
    writeFileSync(
      join(dir, 'job.json'),
      JSON.stringify({
        format: 'implicit-it/finetune-job@1',
        launch: { zero3: false, gpusPerNode: 0 },
        training: {},
        outputDir: 'output',
      }),
    );
    // the worker writes its pid once it is set up (its own traps included); then the launcher says so
    writeFileSync(
      join(dir, 'launch.sh'),
      `(${worker}) &\nwhile [ ! -s worker.pid ]; do sleep 0.02; done\ntrap '' TERM\necho started\nwait\n`,
    );
    writeFileSync(
      join(dir, 'python'),
      `#!/bin/sh\necho '{"torch": "2", "transformers": "5", "accelerate": "1"}'\n`,
    );
    chmodSync(join(dir, 'python'), 0o755);
    return dir;
  }
  /** Whether `pid` still runs: a killed process its parent has not reaped yet (a zombie) does not. */
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
    return !/^\d+ \(.*\) Z/.test(stat);
  };

  it('stops the workers the launcher does not signal, and rejects', async () => {
    const dir = launcherJob('echo $BASHPID > worker.pid; exec sleep 300');
    const ac = new AbortController();
    const run = runJob(dir, {
      python: join(dir, 'python'),
      signal: ac.signal,
      killGraceMs: 60_000, // SIGTERM to the group must be enough: the grace period never ends here
      onLine: (line) => {
        if (line === 'started') ac.abort();
      },
    });
    const error = await run.catch((e) => e);
    expect(error).toBeInstanceOf(TrainingFailedError);
    expect(error.aborted).toBe(true);
    expect(error.message).toBe(
      `${dir}: training was stopped before it finished; the partial log is in ${dir}/train.log`,
    );
    const pid = Number(readFileSync(join(dir, 'worker.pid'), 'utf8'));
    expect(alive(pid)).toBe(false);
  });

  it('a rerun keeps the earlier logs (train.log.1, .2)', async () => {
    const dir = launcherJob('echo $BASHPID > worker.pid');
    for (let i = 0; i < 3; i++) {
      const ac = new AbortController();
      await runJob(dir, {
        python: join(dir, 'python'),
        signal: ac.signal,
        onLine: (line) => {
          if (line === 'started') ac.abort();
        },
      }).catch(() => {});
    }
    expect(
      readdirSync(dir)
        .filter((f) => f.startsWith('train.log'))
        .sort(),
    ).toEqual(['train.log', 'train.log.1', 'train.log.2']);
  });

  it('kills a worker that ignores SIGTERM after the grace period', async () => {
    const dir = launcherJob("trap '' TERM; echo $BASHPID > worker.pid; exec sleep 300");
    const ac = new AbortController();
    const started = Date.now();
    const run = runJob(dir, {
      python: join(dir, 'python'),
      signal: ac.signal,
      killGraceMs: 300,
      onLine: (line) => {
        if (line === 'started') ac.abort();
      },
    });
    await expect(run).rejects.toThrow(TrainingFailedError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(alive(Number(readFileSync(join(dir, 'worker.pid'), 'utf8')))).toBe(false);
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

describe('planJob and planSweep on your own data', () => {
  it('plan the file as a recipe is planned, job.json naming it and its SHA-256', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-own-job-'));
    const data = join(dir, 'support-chats.jsonl');
    const rows = [1, 2, 3, 4].map((i) =>
      JSON.stringify({
        messages: [
          { role: 'user', content: `question ${i}` },
          { role: 'assistant', content: `answer ${i}` },
        ],
      }),
    );
    writeFileSync(data, rows.join('\n'));
    const base = { data, model: 'meta-llama/Llama-2-7b-hf', tokenizer: charTok, gpus: 0 };
    const planned = await planJob({ ...base, out: join(dir, 'job'), validation: { count: 1, seed: 1 } });
    const job = JSON.parse(readFileSync(join(dir, 'job', 'job.json'), 'utf8'));
    expect(job.recipe).toBe('support-chats');
    expect(job.source).toEqual({ file: data, sha256: planned.job.source!.sha256, removeInstructions: false });
    expect(job.source.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect([job.counts.train, job.counts.validation]).toEqual([3, 1]);
    const sweep = await planSweep({
      ...base,
      removeInstructions: true,
      out: join(dir, 'sweep'),
      epochs: [5],
      seeds: [1, 2],
    });
    expect(sweep.jobs.map((j) => j.name)).toEqual(['support-chats-ep5-seed1', 'support-chats-ep5-seed2']);
    expect(sweep.jobs[0]!.job.source!.removeInstructions).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'sweep', 'sweep.json'), 'utf8')).source.file).toBe(data);
    // a recipe and data at once is refused before anything is written
    await expect(planJob({ ...base, recipe: 'gsm', out: join(dir, 'both') })).rejects.toThrow(
      'data: give either a recipe or `data` (your own examples), not both',
    );
    expect(existsSync(join(dir, 'both'))).toBe(false);
  });
});
