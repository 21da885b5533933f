import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * Checks of a package's JSDoc (style.md: every export has a description and an `@example`, and the
 * examples are code a consumer could paste): which exports lack either, and the type errors of every
 * `@example` in `src/`, compiled against the package's own source as `import ... from '<name>'`.
 */
export interface JsdocPackage {
  /** The package's directory (its src/index.ts is the entry point). */
  pkgDir: string;
  /** The name examples import it by, e.g. '@implicit-it/tokenizers'. */
  name: string;
  /**
   * Declarations of the names the examples use without defining them (a consumer's own model,
   * tokenizer, rows), e.g. `declare const model: Model;`. Every export of the package is in scope.
   */
  prelude?: string;
}

/** One `@example` block: where its tag is (src/file.ts:line) and its code. */
export interface JsdocExample {
  where: string;
  code: string;
}

const baseOptions: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2022.d.ts'],
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  types: ['node'], // examples may log, read files, use AbortController
};

function optionsFor(pkg: JsdocPackage): ts.CompilerOptions {
  return {
    ...baseOptions,
    baseUrl: pkg.pkgDir,
    typeRoots: [join(pkg.pkgDir, 'node_modules', '@types')],
    paths: { [pkg.name]: ['src/index.ts'] },
  };
}

/** The `.ts` files of `<pkgDir>/src`, subdirectories included. */
export function sourceFiles(pkgDir: string): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
    );
  return walk(join(pkgDir, 'src'));
}

