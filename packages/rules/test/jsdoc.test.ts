import { resolve } from 'node:path';
import { describeJsdoc, examplesOf, sourceFiles } from '@implicit-it/testkit/jsdoc';
import ts from 'typescript';
import { expect, it } from 'vitest';
import { compileRules, createVocabulary, HEWITT2024_UNIFORM } from '../src/index.js';
import { S, TIRAMISU } from './fixtures.js';

// Every export of the package carries a description and an @example (style.md), every @example in
// src/ type-checks against the package's own API, as a consumer would write it, and the values the
// examples state in comments are the values they give.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/rules' };
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

// a new export gets a description and an @example too
describeJsdoc({ ...pkg, prelude, exports: 41 }, () => {
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
    for (const example of sourceFiles(pkgDir).flatMap((f) => examplesOf(f, pkgDir))) {
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
