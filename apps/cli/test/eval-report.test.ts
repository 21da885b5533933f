import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { run } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'implicit-it-cli-eval-report-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** alpaca_eval annotations of generator `m` against `baseline`, one judgement a preference. */
const annotations = (baseline: string, prefs: number[]) =>
  JSON.stringify(
    prefs.map((preference, i) => ({
      instruction: `q${i}`,
      output_1: 'ref',
      generator_1: baseline,
      output_2: 'x'.repeat(i + 1),
      generator_2: 'm',
      annotator: 'toy-judge',
      preference,
    })),
  );

it('report: the single win-rate chart of an earlier report goes once there are several baselines, and is named', async () => {
  const runDir = join(tmp, 'run');
  mkdirSync(join(runDir, 'annotations'), { recursive: true });
  writeFileSync(join(runDir, 'annotations', 'a.json'), annotations('gpt4', [2, 1, 1.5]));
  const first = await run(['eval', 'report', runDir]);
  expect(first.code, first.stderr).toBe(0);
  expect(readdirSync(join(runDir, 'charts'))).toEqual(['win-rates.svg']);
  writeFileSync(join(runDir, 'charts', 'mine.svg'), '<svg/>'); // the user's: kept
  writeFileSync(join(runDir, 'annotations', 'b.json'), annotations('tiny/none', [2, 2]));
  const second = await run(['eval', 'report', runDir]);
  expect(second.code, second.stderr).toBe(0);
  expect(second.stdout).toBe(
    `wrote ${join(runDir, 'report.md')} with 2 charts: win rates of 2 outputs files, 0 rankings, 0 token shifts\n` +
      'removed 1 file of an earlier report that this one no longer has: charts/win-rates.svg\n',
  );
  expect(readdirSync(join(runDir, 'charts')).sort()).toEqual([
    'mine.svg',
    'win-rates-gpt4.svg',
    'win-rates-tiny_none.svg',
  ]);
  // back to one baseline: the charts of each baseline go, in --json too
  rmSync(join(runDir, 'annotations', 'b.json'));
  const third = await run(['eval', 'report', runDir, '--json']);
  expect(third.code, third.stderr).toBe(0);
  expect(JSON.parse(third.stdout).removed).toEqual([
    join(runDir, 'charts', 'win-rates-gpt4.svg'),
    join(runDir, 'charts', 'win-rates-tiny_none.svg'),
  ]);
  expect(readdirSync(join(runDir, 'charts')).sort()).toEqual(['mine.svg', 'win-rates.svg']);
});
