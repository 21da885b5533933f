#!/usr/bin/env node
// What npm consumers get, checked offline after a build (`pnpm test` and `pnpm release` run it):
//
// - every publishable package's tarball (`pnpm pack --dry-run`) holds each file its package.json
//   names (main, module, types, exports, bin, typesVersions) and its LICENSE, and every subpath
//   export with types has a typesVersions entry, so that `moduleResolution: node10` finds them too;
//   its publishConfig says public access (npm's default for a scoped name is restricted);
//   and nothing in dist/ that its entry points do not reach (as --built, below);
// - @implicit-it/rules, packed and unpacked into a scratch node_modules, type-checks from a consumer
//   with skipLibCheck off, under node16 (an ES module and a CommonJS one), bundler and node10, with
//   neither @types/node nor the DOM (it runs wherever ES2022 does), and loads with require and import.
//
// `node scripts/check-pack.mjs --built`, a package's prepublishOnly, checks that the files its
// package.json names exist and were built from the sources src/ holds now: `pnpm publish` from a
// checkout without dist/, or with a dist/ older than a change to src/, stops there. Fresh means the
// same content: each built file's source map records the sources it was made from (sourcesContent),
// and each must match its file. Modification times would not do: turbo's cache hit restores a build
// without touching dist/, so a checkout that rewrote src/ with the same content would look stale.
// Nor may dist/ hold files its entry points do not reach (by relative path, source map or
// declaration chunk): tsup's `clean` removes an earlier build's chunks, but a turbo cache hit only
// writes the cached build over dist/, so they stay, and "files": ["dist"] would publish them.
// (Publishing builds first: `pnpm release`, which runs turbo's build. prepublishOnly builds nothing
// itself, because changeset publish publishes up to 10 packages at once and their builds, each
// cleaning its dist/, would race with the declaration builds of the packages that import it.)
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(new URL('.', import.meta.url).pathname, '..');
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

