import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, renameSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { DTYPE_FILES, exportOnnx, type WeightDtype } from '@implicit-it/modelkit';
import {
  checkpointMeta,
  describeFinished,
  earlierRun,
  identityDifferences,
  isFinished,
  jobIdentity,
  removeEarlierRun,
} from './earlier-run.js';
import { FinetuneOptionError, JobError, MissingPythonError, TrainingFailedError } from './errors.js';
import { launchCommand, launchPython, stopProcessTree } from './launch-process.js';
import { JOB_FORMAT, type JobSpec } from './plan-job.js';
import { defaultPython, probePython } from './python-env.js';
import { parseTrainingLogLine, type TrainingEvent, type TrainingProgress } from './training-log.js';

/**
 * Options of {@link runJob}.
 *
 * @example
 * const stop = new AbortController();
 * const options: RunJobOptions = { args: ['--max-steps', '5'], signal: stop.signal, onLine: (l) => console.log(l) };
 * await runJob('jobs/res', options);
 */
export interface RunJobOptions {
  /** Python interpreter (default: IMPLICIT_IT_PYTHON, else python3; python on Windows). */
  python?: string | undefined;
  /** Extra arguments to train.py, e.g. ['--max-steps', '5']. */
  args?: string[] | undefined;
  /**
   * Continue from the newest checkpoint in the job's `checkpoints/` (train.py --resume): the same
   * steps, on the same batches, as a run that never stopped. Without it, a job that holds
   * checkpoints of an earlier run refuses to start over (`replace` does). Checked before Python
   * starts: a checkpoint of other settings than job.json's (what train.py compares) is refused.
   */
  resume?: boolean | undefined;
  /**
   * Start over on a job an earlier run left results in: its `result.json` and `checkpoints/` are
   * removed before training starts (its model in `output/` is written over when this run saves its
   * own). Without it, a finished job (`result.json`, or a model in `output/` with no checkpoint) is
   * refused, and so is a job holding checkpoints (continue them with `resume`). Not with `resume`.
   */
  replace?: boolean | undefined;
  /** Extra environment for the launch (e.g. MACHINE_RANK, MAIN_PROCESS_IP, CUDA_VISIBLE_DEVICES). */
  env?: Record<string, string> | undefined;
  /** Every raw log line, as it arrives. */
  onLine?: ((line: string) => void) | undefined;
  /** Every parsed event. */
  onEvent?: ((event: TrainingEvent) => void) | undefined;
  /** After every optimizer step: step, total, loss, ETA. */
  onProgress?: ((progress: TrainingProgress) => void) | undefined;
  /**
   * Aborting stops the training: SIGTERM to the launch's whole process group (launch.sh, accelerate's
   * launcher and every `train.py` it started), SIGKILL after `killGraceMs`. The call then rejects
   * with `TrainingFailedError`.
   */
  signal?: AbortSignal | undefined;
  /** How long an aborted run may take to stop before it is killed (SIGKILL); default 10 000 ms. */
  killGraceMs?: number | undefined;
  /**
   * When the job asks for ONNX (`exportOnnx`, the default) and train.py could not export it (optimum is
   * not installed), write `onnx/model.onnx` with `@implicit-it/modelkit`'s `exportOnnx` instead (default
   * true; llama / qwen2 full-weight models).
   */
  modelkitExport?: boolean | undefined;
  /**
   * The ONNX graphs wanted after training, by transformers.js dtype (default `['fp32']`): with `'q4'`
   * or `'q8'`, modelkit also writes `onnx/model_q4.onnx` (4-bit linear layers) or
   * `onnx/model_quantized.onnx` (8-bit, onnxruntime's dynamic quantization; see `@implicit-it/modelkit`'s
   * `dtypes`) from the trained weights, beside the float32 graph optimum or modelkit exported.
   * Checked before training starts.
   */
  onnxDtypes?: readonly WeightDtype[] | undefined;
  /** Progress of that export, per weight tensor. */
  onExportProgress?: ((progress: { tensor: string; index: number; count: number }) => void) | undefined;
}

