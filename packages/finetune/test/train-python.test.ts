import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeShared, SHARED_DIR, sharedPath } from '@implicit-it/testkit';
import { loadTokenizer } from '@implicit-it/tokenizers';
import { describe, expect, it } from 'vitest';
import { dataDigest } from '../src/earlier-run.js';
import {
  DEFAULT_LORA,
  type EncodedExample,
  type LinearSchedule,
  learningRateAt,
  linearSchedule,
  type PlanJobOptions,
  planJob,
  runJob,
  TrainingFailedError,
  trainEntryPointPath,
  writeEncodedShard,
} from '../src/index.js';
import { missingModules, PYTHON } from './python-env.js';

const torchMissing = await missingModules(['torch']);
const stackMissing = await missingModules(['torch', 'transformers', 'accelerate']);
const loraMissing = await missingModules(['peft', 'safetensors']);
if (torchMissing.length) {
  console.warn(
    `[skip] train.py core: ${PYTHON} lacks torch (apt-get install python3-torch, or set IMPLICIT_IT_PYTHON)`,
  );
}
if (stackMissing.length) {
  console.warn(
    `[skip] train.py end to end: ${PYTHON} lacks ${stackMissing.join(', ')} (set IMPLICIT_IT_PYTHON to a Python that has them)`,
  );
}

// A learnable toy task: a masked 3-token prompt, then a counting sequence that is trained.
function toyExamples(n: number): EncodedExample[] {
  return Array.from({ length: n }, (_, i) => {
    const prompt = [1, 10 + (i % 5), 20 + (i % 7)];
    const answer = Array.from({ length: 6 + (i % 4) }, (_, k) => 30 + ((i + k) % 20));
    return {
      id: `toy_${i}`,
      inputIds: [...prompt, ...answer],
      labels: [...prompt.map(() => -100), ...answer],
      trainedTokens: answer.length,
      truncated: false,
    };
  });
}

