import { join } from 'node:path';
import { ABLATIONS, type RuleSetConfig, resolveRuleSpec } from '@implicit-it/rules';
import { finishedRun, type GenerateRunResult, generateRun } from './generate-run.js';
import type { Generator, ProgressCallbacks } from './model-interfaces.js';
import { type EvalInstruction, readInstructions } from './model-outputs.js';

/** Options of `runAblations`. */
export interface RunAblationsOptions extends ProgressCallbacks {
  /** A generator for the base model with the given rules (an empty config: the base model alone). */
  createGenerator: (rules: RuleSetConfig, subset: string) => Generator | Promise<Generator>;
  instructions: readonly EvalInstruction[] | string;
  /** Directory for one `${subset}.json` per subset. */
  outDir: string;
  /** Model name; outputs are labelled `${modelName}-${subset}`. */
  modelName: string;
  /** Rule subsets (default: the paper's, `ABLATIONS` of @implicit-it/rules, `none` included). */
  subsets?: readonly string[];
  /**
   * New-token limit per subset. Default as the paper's reference evaluation: 8192 when the EOS rule is
   * on, 512 without it (the base model rarely stops by itself).
   */
  maxNewTokens?: number | ((subset: string, rules: RuleSetConfig) => number);
  batchSize?: number;
  /** Keep the generated token ids in the outputs (`token_ids`), for an exact token-shift analysis. */
  tokenIds?: boolean;
  /** Extra fingerprint for the resume journals (e.g. the model dir). */
  fingerprint?: Record<string, unknown>;
  signal?: AbortSignal;
}

/** One subset's run. */
export interface AblationRun extends GenerateRunResult {
  subset: string;
  rules: RuleSetConfig;
}

/**
 * `generateRun` over every rule subset of the spec, one `model_outputs.json` per subset
 * (`${outDir}/${subset}.json`). Each subset resumes on its own; a subset already finished by a run
 * with the same options (`finishedRun`: same generator name, instructions, token limit, `tokenIds` and
 * fingerprint, recorded in `${subset}.json.done`) is skipped, so rerunning after an interruption redoes
 * nothing, and a rerun with another model or limit never reuses the old outputs.
 *
 * @example
 * await runAblations({
 *   modelName: 'llama2-7b', outDir: 'run/outputs', instructions: 'alpaca_eval.jsonl',
 *   createGenerator: (rules) => runtimeGenerator(model, { rules }),
 * });
 */
export async function runAblations(options: RunAblationsOptions): Promise<AblationRun[]> {
  const subsets = options.subsets ?? ABLATIONS;
  const resolved = subsets.map((subset) => ({ subset, rules: resolveRuleSpec(subset) })); // validate all first
  const instructions =
    typeof options.instructions === 'string' ? readInstructions(options.instructions) : options.instructions;
  const runs: AblationRun[] = [];
  for (const { subset, rules } of resolved) {
    options.signal?.throwIfAborted();
    const maxNewTokens =
      typeof options.maxNewTokens === 'function'
        ? options.maxNewTokens(subset, rules)
        : (options.maxNewTokens ?? (rules.eos ? 8192 : 512));
    const out = join(options.outDir, `${subset}.json`);
    const generatorName = `${options.modelName}-${subset}`;
    const fingerprint = { ...options.fingerprint, subset, rules };
    const tokenIds = options.tokenIds ?? false;
    const done = finishedRun({ out, generatorName, instructions, maxNewTokens, tokenIds, fingerprint });
    if (done) {
      runs.push({ outputs: done, out, generated: 0, resumed: done.length, subset, rules });
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
      generator,
      instructions,
      out,
      generatorName,
      maxNewTokens,
      fingerprint,
      tokenIds,
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onWarning ? { onWarning: options.onWarning } : {}),
      onProgress: (p) => options.onProgress?.({ ...p, label: subset }),
    });
    runs.push({ ...run, subset, rules });
  }
  return runs;
}
