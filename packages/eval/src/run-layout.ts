import { join } from 'node:path';

/**
 * Where the evaluation steps put their files in a run directory, so that `writeReport(runDir)` finds
 * them: `outputs/NAME.json` (model_outputs.json of each model or ablation), `annotations/NAME.json`
 * (alpaca_eval annotations of NAME against the baseline), `ranking/NAME.json` (rankResponses results),
 * `shift/NAME.json` (tokenShift results), `.judge-cache/` and `.journals/`; the report writes
 * `winrates.json`, `report.md` and `charts/*.svg`.
 *
 * @example
 * const p = runPaths('runs/llama2');
 * await judgePairs({
 *   judge, baseline: baselineFile, model: p.output('rules'), cacheDir: p.judgeCache, out: p.annotation('rules'),
 * });
 */
export function runPaths(runDir: string) {
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
