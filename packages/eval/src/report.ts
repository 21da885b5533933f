import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isRefusedPair, readAnnotations } from './annotations.js';
import { EvalInputError } from './errors.js';
import { readJson, writeFileAtomic, writeJson } from './json-file.js';
import { annotationsCoverage } from './judge-pairs.js';
import type { ProgressCallbacks } from './model-interfaces.js';
import type { RankingResult } from './rank-responses.js';
import { runPaths } from './run-layout.js';
import { excerpt } from './runtime-adapters.js';
import { barChartSvg, histogramSvg, stackedBarsSvg } from './svg.js';
import type { ShiftResult } from './token-shift.js';
import { type WinRateStats, winRate } from './win-rate.js';

/**
 * A model's win-rate statistics and whom it was compared against.
 *
 * @example
 * const rows: WinRateRow[] = winRatesOfRun('runs/llama2');
 * for (const r of rows) console.log(`${r.name} vs ${r.baseline}: ${fmt(r.win_rate)}`);
 */
export interface WinRateRow extends WinRateStats {
  name: string;
  baseline: string;
  annotator: string;
  /** The distinct instructions judged, where the annotations' record (`${file}.done`) keeps it. */
  instructions?: number;
  /** The baseline's instructions (more than `instructions`: a win rate over a subset), likewise. */
  baselineInstructions?: number;
  /**
   * The pairs the judge refused (`isRefusedPair`: not judged, left out of the win rate), by index
   * in the annotations, with the judge's message; only where there are any.
   */
  notJudged?: { index: number; instruction: string; error: string }[];
}

/**
 * What `writeReport` wrote and the numbers it used.
 *
 * @example
 * const { charts, winrates }: ReportResult = await writeReport('runs/llama2', { title: 'Llama-2 7B' });
 * console.log(`${charts.length} charts, ${winrates.length} models`);
 */
export interface ReportResult {
  markdownPath: string;
  markdown: string;
  charts: string[];
  winrates: WinRateRow[];
  rankings: { name: string; result: RankingResult }[];
  shifts: { name: string; result: ShiftResult }[];
  /**
   * Files an earlier report of this run directory wrote that this one does not (a chart of a
   * result since removed, `charts/win-rates.svg` once the annotations are against several
   * baselines...): removed, so that no stale chart is read as current.
   */
  removed: string[];
}

/**
 * The file in a run directory that lists the files the last report wrote (`winrates.json`,
 * `charts/NAME.svg`), relative to the run directory, so that the next report removes those it does
 * not write again, and only those.
 */
const REPORT_FILES = '.report-files.json';

/** A file the report writes: `winrates.json` or a chart of `charts/` (a name from a list is checked against it). */
const reportFile = (name: string) => name === 'winrates.json' || /^charts\/[^/\\]+\.svg$/.test(name);

/**
 * What the last report of `runDir` wrote: its list (`REPORT_FILES`), or, for a report written before
 * that list was kept, the charts its report.md links and `winrates.json` where it names it. Names
 * that are not the report's own files are left out: the list is never trusted to remove anything else.
 */
function earlierReportFiles(runDir: string): string[] {
  const list = join(runDir, REPORT_FILES);
  if (existsSync(list)) {
    try {
      const files = (JSON.parse(readFileSync(list, 'utf8')) as { files?: unknown }).files;
      if (Array.isArray(files))
        return files.filter((f): f is string => typeof f === 'string' && reportFile(f));
    } catch {
      // a damaged list: as if there were none
    }
  }
  const md = runPaths(runDir).report;
  if (!existsSync(md) || !statSync(md).isFile()) return [];
  const text = readFileSync(md, 'utf8');
  const linked = [...text.matchAll(/\]\((charts\/[^)\s]+\.svg)\)/g)].flatMap((m) => {
    try {
      return [decodeURIComponent(m[1]!)];
    } catch {
      return [];
    }
  });
  const charts = linked.filter((f) => reportFile(f) && /^charts\/(win-rates|ranking-|token-shift)/.test(f));
  return [...charts, ...(text.includes('(`winrates.json`)') ? ['winrates.json'] : [])];
}