/**
 * What a finished run reports.
 *
 * @example
 * const result: RunJobResult = await runJob('jobs/res');
 * if (result.onnx?.exported) console.log(`ONNX by ${result.onnx.by} at ${result.onnx.path}`);
 */
export interface RunJobResult {
  jobDir: string;
  steps: number;
  totalSteps: number;
  finalLoss?: number;
  losses: number[];
  valLosses: number[];
  /**
   * The ONNX export after training: by optimum in train.py, else by modelkit (see
   * {@link RunJobOptions.modelkitExport}); `reason` says why optimum did not export, and why modelkit
   * could not either when `exported` is false.
   */
  onnx?: {
    exported: boolean;
    by?: 'optimum' | 'modelkit';
    path?: string;
    reason?: string;
    /** A LoRA job's adapter was merged into this base model (modelkit). */
    mergedInto?: string;
    /** The graphs written (`onnxDtypes`): `fp32`, and `q4` where asked for and written. */
    dtypes?: WeightDtype[];
    /**
     * Graphs an earlier run of the job left in `output/onnx` that this one did not write (another
     * dtype's), removed: they held the earlier training's weights.
     */
    removed?: string[];
  };
  /** The checkpoint this run resumed from. */
  resumedFrom?: { step: number; path: string };
  /** Where it trained (`cuda` on one GPU, `cuda:N` with several, `cpu`) and in what precision (`bf16`, `no`), as train.py reported. */
  device?: { name: string; mixedPrecision: string };
  outputDir: string;
  logFile: string;
  durationSeconds: number;
}

/**
 * Reads and checks a job directory's job.json.
 *
 * @example
 * const job = await readJob('jobs/res'); job.training.epochs;
 */
export async function readJob(jobDir: string): Promise<JobSpec> {
  const file = join(resolve(jobDir), 'job.json');
  if (!existsSync(file))
    throw new JobError(
      resolve(jobDir),
      'job.json not found; write the job with planJob (implicit-it finetune plan) first',
    );
  let job: JobSpec;
  try {
    job = JSON.parse(await readFile(file, 'utf8')) as JobSpec;
  } catch (cause) {
    throw new JobError(
      resolve(jobDir),
      `${file} is not valid JSON (${cause instanceof Error ? cause.message : String(cause)}); plan the job again (implicit-it finetune plan)`,
      { cause },
    );
  }
  if (typeof job !== 'object' || job === null || job.format !== JOB_FORMAT)
    throw new JobError(
      resolve(jobDir),
      `job.json format is ${JSON.stringify(job?.format)}, expected ${JOB_FORMAT}; plan the job again`,
    );
  return job;
}

/** The `--max-steps N` (or `--max-steps=N`) among train.py's arguments, the last one as argparse takes it; null without one. */
function maxStepsArg(args: readonly string[]): number | null {
  let found: number | null = null;
  for (const [i, arg] of args.entries()) {
    const value =
      arg === '--max-steps' ? args[i + 1] : arg.startsWith('--max-steps=') ? arg.slice(12) : undefined;
    if (value !== undefined && /^\d+$/.test(value)) found = Number(value);
  }
  return found;
}

/**
 * Refuses, before Python starts, a run that would train over what an earlier run left (see
 * `RunJobOptions.resume` and `replace`): a finished job, checkpoints without `resume`, `resume` with no
 * checkpoint or with one of other settings than job.json's (train.py's own checks stay as a backstop,
 * for `launch.sh` run by hand).
 */