/** The examples written as a train shard in a new temporary directory. */
async function toyShard(prefix: string, examples: EncodedExample[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  await writeEncodedShard(dir, examples, {
    recipe: 'toy',
    split: 'train',
    dropped: [],
    maxSeqLength: 64,
    addBos: false,
    tokenizer: { addsBos: true, bosId: 1, eosToken: '</s>' },
  });
  return dir;
}

describe.skipIf(torchMissing.length > 0)('train.py core with plain torch', () => {
  it('reads our shards exactly, pads, masks, and learns', { timeout: 120_000 }, async () => {
    const examples = toyExamples(32);
    const dir = await toyShard('ft-core-', examples);
    const run = spawnSync(
      PYTHON,
      [join(import.meta.dirname, 'python/core_check.py'), trainEntryPointPath(), dir],
      {
        encoding: 'utf8',
      },
    );
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    expect(out.count).toBe(32);
    expect(out.first_ids).toEqual(examples[0]!.inputIds);
    expect(out.first_labels).toEqual(examples[0]!.labels);
    expect(out.batch_shape).toEqual([3, 11]); // longest of the first three: 3 + 8
    expect(out.attention).toBe(9 + 10 + 11);
    expect(out.steps).toBe(out.total_steps);
    expect(out.total_steps).toBe(12); // 3 epochs x ceil(8 batches / 2)
    expect(out.val_losses).toHaveLength(3);
    expect(out.after).toBeLessThan(out.before * 0.7);
    expect(out.mask_ok).toBe(true);
  });
});

describe.skipIf(torchMissing.length > 0)('train.py sizes the linear schedule', () => {
  it("as the paper's finetune.py ('reference') or for the run's steps ('run'), for 1 and 2 processes", {
    timeout: 120_000,
  }, async () => {
    const dir = await toyShard('ft-schedule-', toyExamples(32));
    const grid = [1, 2, 3, 8].flatMap((processes) =>
      (['reference', 'run'] as const).flatMap((scheduleSteps) =>
        [
          { examples: 1030, batch: 1, accumulation: 64 / Math.min(processes, 2), epochs: 5 },
          { examples: 1000, batch: 2, accumulation: 4, epochs: 7 },
          { examples: 37, batch: 3, accumulation: 5, epochs: 2 },
        ].map((c) => ({ ...c, processes, scheduleSteps })),
      ),
    );
    const run = spawnSync(
      PYTHON,
      [join(import.meta.dirname, 'python/schedule_check.py'), trainEntryPointPath(), dir],
      {
        encoding: 'utf8',
        input: JSON.stringify(
          grid.map((c) => ({
            examples: c.examples,
            batch_size: c.batch,
            grad_accum: c.accumulation,
            processes: c.processes,
            epochs: c.epochs,
            warmup_ratio: 0.03,
            schedule_steps: c.scheduleSteps,
          })),
        ),
      },
    );
    expect(run.status, run.stderr).toBe(0);
    type Plan = {
      steps_per_epoch: number;
      total_steps: number;
      schedule_total: number;
      warmup_steps: number;
      advance: number;
    };
    const out = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      plans: Plan[];
      lrs: Record<string, { plan: Plan; during: number[]; after: number }>;
      refused: string | null;
      start: Record<string, Record<string, unknown>>;
    };
    const asTs = (p: Plan): LinearSchedule => ({
      stepsPerEpoch: p.steps_per_epoch,
      totalSteps: p.total_steps,
      scheduleTotal: p.schedule_total,
      warmupSteps: p.warmup_steps,
      advance: p.advance,
    });
    // LIMA response tuning as the paper ran it (2 GPUs, accumulation 32): finetune.py sizes the schedule
    // for the unsplit 1030 examples (5 x ceil(1030 / 32) = 165 steps, 4 warmup) and accelerate advances it
    // twice per optimizer step, while each GPU takes 5 x ceil(515 / 32) = 85 steps
    const lima = out.lrs['2-reference']!;
    expect(lima.plan).toEqual({
      steps_per_epoch: 17,
      total_steps: 85,
      schedule_total: 165,
      warmup_steps: 4,
      advance: 2,
    });
    expect(lima.during.slice(0, 4)).toEqual([0, 5e-6, 1e-5, 1e-5 * (159 / 161)]);
    expect(lima.during[82]).toBe(1e-5 * (1 / 161)); // step 83: the schedule's last step above 0
    expect(lima.during.slice(83)).toEqual([0, 0]); // steps 84 and 85 train at learning rate 0
    expect(lima.after).toBe(0);
    // 'run': sized for the 85 steps the run takes (2 warmup), advanced once per step: 0 after the last
    const run2 = out.lrs['2-run']!;
    expect(run2.plan).toEqual({
      steps_per_epoch: 17,
      total_steps: 85,
      schedule_total: 85,
      warmup_steps: 2,
      advance: 1,
    });
    expect(run2.during.slice(0, 3)).toEqual([0, 5e-6, 1e-5]);
    expect(run2.during.at(-1)).toBe(1e-5 * (1 / 83));
    expect(run2.after).toBe(0);
    // one process (accumulation 64): the two are the same schedule, sized for the run's 85 steps
    expect(out.lrs['1-reference']).toEqual(out.lrs['1-run']);
    expect(out.lrs['1-run']!.plan).toEqual(run2.plan);
    expect(out.lrs['1-run']!.during).toEqual(run2.during);
    // the CLI's summary (linearSchedule, learningRateAt) computes what train.py does
    out.plans.forEach((plan, i) => {
      const c = grid[i]!;
      const ts = linearSchedule({
        examples: c.examples,
        recipe: {
          perDeviceBatchSize: c.batch,
          epochs: c.epochs,
          warmupRatio: 0.03,
          scheduleSteps: c.scheduleSteps,
        },
        accumulation: c.accumulation,
        processes: c.processes,
      });
      expect(ts, JSON.stringify(c)).toEqual(asTs(plan));
    });
    for (const [key, { plan, during, after }] of Object.entries(out.lrs)) {
      const steps = Array.from({ length: plan.total_steps + 1 }, (_, s) =>
        learningRateAt(asTs(plan), 1e-5, s + 1),
      );
      expect(steps, key).toEqual([...during, after]);
    }
    expect(out.refused).toBe(
      "training.scheduleSteps 'unsplit': expected 'reference' (the paper's) or 'run'; plan the job again",
    );
    // the loop trains with it and says so: 32 examples in batches of 4, accumulation 2, 2 epochs
    for (const mode of ['reference', 'run'])
      expect(out.start[mode], mode).toMatchObject({
        total_steps: 8,
        warmup_steps: 0,
        schedule_steps: mode,
        schedule_total: 8,
        schedule_advance: 1,
      });
    // a job.json with another value is refused before anything loads
    const job = join(mkdtempSync(join(tmpdir(), 'ft-schedule-job-')), 'job.json');
    writeFileSync(job, JSON.stringify({ training: { scheduleSteps: 'unsplit' } }));
    const refused = spawnSync(PYTHON, [trainEntryPointPath(), '--job', job], { encoding: 'utf8' });
    expect(refused.status).toBe(1);
    expect(refused.stderr.trim()).toBe(
      `train.py: ${job}: training.scheduleSteps 'unsplit': expected 'reference' (the paper's) or 'run'; plan the job again`,
    );
  });
});

