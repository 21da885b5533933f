import { join } from 'node:path';

/**
 * The files and folders of a run directory, as `runPaths(runDir)` names them.
 *
 * @example
 * const p: RunPaths = runPaths('runs/llama2');
 * p.output('rules'); // 'runs/llama2/outputs/rules.json'
 * p.journal('generate', 'rules'); // 'runs/llama2/.journals/generate-rules.jsonl'
 */
export interface RunPaths {
  /** The run directory itself. */
  runDir: string;
  /** `outputs/`: one model_outputs.json per model or ablation. */
  outputs: string;
  /** `outputs/NAME.json`. */
  output: (name: string) => string;
  /** `annotations/`: alpaca_eval annotations against the baseline. */
  annotations: string;
  /** `annotations/NAME.json`. */
  annotation: (name: string) => string;
  /** `ranking/`: `rankResponses` results. */
  ranking: string;
  /** `ranking/NAME.json`. */
  rankingResult: (name: string) => string;
  /** `shift/`: `tokenShift` results. */
  shift: string;
  /** `shift/NAME.json`. */
  shiftResult: (name: string) => string;
  /** `.judge-cache/`: the judge's answers, kept across runs. */
  judgeCache: string;
  /**
   * `.journals/STEP-NAME.jsonl`: a place for a resumable step's journal, for a caller that passes it
   * as the step's `journalPath`. By default each step keeps its journal beside its output
   * (`OUT.journal.jsonl`, removed when the step finishes), and the CLI does so.
   */
  journal: (step: string, name: string) => string;
  /** `winrates.json`, written by the report. */
  winrates: string;
  /** `report.md`, written by the report. */
  report: string;
  /** `charts/`: the report's SVG charts. */
  charts: string;
}

/**
 * Where the evaluation steps put their files in a run directory, so that `writeReport(runDir)` finds
 * them: `outputs/NAME.json` (model_outputs.json of each model or ablation), `annotations/NAME.json`
 * (alpaca_eval annotations of NAME against the baseline), `ranking/NAME.json` (rankResponses results),
 * `shift/NAME.json` (tokenShift results), `.judge-cache/` (and `.journals/`, where a caller sends
 * journals with `journalPath`; by default they sit beside each output); the report writes
 * `winrates.json`, `report.md` and `charts/*.svg`.
 *
 * @example
 * const p = runPaths('runs/llama2');
 * await judgePairs({
 *   judge, baseline: baselineFile, model: p.output('rules'), cacheDir: p.judgeCache, out: p.annotation('rules'),
 * });
 */
export function runPaths(runDir: string): RunPaths {
  return {
    runDir,
    outputs: join(runDir, 'outputs'),
    output: (name: string) => join(runDir, 'outputs', `${name}.json`),
    annotations: join(runDir, 'annotations'),
    annotation: (name: string) => join(runDir, 'annotations', `${name}.json`),
    ranking: join(runDir, 'ranking'),
    rankingResult: (name: string) => join(runDir, 'ranking', `${name}.json`),
    shift: join(runDir, 'shift'),
    shiftResult: (name: string) => join(runDir, 'shift', `${name}.json`),
    judgeCache: join(runDir, '.judge-cache'),
    journal: (step: string, name: string) => join(runDir, '.journals', `${step}-${name}.jsonl`),
    winrates: join(runDir, 'winrates.json'),
    report: join(runDir, 'report.md'),
    charts: join(runDir, 'charts'),
  };
}