async function refuseEarlierRun(
  dir: string,
  job: JobSpec,
  options: RunJobOptions,
  maxSteps: number | null,
): Promise<void> {
  if (options.resume && options.replace)
    throw new FinetuneOptionError(
      'replace',
      '`resume` continues the checkpoints of an earlier run and `replace` discards them: give one of them',
    );
  if (options.replace) return;
  const run = earlierRun(dir, job.outputDir);
  const replace = '`replace: true` (CLI: --replace)';
  if (isFinished(run)) {
    const what = describeFinished(dir, job.outputDir, run);
    throw new JobError(
      dir,
      options.resume
        ? `the job is finished: it holds ${what}, and no checkpoint (they are removed once the model is saved), so there is nothing to resume; to train it again from the start, over that model, run it with ${replace} instead of \`resume\` (CLI: --resume)`
        : `the job is finished: it holds ${what}; running it again would train a new model over it. To do so, from the start, pass ${replace}; to keep it, plan a new job elsewhere`,
    );
  }
  const newest = run.checkpoints.at(-1);
  if (!newest) {
    if (options.resume)
      throw new JobError(
        dir,
        `no complete checkpoint in ${join(dir, 'checkpoints')} to resume from: run it without \`resume\` (CLI: --resume) to start`,
      );
    return;
  }
  const meta = checkpointMeta(newest.path);
  const expected = meta ? await jobIdentity(job, dir, { maxSteps }) : {};
  const differs = meta ? identityDifferences(meta, expected) : [];
  const discard = `pass ${replace} to discard the checkpoints and start over`;
  if (differs.length === 1 && differs[0]!.startsWith('optimizer steps ') && meta) {
    // the same job, sized by another --max-steps: its run resumes with the one it was written with
    throw new JobError(
      dir,
      `its newest checkpoint (${newest.path}, step ${newest.step}) was written by a run of ${meta.total_steps} optimizer steps, and this one would take ${expected.total_steps}: ${options.resume ? 'resume' : 'continue'} it with \`args: ['--max-steps', '${meta.total_steps}']\` (CLI: --resume --max-steps ${meta.total_steps}), or ${discard}`,
    );
  }
  if (differs.length > 0) {
    throw new JobError(
      dir,
      `its newest checkpoint (${newest.path}, step ${newest.step}) was written by a run with ${differs.join(', ')}, so this job.json cannot ${options.resume ? 'resume' : 'continue'} it: ${discard}, or plan the job again with the settings it was written with and resume it`,
    );
  }
  if (!options.resume)
    throw new JobError(
      dir,
      `${join(dir, 'checkpoints')} holds a checkpoint of an earlier run that did not finish (newest: step ${newest.step}): continue it with \`resume: true\` (CLI: --resume), or ${discard}`,
    );
}

/**
 * The Python modules a job needs: torch, transformers, accelerate, plus deepspeed (ZeRO-3 on GPUs) and peft (LoRA).
 *
 * @example
 * const probe = await probePython(defaultPython(), requiredModules(await readJob('jobs/res')));
 * if (probe.missing.length > 0) console.error(probe.install);
 */
export function requiredModules(job: JobSpec): string[] {
  const mods = ['torch', 'transformers', 'accelerate'];
  if (job.launch.zero3 && job.launch.gpusPerNode > 0) mods.push('deepspeed');
  if (job.training.lora) mods.push('peft');
  return mods;
}

/**
 * Launches a planned job (`launch.sh`) when Python has what it needs, streams its log to
 * `train.log` and to the callbacks (steps, loss, ETA), and resolves when it finishes. Throws
 * `MissingPythonError` listing exactly what to install, or `TrainingFailedError` with the log tail.
 *
 * @example
 * const r = await runJob('jobs/res', { onProgress: (p) => process.stderr.write(`\r${formatProgress(p)}`) });
 * console.log(r.finalLoss, r.outputDir);
 */