describe.skipIf(torchMissing.length > 0)('train.py refuses an incomplete shard', () => {
  it('names the file cut short, its size and the size the manifest implies', {
    timeout: 120_000,
  }, async () => {
    const shard = await toyShard('ft-cut-', toyExamples(32));
    const tokens = JSON.parse(readFileSync(join(shard, 'manifest.json'), 'utf8')).tokens as number;
    const load = [
      'import importlib.util, sys',
      'spec = importlib.util.spec_from_file_location("train", sys.argv[1])',
      'train = importlib.util.module_from_spec(spec)',
      'spec.loader.exec_module(train)',
      'print(len(train.load_shard(sys.argv[2])[0]))',
    ].join('\n');
    const attempt = () => spawnSync(PYTHON, ['-c', load, trainEntryPointPath(), shard], { encoding: 'utf8' });
    expect(attempt().stdout.trim()).toBe('32');
    // a job directory copied in part: the ids file stops after 250 of its tokens, the offsets are gone
    const ids = join(shard, 'input_ids.i32');
    truncateSync(ids, 1000);
    const cut = attempt();
    expect(cut.status).toBe(1);
    expect(cut.stderr.trim()).toBe(
      `train.py: ${ids} holds 1000 bytes, and ${shard}/manifest.json says ${4 * tokens} (${tokens} x 4); the shard is incomplete: copy the job directory again, or plan the job again`,
    );
    truncateSync(ids, 4 * tokens);
    const offsets = join(shard, 'offsets.i64');
    rmSync(offsets);
    expect(attempt().stderr.trim()).toBe(
      `train.py: ${offsets} is missing, and ${shard}/manifest.json says 264 (33 x 8); the shard is incomplete: copy the job directory again, or plan the job again`,
    );
  });
});

