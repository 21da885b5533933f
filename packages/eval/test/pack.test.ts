import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const pkgDir = resolve(import.meta.dirname, '..');

describe('the published package', () => {
  it('npm pack contains only dist, README, LICENSE and package.json', () => {
    expect(existsSync(join(pkgDir, 'dist/index.js')), 'run the build first (turbo does)').toBe(true);
    const out = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: pkgDir, encoding: 'utf8' });
    const [info] = JSON.parse(out.slice(out.indexOf('[')));
    const files: string[] = info.files.map((f: { path: string }) => f.path).sort();
    expect(
      files.every((f) => f.startsWith('dist/') || ['README.md', 'LICENSE', 'package.json'].includes(f)),
    ).toBe(true);
    expect(files).toEqual(
      expect.arrayContaining([
        'README.md',
        'LICENSE',
        'dist/index.js',
        'dist/index.cjs',
        'dist/index.d.ts',
        'dist/index.d.cts',
      ]),
    );
  }, 60_000);

  it('loads from ESM and CommonJS with the same public API', () => {
    const script = (load: string) =>
      `${load}; const s = m.winRate([{ preference: 2, output_2: 'ab' }, { preference: 1.5, output_2: 'a' }]); console.log(m.formatWinRate(s, { json: true }), Object.keys(m).length)`;
    const esm = execFileSync(
      'node',
      [
        '--input-type=module',
        '-e',
        script(`import * as m from ${JSON.stringify(join(pkgDir, 'dist/index.js'))}`),
      ],
      { encoding: 'utf8' },
    );
    const cjs = execFileSync(
      'node',
      ['-e', script(`const m = require(${JSON.stringify(join(pkgDir, 'dist/index.cjs'))})`)],
      { encoding: 'utf8' },
    );
    expect(esm).toBe(cjs);
    expect(esm).toContain(
      '{"win_rate":75,"standard_error":25,"n_wins":1,"n_wins_base":0,"n_draws":1,"n_total":2,"discrete_win_rate":75,"avg_length":1}',
    );
  }, 60_000);
});