/**
 * Formats a number for the report: `digits` decimals, `n/a` for NaN.
 *
 * @example
 * fmt(24.4567); // '24.46'
 * fmt(512.4, 0); // '512'
 * fmt(Number.NaN); // 'n/a'
 */
export function fmt(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
}

const cell = (text: string) => text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\n/g, ' ');

/**
 * A token for a Markdown table: its JSON string (whitespace visible) in a code span, with its id where
 * the text has a U+FFFD (part of a character, in a result written before such tokens were given as
 * their bytes, or by a rank source without them): every such token would look the same.
 */
function tokenCell(text: string, id: number): string {
  const shown = JSON.stringify(text);
  const code = shown.includes('`') ? cell(shown) : `\`${cell(shown)}\``;
  return text.includes('\ufffd') ? `${code} (id ${id})` : code;
}

function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** `position 0`, `positions 2-4`, `positions 200+`. */
function positionLabel(from: number, to: number | null): string {
  if (to === null) return `positions ${from}+`;
  return to - from === 1 ? `position ${from}` : `positions ${from}-${to - 1}`;
}

const orderKey = (x: number) => (Number.isNaN(x) ? Number.NEGATIVE_INFINITY : x);

/**
 * Reads a result file of a run directory, checking the fields the report uses, so that a stray JSON
 * file (e.g. model outputs saved into shift/) is named instead of failing deep inside a chart.
 */
function expectResult<T>(file: string, fields: string[], what: string): T {
  const data = readJson(file);
  for (const field of fields) {
    let v: unknown = data;
    for (const key of field.split('.'))
      v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
    if (v === undefined) {
      throw new EvalInputError(
        file,
        `is not ${what} (no field "${field}"); the report reads every .json in ${basename(dirname(file))}/, so move other files out of it`,
        { field },
      );
    }
  }
  return data as T;
}

function jsonFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Win-rate statistics of every `annotations/NAME.json` in a run directory, sorted by baseline (a win
 * rate is measured against its baseline: rows against different ones do not rank together), then by
 * win rate.
 *
 * @example
 * winRatesOfRun('runs/llama2').map((r) => `${r.name}: ${r.win_rate.toFixed(1)}`);
 */
export function winRatesOfRun(runDir: string): WinRateRow[] {
  return jsonFiles(runPaths(runDir).annotations)
    .map((file) => {
      const annotations = readAnnotations(file);
      const unique = (key: 'generator_1' | 'annotator') =>
        [...new Set(annotations.map((a) => String(a[key] ?? '')))].join(', ');
      const notJudged = annotations.flatMap((a, index) =>
        isRefusedPair(a)
          ? [{ index, instruction: a.instruction, error: String(a.judge_error ?? 'refused by the judge') }]
          : [],
      );
      return {
        name: basename(file, '.json'),
        baseline: unique('generator_1'),
        annotator: unique('annotator'),
        ...winRate(annotations),
        ...annotationsCoverage(file),
        ...(notJudged.length > 0 ? { notJudged } : {}),
      };
    })
    .sort(
      (a, b) =>
        a.baseline.localeCompare(b.baseline) ||
        orderKey(b.win_rate) - orderKey(a.win_rate) ||
        a.name.localeCompare(b.name),
    );
}

/** The rows of each baseline, in `winRatesOfRun`'s order (baselines sorted, rows by win rate). */
function byBaseline(rows: readonly WinRateRow[]): { baseline: string; rows: WinRateRow[] }[] {
  const groups = new Map<string, WinRateRow[]>();
  for (const r of rows) groups.set(r.baseline, [...(groups.get(r.baseline) ?? []), r]);
  return [...groups].map(([baseline, rows]) => ({ baseline, rows }));
}

/** A chart file name for each baseline: its name with only safe characters, unique. */
function baselineChartNames(baselines: readonly string[]): string[] {
  const used = new Set<string>();
  return baselines.map((b) => {
    const base = `win-rates-${b.replace(/[^\w.-]+/g, '_') || 'baseline'}`;
    let name = `${base}.svg`;
    for (let k = 2; used.has(name); k++) name = `${base}-${k}.svg`;
    used.add(name);
    return name;
  });
}