export async function runJob(jobDir: string, options: RunJobOptions = {}): Promise<RunJobResult> {
  const dir = resolve(jobDir);
  const job = await readJob(dir);
  const dtypes = options.onnxDtypes ?? ['fp32'];
  for (const [i, d] of dtypes.entries()) {
    if (!Object.hasOwn(DTYPE_FILES, d) || dtypes.indexOf(d) !== i)
      throw new FinetuneOptionError(
        'onnxDtypes',
        `expected distinct dtypes of ${Object.keys(DTYPE_FILES).join(', ')}, got ${JSON.stringify(dtypes)}`,
      );
  }
  const maxSteps = maxStepsArg(options.args ?? []);
  await refuseEarlierRun(dir, job, options, maxSteps);
  // the launch runs in the job directory: a relative interpreter path must be made absolute first
  const python = launchPython(options.python ?? defaultPython());
  const probe = await probePython(python, requiredModules(job));
  if (!probe.found || probe.missing.length > 0)
    throw new MissingPythonError(python, probe.missing, probe.install, probe.found);
  // only now that training starts: the earlier run's record and checkpoints go (its model is written over)
  if (options.replace) await removeEarlierRun(dir, job.outputDir, false);

  const logFile = join(dir, 'train.log');
  // a rerun keeps the earlier run's log (an interrupted run's is all there is of it): train.log.1, .2, ...
  if (existsSync(logFile)) {
    let n = 1;
    while (existsSync(`${logFile}.${n}`)) n++;
    renameSync(logFile, `${logFile}.${n}`);
  }
  const log = createWriteStream(logFile);
  const started = Date.now();
  const tail: string[] = [];
  const losses: number[] = [];
  const result: RunJobResult = {
    jobDir: dir,
    steps: 0,
    totalSteps: 0,
    losses,
    valLosses: [],
    outputDir: join(dir, job.outputDir),
    logFile,
    durationSeconds: 0,
  };
  let firstStepAt: number | undefined;
  // steps taken before this run (a resumed run's checkpoint), left out of the time per step
  let stepsBefore = 0;
  let checkpoint: { step: number; path: string } | undefined;

  // its own process group: accelerate's launcher does not pass a signal on to its workers, so
  // stopping means signalling the whole group (launch.sh, the launcher, every train.py); on Windows,
  // launch.sh's command itself, whose process tree taskkill ends (see launchCommand)
  const args = [...(options.resume ? ['--resume'] : []), ...(options.args ?? [])];
  const env = { ...process.env, PYTHON: python, PYTHONUNBUFFERED: '1', ...options.env };
  const launch = launchCommand(dir, python, args, env);
  const child = spawn(launch.command, launch.args, {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: launch.detached,
    windowsHide: true,
  });
  const signalGroup = (signal: NodeJS.Signals) => {
    if (child.pid !== undefined) stopProcessTree(child.pid, signal);
  };
  let forceKill: NodeJS.Timeout | undefined;
  const abort = () => {
    signalGroup('SIGTERM');
    // a worker that ignores SIGTERM (or hangs in a collective) gets SIGKILL after a grace period
    forceKill = setTimeout(() => signalGroup('SIGKILL'), options.killGraceMs ?? 10_000);
    forceKill.unref();
  };
  if (options.signal?.aborted) abort();
  else options.signal?.addEventListener('abort', abort, { once: true });
  // this process ending (an uncaught error, process.exit) must not leave training running on its own
  const onExit = () => signalGroup('SIGKILL');
  process.once('exit', onExit);

  const onLine = (line: string) => {
    log.write(`${line}\n`);
    tail.push(line);
    if (tail.length > 20) tail.shift();
    options.onLine?.(line);
    const event = parseTrainingLogLine(line);
    if (!event) return;
    options.onEvent?.(event);
    if (event.type === 'start') {
      result.totalSteps = event.totalSteps;
      result.steps = stepsBefore = event.step;
      if (event.device) result.device = { name: event.device, mixedPrecision: event.mixedPrecision ?? 'no' };
      firstStepAt = Date.now();
    } else if (event.type === 'resume') {
      result.resumedFrom = { step: event.step, path: event.path };
    } else if (event.type === 'checkpoint') {
      checkpoint = { step: event.step, path: event.path };
    } else if (event.type === 'step') {
      result.steps = event.step;
      result.totalSteps = event.totalSteps ?? result.totalSteps;
      result.finalLoss = event.loss;
      losses.push(event.loss);
      const now = Date.now();
      firstStepAt ??= now;
      const perStep = (now - firstStepAt) / 1000 / Math.max(1, event.step - stepsBefore);
      options.onProgress?.({
        step: event.step,
        totalSteps: result.totalSteps,
        loss: event.loss,
        etaSeconds: perStep > 0 ? perStep * Math.max(0, result.totalSteps - event.step) : undefined,
        elapsedSeconds: (now - started) / 1000,
      });
    } else if (event.type === 'eval') {
      result.valLosses.push(event.valLoss);
    } else if (event.type === 'onnx') {
      result.onnx = event.exported
        ? { exported: true, by: 'optimum', path: event.path }
        : { exported: false, reason: event.reason };
    }
  };
  const lines = [createInterface({ input: child.stdout }), createInterface({ input: child.stderr })];
  for (const rl of lines) rl.on('line', onLine);

  const exitCode = await new Promise<number | null>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code) => res(code));
  }).finally(() => {
    options.signal?.removeEventListener('abort', abort);
    process.off('exit', onExit);
    clearTimeout(forceKill);
  });
  await new Promise<void>((res) => log.end(res));
  result.durationSeconds = (Date.now() - started) / 1000;
  // a stopped run fails even when the launcher exits 0 once its workers are gone
  const aborted = options.signal?.aborted === true;
  if (exitCode !== 0 || aborted) {
    // the newest checkpoint, this run's or (when it saved none) the one it resumed from
    checkpoint ??= result.resumedFrom;
    throw new TrainingFailedError(dir, exitCode, tail.join('\n'), {
      aborted,
      ...(checkpoint && existsSync(checkpoint.path) ? { checkpoint } : {}),
    });
  }
  if (result.onnx && !result.onnx.exported && options.modelkitExport !== false) {
    result.onnx = await exportWithModelkit(
      result.outputDir,
      result.onnx.reason,
      options.onExportProgress,
      dtypes,
    );
  } else if (result.onnx?.exported) {
    // optimum wrote the float32 graph; the quantized ones, if asked for, come from modelkit
    result.onnx.dtypes = ['fp32'];
    const quantized = dtypes.filter((d) => d !== 'fp32');
    if (quantized.length > 0) {
      try {
        const onProgress = options.onExportProgress;
        await exportOnnx({ dir: result.outputDir, overwrite: true, onProgress, dtypes: quantized });
        result.onnx.dtypes.push(...quantized);
      } catch (error) {
        result.onnx.reason = `modelkit did not write the ${quantized.join(' and ')} graphs: ${(error as Error).message}`;
      }
    }
  }
  if (result.onnx?.exported && result.onnx.dtypes) {
    const removed = removeStaleGraphs(join(result.outputDir, 'onnx'), result.onnx.dtypes);
    if (removed.length > 0) result.onnx.removed = removed;
  }
  return result;
}

