import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Annotation,
  EvalInputError,
  fmt,
  histogramSvg,
  type JudgeClient,
  judgePairs,
  type RankSource,
  rankResponses,
  readAnnotations,
  runPaths,
  type Scorer,
  tokenShift,
  writeAnnotations,
  writeReport,
} from '../src/index.js';

let runDir: string;
beforeAll(async () => {
  runDir = mkdtempSync(join(tmpdir(), 'eval-report-'));
  const p = runPaths(runDir);
  const annotate = (name: string, prefs: (number | null)[]): Annotation[] =>
    prefs.map((preference, i) => ({
      instruction: `q${i}`,
      output_1: 'ref',
      generator_1: 'ref-model',
      output_2: 'x'.repeat(i + 1),
      generator_2: name,
      annotator: 'toy-judge',
      preference,
    }));
  await writeAnnotations(
    p.annotation('eos-uniform-diversity'),
    annotate('rules', [2, 1.8, 1.2, 1.5, 1, 1.9]),
  );
  await writeAnnotations(p.annotation('none'), annotate('none', [1, 1, 1.1, 1.05, null, 1.3]));
  await writeAnnotations(p.annotation('a|b'), annotate('pipe', [1.5])); // a name that needs escaping; one judgement: SE n/a
  const scorer: Scorer = {
    scoreContinuations: async (items) =>
      items.map((x) => ({ tokenLogprobs: [x.response.length % 3 === 0 ? -0.1 : -1] })),
  };
  const data = Array.from({ length: 12 }, (_, i) => ({ instruction: `i${i}`, output: 'y'.repeat(i + 1) }));
  await rankResponses({ scorer, data, n: 12, negatives: 3, bootstrap: 100, out: p.rankingResult('base') });
  const ranks: RankSource = {
    rankTokens: async (items) =>
      items.map((x) => ({
        tokens: [...x.response].map((c, k) => ({ id: k, text: c === '|' ? '|`' : c, rank: 1 + (k % 5) })),
      })),
  };
  await tokenShift({
    base: ranks,
    aligned: [{ instruction: 'a', output: 'hel| world' }],
    label: 'rules vs base',
    out: p.shiftResult('rules'),
  });
});
afterAll(() => rmSync(runDir, { recursive: true, force: true }));

/** The rows of the Markdown table that follows a header line starting with `| first |`. */
function tableRows(markdown: string, first: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`| ${first} |`));
  const rows: string[][] = [];
  for (let i = start + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    rows.push(lines[i]!.slice(2, -2).split(/(?<!\\) \| /));
  }
  return rows;
}

