import { existsSync, readdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ListsEveryKey } from '@implicit-it/rules';
import { datasetName } from './build-dataset.js';
import { refuseReplan } from './earlier-run.js';
import { FinetuneOptionError, JobError } from './errors.js';
import {
  checkModelWeights,
  checkPlanOptions,
  checkpointingSpec,
  checkTopology,
  fitModelContext,
  type JobSpec,
  PLAN_JOB_OPTIONS,
  type PlanJobOptions,
  type PlanJobResult,
  plannedJob,
  prepareData,
  writeJob,
} from './plan-job.js';
import { readJob } from './run-job.js';
import { EPOCH_CHOICES, SEEDS, trainingRecipe } from './training-recipe.js';

/** Refuses an empty grid axis or a repeated value (two jobs of one name, the second overwriting the first). */
function checkGrid(field: 'epochs' | 'seeds', values: unknown): void {
  if (!Array.isArray(values) || values.length === 0)
    throw new FinetuneOptionError(field, `must be a non-empty array, got ${JSON.stringify(values)}`);
  const repeated = values.find((v, i) => values.indexOf(v) !== i);
  if (repeated !== undefined)
    throw new FinetuneOptionError(
      field,
      `${JSON.stringify(repeated)} is repeated in ${JSON.stringify(values)}; each job of the grid needs its own value`,
    );
}

/** The job directories under `sweepDir` (those with a job.json) that are not `names`: an earlier sweep's. */
function staleJobs(sweepDir: string, names: readonly string[]): string[] {
  if (!existsSync(sweepDir)) return [];
  return readdirSync(sweepDir, { withFileTypes: true })
    .filter(
      (e) => e.isDirectory() && !names.includes(e.name) && existsSync(join(sweepDir, e.name, 'job.json')),
    )
    .map((e) => e.name)
    .sort();
}

/**
 * Options of {@link planSweep}: those of `planJob`, plus the grid.
 *
 * @example
 * const options: PlanSweepOptions = { recipe: 'poetry', model: 'models/Llama-2-7b-hf', out: 'jobs/poetry-sweep', epochs: [5, 10], seeds: [1] };
 * await planSweep(options);
 */
export interface PlanSweepOptions extends PlanJobOptions {
  /** Epoch counts (default the paper's 5, 7, 10, 15, 20); distinct, at least one. */
  epochs?: number[] | undefined;
  /** Seeds (default 1..5); distinct, at least one. */
  seeds?: number[] | undefined;
}

/** The options of {@link planSweep}: planJob's and the grid's. */
const PLAN_SWEEP_OPTIONS = [...PLAN_JOB_OPTIONS, 'epochs', 'seeds'] as const;

// every option is listed (a new one missing here would be refused as unknown)
const _allPlanSweepOptionsListed: ListsEveryKey<PlanSweepOptions, typeof PLAN_SWEEP_OPTIONS> = true;
void _allPlanSweepOptionsListed;

/**
 * What {@link planSweep} wrote: one job per (epochs, seed), and `sweep.json` listing them.
 *
 * @example
 * const sweep: PlanSweepResult = await planSweep({ recipe: 'gsm', model: 'models/Llama-2-7b-hf', out: 'jobs/gsm-sweep', seeds: [1] });
 * sweep.jobs.map((j) => j.name); // gsm-ep5-seed1, gsm-ep7-seed1, ..., gsm-ep20-seed1
 */
export interface PlanSweepResult {
  sweepDir: string;
  jobs: (PlanJobResult & { epochs: number; seed: number; name: string })[];
  /** As `planJob`'s: what planning decided that the options did not say (the same for every job). */
  notes: string[];
}