describe.skipIf(torchMissing.length > 0)('train.py checkpoints with plain torch', () => {
  it("digests the data as runJob does: a checkpoint's settings are checked before Python starts", {
    timeout: 60_000,
  }, async () => {
    const examples = toyExamples(12);
    const dir = await toyShard('ft-digest-', examples);
    const digest = spawnSync(
      PYTHON,
      [
        '-c',
        'import importlib.util, sys; s = importlib.util.spec_from_file_location("train", sys.argv[1]); t = importlib.util.module_from_spec(s); s.loader.exec_module(t); print(t.data_digest(t.load_shard(sys.argv[2])[0]))',
        trainEntryPointPath(),
        dir,
      ],
      { encoding: 'utf8' },
    );
    expect(digest.status, digest.stderr).toBe(0);
    expect(digest.stdout.trim()).toBe(dataDigest(examples));
  });

  it('resumes an interrupted run exactly where it stopped', { timeout: 180_000 }, async () => {
    const dir = await toyShard('ft-resume-', toyExamples(32));
    const run = spawnSync(
      PYTHON,
      [join(import.meta.dirname, 'python/resume_check.py'), trainEntryPointPath(), dir],
      { encoding: 'utf8' },
    );
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      ref_losses: number[];
      ref_val_losses: number[];
      cases: {
        every: string | number;
        kept: string[];
        resumed_at: number;
        same_weights: boolean;
        losses: number[];
        val_losses: number[];
        steps: number;
      }[];
      refused: string | null;
      refused_lr: string | null;
      refused_data: string | null;
      refused_schedule: string | null;
      digests: [string, string];
      bases: {
        base: { base_model: string; base_config: string; lora: null };
        meta: Record<string, unknown>;
        refused_model: string | null;
        refused_lora: string | null;
        same: string | null;
        legacy: string | null;
      };
    };
    expect(out.ref_losses).toHaveLength(18); // 3 epochs x 6 optimizer steps
    // interrupted at an epoch's end, in a later epoch, mid-epoch, after the first step
    expect(out.cases.map((c) => [c.every, c.resumed_at, c.kept])).toEqual([
      ['epoch', 6, ['step-00000006']],
      ['epoch', 12, ['step-00000012']],
      [4, 4, ['step-00000004']],
      [1, 1, ['step-00000001']],
    ]);
    for (const c of out.cases) {
      // the same batches, dropout masks, schedule and optimizer state as the run that never stopped
      expect(c.same_weights, `every ${c.every}`).toBe(true);
      expect(c.losses).toEqual(out.ref_losses);
      expect(c.val_losses).toEqual(out.ref_val_losses);
      expect(c.steps).toBe(18);
    }
    expect(out.refused).toMatch(
      /cannot resume from .*step-\d{8}: it was written by a run with total_steps 18 \(now 33\), steps_per_epoch 6 \(now 11\), grad_accum 2 \(now 1\)/,
    );
    // the same steps with another learning rate, or other examples of the same count: refused too,
    // not resumed with the checkpoint's learning rate, or on data the run did not start with
    expect(out.refused_lr).toMatch(
      /cannot resume from .*step-\d{8}: it was written by a run with learning_rate 0\.01 \(now 0\.001\); resume with the same settings \(plan the job again with them\), or delete \S+ to start over$/,
    );
    const [digest, otherDigest] = out.digests;
    expect(digest).toMatch(/^[0-9a-f]{16}$/);
    expect(otherDigest).not.toBe(digest);
    expect(out.refused_data).toContain(
      `it was written by a run with data '${digest}' (now '${otherDigest}'); resume with the same settings`,
    );
    // another base model (a job re-planned with another --model of the same shape), or other LoRA
    // settings: refused, where the checkpoint records its base; one written before that resumes
    const { bases } = out;
    expect(bases.base.base_config).toMatch(/^[0-9a-f]{16}$/);
    expect(bases.meta).toEqual(bases.base);
    expect(bases.refused_model).toMatch(
      new RegExp(
        `^train\\.py: cannot resume from .*step-\\d{8}: it was written by a run with base_model '${bases.base.base_model}' \\(now '[^']+'\\), base_config '${bases.base.base_config}' \\(now None\\); resume with the same settings \\(plan the job again with them\\), or delete \\S+ to start over$`,
      ),
    );
    expect(bases.refused_lora).toMatch(/with lora None \(now \{'rank': 8\}\); resume with the same settings/);
    expect(bases.same).toBeNull();
    expect(bases.legacy).toBeNull();
    // the schedule sized another way (the same with one process, but not with several)
    expect(out.refused_schedule).toMatch(
      /cannot resume from .*step-\d{8}: it was written by a run with schedule_steps 'reference' \(now 'run'\); resume with the same settings \(plan the job again with them\), or delete \S+ to start over$/,
    );
  });
});