describe('writeReport', () => {
  it('writes report.md, winrates.json and the charts, and the numbers in the report are the JSON numbers', async () => {
    const r = await writeReport(runDir);
    const md = readFileSync(join(runDir, 'report.md'), 'utf8');
    expect(md).toBe(r.markdown);
    const json = JSON.parse(readFileSync(join(runDir, 'winrates.json'), 'utf8')) as Record<
      string,
      Record<string, number | null>
    >;
    const rows = tableRows(md, 'model');
    expect(rows.map((row) => row[0])).toEqual(['eos-uniform-diversity', 'a\\|b', 'none']); // sorted by win rate
    for (const row of rows) {
      const s = json[row[0]!.replace(/\\\|/g, '|')]!;
      expect(row.slice(1)).toEqual([
        fmt(s.win_rate),
        fmt(s.standard_error),
        String(s.n_wins),
        String(s.n_wins_base),
        String(s.n_draws),
        String(s.n_total),
        fmt(s.discrete_win_rate),
        fmt(s.avg_length, 0),
      ]);
    }
    expect(json['a|b']!.standard_error).toBeNull();
    expect(json['eos-uniform-diversity']).toMatchObject({
      n_wins: 3,
      n_wins_base: 2,
      n_draws: 1,
      n_total: 6,
      baseline: 'ref-model',
      annotator: 'toy-judge',
    });

    const ranking = JSON.parse(readFileSync(runPaths(runDir).rankingResult('base'), 'utf8'));
    const rankRow = md
      .split('\n')
      .find((l) => l.startsWith('| base |'))!
      .slice(2, -2)
      .split(' | ');
    expect(rankRow).toEqual([
      'base',
      fmt(ranking.percent),
      fmt(ranking.ci.low),
      fmt(ranking.ci.high),
      String(ranking.pairs),
      String(ranking.wins),
      String(ranking.ties),
      '12',
    ]);
    expect(md).toContain(
      `over 100 resamples; random responses drawn as the paper's ratio_eval.py draws them, seed 0.`,
    );

    const shift = JSON.parse(readFileSync(runPaths(runDir).shiftResult('rules'), 'utf8'));
    expect(tableRows(md, 'comparison')).toEqual([
      [
        'rules vs base',
        String(shift.overall.tokens),
        fmt(shift.overall.percent.unshifted),
        fmt(shift.overall.percent.marginal),
        fmt(shift.overall.percent.shifted),
      ],
    ]);
    expect(md).toContain('| "\\|`" | 1 |'); // the token |` as its JSON string, pipe escaped, no code span (it has a backtick)
    for (const c of ['win-rates.svg', 'ranking-base.svg', 'token-shift.svg', 'token-shift-rules.svg']) {
      expect(existsSync(join(runDir, 'charts', c))).toBe(true);
      expect(md).toContain(`](charts/${c})`);
    }
    // the chart shows the same numbers
    const svg = readFileSync(join(runDir, 'charts', 'win-rates.svg'), 'utf8');
    expect(svg).toContain(`>${fmt(json['eos-uniform-diversity']!.win_rate as number)}<`);
    expect(svg).toContain('a|b');
    // 'a|b' has one judgement, so no standard error: the axis still spans the other bars
    const ticks = [...svg.matchAll(/>([\d.]+)%</g)].map((m) => Number(m[1]));
    expect(Math.max(...ticks)).toBeGreaterThanOrEqual(json['eos-uniform-diversity']!.win_rate as number);
  });

  it('annotations against different baselines: a table and a chart per baseline, ranked within it', async () => {
    const run = mkdtempSync(join(tmpdir(), 'eval-report-baselines-'));
    try {
      const p = runPaths(run);
      const annotate = (baseline: string, name: string, prefs: number[]): Annotation[] =>
        prefs.map((preference, i) => ({
          instruction: `q${i}`,
          output_1: 'ref',
          generator_1: baseline,
          output_2: 'x'.repeat(i + 1),
          generator_2: name,
          annotator: 'toy-judge',
          preference,
        }));
      await writeAnnotations(p.annotation('ed-gpt4'), annotate('gpt4_1106_preview', 'ed', [2, 1.6, 1]));
      await writeAnnotations(p.annotation('eud-gpt4'), annotate('gpt4_1106_preview', 'eud', [1, 1.2, 1]));
      await writeAnnotations(p.annotation('eud'), annotate('tiny/none', 'eud', [2, 1.9, 1.5]));
      const r = await writeReport(run);
      expect(r.winrates.map((w) => [w.baseline, w.name])).toEqual([
        ['gpt4_1106_preview', 'ed-gpt4'],
        ['gpt4_1106_preview', 'eud-gpt4'],
        ['tiny/none', 'eud'],
      ]);
      const section = r.markdown.slice(r.markdown.indexOf('## Win rates'));
      expect(section.split('\n').slice(0, 9)).toEqual([
        '## Win rates',
        '',
        "Pairwise judgements against 2 baselines, with alpaca_eval's statistics (`winrates.json`): a win rate is measured against its baseline, so each baseline has its own table and chart.",
        '',
        '### Against `gpt4_1106_preview`',
        '',
        'Judged by `toy-judge`.',
        '',
        '![Win rates against gpt4_1106_preview](charts/win-rates-gpt4_1106_preview.svg)',
      ]);
      expect(section).toContain(
        '### Against `tiny/none`\n\nJudged by `toy-judge`.\n\n![Win rates against tiny/none](charts/win-rates-tiny_none.svg)\n',
      );
      const tables = section
        .split('### ')
        .slice(1)
        .map((part) => tableRows(part, 'model').map((row) => row[0]));
      expect(tables).toEqual([['ed-gpt4', 'eud-gpt4'], ['eud']]);
      expect(existsSync(join(run, 'charts', 'win-rates.svg'))).toBe(false);
      const svg = readFileSync(join(run, 'charts', 'win-rates-tiny_none.svg'), 'utf8');
      expect(svg).toContain('Win rate against tiny/none (%)');
      expect(svg).toContain('>eud<');
      expect(svg).not.toContain('ed-gpt4');
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  it('removes the files an earlier report wrote that it no longer writes, and only those', async () => {
    const run = mkdtempSync(join(tmpdir(), 'eval-report-stale-'));
    try {
      const p = runPaths(run);
      const charts = () => readdirSync(p.charts).sort();
      const annotate = (baseline: string, prefs: number[]): Annotation[] =>
        prefs.map((preference, i) => ({
          instruction: `q${i}`,
          output_1: 'ref',
          generator_1: baseline,
          output_2: 'x'.repeat(i + 1),
          generator_2: 'm',
          annotator: 'toy-judge',
          preference,
        }));
      await writeAnnotations(p.annotation('a'), annotate('gpt4', [2, 1]));
      const scorer: Scorer = {
        scoreContinuations: async (items) => items.map(() => ({ tokenLogprobs: [-1] })),
      };
      const data = Array.from({ length: 4 }, (_, i) => ({ instruction: `i${i}`, output: `o${i}` }));
      await rankResponses({ scorer, data, n: 4, negatives: 2, bootstrap: 10, out: p.rankingResult('base') });
      // the user's own files in charts/, one named like a report's chart
      mkdirSync(p.charts, { recursive: true });
      writeFileSync(join(p.charts, 'notes.svg'), '<svg/>');
      writeFileSync(join(p.charts, 'ranking-mine.svg'), '<svg/>');
      const first = await writeReport(run);
      expect(first.removed).toEqual([]);
      expect(charts()).toEqual(['notes.svg', 'ranking-base.svg', 'ranking-mine.svg', 'win-rates.svg']);
      expect(JSON.parse(readFileSync(join(run, '.report-files.json'), 'utf8'))).toEqual({
        files: ['winrates.json', 'charts/win-rates.svg', 'charts/ranking-base.svg'],
      });
      // a second baseline: a chart per baseline, and the single chart of before is gone
      await writeAnnotations(p.annotation('b'), annotate('tiny/none', [2, 2]));
      const second = await writeReport(run);
      expect(second.removed).toEqual([join(run, 'charts', 'win-rates.svg')]);
      expect(charts()).toEqual([
        'notes.svg',
        'ranking-base.svg',
        'ranking-mine.svg',
        'win-rates-gpt4.svg',
        'win-rates-tiny_none.svg',
      ]);
      // back to one baseline, and the ranking and the win rates gone: their files go with them
      rmSync(p.annotation('b'));
      rmSync(p.rankingResult('base'));
      const third = await writeReport(run);
      expect(third.removed.sort()).toEqual(
        ['ranking-base.svg', 'win-rates-gpt4.svg', 'win-rates-tiny_none.svg'].map((f) =>
          join(run, 'charts', f),
        ),
      );
      expect(charts()).toEqual(['notes.svg', 'ranking-mine.svg', 'win-rates.svg']);
      rmSync(p.annotation('a'));
      const last = await writeReport(run);
      expect(last.removed).toEqual([join(run, 'winrates.json'), join(run, 'charts', 'win-rates.svg')]);
      expect(existsSync(p.winrates)).toBe(false);
      expect(charts()).toEqual(['notes.svg', 'ranking-mine.svg']);
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  it('says how many pairs of each annotations file the judge refused, and which, with its message', async () => {
    const run = mkdtempSync(join(tmpdir(), 'eval-report-refused-'));
    try {
      const p = runPaths(run);
      const row = (i: number, preference: number | null): Annotation => ({
        instruction: `Question ${i}?`,
        output_1: 'ref',
        generator_1: 'gpt4',
        output_2: 'x',
        generator_2: 'm',
        annotator: 'j',
        preference,
      });
      const error =
        'judge request to http://judge/v1/chat/completions failed: HTTP 400: {"error":"too long | cut"}';
      await writeAnnotations(p.annotation('rules'), [
        row(0, 2),
        { ...row(1, null), preference_source: 'refused', judge_error: error },
        row(2, 1),
        { ...row(3, null), preference_source: 'none' }, // unreadable: not a refusal
        // refused once, its preference given since (by hand): a judgement, counted, not listed
        { ...row(4, 2), preference_source: 'refused', judge_error: error },
      ]);
      await writeAnnotations(p.annotation('base'), [row(0, 1), row(1, 1.5)]);
      const r = await writeReport(run);
      expect(r.winrates.find((w) => w.name === 'rules')!.notJudged).toEqual([
        { index: 1, instruction: 'Question 1?', error },
      ]);
      expect(r.winrates.find((w) => w.name === 'base')!.notJudged).toBeUndefined();
      expect(tableRows(r.markdown, 'model').map((cells) => cells.slice(0, 3))).toEqual([
        ['rules', '1', '66.67'],
        ['base', '0', '25.00'],
      ]);
      expect(r.markdown).toContain(
        'Not judged in `rules`: the judge refused the request of 1 pair, left out of its win rate (judging again asks for them; # counts annotations from 0): ' +
          '#1 "Question 1?": judge request to http://judge/v1/chat/completions failed: HTTP 400: {"error":"too long \\| cut"}\n',
      );
      expect(JSON.parse(readFileSync(p.winrates, 'utf8')).rules.notJudged).toHaveLength(1);
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  it("removes the stale charts of a report written before the list of its files was kept (its report.md's links)", async () => {
    const run = mkdtempSync(join(tmpdir(), 'eval-report-legacy-'));
    try {
      const p = runPaths(run);
      const annotate = (baseline: string): Annotation[] => [
        {
          instruction: 'q',
          output_1: 'r',
          generator_1: baseline,
          output_2: 'x',
          generator_2: 'm',
          annotator: 'j',
          preference: 2,
        },
      ];
      await writeAnnotations(p.annotation('a'), annotate('gpt4'));
      await writeAnnotations(p.annotation('b'), annotate('other'));
      // what an earlier version left: a single win-rate chart, linked from its report.md with a chart of the user's
      mkdirSync(p.charts, { recursive: true });
      for (const f of ['win-rates.svg', 'mine.svg']) writeFileSync(join(p.charts, f), '<svg/>');
      writeFileSync(p.report, '# Report\n\n![Win rates](charts/win-rates.svg)\n\n![Mine](charts/mine.svg)\n');
      const r = await writeReport(run);
      expect(r.removed).toEqual([join(run, 'charts', 'win-rates.svg')]);
      expect(readdirSync(p.charts).sort()).toEqual(['mine.svg', 'win-rates-gpt4.svg', 'win-rates-other.svg']);
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  it('win rates judged on part of the baseline\'s instructions say so: "2 of 3"', async () => {
    const run = mkdtempSync(join(tmpdir(), 'eval-report-subset-'));
    try {
      const p = runPaths(run);
      const top = [
        { token: 'M', logprob: Math.log(0.75) },
        { token: 'm', logprob: Math.log(0.25) },
      ];
      const judge: JudgeClient = {
        id: 'toy-judge',
        complete: async () => ({
          choices: [
            { message: { content: 'M' }, logprobs: { content: [{ ...top[0]!, top_logprobs: top }] } },
          ],
        }),
      };
      const baseline = ['a', 'b', 'c'].map((instruction) => ({ instruction, output: 'x', generator: 'ref' }));
      const model = (n: number) => baseline.slice(0, n).map((b) => ({ ...b, output: 'yy', generator: 'm' }));
      const cacheDir = join(run, '.judge-cache');
      await judgePairs({ judge, baseline, model: model(2), cacheDir, out: p.annotation('part') });
      await judgePairs({ judge, baseline, model: model(3), cacheDir, out: p.annotation('whole') });
      // annotations without a record (alpaca_eval's): nothing known
      await writeAnnotations(p.annotation('theirs'), readAnnotations(p.annotation('whole')));
      const r = await writeReport(run);
      const rows = tableRows(r.markdown, 'model').map((row) => row.slice(0, 2));
      expect(rows.sort()).toEqual([
        ['part', '2 of 3'],
        ['theirs', 'n/a'],
        ['whole', '3'],
      ]);
      expect(r.markdown).toContain('| model | instructions | win rate |');
      const json = JSON.parse(readFileSync(join(run, 'winrates.json'), 'utf8'));
      expect(json.part).toMatchObject({ instructions: 2, baselineInstructions: 3 });
      expect(json.theirs.instructions).toBeUndefined();
      // every row over the whole set: no column
      rmSync(p.annotation('part'));
      expect((await writeReport(run)).markdown).toContain('| model | win rate |');
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  it('tells apart token-shift results with the same label, and links chart names with spaces', async () => {
    const run = mkdtempSync(join(tmpdir(), 'eval-report-labels-'));
    try {
      const ranks: RankSource = {
        rankTokens: async (items) =>
          items.map((x) => ({ tokens: [...x.response].map((c, k) => ({ id: k, text: c, rank: 1 + k })) })),
      };
      for (const name of ['a', 'my run (2)']) {
        await tokenShift({
          base: ranks,
          aligned: [{ instruction: 'i', output: 'abcd' }],
          out: runPaths(run).shiftResult(name),
        });
      }
      const r = await writeReport(run);
      expect(r.markdown).toContain('### aligned vs base (a)\n');
      expect(r.markdown).toContain('### aligned vs base (my run (2))\n');
      expect(r.markdown).toContain('](charts/token-shift-my%20run%20%282%29.svg)');
      expect(existsSync(join(run, 'charts', 'token-shift-my run (2).svg'))).toBe(true);
      expect(r.shifts.map((s) => s.result.label)).toEqual(['aligned vs base', 'aligned vs base']);
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  it('lists no tokens of a shift made with topK 0 (the statistics only), and says so', async () => {
    const run = mkdtempSync(join(tmpdir(), 'eval-report-top-k-'));
    try {
      const ranks: RankSource = {
        rankTokens: async (items) =>
          items.map((x) => ({ tokens: [...x.response].map((c, k) => ({ id: k, text: c, rank: 1 + k })) })),
      };
      await tokenShift({
        base: ranks,
        aligned: [{ instruction: 'i', output: 'abcdef' }],
        label: 'stats only',
        topK: 0,
        out: runPaths(run).shiftResult('a'),
      });
      const r = await writeReport(run);
      expect(r.markdown).toContain(
        '### stats only\n\n![Token shift by position: stats only](charts/token-shift-a.svg)\n\nIts 3 shifted tokens are not listed (top-k 0).\n',
      );
      expect(r.markdown).not.toContain('| token | times shifted |');
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  it('names the id of a listed token whose text is U+FFFD (part of a character): each looks the same', async () => {
    const run = mkdtempSync(join(tmpdir(), 'eval-report-fffd-'));
    try {
      // a rank source without the tokens' bytes (or a result written before they were shown)
      const ranks: RankSource = {
        rankTokens: async (items) =>
          items.map((x) => ({
            tokens: [...x.response].map((c, k) => ({
              id: c === 'x' ? 192 : c === 'y' ? 194 : 65,
              text: c === 'A' ? 'A' : '\ufffd',
              rank: 4 + k,
            })),
          })),
      };
      await tokenShift({
        base: ranks,
        aligned: [{ instruction: 'i', output: 'xxyA' }],
        label: 'bytes',
        out: runPaths(run).shiftResult('a'),
      });
      const r = await writeReport(run);
      expect(tableRows(r.markdown, 'token')).toEqual([
        ['`"\ufffd"` (id 192)', '2', '50.00'],
        ['`"A"`', '1', '25.00'],
        ['`"\ufffd"` (id 194)', '1', '25.00'],
      ]);
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  it('refuses a run directory that does not exist (rather than create it) or is a file', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'eval-report-missing-'));
    try {
      const missing = join(parent, 'runs', 'llama2');
      const error = await writeReport(missing).catch((e: unknown) => e);
      expect(EvalInputError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({
        field: 'runDir',
        message: `${missing}: no such run directory (it holds annotations/, ranking/ or shift/)`,
      });
      expect(existsSync(join(parent, 'runs'))).toBe(false);
      const file = join(parent, 'report.md');
      writeFileSync(file, 'mine');
      await expect(writeReport(file)).rejects.toThrow(
        `${file}: is a file, not a run directory (one that holds annotations/, ranking/ or shift/)`,
      );
      expect(readFileSync(file, 'utf8')).toBe('mine');
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('says so when a run directory is empty', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'eval-report-empty-'));
    try {
      const r = await writeReport(empty);
      expect(r.markdown).toContain('No results yet');
      expect(r.charts).toEqual([]);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('names a stray file in shift/ or ranking/ instead of failing inside a chart', async () => {
    const run = mkdtempSync(join(tmpdir(), 'eval-report-stray-'));
    try {
      const p = runPaths(run);
      mkdirSync(p.shift, { recursive: true });
      writeFileSync(join(p.shift, 'model_outputs.json'), JSON.stringify([{ instruction: 'x', output: 'y' }]));
      await expect(writeReport(run)).rejects.toThrow(
        `${join(p.shift, 'model_outputs.json')}: is not a token-shift result (no field "label"); the report reads every .json in shift/, so move other files out of it`,
      );
      rmSync(p.shift, { recursive: true });
      mkdirSync(p.ranking, { recursive: true });
      writeFileSync(join(p.ranking, 'base.json'), JSON.stringify({ percent: 50, pairs: 2 }));
      await expect(writeReport(run)).rejects.toBeInstanceOf(EvalInputError);
      await expect(writeReport(run)).rejects.toThrow('(no field "ci.low")');
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });
});

describe('histogramSvg', () => {
  // the count axis's tick labels, bottom to top
  const ticks = (counts: number[]) =>
    [
      ...histogramSvg({ title: 't', xLabel: 'k', bins: counts.map(String), counts }).matchAll(
        /text-anchor="end"[^>]*>([^<]*)</g,
      ),
    ].map((m) => m[1]);

  it('labels its count axis in whole numbers: examples come whole', () => {
    expect(ticks([2, 4, 0, 2, 2, 0])).toEqual(['0', '1', '2', '3', '4']);
    expect(ticks([1, 5, 2])).toEqual(['0', '2', '4', '6', '8']); // was 0, 1.25, 2.5, 3.75, 5
    expect(ticks([0, 0])).toEqual(['0', '1', '2', '3', '4']);
    expect(ticks([250, 120, 30])).toEqual(['0', '75', '150', '225', '300']); // was 62.5, 125, 187.5
    expect(ticks([401, 12])).toEqual(['0', '150', '300', '450', '600']);
  });
});
