import { readFileSync } from 'node:fs';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { expect, it } from 'vitest';
import { readAnnotations, WIN_RATE_KEYS, winRate } from '../src/index.js';

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
