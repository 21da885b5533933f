import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { EncodedExample } from './encode-messages.js';
import { readEncodedShard } from './encoded-shard.js';
import { JobError } from './errors.js';
import { linearSchedule } from './linear-schedule.js';
import type { JobSpec } from './plan-job.js';

/**
 * What an earlier run left in a job directory: the trained model (`output/`) and its record
 * (`result.json`, written by train.py once the model is saved), the complete checkpoints of a run that
 * did not finish (`checkpoints/step-N` with a `meta.json`, oldest first), and the training logs. @internal
 */
export interface EarlierRun {
  /** `result.json`, when there is one (`steps`, `total_steps`). */
  result?: { steps?: number; total_steps?: number };
  /** `output/` holds files (a saved model, or an earlier run's that a later one has not replaced yet). */
  output: boolean;
  /** Complete checkpoints, oldest first. */
  checkpoints: { step: number; path: string }[];
  /** `train.log` and the earlier runs' `train.log.N`. */
  logs: string[];
}

/** What of job.json a checkpoint's identity depends on. @internal */
export interface PlannedIdentity {
  model: JobSpec['model'];
  training: JobSpec['training'];
  launch: Pick<JobSpec['launch'], 'processes'>;
  data: Pick<JobSpec['data'], 'train'>;
}

/** What train.py compares between a checkpoint and the run that resumes it (its `meta.json` keys). */
export type RunIdentity = Record<string, unknown>;

/** Identity keys that checkpoints written before them lack: compared only where the checkpoint has them (train.py's BASE_KEYS). */
const BASE_KEYS = ['base_model', 'base_config', 'lora'];

/** Each identity key in words. */
const KEY_WORDS: Readonly<Record<string, string>> = {
  total_steps: 'optimizer steps',
  steps_per_epoch: 'steps per epoch',
  examples: 'training examples',
  batch_size: 'per-device batch size',
  grad_accum: 'gradient accumulation',
  processes: 'processes',
  seed: 'seed',
  epochs: 'epochs',
  learning_rate: 'learning rate',
  warmup_ratio: 'warmup ratio',
  weight_decay: 'weight decay',
  data: 'training data (digest)',
  schedule_steps: 'schedule steps',
  base_model: 'base model',
  base_config: "base model's config.json (digest)",
  lora: 'LoRA settings',
};

/** Reads what an earlier run left in `jobDir` (see {@link EarlierRun}). @internal */
export function earlierRun(jobDir: string, outputDir = 'output'): EarlierRun {
  const dir = resolve(jobDir);
  let result: EarlierRun['result'];
  const resultFile = join(dir, 'result.json');
  if (existsSync(resultFile)) {
    try {
      result = JSON.parse(readFileSync(resultFile, 'utf8')) ?? {};
    } catch {
      result = {}; // there, but unreadable: a finished run all the same
    }
  }
  const out = join(dir, outputDir);
  const output = existsSync(out) && statSync(out).isDirectory() && readdirSync(out).length > 0;
  const checkpointDir = join(dir, 'checkpoints');
  const checkpoints = existsSync(checkpointDir)
    ? readdirSync(checkpointDir)
        .filter((name) => /^step-\d+$/.test(name) && existsSync(join(checkpointDir, name, 'meta.json')))
        .map((name) => ({ step: Number(name.slice('step-'.length)), path: join(checkpointDir, name) }))
        .sort((a, b) => a.step - b.step)
    : [];
  const logs = existsSync(dir)
    ? readdirSync(dir)
        .filter((name) => /^train\.log(\.\d+)?$/.test(name))
        .map((name) => join(dir, name))
    : [];
  return { ...(result ? { result } : {}), output, checkpoints, logs };
}

/**
 * Whether an earlier run finished: train.py wrote `result.json` after saving the model, or the model
 * is in `output/` with no checkpoint left to resume (a run that saved it, its record lost). @internal
 */
export function isFinished(run: EarlierRun): boolean {
  return run.result !== undefined || (run.output && run.checkpoints.length === 0);
}

/** `the trained model in DIR/output (6 of 6 steps, result.json)`. @internal */
export function describeFinished(jobDir: string, outputDir: string, run: EarlierRun): string {
  const out = join(resolve(jobDir), outputDir);
  const r = run.result;
  if (!r) return `the trained model in ${out} (no result.json)`;
  const steps =
    typeof r.steps === 'number'
      ? `${r.steps}${typeof r.total_steps === 'number' ? ` of ${r.total_steps}` : ''} steps`
      : 'steps unknown';
  return `the trained model in ${out} (${steps}, as its result.json says)`;
}

/**
 * Removes what an earlier run left: `result.json` and `checkpoints/`, and with `all` its model
 * (`output/`) and train logs too. @internal
 */
export async function removeEarlierRun(jobDir: string, outputDir: string, all: boolean): Promise<void> {
  const dir = resolve(jobDir);
  const logs = earlierRun(dir, outputDir).logs;
  await rm(join(dir, 'result.json'), { force: true });
  await rm(join(dir, 'checkpoints'), { recursive: true, force: true });
  if (!all) return;
  await rm(join(dir, outputDir), { recursive: true, force: true });
  for (const log of logs) await rm(log, { force: true });
}

/**
 * The first 16 hex digits of a SHA-256 over every example's length, input ids and labels (as int64,
 * little-endian), in order: train.py's `data_digest`. @internal
 */
export function dataDigest(examples: readonly EncodedExample[]): string {
  const hash = createHash('sha256');
  for (const { inputIds, labels } of examples) {
    const length = Buffer.alloc(8);
    length.writeBigInt64LE(BigInt(inputIds.length));
    hash.update(length);
    for (const values of [inputIds, labels]) {
      const buffer = Buffer.alloc(8 * values.length);
      for (const [i, v] of values.entries()) buffer.writeBigInt64LE(BigInt(v), 8 * i);
      hash.update(buffer);
    }
  }
  return hash.digest('hex').slice(0, 16);
}

