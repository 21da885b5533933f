import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const pkgDir = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'rules-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the published package', () => {
  it('npm pack contains only dist, README, LICENSE and package.json', () => {
    expect(existsSync(join(pkgDir, 'dist/index.js')), 'run the build first (turbo does)').toBe(true);
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
      cwd: pkgDir,
      encoding: 'utf8',
    });
    const [info] = JSON.parse(out.slice(out.indexOf('[')));
    const files: string[] = info.files.map((f: { path: string }) => f.path).sort();
    expect(
      files.every((f) => f.startsWith('dist/') || ['README.md', 'LICENSE', 'package.json'].includes(f)),
    ).toBe(true);
    expect(files).toContain('README.md');
    expect(files).toContain('LICENSE');
    expect(files).toEqual(
      expect.arrayContaining(['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts']),
    );
  }, 60_000);

  it('installs from the tarball and works from ESM and CommonJS', () => {
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
    const app = join(work, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(work, tarball)], {
      cwd: app,
      stdio: 'pipe',
    });
    const script = (load: string) => `${load}
      const v = m.createVocabulary({ surfaces: ['</s>', ' I', '\\n'], eosIds: [0] });
      const set = m.compileRules('hewitt2024', v);
      const s = set.createState({ promptIds: [2], scopeStart: 0 });
      s.append(1);
      console.log(JSON.stringify([...set.scores(s)]));`;
    writeFileSync(join(app, 'esm.mjs'), script("import * as m from '@implicit-it/rules';"));
    writeFileSync(join(app, 'cjs.cjs'), script("const m = require('@implicit-it/rules');"));
    const want = JSON.stringify([
      [0, 15 / 250],
      [1, -6.5],
      [2, -0.5],
    ]);
    expect(execFileSync('node', ['esm.mjs'], { cwd: app, encoding: 'utf8' }).trim()).toBe(want);
    expect(execFileSync('node', ['cjs.cjs'], { cwd: app, encoding: 'utf8' }).trim()).toBe(want);
  }, 60_000);

  it('the installed manifest: types first in each condition, no side effects, the Node versions it is tested on', () => {
    const manifest = JSON.parse(
      readFileSync(join(work, 'app', 'node_modules', '@implicit-it', 'rules', 'package.json'), 'utf8'),
    );
    expect(manifest.exports).toEqual({
      '.': {
        import: { types: './dist/index.d.ts', default: './dist/index.js' },
        require: { types: './dist/index.d.cts', default: './dist/index.cjs' },
      },
      './package.json': './package.json',
    });
    // TypeScript takes the first condition that matches: "types" must come before "default"
    for (const condition of ['import', 'require']) {
      expect(Object.keys(manifest.exports['.'][condition])).toEqual(['types', 'default']);
    }
    expect([manifest.main, manifest.module, manifest.types]).toEqual([
      './dist/index.cjs',
      './dist/index.js',
      './dist/index.d.ts',
    ]);
    expect(manifest.sideEffects).toBe(false);
    expect(manifest.license).toBe('MIT');
    expect(manifest.repository.directory).toBe('packages/rules');
    expect(manifest.dependencies).toBeUndefined();
    // npm warns (engine-strict refuses) on a Node outside the range, as for the other published packages
    const sibling = JSON.parse(readFileSync(join(pkgDir, '..', 'runtime', 'package.json'), 'utf8'));
    expect(manifest.engines).toEqual({ node: '>=20.10' });
    expect(manifest.engines).toEqual(sibling.engines);
  });
});
