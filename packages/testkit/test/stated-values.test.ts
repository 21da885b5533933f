import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  exampleTypeErrors,
  type StatedValuesOptions,
  statedValueFailures,
  withClaims,
} from '../src/jsdoc.js';

describe('withClaims', () => {
  it('turns `expr; // value` into a check and leaves declarations and prose alone', () => {
    const { code, claims } = withClaims(
      [
        'double(2); // 4: twice',
        'const x = double(2); // 4',
        'double(2); // about four',
        'if (x) console.log(double(x)); // 8',
        'parse("x"); // throws SyntaxError',
      ].join('\n'),
    );
    expect(claims).toBe(3);
    expect(code.split('\n')).toEqual([
      '__claim(double(2), 4, "double(2); // 4: twice", undefined);',
      'const x = double(2); // 4',
      'double(2); // about four',
      'if (x) __claim(double(x), 8, "if (x) console.log(double(x)); // 8", undefined);',
      'await __throws(async () => (parse("x")), \'SyntaxError\', "parse(\\"x\\"); // throws SyntaxError");',
    ]);
  });

  it('reads console.log of one value, typed arrays as node prints them, nested literals, NaN and hex', () => {
    const read = (line: string) => withClaims(line).code;
    expect(read('console.log(f(1)); // 2')).toBe('__claim(f(1), 2, "console.log(f(1)); // 2", undefined);');
    // two values logged: prose
    expect(withClaims('console.log(a, b); // 1 2').claims).toBe(0);
    expect(read('bytes(); // Uint8Array(2) [ 0xf0, 0x9f ]: two bytes')).toBe(
      '__claim(bytes(), [ 0xf0, 0x9f ], "bytes(); // Uint8Array(2) [ 0xf0, 0x9f ]: two bytes", \'Uint8Array\');',
    );
    expect(read('top(); // [[1, 2], [2, 0.5]] (id, logit)')).toBe(
      '__claim(top(), [[1, 2], [2, 0.5]], "top(); // [[1, 2], [2, 0.5]] (id, logit)", undefined);',
    );
    expect(withClaims('f(); // NaN').claims).toBe(1);
    expect(withClaims('f(); // 0x1f').claims).toBe(1);
    expect(withClaims('f(); // True story').claims).toBe(0);
  });

  it('reads a value alone on the line after its expression, and not prose there', () => {
    expect(withClaims("f(1);\n// ['a', 'b']").code).toBe(
      "__claim(f(1), ['a', 'b'], \"f(1); // ['a', 'b']\", undefined);\n",
    );
    expect(withClaims('f(1);\n// 3 rows, then...').claims).toBe(0);
    expect(withClaims('const x = f(1);\n// 3').claims).toBe(0);
    expect(withClaims('f(1);\n// { a: 1, ... }').claims).toBe(0);
  });

  it('reads a value only where it stands alone', () => {
    expect(withClaims('f(); // [log 0.25, log 0.75]').claims).toBe(0);
    expect(withClaims("f(); // 'a' with Llama-2").claims).toBe(1);
    expect(withClaims('f(); // Float64Array [ 0.5, 0.25 ]').claims).toBe(1);
    expect(withClaims('f(); // null').claims).toBe(1);
  });
});