/**
 * Removes the graphs of the dtypes modelkit writes that are not in `kept` (with their external data)
 * from a job's `output/onnx`: an earlier run's, holding its weights. Returns their paths.
 */
function removeStaleGraphs(onnxDir: string, kept: readonly WeightDtype[]): string[] {
  const removed: string[] = [];
  for (const dtype of Object.keys(DTYPE_FILES) as WeightDtype[]) {
    if (kept.includes(dtype)) continue;
    for (const file of [DTYPE_FILES[dtype], `${DTYPE_FILES[dtype]}_data`]) {
      const path = join(onnxDir, file);
      if (!existsSync(path)) continue;
      rmSync(path, { force: true });
      removed.push(path);
    }
  }
  return removed;
}

/** Writes `dir/onnx/model.onnx` (and the other `dtypes`' graphs) with modelkit; a failure is reported in the result, not thrown (the training succeeded). */
async function exportWithModelkit(
  dir: string,
  optimumReason: string | undefined,
  onProgress: RunJobOptions['onExportProgress'],
  dtypes: readonly WeightDtype[],
): Promise<NonNullable<RunJobResult['onnx']>> {
  try {
    // a rerun of the job replaces the graphs its previous run exported
    const exported = await exportOnnx({ dir, overwrite: true, onProgress, dtypes });
    return {
      exported: true,
      by: 'modelkit',
      path: join(dir, 'onnx'),
      reason: optimumReason,
      ...(exported.adapter ? { mergedInto: exported.adapter.base } : {}),
      dtypes: [...dtypes],
    };
  } catch (error) {
    return {
      exported: false,
      reason: `${optimumReason ?? 'train.py did not export'}; modelkit could not either: ${(error as Error).message}`,
    };
  }
}
