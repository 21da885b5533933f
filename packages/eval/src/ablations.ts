import { join } from 'node:path';
import { ABLATIONS, type RuleSetConfig, resolveRuleSpec } from '@implicit-it/rules';
import { throwIfRunAborted } from './abort.js';
import { finishedRun, type GenerateRunResult, generateRun } from './generate-run.js';
import type { Generator, ProgressCallbacks } from './model-interfaces.js';
import { type EvalInstruction, instructionsOption } from './model-outputs.js';

/**
 * Options of `runAblations`.
 *
 * @example
 * const options: RunAblationsOptions = {
 *   modelName: 'smollm2', outDir: 'run/outputs', instructions: 'alpaca_eval.jsonl',
 *   subsets: ['none', 'eos-uniform'], batchSize: 16,
 *   createGenerator: (rules) => runtimeGenerator(model, { rules }),
 * };
 */
export interface RunAblationsOptions extends ProgressCallbacks {
  /** A generator for the base model with the given rules (an empty config: the base model alone). */
  createGenerator: (rules: RuleSetConfig, subset: string) => Generator | Promise<Generator>;
  instructions: readonly EvalInstruction[] | string;
  /** Directory for one `${subset}.json` per subset. */
  outDir: string;
  /** Model name; outputs are labelled `${modelName}-${subset}`. */
  modelName: string;
  /** Rule subsets (default: the paper's, `ABLATIONS` of @implicit-it/rules, `none` included). */
  subsets?: readonly string[] | undefined;
  /**
   * New-token limit per subset. Default as the paper's reference evaluation: 8192 when the EOS rule is
   * on, 512 without it (the base model rarely stops by itself).
   */
  maxNewTokens?: (number | ((subset: string, rules: RuleSetConfig) => number)) | undefined;
  batchSize?: number | undefined;
  /** Keep the generated token ids in the outputs (`token_ids`), for an exact token-shift analysis. */
  tokenIds?: boolean | undefined;
  /** Extra fingerprint for the resume journals (e.g. the model dir). */
  fingerprint?: Record<string, unknown> | undefined;
  /**
   * Replace a subset's finished outputs of other settings (another model, limit...) or a
   * `${subset}.json` without a record of the run that wrote it, and begin again a subset's pending
   * journal of another run. Default false: refused with an `EvalInputError` (a journal's with a
   * `ResumeMismatchError`) before that subset is generated (subsets before it are done and kept).
   */
  replace?: boolean | undefined;
  /**
   * Stops the run: `runAblations` rejects with `RunAbortedError` wherever the abort lands (between
   * subsets, or within one, as `generateRun`); the subsets finished before it are kept and skipped by
   * a rerun, which resumes the stopped one from its journal.
   */
  signal?: AbortSignal | undefined;
}

/**
 * One subset's run.
 *
 * @example
 * for (const run of await runAblations(options)) console.log(run.subset, run.skipped, run.generated, run.resumed);
 */
export interface AblationRun extends GenerateRunResult {
  subset: string;
  rules: RuleSetConfig;
  /** The subset was finished before, with these options (`finishedRun`): nothing was run, its outputs are read back (`resumed`). */
  skipped: boolean;
}

/**
 * What `runAblations` runs for one subset: its rules, and the `generateRun` options that identify it.
 *
 * @example
 * const plans: AblationPlan[] = planAblations(options);
 * const todo = plans.filter((p) => !finishedRun(p.run)).map((p) => p.subset);
 */
export interface AblationPlan {
  subset: string;
  rules: RuleSetConfig;
  /** `out`, generator name, instructions, token limit, token ids and fingerprint, as `finishedRun` takes them. */
  run: Parameters<typeof finishedRun>[0];
}

/**
 * The runs `runAblations` makes, one per subset, without running them: for checking outputs already
 * on disk first (`finishedRun` says whether a subset is done, `finishedRunDifferences` how a finished
 * output of other settings differs, which `runAblations` would replace). Validates every subset.
 *
 * @example
 * for (const { subset, run } of planAblations(options))
 *   if (!finishedRun(run) && finishedRunDifferences(run)?.length) throw new Error(`${subset}: other settings`);
 */
export function planAblations(
  options: Pick<
    RunAblationsOptions,
    'instructions' | 'outDir' | 'modelName' | 'subsets' | 'maxNewTokens' | 'tokenIds' | 'fingerprint'
  >,
): AblationPlan[] {
  const subsets = options.subsets ?? ABLATIONS;
  const resolved = subsets.map((subset) => ({ subset, rules: resolveRuleSpec(subset) })); // validate all first
  const instructions = instructionsOption(options.instructions);
  return resolved.map(({ subset, rules }) => ({
    subset,
    rules,
    run: {
      out: join(options.outDir, `${subset}.json`),
      generatorName: `${options.modelName}-${subset}`,
      instructions,
      maxNewTokens:
        typeof options.maxNewTokens === 'function'
          ? options.maxNewTokens(subset, rules)
          : (options.maxNewTokens ?? (rules.eos ? 8192 : 512)),
      tokenIds: options.tokenIds ?? false,
      fingerprint: { ...options.fingerprint, subset, rules },
    },
  }));
}

/**
 * `generateRun` over every rule subset of the spec, one `model_outputs.json` per subset
 * (`${outDir}/${subset}.json`). Each subset resumes on its own; a subset already finished by a run
 * with the same options (`finishedRun`: same generator name, instructions, token limit, `tokenIds` and
 * fingerprint, recorded in `${subset}.json.done`) is skipped, so rerunning after an interruption redoes
 * nothing, and a rerun with another model or limit never reuses the old outputs: it refuses to replace
 * them (`EvalInputError`, field `out`) unless `replace: true`, which generates them again. Check all
 * subsets first with `planAblations` and `finishedRunDifferences` to refuse before any work, as the CLI does.
 *
 * @example
 * await runAblations({
 *   modelName: 'llama2-7b', outDir: 'run/outputs', instructions: 'alpaca_eval.jsonl',
 *   createGenerator: (rules) => runtimeGenerator(model, { rules }),
 * });
 */
export async function runAblations(options: RunAblationsOptions): Promise<AblationRun[]> {
  const runs: AblationRun[] = [];
  const plans = planAblations(options);
  for (const { subset, rules, run: plan } of plans) {
    // between two subsets: those before are finished (and a rerun skips them); within one, its
    // generateRun rejects the same way, its journal keeping what it finished
    throwIfRunAborted(options.signal, 'ablations', () =>
      runs.length === 0
        ? `no subset finished: the same call starts with ${subset}`
        : `${runs.length} of ${plans.length} subsets finished (${runs.map((r) => r.subset).join(', ')}): the same call skips them and goes on with ${subset}`,
    );
    const done = finishedRun(plan);
    if (done) {
      runs.push({
        outputs: done,
        out: plan.out,
        generated: 0,
        resumed: done.length,
        subset,
        rules,
        skipped: true,
      });
      options.onProgress?.({
        phase: 'generate',
        done: done.length,
        total: done.length,
        resumed: done.length,
        label: subset,
      });
      continue;
    }
    const generator = await options.createGenerator(rules, subset);
    const run = await generateRun({
      ...plan,
      generator,
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options.replace !== undefined ? { replace: options.replace } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onWarning ? { onWarning: options.onWarning } : {}),
      onProgress: (p) => options.onProgress?.({ ...p, label: subset }),
    });
    runs.push({ ...run, subset, rules, skipped: false });
  }
  return runs;
}
