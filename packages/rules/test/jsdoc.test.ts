import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { compileRules, createVocabulary, HEWITT2024_UNIFORM } from '../src/index.js';
import { S, TIRAMISU } from './fixtures.js';

// Every export of the package carries a description and an @example (style.md), every @example in
// src/ type-checks against the package's own API, as a consumer would write it, and the values the
// examples state in comments are the values they give.
const pkgDir = resolve(import.meta.dirname, '..');
const srcDir = join(pkgDir, 'src');
const entry = join(srcDir, 'index.ts');

const options: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2022.d.ts'],
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  types: ['node'], // examples may log with console
  baseUrl: pkgDir,
  paths: { '@implicit-it/rules': ['src/index.ts'] },
};

interface Example {
  where: string; // file:line of the @example tag
  code: string;
}

/** The @example blocks of a source file: the tag's lines up to the next tag or the comment's end. */
function examplesOf(file: string): Example[] {
  const text = readFileSync(file, 'utf8');
  const out: Example[] = [];
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
      out.push({
        where: `src/${file.slice(srcDir.length + 1)}:${startLine + i}`,
        code: lines.slice(i + 1, j).join('\n'),
      });
    }
  }
  return out;
}

const sources = readdirSync(srcDir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => join(srcDir, f));

describe('JSDoc of the public API', () => {
  it('every export has a description and an @example', () => {
    const program = ts.createProgram([entry], options);
    const checker = program.getTypeChecker();
    const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
    const exports = checker.getExportsOfModule(module);
    expect(exports.length).toBe(41); // a new export gets a description and an @example too
    const missing: string[] = [];
    for (const exported of exports) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const description = ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();
      if (description === '') missing.push(`${exported.name}: no description`);
      if (!symbol.getJsDocTags(checker).some((tag) => tag.name === 'example'))
        missing.push(`${exported.name}: no @example`);
    }
    expect(missing).toEqual([]);
  });

  it('every @example in src/ type-checks against the package', () => {
    const examples = sources.flatMap(examplesOf);
    expect(examples.length).toBeGreaterThanOrEqual(41);
    // what the examples name without defining: a consumer's own vocabulary, rule set, state, rows
    const prelude = `declare const vocab: Vocabulary;
declare const rules: RuleSet;
declare const state: RuleState;
declare const promptIds: number[];
declare const scopeStart: number;
declare const logits: Float32Array;
declare const logitsRow: Float32Array;
declare const baseLogits: Float32Array;
declare const digitIds: number[];
`;
    const files = new Map<string, { example: Example; text: string; offset: number }>();
    examples.forEach((example, i) => {
      // the example's own imports stay at the top, every other export is imported, and its body is
      // a block, so that it may define `vocab` or `rules` itself
      const lines = example.code.split('\n');
      const imports = lines.filter((l) => l.startsWith('import '));
      const body = lines.filter((l) => !l.startsWith('import '));
      const imported = new Set(
        imports.flatMap((l) => (/\{([^}]*)\}/.exec(l)?.[1] ?? '').split(',').map((s) => s.trim())),
      );
      const names = exportNames().filter((n) => !imported.has(n));
      const head = `${imports.join('\n')}\nimport { ${names.join(', ')} } from '@implicit-it/rules';\n${prelude}{\n`;
      files.set(join(pkgDir, 'test', `__example_${i}.ts`), {
        example,
        text: `${head}${body.join('\n')}\n}\n`,
        offset: head.length,
      });
    });
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) => {
      const virtual = files.get(name);
      return virtual ? ts.createSourceFile(name, virtual.text, lang) : getSourceFile(name, lang, ...rest);
    };
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => files.has(name) || fileExists(name);
    const program = ts.createProgram([...files.keys()], { ...options, noUnusedLocals: false }, host);
    const errors = ts.getPreEmitDiagnostics(program).map((d) => {
      const virtual = d.file && files.get(d.file.fileName);
      const where = virtual ? virtual.example.where : (d.file?.fileName ?? '');
      const line = virtual ? virtual.text.slice(virtual.offset, d.start).split('\n').length : 0;
      return `${where} (example line ${line}): ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(errors).toEqual([]);
  }, 60_000);

  it('every value an @example states (`expr; // value`, `// throws Error`) is what it gives', async () => {
    const pkg: Record<string, unknown> = await import('../src/index.js');
    // the names the examples leave to the reader, as values: Llama-2 ids (rules-spec.md's prompt)
    const surfaces: string[] = Array.from({ length: 32000 }, (_, id) => `w${id}`);
    for (const { text, llama2Id } of HEWITT2024_UNIFORM) surfaces[llama2Id] = text;
    const vocab = createVocabulary({ surfaces, eosIds: [2] });
    const rules = compileRules('hewitt2024', vocab);
    const row = () => new Float32Array(32000);
    const free = {
      vocab,
      rules,
      state: rules.createState({ promptIds: TIRAMISU, scopeStart: S }),
      promptIds: TIRAMISU,
      scopeStart: S,
      logits: row(),
      logitsRow: row(),
      baseLogits: row(),
      digitIds: [29896, 29906],
    };
    // a stated value: a number, a quoted string, true/false, an array or object literal, or a
    // Float64Array printed as node prints one; what follows it (': ...', ' (...)') is prose
    const pattern =
      /^(Float64Array )?(-?\d+(?:\.\d+)?|'(?:[^'\\]|\\.)*'|true|false|\[.*?\]|\{.*\})(?=$|[\s:,(])/;
    // only a value that stands alone (not `[log 0.25, log 0.75]`, `{ entries: [...] }`)
    const value = {
      exec(comment: string) {
        const m = pattern.exec(comment);
        try {
          if (m) new Function(`return (${m[2]});`)();
          return m;
        } catch {
          return null;
        }
      },
    };
    const failures: string[] = [];
    let checked = 0;
    for (const example of sources.flatMap(examplesOf)) {
      let claims = 0;
      const lines = example.code
        .split('\n')
        .filter((l) => !l.startsWith('import '))
        .map((line) => {
          const m = /^(\s*)(.*?);\s+\/\/ (.*)$/.exec(line);
          if (!m || /^(const|let|for|if|return|throw)\b/.test(m[2]!)) {
            // `if (...) console.log(x); // value` states what x is
            const logged = m && /^(if \(.*\) )console\.(?:log|warn|error)\((.*)\)$/.exec(m[2]!);
            const v = logged && value.exec(m[3]!);
            if (!logged || !v) return line;
            claims++;
            return `${m[1]}${logged[1]}__claim(${logged[2]}, ${v[2]}, ${JSON.stringify(line.trim())}, ${!!v[1]});`;
          }
          const thrown = /^throws (\w+)/.exec(m[3]!);
          if (thrown) {
            claims++;
            return `${m[1]}__throws(() => (${m[2]}), '${thrown[1]}', ${JSON.stringify(line.trim())});`;
          }
          const v = value.exec(m[3]!);
          if (!v) return line;
          claims++;
          return `${m[1]}__claim(${m[2]}, ${v[2]}, ${JSON.stringify(line.trim())}, ${!!v[1]});`;
        });
      if (claims === 0) continue;
      let reached = 0;
      const claim = (got: unknown, want: unknown, line: string, typed: boolean) => {
        reached++;
        const shown = typed && got instanceof Float64Array ? Array.from(got) : got;
        try {
          expect(shown).toEqual(want);
        } catch {
          failures.push(`${example.where}: ${line}: gives ${JSON.stringify(shown)}`);
        }
      };
      const throws = (run: () => unknown, name: string, line: string) => {
        reached++;
        try {
          run();
          failures.push(`${example.where}: ${line}: does not throw`);
        } catch (error) {
          if ((error as Error).name !== name)
            failures.push(`${example.where}: ${line}: throws ${(error as Error).name}`);
        }
      };
      const js = ts.transpileModule(`{\n${lines.join('\n')}\n}`, {
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
      }).outputText;
      const scope = { ...pkg, ...free, __claim: claim, __throws: throws };
      new Function(...Object.keys(scope), js)(...Object.values(scope));
      if (reached !== claims)
        failures.push(`${example.where}: ${claims - reached} stated values not reached`);
      checked += claims;
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(25);
  });
});

let names: string[] | undefined;
/** The names src/index.ts exports, values and types. */
function exportNames(): string[] {
  if (names) return names;
  const program = ts.createProgram([entry], options);
  const checker = program.getTypeChecker();
  names = checker
    .getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(entry)!)!)
    .map((s) => s.name);
  return names;
}
