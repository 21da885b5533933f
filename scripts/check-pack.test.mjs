// `node --test scripts/check-pack.test.mjs` (the root `pnpm test` runs it): the prepublishOnly check,
// `check-pack.mjs --built`, run in a package laid out as tsup builds ours.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const script = new URL('./check-pack.mjs', import.meta.url).pathname;

/**
 * A built package: dist/index.js imports a chunk, dist/index.d.ts a declaration chunk; each script
 * has a source map recording its sources, which it points at.
 */
function builtPackage(sources) {
  const dir = mkdtempSync(join(tmpdir(), 'check-pack-built-'));
  mkdirSync(join(dir, 'src'));
  mkdirSync(join(dir, 'dist'));
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name: '@x/fixture',
      main: 'dist/index.js',
      types: 'dist/index.d.ts',
      exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } },
    }),
  );
  for (const [name, text] of Object.entries(sources)) writeFileSync(join(dir, 'src', name), text);
  const map = (names) =>
    JSON.stringify({
      version: 3,
      sources: names.map((n) => `../src/${n}`),
      sourcesContent: names.map((n) => sources[n]),
      mappings: '',
      names: [],
    });
  const [first, ...rest] = Object.keys(sources);
  writeFileSync(
    join(dir, 'dist', 'index.js'),
    'export * from "./chunk-A.js";\n//# sourceMappingURL=index.js.map\n',
  );
  writeFileSync(join(dir, 'dist', 'index.js.map'), map([first]));
  writeFileSync(
    join(dir, 'dist', 'chunk-A.js'),
    'export const a = 1;\n//# sourceMappingURL=chunk-A.js.map\n',
  );
  writeFileSync(join(dir, 'dist', 'chunk-A.js.map'), map(rest));
  writeFileSync(join(dir, 'dist', 'index.d.ts'), "export { a } from './types-B.js';\n");
  writeFileSync(join(dir, 'dist', 'types-B.d.ts'), 'export declare const a: number;\n');
  return dir;
}

/** An earlier build's chunk, its map and its declarations, as a turbo cache restore leaves them. */
function addOldBuild(dir, source) {
  writeFileSync(
    join(dir, 'dist', 'chunk-OLD.js'),
    'export const a = 0;\n//# sourceMappingURL=chunk-OLD.js.map\n',
  );
  writeFileSync(
    join(dir, 'dist', 'chunk-OLD.js.map'),
    JSON.stringify({ version: 3, sources: [`../src/${source}`], sourcesContent: ['old'], mappings: '' }),
  );
  writeFileSync(join(dir, 'dist', 'types-OLD.d.ts'), 'export declare const a: string;\n');
}

const check = (dir) => spawnSync(process.execPath, [script, '--built'], { cwd: dir, encoding: 'utf8' });

test('--built passes a dist/ built from the sources here, whatever their modification times', () => {
  const dir = builtPackage({ 'index.ts': 'export * from "./a";\n', 'a.ts': 'export const a = 1;\n' });
  try {
    const future = new Date(Date.now() + 3600_000);
    utimesSync(join(dir, 'src', 'a.ts'), future, future); // a checkout rewrote it, same content
    const r = check(dir);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--built refuses a dist/ built before a change to src/, naming what changed', () => {
  const dir = builtPackage({
    'index.ts': 'export * from "./a";\n',
    'a.ts': 'export const a = 1;\n',
    'b.ts': 'export const b = 2;\n',
    'c.ts': 'export const c = 3;\n',
    'd.ts': 'export const d = 4;\n',
  });
  try {
    writeFileSync(join(dir, 'src', 'a.ts'), 'export const a = 2;\n'); // in the chunk index.js imports
    const fix = 'build before publishing (pnpm release builds and publishes)';
    let r = check(dir);
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      `@x/fixture: dist/ was built from other sources than those here (src/a.ts changed since the build): ${fix}\n`,
    );
    rmSync(join(dir, 'src', 'index.ts'));
    for (const f of ['b.ts', 'c.ts']) writeFileSync(join(dir, 'src', f), '');
    r = check(dir);
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      `@x/fixture: dist/ was built from other sources than those here (src/a.ts, src/b.ts, src/c.ts and 1 more changed since the build): ${fix}\n`,
    );
    rmSync(join(dir, 'dist', 'index.js'));
    r = check(dir);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `@x/fixture: dist/index.js missing: ${fix}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--built refuses files in dist/ that no entry point reaches, as an earlier build leaves them', () => {
  const dir = builtPackage({ 'index.ts': 'export * from "./a";\n', 'a.ts': 'export const a = 1;\n' });
  try {
    addOldBuild(dir, 'index.ts');
    const fix =
      'remove dist/ and build before publishing (rm -rf dist, then pnpm release builds and publishes)';
    let r = check(dir);
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      `@x/fixture: dist/chunk-OLD.js, dist/chunk-OLD.js.map, dist/types-OLD.d.ts are reached from no entry point of package.json (an earlier build's, which a turbo cache restore leaves in dist/) and would be published: ${fix}\n`,
    );
    mkdirSync(join(dir, 'dist', 'sub'));
    writeFileSync(join(dir, 'dist', 'sub', 'worker-OLD.js'), '');
    r = check(dir);
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      `@x/fixture: dist/chunk-OLD.js, dist/chunk-OLD.js.map, dist/sub/worker-OLD.js and 1 more are reached from no entry point of package.json (an earlier build's, which a turbo cache restore leaves in dist/) and would be published: ${fix}\n`,
    );
    // what the current build's files name is theirs: a worker started by its path, declarations
    // named by their JavaScript path (the maps, named by their scripts, passed in the first test)
    for (const f of ['chunk-OLD.js', 'chunk-OLD.js.map']) rmSync(join(dir, 'dist', f));
    writeFileSync(
      join(dir, 'dist', 'chunk-A.js'),
      'export const a = 1;\nnew URL("./sub/worker-OLD.js", import.meta.url);\n//# sourceMappingURL=chunk-A.js.map\n',
    );
    writeFileSync(join(dir, 'dist', 'types-B.d.ts'), "export * from './types-OLD.js';\n");
    r = check(dir);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