/** The `@example` blocks of a source file: each tag's lines up to the next tag or the comment's end. */
export function examplesOf(file: string, pkgDir: string): JsdocExample[] {
  const text = readFileSync(file, 'utf8');
  const out: JsdocExample[] = [];
  for (const m of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const lines = m[0]
      .slice(3, -2)
      .split('\n')
      .map((l) => l.replace(/^\s*\* ?/, ''));
    const startLine = text.slice(0, m.index).split('\n').length;
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i]!.startsWith('@example')) continue;
      let j = i + 1;
      while (j < lines.length && !/^@\w/.test(lines[j]!)) j++;
      // a fenced example (```ts ... ```) is read without its fences
      const code = lines
        .slice(i + 1, j)
        .filter((l) => !/^```/.test(l.trim()))
        .join('\n');
      out.push({ where: `${relative(pkgDir, file)}:${startLine + i}`, code });
    }
  }
  return out;
}

const entries = new Map<string, { checker: ts.TypeChecker; exports: ts.Symbol[] }>();

/**
 * The names src/index.ts exports, values and types, as a checker sees them: one program per package
 * (`missingJsdoc` and `exampleTypeErrors` both need them; building it is most of a check's time).
 */
function entryExports(pkg: JsdocPackage): { checker: ts.TypeChecker; exports: ts.Symbol[] } {
  const entry = join(pkg.pkgDir, 'src', 'index.ts');
  const key = `${entry}\n${pkg.name}`;
  const known = entries.get(key);
  if (known) return known;
  if (!existsSync(entry)) throw new Error(`${entry} does not exist`);
  const program = ts.createProgram([entry], optionsFor(pkg));
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!);
  if (!module) throw new Error(`${entry} is not a module`);
  const found = { checker, exports: checker.getExportsOfModule(module) };
  entries.set(key, found);
  return found;
}

/**
 * The exports of the package without a description or without an `@example`
 * (`'name: no description'`, `'name: no @example'`), and how many exports there are.
 *
 * @example
 * const { exports, missing } = missingJsdoc({ pkgDir, name: '@implicit-it/eval' });
 * expect(missing).toEqual([]);
 */
export function missingJsdoc(pkg: JsdocPackage): { exports: number; missing: string[] } {
  const { checker, exports } = entryExports(pkg);
  const missing: string[] = [];
  for (const exported of exports) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const description = ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();
    if (description === '') missing.push(`${exported.name}: no description`);
    if (!symbol.getJsDocTags(checker).some((tag) => tag.name === 'example'))
      missing.push(`${exported.name}: no @example`);
  }
  return { exports: exports.length, missing };
}

/**
 * Type-checks every `@example` in the package's src/ as a consumer's file: the example's own imports
 * stay at the top, every other export of the package is imported, the prelude declares the free
 * names, and the body is a block (so that it may define a prelude name itself). An example may use
 * `await` at its top level. Returns the examples' count and one line per error, naming the
 * example's file:line and the line within it.
 *
 * @example
 * const { examples, errors } = exampleTypeErrors({ pkgDir, name: '@implicit-it/eval', prelude });
 * expect(errors).toEqual([]);
 */
export function exampleTypeErrors(pkg: JsdocPackage): { examples: number; errors: string[] } {
  const { exports } = entryExports(pkg);
  const names = exports.map((s) => s.name);
  const examples = sourceFiles(pkg.pkgDir).flatMap((f) => examplesOf(f, pkg.pkgDir));
  const files = new Map<string, { example: JsdocExample; text: string; offset: number }>();
  examples.forEach((example, i) => {
    const lines = example.code.split('\n');
    const imports = lines.filter((l) => l.startsWith('import '));
    const body = lines.filter((l) => !l.startsWith('import '));
    const imported = new Set(
      imports.flatMap((l) =>
        (/\{([^}]*)\}/.exec(l)?.[1] ?? '').split(',').map((s) => s.replace(/^type\s+/, '').trim()),
      ),
    );
    const own = names.filter((n) => !imported.has(n));
    // the body is an async block: it may await, and define a prelude name itself
    const head = `${imports.join('\n')}\nimport { ${own.join(', ')} } from '${pkg.name}';\n${pkg.prelude ?? ''}\nvoid (async () => {\n`;
    files.set(join(pkg.pkgDir, 'test', `__example_${i}.ts`), {
      example,
      text: `${head}${body.join('\n')}\n})();\n`,
      offset: head.length,
    });
  });
  const options = { ...optionsFor(pkg), noUnusedLocals: false };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => {
    const virtual = files.get(name);
    return virtual ? ts.createSourceFile(name, virtual.text, lang) : getSourceFile(name, lang, ...rest);
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => files.has(name) || fileExists(name);
  const program = ts.createProgram([...files.keys()], options, host);
  const errors = ts.getPreEmitDiagnostics(program).map((d) => {
    const virtual = d.file && files.get(d.file.fileName);
    const where = virtual ? virtual.example.where : (d.file?.fileName ?? '');
    const line =
      virtual && d.start !== undefined ? virtual.text.slice(virtual.offset, d.start).split('\n').length : 0;
    return `${where} (example line ${line}): ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
  return { examples: examples.length, errors };
}

/**
 * A package's JSDoc tests, in `describe('JSDoc of the public API')`: every export has a description
 * and an `@example`, and there are exactly `exports` of them (a new export gets both too); every
 * `@example` in src/ type-checks (at least `minExamples` of them, default `exports`). `more` adds a
 * package's own tests to the block.
 *
 * @example
 * describeJsdoc({ pkgDir: resolve(import.meta.dirname, '..'), name: '@implicit-it/eval', exports: 119, prelude });
 */
export function describeJsdoc(
  pkg: JsdocPackage & { exports: number; minExamples?: number; timeout?: number },
  more?: () => void,
): void {
  describe('JSDoc of the public API', () => {
    it('every export has a description and an @example', () => {
      const { exports, missing } = missingJsdoc(pkg);
      expect(exports).toBe(pkg.exports);
      expect(missing).toEqual([]);
    });

    it(
      'every @example in src/ type-checks against the package',
      () => {
        const { examples, errors } = exampleTypeErrors(pkg);
        expect(examples).toBeGreaterThanOrEqual(pkg.minExamples ?? pkg.exports);
        expect(errors).toEqual([]);
      },
      pkg.timeout ?? 60_000,
    );

    more?.();
  });
}
