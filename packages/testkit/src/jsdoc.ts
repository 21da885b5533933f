import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { missingShared, REQUIRE_SHARED } from './index.js';

/**
 * Checks of a package's JSDoc (style.md: every export has a description and an `@example`, and the
 * examples are code a consumer could paste): which exports lack either, and the type errors of every
 * `@example` in `src/`, compiled against the package's own source as `import ... from '<name>'`.
 */
export interface JsdocPackage {
  /** The package's directory (its src/index.ts is the entry point, unless `modules` are given). */
  pkgDir: string;
  /** The name examples import it by, e.g. '@implicit-it/tokenizers'. */
  name: string;
  /**
   * Declarations of the names the examples use without defining them (a consumer's own model,
   * tokenizer, rows), e.g. `declare const model: Model;`. Every export of the package is in scope.
   */
  prelude?: string;
  /**
   * For a package without src/index.ts (a bin): its src/ modules (`'flags.ts'`) whose exports the
   * examples have in scope, checked as if an entry point re-exported them all.
   */
  modules?: readonly string[];
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

/** The entry point's path, relative to the package: src/index.ts, or the one made of `modules`. */
function entryOf(pkg: JsdocPackage): string {
  return pkg.modules ? 'src/__jsdoc_entry__.ts' : 'src/index.ts';
}

function optionsFor(pkg: JsdocPackage): ts.CompilerOptions {
  return {
    ...baseOptions,
    baseUrl: pkg.pkgDir,
    typeRoots: [join(pkg.pkgDir, 'node_modules', '@types')],
    paths: { [pkg.name]: [entryOf(pkg)] },
  };
}

/**
 * A compiler host that also serves `files` (virtual sources by absolute path) and, with `modules`, the
 * entry point re-exporting them.
 */
function hostFor(pkg: JsdocPackage, options: ts.CompilerOptions, files: ReadonlyMap<string, string>) {
  const virtual = new Map(files);
  if (pkg.modules) {
    for (const m of pkg.modules)
      if (!existsSync(join(pkg.pkgDir, 'src', m)))
        throw new Error(`${join(pkg.pkgDir, 'src', m)} does not exist`);
    const lines = pkg.modules.map((m) => `export * from './${m.replace(/\.ts$/, '.js')}';`);
    virtual.set(join(pkg.pkgDir, entryOf(pkg)), `${lines.join('\n')}\n`);
  }
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => {
    const text = virtual.get(name);
    return text !== undefined ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, ...rest);
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => virtual.has(name) || fileExists(name);
  return host;
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
  const entry = join(pkg.pkgDir, entryOf(pkg));
  const key = `${entry}\n${pkg.name}\n${pkg.modules?.join(',') ?? ''}`;
  const known = entries.get(key);
  if (known) return known;
  if (!pkg.modules && !existsSync(entry))
    throw new Error(`${entry} does not exist (a package without one names its modules: \`modules\`)`);
  const options = optionsFor(pkg);
  const program = ts.createProgram([entry], options, hostFor(pkg, options, new Map()));
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
  const texts = new Map([...files].map(([name, f]) => [name, f.text]));
  const host = hostFor(pkg, options, texts);
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
 * `@example` in src/ type-checks (at least `minExamples` of them, default `exports`); with `stated`,
 * the values the examples state are what they give. `more` adds a package's own tests to the block.
 *
 * @example
 * describeJsdoc({ pkgDir: resolve(import.meta.dirname, '..'), name: '@implicit-it/eval', exports: 119, prelude });
 */
export function describeJsdoc(
  pkg: JsdocPackage & {
    exports: number;
    minExamples?: number;
    timeout?: number;
    /**
     * Also run the examples that state values (`statedValueFailures`): the package's module, loaded by
     * the test file, and at least `minimum` values checked (a guard against the runner missing them).
     */
    stated?: Omit<StatedValuesOptions, 'pkgDir' | 'name' | 'module'> & {
      module: () => Promise<Record<string, unknown>>;
      minimum: number;
      /**
       * Paths under ../shared the free values need: without one the test is skipped with a message,
       * and fails when IMPLICIT_IT_REQUIRE_SHARED=1 (as `describeShared`).
       */
      shared?: readonly string[];
    };
  },
  more?: () => void,
): void {
  describe('JSDoc of the public API', () => {
    // (it builds the package's TypeScript program: seconds, more on a loaded machine)
    it(
      'every export has a description and an @example',
      () => {
        const { exports, missing } = missingJsdoc(pkg);
        expect(exports).toBe(pkg.exports);
        expect(missing).toEqual([]);
      },
      pkg.timeout ?? 60_000,
    );

    it(
      'every @example in src/ type-checks against the package',
      () => {
        const { examples, errors } = exampleTypeErrors(pkg);
        expect(examples).toBeGreaterThanOrEqual(pkg.minExamples ?? pkg.exports);
        expect(errors).toEqual([]);
      },
      pkg.timeout ?? 60_000,
    );

    const stated = pkg.stated;
    const title = 'every value an @example states (`expr; // value`, `// throws Error`) is what it gives';
    const missing = stated?.shared && missingShared(...stated.shared);
    if (stated && missing && REQUIRE_SHARED)
      it(title, () => {
        throw new Error(
          `${missing} is missing and IMPLICIT_IT_REQUIRE_SHARED=1: the shared material must be present`,
        );
      });
    else if (stated && missing) {
      console.warn(`[skip] ${title}: ${missing} is missing (set up ../shared to run it)`);
      it.skip(`${title} (skipped: ${missing} is missing)`, () => {});
    } else if (stated)
      it(
        title,
        async () => {
          const { checked, failures } = await statedValueFailures({
            ...stated,
            pkgDir: pkg.pkgDir,
            name: pkg.name,
            module: await stated.module(),
          });
          expect(failures).toEqual([]);
          expect(checked).toBeGreaterThanOrEqual(stated.minimum);
        },
        pkg.timeout ?? 60_000,
      );

    more?.();
  });
}

/**
 * Where the values stated in a package's `@example` comments are checked: the package's module (its
 * src/index.ts, imported by the test so that vitest compiles it), the free names its examples use
 * (made anew for each example, so that one example's changes do not reach the next), and the examples
 * that cannot run here, each with the reason.
 */
export interface StatedValuesOptions {
  pkgDir: string;
  /** The name the examples import the package by: such imports get `module`. */
  name: string;
  module: Record<string, unknown>;
  /** The values of the names the examples use without defining them (the prelude's names). */
  free?: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** Loads another module an example imports (`(s) => import(s)` from the test file). */
  importer?: (specifier: string) => Promise<Record<string, unknown>>;
  /**
   * Pieces of example code replaced before it runs, each where it occurs: a consumer's path
   * (`'./models/llama2'`) by the fixture that stands for it. One that occurs nowhere is a failure.
   */
  rewrite?: Readonly<Record<string, string>>;
  /** Examples not run: `match` is a piece of the example's code, `why` says why it cannot run. */
  skip?: readonly { match: string; why: string }[];
}

// the typed arrays a value may be stated as, as node prints them (`Uint8Array(2) [ 240, 159 ]`)
const TYPED_ARRAYS = [
  'Float64Array',
  'Float32Array',
  'Int32Array',
  'Uint32Array',
  'Int16Array',
  'Uint16Array',
  'Int8Array',
  'Uint8Array',
  'BigInt64Array',
] as const;
// a scalar stated value; what follows it (': ...', ' (...)', ' with Llama-2') is prose
const scalarPattern =
  /^(?:-?(?:0x[\da-fA-F]+|\d+(?:\.\d+)?(?:e-?\d+)?)n?|NaN|-?Infinity|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|true|false|null|undefined)(?=$|[\s:,(;])/;

/**
 * The value a comment states, when it begins with one that stands alone: a scalar, or an array or
 * object literal that parses (the shortest one followed by the end, a space or `:,(;`), not
 * `[log 0.25, log 0.75]`; or a typed array as node prints one (`Uint8Array(2) [ 240, 159 ]`, the
 * length optional), compared as the array of its elements. `length`: how much of the comment it is.
 */
function statedValue(
  comment: string,
): { code: string; typed: string | undefined; length: number } | undefined {
  const printed = /^(\w+)(?:\(\d+\))? (?=\[)/.exec(comment);
  const typed = TYPED_ARRAYS.find((t) => t === printed?.[1]);
  const skipped = typed ? printed![0].length : 0;
  const rest = comment.slice(skipped);
  const parses = (code: string) => {
    try {
      new Function(`return (${code});`)();
      return true;
    } catch {
      return false;
    }
  };
  const scalar = typed ? null : scalarPattern.exec(rest);
  if (scalar) return parses(scalar[0]) ? { code: scalar[0], typed, length: scalar[0].length } : undefined;
  const close = rest[0] === '[' ? ']' : rest[0] === '{' && !typed ? '}' : undefined;
  if (!close) return undefined;
  for (let end = rest.indexOf(close); end >= 0; end = rest.indexOf(close, end + 1)) {
    const code = rest.slice(0, end + 1);
    if (/^$|^[\s:,(;]/.test(rest.slice(end + 1)) && parses(code))
      return { code, typed, length: skipped + code.length };
  }
  return undefined;
}

/**
 * An example's code with each stated value turned into a check: `expr; // value` and
 * `console.log(expr); // value` (also after an `if (...)`; one argument only) compare `expr` with
 * `value`, `expr; // throws Name` expects the throw; a value alone on the line after `expr;` counts as
 * on its line. Declarations (`const x = ...; // ...`) and other comments are prose. Returns the code
 * and how many checks it holds.
 */
export function withClaims(code: string): { code: string; claims: number } {
  let claims = 0;
  // `expr;` with the next line only `// value` (a value too long for the line) is `expr; // value`
  const joined = code.split('\n');
  for (let i = 0; i + 1 < joined.length; i++) {
    const next = /^\s*\/\/ (.*?)\s*$/.exec(joined[i + 1]!)?.[1];
    if (next === undefined || !/^\s*[^\s/].*;$/.test(joined[i]!) || joined[i]!.includes('//')) continue;
    if (statedValue(next)?.length !== next.length) continue;
    joined[i] = `${joined[i]} // ${next}`;
    joined[i + 1] = '';
  }
  const lines = joined.map((line) => {
    const m = /^(\s*)(.*?);\s+\/\/ (.*)$/.exec(line);
    if (!m || m[2]!.startsWith('import ')) return line;
    const [, indent, expr, comment] = m as unknown as [string, string, string, string];
    const said = JSON.stringify(line.trim());
    const typed = (v: { typed: string | undefined }) => (v.typed ? `'${v.typed}'` : 'undefined');
    // `console.log(expr); // value` (after an `if (...)` or not) states what expr is, when it logs one value
    const logged = /^((?:if \(.*\) )?)console\.(?:log|warn|error|info)\((.*)\)$/.exec(expr);
    if (logged || /^(const|let|var|for|if|return|throw|while|export)\b/.test(expr)) {
      const v = logged && singleArgument(logged[2]!) && statedValue(comment);
      if (!logged || !v) return line;
      claims++;
      return `${indent}${logged[1]}__claim(${logged[2]}, ${v.code}, ${said}, ${typed(v)});`;
    }
    const thrown = /^throws (\w+)/.exec(comment);
    if (thrown) {
      claims++;
      return `${indent}await __throws(async () => (${expr}), '${thrown[1]}', ${said});`;
    }
    const v = statedValue(comment);
    if (!v) return line;
    claims++;
    return `${indent}__claim(${expr}, ${v.code}, ${said}, ${typed(v)});`;
  });
  return { code: lines.join('\n'), claims };
}

/** Whether `args` (a call's argument text) is one argument, as TypeScript parses it. */
function singleArgument(args: string): boolean {
  const file = ts.createSourceFile('args.ts', `f(${args});`, ts.ScriptTarget.ES2022);
  const statement = file.statements[0];
  return (
    !!statement &&
    ts.isExpressionStatement(statement) &&
    ts.isCallExpression(statement.expression) &&
    statement.expression.arguments.length === 1
  );
}

const AsyncFunction = (async () => {}).constructor as new (
  ...args: string[]
) => (...values: unknown[]) => Promise<void>;

const quiet = { log() {}, info() {}, warn() {}, error() {}, debug() {}, table() {}, dir() {} };

/**
 * Runs every `@example` of the package's src/ that states a value (see `withClaims`), with the
 * package's exports and the free names in scope and `console` silenced, and compares each stated value
 * with what the code gives (`toEqual`). Returns how many values were checked and one line per
 * failure: a value that differs (with what it gave), a throw expected and not seen, an example that
 * threw, stated values not reached, and a `skip` entry that matches no example.
 *
 * @example
 * const { checked, failures } = await statedValueFailures({ pkgDir, name: '@implicit-it/eval', module: await import('../src/index.js') });
 * expect(failures).toEqual([]);
 */
export async function statedValueFailures(
  options: StatedValuesOptions,
): Promise<{ checked: number; skipped: number; failures: string[] }> {
  const failures: string[] = [];
  const usedSkips = new Set<number>();
  let checked = 0;
  let skipped = 0;
  const load = async (specifier: string): Promise<Record<string, unknown>> => {
    if (specifier === options.name) return options.module;
    if (!options.importer) throw new Error(`an example imports ${specifier}: give an importer`);
    return options.importer(specifier);
  };
  const rewrites = Object.entries(options.rewrite ?? {});
  const usedRewrites = new Set<string>();
  for (const example of sourceFiles(options.pkgDir).flatMap((f) => examplesOf(f, options.pkgDir))) {
    let rewritten = example.code;
    for (const [from, to] of rewrites)
      if (rewritten.includes(from)) {
        usedRewrites.add(from);
        rewritten = rewritten.split(from).join(to);
      }
    const { code, claims } = withClaims(rewritten);
    if (claims === 0) continue;
    const skip = (options.skip ?? []).findIndex((s) => example.code.includes(s.match));
    if (skip >= 0) {
      usedSkips.add(skip);
      skipped += claims;
      continue;
    }
    let reached = 0;
    const claim = (got: unknown, want: unknown, line: string, typed: string | undefined) => {
      reached++;
      // a typed array stated as node prints it: the right type, compared by its elements
      const shown =
        typed && ArrayBuffer.isView(got) && got.constructor.name === typed
          ? Array.from(got as unknown as ArrayLike<unknown>)
          : got;
      try {
        expect(shown).toEqual(want);
      } catch {
        failures.push(`${example.where}: ${line}: gives ${describeValue(shown)}`);
      }
    };
    const throws = async (run: () => Promise<unknown>, name: string, line: string) => {
      reached++;
      try {
        await run();
        failures.push(`${example.where}: ${line}: does not throw`);
      } catch (error) {
        if ((error as Error).name !== name)
          failures.push(
            `${example.where}: ${line}: throws ${(error as Error).name}: ${(error as Error).message}`,
          );
      }
    };
    // imports stay at the top, the rest is a block (it may redefine a free name); the transpiler drops
    // the imports that name only types, and the others become awaited loads
    const lines = code.split('\n');
    const source = `${lines.filter((l) => l.startsWith('import ')).join('\n')}\n{\n${lines
      .filter((l) => !l.startsWith('import '))
      .join('\n')}\n}`;
    const js = ts
      .transpileModule(source, {
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
      })
      .outputText.replace(
        /^import (?:(\w+)|\* as (\w+)|\{([^}]*)\}) from (['"][^'"]+['"]);$/gm,
        (_, def: string | undefined, ns: string | undefined, named: string | undefined, from: string) =>
          def
            ? `const ${def} = (await __import(${from})).default;`
            : ns
              ? `const ${ns} = await __import(${from});`
              : `const {${named!.replace(/\s+as\s+/g, ': ')}} = await __import(${from});`,
      )
      .replace(/^export \{\};$/m, '');
    const scope = {
      ...options.module,
      ...(await options.free?.()),
      console: quiet,
      __claim: claim,
      __throws: throws,
      __import: load,
    };
    try {
      // in a block, so that an import may take the name of a package export (a parameter here)
      await new AsyncFunction(...Object.keys(scope), `{\n${js}\n}`)(...Object.values(scope));
    } catch (error) {
      failures.push(`${example.where}: threw ${(error as Error).name}: ${(error as Error).message}`);
      checked += reached;
      continue;
    }
    if (reached !== claims) failures.push(`${example.where}: ${claims - reached} stated values not reached`);
    checked += claims;
  }
  for (const [from] of rewrites)
    if (!usedRewrites.has(from)) failures.push(`rewrite "${from}" occurs in no example`);
  (options.skip ?? []).forEach((s, i) => {
    if (!usedSkips.has(i)) failures.push(`skip "${s.match}" matches no example that states a value`);
  });
  return { checked, skipped, failures };
}

function describeValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
