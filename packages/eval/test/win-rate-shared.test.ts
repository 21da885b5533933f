import { readFileSync } from 'node:fs';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { expect, it } from 'vitest';
import {
  type ChatCompletionChoice,
  preferenceFromChoice,
  readAnnotations,
  WIN_RATE_KEYS,
  winRate,
} from '../src/index.js';

const DIR = 'data/alpaca_eval/annotations';
const MODELS = [
  'FuseChat-Gemma-2-9B-Instruct',
  'NullModel',
  'alpaca-farm-ppo-human',
  'claude-2',
  'gemma-7b-it',
  'gpt4_0613_concise',
];

/** The published leaderboard rows: first column the model name, the rest numbers or text. */
function leaderboardRows(): Map<string, Record<string, string>> {
  const [header, ...lines] = readFileSync(sharedPath(DIR, 'leaderboard_rows.csv'), 'utf8').trim().split('\n');
  const keys = header!.split(',');
  return new Map(
    lines.map((line) => {
      const cells = line.split(',');
      return [cells[0]!, Object.fromEntries(keys.map((k, i) => [k, cells[i]!]))];
    }),
  );
}

describeShared(
  'win-rate statistics reproduce the published alpaca_eval leaderboard rows',
  [`${DIR}/leaderboard_rows.csv`, ...MODELS.map((m) => `${DIR}/${m}.json`)],
  () => {
    const rows = leaderboardRows();
    it('has a published row for every annotations file', () => {
      expect([...rows.keys()].sort()).toEqual([...MODELS].sort());
    });
    for (const model of MODELS) {
      it(`${model}: every statistic matches to 1e-6`, () => {
        const stats = winRate(readAnnotations(sharedPath(DIR, `${model}.json`)));
        const row = rows.get(model)!;
        for (const key of WIN_RATE_KEYS) {
          const published = Number(row[key]);
          expect(Number.isFinite(published), `${model}.${key} is published`).toBe(true);
          expect(
            Math.abs(stats[key] - published),
            `${model}.${key}: ours ${stats[key]}, published ${published}`,
          ).toBeLessThan(1e-6);
        }
      });
    }
  },
);

describeShared(
  'our logprob parser reproduces every published preference from its raw judge completion',
  MODELS.map((m) => `${DIR}/${m}.json`),
  () => {
    for (const model of MODELS) {
      it(`${model}: preference = p or 3 - p (outputs switched), p = 2 - P(m) / (P(m) + P(M))`, () => {
        const all = readAnnotations(sharedPath(DIR, `${model}.json`));
        const annotations = all.filter((a) => a.raw_completion);
        if (model === 'FuseChat-Gemma-2-9B-Instruct')
          expect(annotations.length).toBe(0); // published without raw completions
        // alpaca_eval, like judgePairs, calls no judge for identical outputs: a draw (1.5)
        else
          for (const a of all.filter((x) => !x.raw_completion))
            expect([a.preference, a.output_1 === a.output_2]).toEqual([1.5, true]);
        for (const a of annotations) {
          const p = preferenceFromChoice(a.raw_completion as ChatCompletionChoice);
          expect(p.source).toBe('logprobs');
          // the published values are rounded to 10 decimals
          const error = Math.min(
            Math.abs(a.preference! - p.preference),
            Math.abs(a.preference! - (3 - p.preference)),
          );
          expect(
            error,
            `${a.instruction.slice(0, 60)}: published ${a.preference}, parsed ${p.preference}`,
          ).toBeLessThan(1e-9);
        }
      });
    }
  },
);