describeShared(
  'train.py names the BOS stand-in of a tokenizer without BOS (OLMo)',
  ['data/mbpp/mbpp.jsonl', 'fixtures/tokenizers/olmo/tokenizer.json'],
  () => {
    it.skipIf(torchMissing.length > 0)(
      'prompts for the trained model start with the EOS its training examples started with',
      { timeout: 120_000 },
      async () => {
        const root = mkdtempSync(join(tmpdir(), 'ft-olmo-bos-'));
        const olmo = sharedPath('fixtures/tokenizers/olmo');
        const plan = (name: string, addBos: boolean) =>
          planJob({
            recipe: 'mbpp',
            model: 'allenai/OLMo-1B-hf',
            tokenizer: olmo,
            dataDir: join(SHARED_DIR, 'data'),
            gpus: 0,
            out: join(root, name),
            addBos,
            exportOnnx: false,
          });
        // what train.py does to the output's tokenizer files once they are written: here, a copy of the
        // job's tokenizer (OLMo's has no tokenizer_config.json; the stand-in gets one)
        const finish = (jobDir: string) => {
          const out = join(jobDir, 'output');
          mkdirSync(out);
          copyFileSync(join(jobDir, 'tokenizer', 'tokenizer.json'), join(out, 'tokenizer.json'));
          const run = spawnSync(
            PYTHON,
            [
              '-c',
              `import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("train", sys.argv[1])
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
_, manifest = train.load_shard(os.path.join(sys.argv[2], "data", "train"))
print(json.dumps(train.name_bos_stand_in(os.path.join(sys.argv[2], "output"), manifest)))`,
              join(jobDir, 'train.py'),
              jobDir,
            ],
            { encoding: 'utf8' },
          );
          expect(run.status, run.stderr).toBe(0);
          return { out, written: JSON.parse(run.stdout.trim()) as boolean };
        };

        const job = await plan('with-bos', true);
        const { out, written } = finish(job.jobDir);
        expect(written).toBe(true);
        expect(JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'))).toEqual({
          bos_token: '<|endoftext|>',
          add_bos_token: true,
        });
        const trained = await loadTokenizer(out);
        expect([trained.bosId, trained.addsBos]).toEqual([50279, true]);
        const prompt = trained.buildPrompt({ format: 'tulu', instruction: 'Write a function.' });
        const firstExample = readFileSync(join(job.jobDir, 'data', 'train', 'input_ids.i32'));
        expect(prompt.ids[0]).toBe(50279);
        expect(prompt.ids[0]).toBe(firstExample.readInt32LE(0));

        // no addBos: the output's tokenizer stays as it was
        const plain = finish((await plan('without-bos', false)).jobDir);
        expect(plain.written).toBe(false);
        expect(existsSync(join(plain.out, 'tokenizer_config.json'))).toBe(false);
        expect((await loadTokenizer(plain.out)).bosId).toBeUndefined();
      },
    );
  },
);