/**
 * The run's Markdown report with SVG charts, readable on GitHub: win rates with 95% error bars
 * (± 1.96 standard errors) per model or ablation (a table and a chart per baseline where the
 * annotations were judged against several: a win rate is measured against its baseline), the
 * response-ranking histogram, and stacked token-shift bars. Reads the files of `runPaths(runDir)`; writes `report.md`, `winrates.json`
 * and `charts/*.svg`. Sections without data are left out. The files it writes are listed in
 * `.report-files.json`: those an earlier report wrote and this one does not (the chart of a result
 * since removed, `charts/win-rates.svg` once the annotations are against several baselines, each with
 * its own chart) are removed (`removed` lists them), never any other file. A `runDir` that does not
 * exist, or is a file, is an `EvalInputError` (field `runDir`); an empty one gets a report saying
 * there are no results yet.
 *
 * @example
 * const { markdownPath } = await writeReport('runs/llama2');
 */
export async function writeReport(
  runDir: string,
  options: ProgressCallbacks & { title?: string | undefined } = {},
): Promise<ReportResult> {
  // a mistyped run directory would otherwise be created, holding a report of nothing
  if (!existsSync(runDir)) {
    throw new EvalInputError(runDir, 'no such run directory (it holds annotations/, ranking/ or shift/)', {
      field: 'runDir',
    });
  }
  if (!statSync(runDir).isDirectory()) {
    throw new EvalInputError(
      runDir,
      'is a file, not a run directory (one that holds annotations/, ranking/ or shift/)',
      {
        field: 'runDir',
      },
    );
  }
  const paths = runPaths(runDir);
  const earlier = earlierReportFiles(runDir);
  const winrates = winRatesOfRun(runDir);
  const rankings = jsonFiles(paths.ranking).map((f) => ({
    name: basename(f, '.json'),
    result: expectResult<RankingResult>(
      f,
      ['percent', 'pairs', 'ci.low', 'ci.high'],
      'a response-ranking result',
    ),
  }));
  const shiftResults = jsonFiles(paths.shift).map((f) => ({
    name: basename(f, '.json'),
    result: expectResult<ShiftResult>(
      f,
      [
        'label',
        'overall.percent.unshifted',
        'overall.percent.marginal',
        'overall.percent.shifted',
        'byPosition',
      ],
      'a token-shift result',
    ),
  }));
  // results that share a label (e.g. two with the default 'aligned vs base') are told apart by file name
  const labelCount = new Map<string, number>();
  for (const { result } of shiftResults)
    labelCount.set(result.label, (labelCount.get(result.label) ?? 0) + 1);
  const shifts = shiftResults.map(({ name, result }) => ({
    name,
    result: labelCount.get(result.label)! > 1 ? { ...result, label: `${result.label} (${name})` } : result,
  }));
  const groups = byBaseline(winrates);
  const total = 1 + groups.length + rankings.length + (shifts.length ? 1 + shifts.length : 0);
  let done = 0;
  const tick = () => {
    done++;
    options.onProgress?.({ phase: 'report', done, total, resumed: 0 });
  };
  const charts: string[] = [];
  const chart = async (name: string, svg: string) => {
    const file = join(paths.charts, name);
    await writeFileAtomic(file, svg);
    charts.push(file);
    tick();
    // a link target: spaces and parentheses in a run name would end it early in Markdown
    return `charts/${encodeURIComponent(name).replace(/\(/g, '%28').replace(/\)/g, '%29')}`;
  };
  const md: string[] = [`# ${options.title ?? `Evaluation report: ${basename(runDir)}`}`, ''];

  if (winrates.length > 0) {
    await writeJson(
      paths.winrates,
      Object.fromEntries(
        winrates.map(({ name, baseline, annotator, ...stats }) => [name, { ...stats, baseline, annotator }]),
      ),
    );
    const names = (rows: readonly WinRateRow[], key: 'baseline' | 'annotator') =>
      [...new Set(rows.map((r) => `\`${r[key]}\``))].join(', ');
    // judged on part of the baseline's instructions: said in a column of its own ("20 of 805")
    const subset = (r: WinRateRow) =>
      r.instructions !== undefined &&
      r.baselineInstructions !== undefined &&
      r.instructions < r.baselineInstructions;
    const instructionsCell = (r: WinRateRow) =>
      r.instructions === undefined
        ? 'n/a'
        : subset(r)
          ? `${r.instructions} of ${r.baselineInstructions}`
          : String(r.instructions);
    const winRateTable = (rows: readonly WinRateRow[]) => {
      const partial = rows.some(subset);
      const refused = rows.some((r) => r.notJudged !== undefined);
      const listed = table(
        [
          'model',
          ...(partial ? ['instructions'] : []),
          ...(refused ? ['not judged'] : []),
          'win rate',
          'standard error',
          'wins',
          'losses',
          'draws',
          'total',
          'discrete win rate',
          'avg length',
        ],
        rows.map((r) => [
          cell(r.name),
          ...(partial ? [instructionsCell(r)] : []),
          ...(refused ? [String(r.notJudged?.length ?? 0)] : []),
          fmt(r.win_rate),
          fmt(r.standard_error),
          String(r.n_wins),
          String(r.n_wins_base),
          String(r.n_draws),
          String(r.n_total),
          fmt(r.discrete_win_rate),
          fmt(r.avg_length, 0),
        ]),
      );
      // the pairs the judge refused: which, and why, under the table
      const notes = rows.flatMap((r) =>
        r.notJudged === undefined
          ? []
          : [
              `Not judged in \`${cell(r.name)}\`: ${r.notJudged.length === 1 ? 'the judge refused the request of 1 pair, left' : `the judge refused the requests of ${r.notJudged.length} pairs, left`} out of its win rate (judging again asks for them; # counts annotations from 0): ` +
                r.notJudged
                  .map((p) => `#${p.index} ${cell(excerpt(p.instruction))}: ${cell(p.error)}`)
                  .join('; '),
            ],
      );
      return notes.length > 0 ? `${listed}\n\n${notes.join('\n\n')}` : listed;
    };
    const bars = (rows: readonly WinRateRow[]) =>
      rows.map((r) => ({ label: r.name, value: r.win_rate, error: 1.96 * r.standard_error }));
    const note = 'Error bars: 95% confidence interval (± 1.96 standard errors).';
    if (groups.length === 1) {
      const src = await chart(
        'win-rates.svg',
        barChartSvg({ title: 'Win rate against the baseline (%)', unit: '%', bars: bars(winrates), note }),
      );
      md.push(
        '## Win rates',
        '',
        `Pairwise judgements against ${names(winrates, 'baseline')} by ${names(winrates, 'annotator')}, with alpaca_eval's statistics (\`winrates.json\`).`,
        '',
        `![Win rates](${src})`,
        '',
        winRateTable(winrates),
        '',
      );
    } else {
      // a win rate is against its baseline: one table and chart per baseline, ranked within it
      md.push(
        '## Win rates',
        '',
        `Pairwise judgements against ${groups.length} baselines, with alpaca_eval's statistics (\`winrates.json\`): a win rate is measured against its baseline, so each baseline has its own table and chart.`,
        '',
      );
      const files = baselineChartNames(groups.map((g) => g.baseline));
      for (const [k, { baseline, rows }] of groups.entries()) {
        const src = await chart(
          files[k]!,
          barChartSvg({ title: `Win rate against ${baseline} (%)`, unit: '%', bars: bars(rows), note }),
        );
        md.push(
          `### Against \`${cell(baseline)}\``,
          '',
          `Judged by ${names(rows, 'annotator')}.`,
          '',
          `![Win rates against ${cell(baseline)}](${src})`,
          '',
          winRateTable(rows),
          '',
        );
      }
    }
  }

  if (rankings.length > 0) {
    // how the random responses were drawn (results written before it was recorded say nothing)
    const drawn = (r: RankingResult) =>
      r.draw === 'paper'
        ? `; random responses drawn as the paper's ratio_eval.py draws them, seed ${r.seed}`
        : r.draw === 'distinct'
          ? `; ${r.negatives} distinct random responses per example, seed ${r.seed}`
          : '';
    md.push(
      '## Response ranking',
      '',
      'Share of (real, random) response pairs in which the real response of an Alpaca instruction scores higher, score = exp(-mean token NLL).',
      '',
    );
    md.push(
      table(
        ['model', 'real ranked higher (%)', 'CI low', 'CI high', 'pairs', 'wins', 'ties', 'examples'],
        rankings.map(({ name, result: r }) => [
          cell(name),
          fmt(r.percent),
          fmt(r.ci.low),
          fmt(r.ci.high),
          String(r.pairs),
          String(r.wins),
          String(r.ties),
          String(r.n),
        ]),
      ),
      '',
    );
    for (const { name, result: r } of rankings) {
      const src = await chart(
        `ranking-${name}.svg`,
        histogramSvg({
          title: `Response ranking: ${name}`,
          xLabel: `random responses (of ${r.negatives}) that the real response beats`,
          yLabel: 'examples',
          bins: r.histogram.map((_, k) => String(k)),
          counts: r.histogram,
        }),
      );
      md.push(
        `![Response ranking histogram: ${name}](${src})`,
        '',
        `${name}: ${fmt(r.percent)}% of ${r.pairs} pairs, ${Math.round(r.ci.level * 100)}% bootstrap CI [${fmt(r.ci.low)}, ${fmt(r.ci.high)}] over ${r.ci.resamples} resamples${drawn(r)}.`,
        '',
      );
    }
  }

  if (shifts.length > 0) {
    const src = await chart(
      'token-shift.svg',
      stackedBarsSvg({
        title: 'Token shift against the base model',
        series: ['unshifted (rank 1)', 'marginal (2-3)', 'shifted (>3)'],
        bars: shifts.map(({ result: r }) => ({
          label: r.label,
          values: [r.overall.percent.unshifted, r.overall.percent.marginal, r.overall.percent.shifted],
        })),
      }),
    );
    md.push(
      '## Token shift',
      '',
      "Rank of each token of the aligned model's greedy output under the base model given the same prefix (Lin et al., 2023).",
      '',
      `![Token shift](${src})`,
      '',
      table(
        ['comparison', 'tokens', 'unshifted (%)', 'marginal (%)', 'shifted (%)'],
        shifts.map(({ result: r }) => [
          cell(r.label),
          String(r.overall.tokens),
          fmt(r.overall.percent.unshifted),
          fmt(r.overall.percent.marginal),
          fmt(r.overall.percent.shifted),
        ]),
      ),
      '',
    );
    for (const { name, result: r } of shifts) {
      const bySrc = await chart(
        `token-shift-${name}.svg`,
        stackedBarsSvg({
          title: `Token shift by position: ${r.label}`,
          series: ['unshifted (rank 1)', 'marginal (2-3)', 'shifted (>3)'],
          bars: r.byPosition.map((b) => ({
            label: `${positionLabel(b.from, b.to)} (${b.tokens} tokens)`,
            values: [b.percent.unshifted, b.percent.marginal, b.percent.shifted],
          })),
        }),
      );
      md.push(`### ${cell(r.label)}`, '', `![Token shift by position: ${cell(r.label)}](${bySrc})`, '');
      // a result made with topK 0 lists no tokens (the statistics only), one without shifts has none
      if (r.topShifted.length > 0) {
        md.push(
          table(
            ['token', 'times shifted', 'of shifted (%)'],
            r.topShifted.map((t) => [tokenCell(t.text, t.id), String(t.count), fmt(t.percentOfShifted)]),
          ),
          '',
        );
      } else if (r.overall.shifted > 0) {
        md.push(`Its ${r.overall.shifted} shifted tokens are not listed (top-k 0).`, '');
      }
    }
  }
  if (charts.length === 0)
    md.push('No results yet: this run directory has no annotations/, ranking/ or shift/ files.', '');
  const markdown = md.join('\n');
  await writeFileAtomic(paths.report, markdown);
  // the earlier report's files that this one did not write again are stale: removed before the new
  // list is written (a run killed in between removes them next time, from the earlier list)
  const written = [
    ...(winrates.length > 0 ? ['winrates.json'] : []),
    ...charts.map((c) => `charts/${basename(c)}`),
  ];
  const removed: string[] = [];
  for (const file of earlier.filter((f) => !written.includes(f))) {
    const path = join(runDir, file);
    if (!existsSync(path) || !statSync(path).isFile()) continue;
    rmSync(path);
    removed.push(path);
  }
  await writeJson(join(runDir, REPORT_FILES), { files: written });
  tick();
  return { markdownPath: paths.report, markdown, charts, winrates, rankings, shifts: shiftResults, removed };
}