/** The files a package.json names, relative to the package ('dist/index.js'). */
function entryFiles(pkg) {
  const files = new Set();
  const add = (value) => {
    if (typeof value === 'string') {
      if (!value.includes('*')) files.add(value.replace(/^\.\//, ''));
    } else if (value && typeof value === 'object') Object.values(value).forEach(add);
  };
  add(pkg.main);
  add(pkg.module);
  add(pkg.types);
  add(pkg.typings);
  add(pkg.bin);
  add(pkg.exports);
  add(pkg.typesVersions);
  return [...files];
}

/** Problems with a subpath export's types under node10: a typesVersions entry must map it. */
function node10Problems(pkg) {
  const problems = [];
  if (!pkg.exports || typeof pkg.exports !== 'object') return problems;
  const mapped = pkg.typesVersions?.['*'] ?? {};
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (subpath === '.' || !subpath.startsWith('./') || !JSON.stringify(target).includes('"types"')) continue;
    if (!mapped[subpath.slice(2)])
      problems.push(`exports "${subpath}" has types but typesVersions["*"] has no "${subpath.slice(2)}"`);
  }
  return problems;
}

/**
 * The files of the package in `dir` that `files` (its entry points) reach: those files, the ones they
 * name by relative path (chunks, a worker started from its file, a declaration chunk named by its
 * JavaScript path), and the source maps they point at, transitively.
 */
function reachedFiles(dir, files) {
  const reached = new Set();
  const queue = files.map((f) => resolve(dir, f));
  while (queue.length) {
    const file = queue.pop();
    if (reached.has(file) || !existsSync(file) || !statSync(file).isFile()) continue;
    reached.add(file);
    const declaration = /\.d\.[cm]?ts$/.test(file);
    if (!declaration && !/\.[cm]?js$/.test(file)) continue;
    const text = readFileSync(file, 'utf8');
    for (const [, spec] of text.matchAll(/["'`](\.\.?\/[^"'`\s]+)["'`]/g)) {
      const target = resolve(dirname(file), spec);
      queue.push(target);
      // a declaration file names another by its JavaScript path: './chunk.js' is chunk.d.ts
      if (declaration) queue.push(target.replace(/\.([cm]?)js$/, '.d.$1ts'));
    }
    const map = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text);
    if (map && !map[1].startsWith('data:')) queue.push(resolve(dirname(file), map[1]));
  }
  return reached;
}

/**
 * The JavaScript files among `reached` (see `reachedFiles`). A file an earlier build left in dist/
 * that nothing reaches is not published code that runs, whatever it was made from (`strayFiles`
 * refuses it).
 */
const reachedScripts = (reached) => [...reached].filter((f) => /\.[cm]?js$/.test(f));

/**
 * The files (paths relative to `dir`, among `candidates`) in the folders of the entry points (dist/)
 * that no entry point reaches (`reached`, their `reachedFiles`): an earlier build's, which tsup's
 * `clean` removes but a turbo cache restore of the current build leaves (it writes the build's files
 * over dist/, deleting none).
 */
function strayFiles(dir, entries, candidates, reached) {
  const folders = new Set(entryFolders(entries));
  return candidates.filter((f) => folders.has(f.split('/')[0]) && !reached.has(resolve(dir, f))).sort();
}

/** The top folders of the entry points ('dist'). */
const entryFolders = (entries) => [
  ...new Set(entries.filter((f) => f.includes('/')).map((f) => f.split('/')[0])),
];

/** A few names of a list, and how many more. */
const some = (names) =>
  names.slice(0, 3).join(', ') + (names.length > 3 ? ` and ${names.length - 3} more` : '');

/** What a package whose dist/ holds `stray` files is told. */
const strayMessage = (name, stray) =>
  `${name}: ${some(stray)} ${stray.length === 1 ? 'is' : 'are'} reached from no entry point of package.json (an earlier build's, which a turbo cache restore leaves in dist/) and would be published: remove dist/ and build before publishing (rm -rf dist, then pnpm release builds and publishes)`;

/** Every file under `dir`/`folder`, relative to `dir` with '/' separators. */
function filesUnder(dir, folder) {
  if (!existsSync(join(dir, folder))) return [];
  return readdirSync(join(dir, folder), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) =>
      relative(dir, join(e.parentPath ?? e.path, e.name))
        .split(sep)
        .join('/'),
    );
}

/**
 * The sources (paths relative to `dir`) that changed since the build of `scripts`: each one's source
 * map records the content of every file it was built from; a file of the package whose content now
 * differs, or that is gone, is stale. Maps without the recorded content cannot tell, and are skipped.
 */
function staleSources(dir, scripts) {
  const stale = new Set();
  for (const script of scripts) {
    const mapFile = `${script}.map`;
    if (!existsSync(mapFile)) continue;
    const map = readJson(mapFile);
    map.sources.forEach((source, i) => {
      const recorded = map.sourcesContent?.[i];
      const file = resolve(dirname(mapFile), map.sourceRoot ?? '', source);
      const rel = relative(dir, file);
      // the package's own files only (not tsup's shims from node_modules)
      if (typeof recorded !== 'string' || rel.startsWith('..') || rel.split(sep).includes('node_modules'))
        return;
      if (!existsSync(file) || readFileSync(file, 'utf8') !== recorded) stale.add(rel);
    });
  }
  return [...stale].sort();
}

if (process.argv.includes('--built')) {
  const pkg = readJson('package.json');
  const entries = entryFiles(pkg);
  const missing = entries.filter((f) => !existsSync(f));
  if (missing.length) {
    console.error(
      `${pkg.name}: ${missing.join(', ')} missing: build before publishing (pnpm release builds and publishes)`,
    );
    process.exit(1);
  }
  const present = entryFolders(entries).flatMap((folder) => filesUnder(process.cwd(), folder));
  const reached = reachedFiles(process.cwd(), entries);
  const stray = strayFiles(process.cwd(), entries, present, reached);
  if (stray.length) {
    console.error(strayMessage(pkg.name, stray));
    process.exit(1);
  }
  const stale = staleSources(process.cwd(), reachedScripts(reached));
  if (stale.length) {
    console.error(
      `${pkg.name}: dist/ was built from other sources than those here (${some(stale)} changed since the build): build before publishing (pnpm release builds and publishes)`,
    );
    process.exit(1);
  }
  process.exit(0);
}

const packageDirs = ['packages', 'apps'].flatMap((top) =>
  readdirSync(join(root, top))
    .map((d) => join(root, top, d))
    .filter((d) => existsSync(join(d, 'package.json')) && !readJson(join(d, 'package.json')).private),
);

let failed = false;
const fail = (message) => {
  failed = true;
  console.error(message);
};

// 1. tarball contents (pnpm -r packs private packages too: they are skipped)
const { stdout: packs } = await run('pnpm', ['-r', 'pack', '--dry-run', '--json'], { cwd: root });
const packedFiles = new Map(JSON.parse(packs).map((p) => [p.name, new Set(p.files.map((f) => f.path))]));
for (const dir of packageDirs) {
  const pkg = readJson(join(dir, 'package.json'));
  const packed = packedFiles.get(pkg.name) ?? new Set();
  const entries = entryFiles(pkg);
  for (const file of [...entries, 'LICENSE'])
    if (!packed.has(file)) fail(`${pkg.name}: ${file} is not in the tarball (is it built, and in "files"?)`);
  for (const problem of node10Problems(pkg)) fail(`${pkg.name}: ${problem}`);
  // npm publishes a scoped package as restricted unless told otherwise: `pnpm publish` from the
  // package's directory (not through changesets, whose config says public) would fail with a 402
  if (pkg.publishConfig?.access !== 'public')
    fail(
      `${pkg.name}: package.json needs "publishConfig": { "access": "public" } (a scoped package is published restricted by default)`,
    );
  const stray = strayFiles(dir, entries, [...packed], reachedFiles(dir, entries));
  if (stray.length) fail(strayMessage(pkg.name, stray));
}

// 2. @implicit-it/rules from its tarball
const work = mkdtempSync(join(tmpdir(), 'implicit-it-consumer-'));
try {
  const rulesDir = join(root, 'packages', 'rules');
  const { stdout } = await run('pnpm', ['pack', '--json', '--pack-destination', work], { cwd: rulesDir });
  const installed = join(work, 'node_modules', '@implicit-it', 'rules');
  mkdirSync(installed, { recursive: true });
  await run('tar', ['-xzf', JSON.parse(stdout).filename, '-C', installed, '--strip-components=1']);

  const consumer = `import {
  argmax,
  compileRules,
  createVocabulary,
  ImplicitItError,
  parseRuleSetConfig,
  PRESETS,
  RuleConfigError,
  type RuleSetConfig,
  type Vocabulary,
} from '@implicit-it/rules';

const vocab: Vocabulary = createVocabulary({ surfaces: ['</s>', ' I', 'I', '\\n', ' Sure'], eosIds: [0] });
const rules = compileRules('hewitt2024', vocab);
const state = rules.createState({ promptIds: [3, 1, 3], scopeStart: 1 });
const logits = new Float32Array([0.1, 2.0, 0.3, 0.5, 1.9]);
rules.apply(logits, state);
const next: number = argmax(logits);
state.append(next);
const config: RuleSetConfig = parseRuleSetConfig({ eos: true });
const error: ImplicitItError = new RuleConfigError('eos.maxBonus', 'too big');
export const used = [next, config, Object.keys(PRESETS), error.code];
`;
  const modes = {
    esm: { file: 'consumer.mts', options: { module: 'node16', moduleResolution: 'node16' } },
    cjs: { file: 'consumer.cts', options: { module: 'node16', moduleResolution: 'node16' } },
    bundler: { file: 'consumer.ts', options: { module: 'preserve', moduleResolution: 'bundler' } },
    node10: { file: 'consumer.ts', options: { module: 'commonjs', moduleResolution: 'node10' } },
  };
  // TypeScript's API: one process for the four programs, as `tsc -p` would check each
  const ts = createRequire(join(root, 'package.json'))('typescript');
  for (const [name, { file, options }] of Object.entries(modes)) {
    writeFileSync(join(work, file), consumer);
    const compilerOptions = {
      ...options,
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      target: 'ES2022',
      lib: ['ES2022'],
      types: [],
    };
    const parsed = ts.convertCompilerOptionsFromJson(compilerOptions, work);
    const program = ts.createProgram({ rootNames: [join(work, file)], options: parsed.options });
    const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program)];
    if (diagnostics.length) {
      const host = {
        getCanonicalFileName: (f) => f,
        getCurrentDirectory: () => work,
        getNewLine: () => '\n',
      };
      fail(
        `@implicit-it/rules: a ${name} consumer does not type-check:\n${ts.formatDiagnostics(diagnostics, host)}`,
      );
    }
  }

  const loads = {
    require: ['-e', "if (typeof require('@implicit-it/rules').compileRules !== 'function') process.exit(1)"],
    import: [
      '--input-type=module',
      '-e',
      "if (typeof (await import('@implicit-it/rules')).compileRules !== 'function') process.exit(1)",
    ],
  };
  for (const [how, args] of Object.entries(loads)) {
    try {
      await run(process.execPath, args, { cwd: work });
    } catch (e) {
      fail(`@implicit-it/rules: ${how} from a consumer fails:\n${e.stderr}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (failed) process.exit(1);
console.log(
  `pack: ${packageDirs.length} packages hold what they name; @implicit-it/rules type-checks and loads`,
);