/** train.py's `base_identity`: the model as named, its config.json's digest where it is a directory, the LoRA settings. */
function baseIdentity(model: string, lora: unknown, jobDir: string): RunIdentity {
  // train.py runs in the job directory: a relative name is looked up there
  const config = join(resolve(jobDir, model), 'config.json');
  let digest: string | null = null;
  if (existsSync(config) && statSync(config).isFile())
    digest = createHash('sha256').update(readFileSync(config)).digest('hex').slice(0, 16);
  return { base_model: model, base_config: digest, lora: lora ?? null };
}

/**
 * What train.py would record in a checkpoint of `job` (the keys of its `identity`), computed from
 * job.json and the encoded data (`examples`, else read from the job's train shard). `maxSteps`: the
 * run's `--max-steps`; `undefined` leaves `total_steps` out (a plan does not know it). @internal
 */
export async function jobIdentity(
  job: PlannedIdentity,
  jobDir: string,
  options: { maxSteps?: number | null; examples?: readonly EncodedExample[] } = {},
): Promise<RunIdentity> {
  const t = job.training;
  const examples =
    options.examples ?? (await readEncodedShard(join(resolve(jobDir), job.data.train))).examples;
  const schedule = linearSchedule({
    examples: examples.length,
    recipe: t,
    accumulation: t.gradientAccumulationSteps,
    processes: job.launch.processes,
  });
  const identity: RunIdentity = {
    steps_per_epoch: schedule.stepsPerEpoch,
    examples: examples.length,
    batch_size: t.perDeviceBatchSize,
    grad_accum: t.gradientAccumulationSteps,
    processes: job.launch.processes,
    seed: t.seed,
    epochs: t.epochs,
    learning_rate: t.learningRate,
    warmup_ratio: t.warmupRatio,
    weight_decay: t.weightDecay,
    data: dataDigest(examples),
    // jobs planned before scheduleSteps existed keep the schedule they were planned with, as train.py reads them
    schedule_steps: t.scheduleSteps ?? 'run',
    ...baseIdentity(job.model, t.lora, jobDir),
  };
  if (options.maxSteps !== undefined) identity.total_steps = options.maxSteps || schedule.totalSteps;
  return identity;
}

/** A checkpoint's `meta.json`, or undefined when it cannot be read (train.py then decides). @internal */
export function checkpointMeta(path: string): RunIdentity | undefined {
  try {
    const meta = JSON.parse(readFileSync(join(path, 'meta.json'), 'utf8'));
    return typeof meta === 'object' && meta !== null ? meta : undefined;
  } catch {
    return undefined;
  }
}

/** A value in a stable form for comparing: objects with sorted keys. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/**
 * What differs between a checkpoint's `meta` and `expected` (see {@link jobIdentity}), as train.py
 * compares them, in words: `seed 1 (now 2)`. A key the checkpoint lacks is compared only where train.py
 * compares it (not the base model's keys, which older checkpoints lack). @internal
 */
export function identityDifferences(meta: RunIdentity, expected: RunIdentity): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(expected)) {
    if (!(key in meta) && BASE_KEYS.includes(key)) continue;
    if (canonical(meta[key] ?? null) === canonical(value ?? null)) continue;
    out.push(`${KEY_WORDS[key] ?? key} ${canonical(meta[key] ?? null)} (now ${canonical(value ?? null)})`);
  }
  return out;
}

/**
 * Refuses to plan into a job directory (`earlier`: its job.json) what would mislabel an earlier run's
 * results, unless `replace`: a finished run's model (`result.json`, `output/`), or, given the new plan
 * (`planned`, its encoded `examples`), checkpoints of other settings than it has (what train.py
 * compares; `total_steps` aside, a run's `--max-steps`). Checkpoints of the same settings stay: the
 * job planned again (a newer train.py, other `keepCheckpoints`) resumes them. A job that never ran is
 * planned over as before. @internal
 */
export async function refuseReplan(
  jobDir: string,
  earlier: Pick<JobSpec, 'outputDir' | 'recipe' | 'training'>,
  replace: boolean | undefined,
  planned?: { job: PlannedIdentity; examples: readonly EncodedExample[] },
): Promise<void> {
  if (replace) return;
  const dir = resolve(jobDir);
  const run = earlierRun(dir, earlier.outputDir);
  const epochs = earlier.training?.epochs;
  const was = `the job planned there before (${earlier.recipe}, ${epochs} epoch${epochs === 1 ? '' : 's'}, seed ${earlier.training?.seed})`;
  const fix = `give another \`out\` (CLI: --out), or pass \`replace: true\` (CLI: --replace) to remove what it left (${earlier.outputDir}/, result.json, checkpoints/, train logs) and plan afresh`;
  if (isFinished(run)) {
    throw new JobError(
      dir,
      `holds ${describeFinished(dir, earlier.outputDir, run)} of ${was}: planning again would label that model with this plan's settings; ${fix}`,
    );
  }
  const newest = run.checkpoints.at(-1);
  if (!planned || !newest) return;
  const meta = checkpointMeta(newest.path);
  if (!meta) return;
  const differs = identityDifferences(
    meta,
    await jobIdentity(planned.job, dir, { examples: planned.examples }),
  );
  if (differs.length > 0) {
    throw new JobError(
      dir,
      `holds a checkpoint of an unfinished run of ${was} (newest: step ${newest.step}) with ${differs.join(', ')}: this plan could not resume it; plan with those settings to resume it, or ${fix}`,
    );
  }
}