describe('statedValueFailures', () => {
  const root = mkdtempSync(join(tmpdir(), 'testkit-stated-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const module = {
    double: (n: number) => 2 * n,
    later: async (n: number) => n + 1,
    fail: () => {
      throw new RangeError('no');
    },
  };
  /** The runner over a package 'pkg' (exports `module`) whose src/index.ts is `source`. */
  const run = (source: string, options: Partial<StatedValuesOptions> = {}) => {
    const dir = mkdtempSync(join(root, 'pkg-'));
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src', 'index.ts'), source);
    return statedValueFailures({ pkgDir: dir, name: 'pkg', module, ...options });
  };

  it('checks values, awaited values and throws, and says where one differs', async () => {
    const { checked, failures } = await run(
      `/**
 * @example
 * double(2); // 4
 * new Uint8Array([1, double(1)]); // Uint8Array(2) [ 1, 2 ]
 * console.log(double(0.5)); // 1
 * await later(1); // 2
 * fail(); // throws RangeError
 * double(base); // 7
 */
export const a = 1;
/**
 * @example
 * double(1); // 3: wrong
 * double(1); // throws TypeError
 */
export const b = 1;
`,
      {
        free: () => ({ base: 3.5 }),
      },
    );
    expect(checked).toBe(8);
    expect(failures).toEqual([
      'src/index.ts:12: double(1); // 3: wrong: gives 2',
      'src/index.ts:12: double(1); // throws TypeError: does not throw',
    ]);
  });

  it('gives imports of the package its module and others the importer, and ends at a throw', async () => {
    const { checked, failures } = await run(
      `/**
 * @example
 * import { double as twice } from 'pkg';
 * import { join, resolve } from 'node:path';
 * twice(join('a', 'b').length); // 6
 */
export const a = 1;
/**
 * @example
 * double(1); // 2
 * missing(); // 1
 * double(2); // 4
 */
export const b = 1;
`,
      {
        importer: (s) => import(s),
      },
    );
    expect(checked).toBe(2);
    expect(failures).toEqual(['src/index.ts:9: threw ReferenceError: missing is not defined']);
  });

  it('rewrites a consumer path before running, and reports a rewrite that occurs nowhere', async () => {
    const result = await run(
      `/**
 * @example
 * double(read('./my/file')); // 4
 */
export const a = 1;
`,
      {
        free: () => ({ read: (path: string) => (path === '/fixtures/two' ? 2 : 0) }),
        rewrite: { "'./my/file'": "'/fixtures/two'", "'./other'": "'/x'" },
      },
    );
    expect(result).toEqual({
      checked: 1,
      skipped: 0,
      failures: ['rewrite "\'./other\'" occurs in no example'],
    });
  });

  it('skips what is named, and reports a skip that matches nothing', async () => {
    const result = await run(
      `/**
 * @example
 * await fetchSomething(); // 1
 */
export const a = 1;
`,
      {
        skip: [
          { match: 'fetchSomething(', why: 'needs a network' },
          { match: 'gone(', why: 'an example since removed' },
        ],
      },
    );
    expect(result).toEqual({
      checked: 0,
      skipped: 1,
      failures: ['skip "gone(" matches no example that states a value'],
    });
  });
});

describe('exampleTypeErrors of a package without src/index.ts (`modules`)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'testkit-modules-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'src'));
  // @types/node, which the examples are compiled with, from this package
  symlinkSync(resolve(import.meta.dirname, '..', 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(
    join(dir, 'src', 'flags.ts'),
    `/**
 * @example
 * twice(2).toFixed(1);
 */
export const twice = (n: number): number => 2 * n;
`,
  );
  writeFileSync(
    join(dir, 'src', 'words.ts'),
    `/**
 * @example
 * shout(twice(1));
 */
export const shout = (s: string): string => s.toUpperCase();
`,
  );
  writeFileSync(join(dir, 'src', 'cli.ts'), 'process.exit(1);\n');

  it("compiles each example with the named modules' exports in scope, and names its errors", () => {
    const { examples, errors } = exampleTypeErrors({
      pkgDir: dir,
      name: 'bin',
      modules: ['flags.ts', 'words.ts'],
    });
    expect(examples).toBe(2);
    expect(errors).toEqual([
      "src/words.ts:2 (example line 1): Argument of type 'number' is not assignable to parameter of type 'string'.",
    ]);
  }, 60_000); // (a TypeScript program: seconds, more on a loaded machine)

  it('says when a named module does not exist, and when neither modules nor src/index.ts is there', () => {
    expect(() => exampleTypeErrors({ pkgDir: dir, name: 'bin', modules: ['gone.ts'] })).toThrow(
      `${join(dir, 'src', 'gone.ts')} does not exist`,
    );
    expect(() => exampleTypeErrors({ pkgDir: dir, name: 'bin' })).toThrow(
      `${join(dir, 'src', 'index.ts')} does not exist (a package without one names its modules: \`modules\`)`,
    );
  });
});