describeShared(
  'train.py end to end (tiny llama, CPU)',
  ['data/mbpp/mbpp.jsonl', 'fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    it.skipIf(stackMissing.length > 0)(
      'plans a job, runs 3 steps, streams progress, saves the model',
      { timeout: 240_000 },
      async () => {
        const root = mkdtempSync(join(tmpdir(), 'ft-e2e-'));
        const model = join(root, 'tiny-llama');
        const make = spawnSync(
          PYTHON,
          [
            '-c',
            `import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=32000, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
LlamaForCausalLM(cfg).save_pretrained(sys.argv[1])`,
            model,
          ],
          { encoding: 'utf8' },
        );
        expect(make.status, make.stderr).toBe(0);
        // MBPP jobs on the tiny Llama with the Llama-2 tokenizer, on CPU, in root/NAME
        const planMbpp = (name: string, options: Omit<PlanJobOptions, 'recipe' | 'model' | 'out'>) =>
          planJob({
            recipe: 'mbpp',
            model,
            tokenizer: sharedPath('fixtures/tokenizers/llama2'),
            dataDir: join(SHARED_DIR, 'data'),
            gpus: 0,
            out: join(root, name),
            ...options,
          });
        const plan = await planMbpp('job', {
          training: { effectiveBatchSize: 4, perDeviceBatchSize: 2, maxSeqLength: 128, epochs: 1 },
          validation: { count: 4, seed: 1 },
        });
        const progress: number[] = [];
        const r = await runJob(plan.jobDir, {
          python: PYTHON,
          args: ['--max-steps', '3'],
          onProgress: (p) => progress.push(p.step),
        });
        expect(progress).toEqual([1, 2, 3]);
        expect(r.device).toEqual({ name: 'cpu', mixedPrecision: 'no' }); // gpus 0: accelerate's use_cpu
        expect(r.steps).toBe(3);
        expect(Number.isFinite(r.finalLoss)).toBe(true);
        expect(r.valLosses).toHaveLength(1);
        // exported by optimum when installed, else by modelkit (the reason says why not optimum)
        expect(r.onnx).toMatchObject({ exported: true, path: join(r.outputDir, 'onnx') });
        if (r.onnx!.by === 'modelkit') expect(r.onnx!.reason).toMatch(/^optimum is not installed/);
        else expect(r.onnx!.by).toBe('optimum');
        expect(existsSync(join(r.outputDir, 'onnx', 'model.onnx'))).toBe(true);
        // the output model carries the job's own tokenizer copy
        expect(
          readFileSync(join(r.outputDir, 'tokenizer.json')).equals(
            readFileSync(join(sharedPath('fixtures/tokenizers/llama2'), 'tokenizer.json')),
          ),
        ).toBe(true);

        // interrupted after a checkpoint and resumed: the same model as a run that never stopped
        const ckJob = (name: string) =>
          planMbpp(name, {
            training: { effectiveBatchSize: 4, perDeviceBatchSize: 2, maxSeqLength: 64, epochs: 1 },
            checkpointing: 2,
            exportOnnx: false,
          });
        const whole = await runJob((await ckJob('whole')).jobDir, {
          python: PYTHON,
          args: ['--max-steps', '6'],
        });
        const cut = (await ckJob('cut')).jobDir;
        const stop = new AbortController();
        const failure = await runJob(cut, {
          python: PYTHON,
          args: ['--max-steps', '6'],
          signal: stop.signal,
          killGraceMs: 30_000, // SIGTERM, not SIGKILL: a checkpoint being written is left partial either way
          onEvent: (e) => {
            if (e.type === 'checkpoint') stop.abort();
          },
        }).catch((e: unknown) => e);
        expect(failure).toBeInstanceOf(TrainingFailedError);
        const saved = (failure as TrainingFailedError).checkpoint!;
        expect(saved.path).toBe(join(cut, 'checkpoints', `step-${String(saved.step).padStart(8, '0')}`));
        expect((failure as Error).message).toMatch(/--resume/);
        // starting over would mix two runs' checkpoints: refused, naming both ways on
        await expect(runJob(cut, { python: PYTHON, args: ['--max-steps', '6'] })).rejects.toThrow(
          /holds a checkpoint of an earlier run that did not finish .*continue it with `resume: true` \(CLI: --resume\), or pass `replace: true` \(CLI: --replace\) to discard the checkpoints and start over/s,
        );
        const steps: number[] = [];
        const resumed = await runJob(cut, {
          python: PYTHON,
          args: ['--max-steps', '6'],
          resume: true,
          onProgress: (p) => steps.push(p.step),
        });
        expect(resumed.resumedFrom?.step).toBeGreaterThanOrEqual(saved.step);
        expect(steps[0]).toBe(resumed.resumedFrom!.step + 1);
        expect(resumed.steps).toBe(6);
        expect(resumed.finalLoss).toBe(whole.finalLoss);
        expect(
          readFileSync(join(resumed.outputDir, 'model.safetensors')).equals(
            readFileSync(join(whole.outputDir, 'model.safetensors')),
          ),
        ).toBe(true);
        expect(existsSync(join(cut, 'checkpoints'))).toBe(false); // done: removed once the model is saved

        // LoRA: the same seed gives the same adapter (its init draws from the seed set before the model)
        if (loraMissing.length > 0) return;
        const adapters: string[] = [];
        for (const name of ['lora-a', 'lora-b']) {
          const job = await planMbpp(name, {
            training: {
              effectiveBatchSize: 2,
              perDeviceBatchSize: 2,
              maxSeqLength: 64,
              epochs: 1,
              lora: { ...DEFAULT_LORA, rank: 4 },
            },
            exportOnnx: name === 'lora-a',
          });
          const run = await runJob(job.jobDir, { python: PYTHON, args: ['--max-steps', '1'] });
          if (name === 'lora-a') {
            // the adapter merged into its base by modelkit (optimum cannot export an adapter)
            expect(run.onnx).toMatchObject({ exported: true, by: 'modelkit' });
            expect(existsSync(join(run.outputDir, 'config.json'))).toBe(true);
            expect(existsSync(join(run.outputDir, 'onnx', 'model.onnx'))).toBe(true);
          }
          const dump = spawnSync(
            PYTHON,
            [
              '-c',
              'import sys, safetensors.torch as s; t = s.load_file(sys.argv[1]); print(sorted((k, v.sum().item()) for k, v in t.items()))',
              join(run.outputDir, 'adapter_model.safetensors'),
            ],
            { encoding: 'utf8' },
          );
          expect(dump.status, dump.stderr).toBe(0);
          adapters.push(dump.stdout);
        }
        expect(adapters[1]).toBe(adapters[0]);
      },
    );
  },
);