/**
 * Writes the epoch x seed grid of jobs under `out` (`<recipe>-ep<E>-seed<S>/`), encoding the data
 * once. The whole grid is checked before anything is written: an empty or repeated list, or a value
 * `trainingRecipe` refuses, is a `FinetuneOptionError`; job directories of an earlier sweep in `out`
 * that are not in this grid, or jobs of the grid an earlier run left results in (see `planJob`), are a
 * `JobError` unless `replace`, which removes them. The paper picks the epoch count by AlpacaEval win rate on its validation set
 * (`../shared/data/val`, against GPT-3.5's outputs), then reports seeds 1..5: the CLI README's
 * "Choosing the epoch count" runs that with `eval generate` and `eval judge`. (The `validation`
 * option holds out training data for a validation loss, which is not how the paper picks.)
 *
 * @example
 * const { jobs } = await planSweep({ recipe: 'gsm', model: 'models/Llama-2-7b-hf', out: 'jobs/gsm-sweep', gpus: 2 });
 * jobs.length; // 25
 */
export async function planSweep(options: PlanSweepOptions): Promise<PlanSweepResult> {
  const epochs = options.epochs ?? [...EPOCH_CHOICES];
  const seeds = options.seeds ?? [...SEEDS];
  checkPlanOptions(options, PLAN_SWEEP_OPTIONS, 'planSweep');
  checkModelWeights(options.model);
  const { training, notes } = fitModelContext(options);
  const base = trainingRecipe(training);
  checkTopology(options, base);
  checkpointingSpec(options);
  // the whole grid before any data is built or job written: a bad value must not leave half a sweep
  checkGrid('epochs', epochs);
  checkGrid('seeds', seeds);
  const grid = epochs.flatMap((e) =>
    seeds.map((s) => ({ e, s, recipe: trainingRecipe({ ...training, epochs: e, seed: s }) })),
  );
  const sweepDir = resolve(options.out);
  const dataset = datasetName(options);
  const names = grid.map(({ e, s }) => `${dataset}-ep${e}-seed${s}`);
  // what an earlier sweep left in `out`, before any data is built: its jobs outside this grid (which
  // `for j in out/*/` would train with this sweep's), and trained jobs of the grid's names
  const stale = staleJobs(sweepDir, names);
  if (stale.length > 0 && !options.replace)
    throw new JobError(
      sweepDir,
      `holds ${stale.length} job${stale.length > 1 ? 's' : ''} of an earlier sweep that ${stale.length > 1 ? 'are' : 'is'} not in this grid (${stale.join(', ')}), which running every job of the directory would train too; give another \`out\` (CLI: --out), or pass \`replace: true\` (CLI: --replace) to remove ${stale.length > 1 ? 'them' : 'it'}`,
    );
  const earlier = new Map<string, JobSpec>();
  for (const name of names) {
    const job = await readJob(join(sweepDir, name)).catch(() => undefined);
    if (!job) continue;
    earlier.set(name, job);
    await refuseReplan(join(sweepDir, name), job, options.replace);
  }
  const data = await prepareData(options, base.maxSeqLength);
  // checkpoints of other settings, for every job of the grid before any is written
  for (const [i, { recipe }] of grid.entries()) {
    const job = earlier.get(names[i]!);
    if (!job) continue;
    const { accumulation, processes } = checkTopology(options, recipe);
    await refuseReplan(join(sweepDir, names[i]!), job, options.replace, {
      job: plannedJob(options, recipe, accumulation, processes),
      examples: data.train.encoded,
    });
  }
  await mkdir(sweepDir, { recursive: true });
  for (const name of stale) await rm(join(sweepDir, name), { recursive: true, force: true });
  const jobs: PlanSweepResult['jobs'] = [];
  for (const [i, { e, s, recipe }] of grid.entries()) {
    const name = names[i]!;
    const r = await writeJob(data, { ...options, out: join(sweepDir, name) }, recipe);
    jobs.push({ ...r, notes, epochs: e, seed: s, name });
  }
  await writeFile(
    join(sweepDir, 'sweep.json'),
    `${JSON.stringify({ recipe: data.recipe, ...(data.source && { source: data.source }), epochs, seeds, jobs: jobs.map((j) => ({ name: j.name, epochs: j.epochs, seed: j.seed })) }, null, 2)}\n`,
  );
  return { sweepDir, jobs, notes };
}
