import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describeShared, describeWithBinary, sharedPath, TIRAMISU } from '@implicit-it/testkit';
import { build, type Metafile } from 'esbuild';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as browserApi from '../src/browser.js';
import * as nodeApi from '../src/index.js';
import { TokenizerLoadError } from '../src/index.js';

// The package in a browser: its `browser` export condition (dist/browser.js) bundles for a browser
// with no Node built-in, and in headless Chromium builds, from fetched tokenizer files, the vocabulary,
// prompts and streams that loadTokenizer gives in Node. The bundles are built from dist/ as a consumer's
// bundler builds them: by package name, from a project whose node_modules holds the package.
const pkgDir = resolve(import.meta.dirname, '..');
const CHROMIUM = process.env.IMPLICIT_IT_CHROMIUM ?? '/usr/bin/chromium';
const FIXTURES = ['smollm', 'llama2'] as const;

const app = mkdtempSync(join(tmpdir(), 'tokenizers-browser-'));
mkdirSync(join(app, 'node_modules', '@implicit-it'), { recursive: true });
symlinkSync(pkgDir, join(app, 'node_modules', '@implicit-it', 'tokenizers'), 'dir');
symlinkSync(join(pkgDir, '..', 'rules'), join(app, 'node_modules', '@implicit-it', 'rules'), 'dir');
afterAll(() => rmSync(app, { recursive: true, force: true }));

/** Bundles `code` (a module of the consumer's project) for a browser, as one ES module. */
async function bundle(code: string, options: { minify?: boolean; name?: string } = {}) {
  const entry = join(app, options.name ?? 'entry.js');
  writeFileSync(entry, code);
  const result = await build({
    entryPoints: [entry],
    absWorkingDir: app,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: options.minify ?? false,
    metafile: true,
    write: false,
    logLevel: 'silent',
  });
  return { code: result.outputFiles[0]!.text, metafile: result.metafile };
}

/** The package's files a bundle holds, relative to the package ('dist/browser.js'). */
function packageInputs(metafile: Metafile): string[] {
  return Object.keys(metafile.inputs)
    .map((input) => resolve(app, input))
    .filter((input) => input.startsWith(`${pkgDir}/`) && !input.includes('/node_modules/'))
    .map((input) => input.slice(pkgDir.length + 1))
    .sort();
}

// What a page and Node compare: everything the rules and a decoding loop read from a tokenizer, from
// the package's own API only. One module, bundled for the page and run by Node as it is.
const SUMMARY = `import { compileRules } from '@implicit-it/rules';

export function summarize(tok, instruction) {
  const ids = Array.from({ length: tok.vocabulary.size }, (_, id) => id);
  const rules = compileRules('hewitt2024', tok.vocabulary);
  const tulu = tok.buildPrompt({ format: 'tulu', instruction });
  const chat = tok.buildPrompt({ format: 'chat-template', messages: [{ role: 'user', content: instruction }] });
  const state = rules.createState({ promptIds: tulu.ids, scopeStart: tulu.scopeStart });
  const text = ' Sure! 🎉 Here it is: 三明治 </s> <|endoftext|>\\n\\n  done';
  const streamed = tok.encode(text, { addSpecialTokens: false });
  const detok = tok.createDetokenizer({ skipSpecialTokens: true });
  const deltas = streamed.map((id) => detok.push(id));
  deltas.push(detok.flush());
  return {
    size: tok.size,
    vocabularySize: tok.vocabulary.size,
    eosIds: tok.vocabulary.eosIds,
    bosId: tok.bosId,
    padId: tok.padId,
    pieceEncoding: tok.pieceEncoding,
    specialTokenTexts: tok.specialTokenTexts,
    surfaces: ids.map((id) => tok.vocabulary.surfaceOf(id) ?? null),
    pieces: ids.map((id) => tok.vocabulary.pieceOf(id) ?? null),
    unresolved: rules.unresolved.map((u) => u.text),
    firstScores: [...rules.scores(state)].sort((a, b) => a[0] - b[0]),
    tulu: { ids: tulu.ids, scopeStart: tulu.scopeStart, promptLength: tulu.promptLength, text: tulu.text },
    chat: { ids: chat.ids, scopeStart: chat.scopeStart, promptLength: chat.promptLength },
    streamed,
    deltas,
    decoded: tok.decode(streamed, { skipSpecialTokens: true }),
  };
}
`;

type Summary = Record<string, unknown> & { surfaces: (string | null)[]; pieces: (string | null)[] };

/** The summary with its two big lists as SHA-256 digests, so that a difference shows as a short diff. */
function digested(summary: Summary) {
  const sha = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');
  return { ...summary, surfaces: sha(summary.surfaces), pieces: sha(summary.pieces) };
}

describe('the browser entry point', () => {
  it('exports what the Node entry point exports, the same functions but for the two that read files', () => {
    expect(Object.keys(browserApi).sort()).toEqual(Object.keys(nodeApi).sort());
    const inBrowser = new Map<string, unknown>(Object.entries(browserApi));
    const differ = Object.entries(nodeApi)
      .filter(([name, value]) => inBrowser.get(name) !== value)
      .map(([name]) => name);
    expect(differ.sort()).toEqual(['loadTokenizer', 'readTokenizerFiles']);
    // one declaration file serves both (package.json's browser condition names dist/index.d.ts)
    const asNode: typeof nodeApi = browserApi;
    const asBrowser: typeof browserApi = nodeApi;
    expect(asNode.createTokenizer).toBe(asBrowser.createTokenizer);
  });

  it.each([
    ['loadTokenizer', () => browserApi.loadTokenizer('/models/SmolLM2-135M')],
    ['readTokenizerFiles', () => browserApi.readTokenizerFiles('/models/SmolLM2-135M')],
  ])(
    '%s rejects with tokenizers.unsupported, saying to fetch the files and call createTokenizer',
    async (fn, call) => {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TokenizerLoadError);
      expect((error as TokenizerLoadError).code).toBe('tokenizers.unsupported');
      expect((error as TokenizerLoadError).file).toBe('/models/SmolLM2-135M');
      expect((error as Error).message).toBe(
        `/models/SmolLM2-135M: ${fn} reads a directory from disk, which the browser build of ` +
          '@implicit-it/tokenizers cannot; fetch tokenizer.json (and tokenizer_config.json, ' +
          'special_tokens_map.json, generation_config.json, chat_template.jinja where the model has them) ' +
          'and pass them to createTokenizer({ source, tokenizerJson, ... })',
      );
    },
  );

  it('bundles for a browser by package name, from dist/browser.js, with no Node built-in', async () => {
    const { code, metafile } = await bundle("export * from '@implicit-it/tokenizers';\n", { minify: true });
    const inputs = Object.keys(metafile.inputs);
    const builtins = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
    expect(inputs.filter((input) => builtins.has(input) || input.startsWith('node:'))).toEqual([]);
    // nothing left for the page to import: everything is in the bundle
    expect(Object.values(metafile.outputs).flatMap((output) => output.imports)).toEqual([]);
    const own = packageInputs(metafile);
    expect(own).toContain('dist/browser.js');
    expect(own.filter((file) => /^dist\/(index|browser)\.cjs$|^dist\/index\.js$|^src\//.test(file))).toEqual(
      [],
    );
    // the tokenizer and chat-template libraries, and the rules' errors
    const libraries = inputs.filter((input) =>
      /node_modules\/(@huggingface\/(tokenizers|jinja)|@implicit-it\/rules)\//.test(resolve(app, input)),
    );
    expect(libraries.length).toBeGreaterThanOrEqual(2);
    expect(code).not.toMatch(/\brequire\(["']|from ?["']node:/);
    const gzipped = gzipSync(code).length;
    console.log(
      `browser bundle: ${(code.length / 1000).toFixed(1)} kB minified, ${(gzipped / 1000).toFixed(1)} kB gzipped`,
    );
  });
});

describeShared(
  'the browser bundle on the SmolLM and Llama-2 fixtures',
  FIXTURES.map((name) => `fixtures/tokenizers/${name}/tokenizer.json`),
  () => {
    describeWithBinary('in headless Chromium', CHROMIUM, 'apt-get install -y chromium', () => {
      let browser: Browser;
      let context: BrowserContext;
      let page: Page;
      const errors: string[] = [];
      const logs: string[] = [];
      // the page and the model files, answered from here: /models/<fixture>/<file>, a 404 for a file
      // the fixture does not have, as a static file server answers
      const ORIGIN = 'http://tokenizers.test';
      let pageScript = '';
      let readmeScript = '';

      beforeAll(async () => {
        writeFileSync(join(app, 'summary.js'), SUMMARY);
        const { code } = await bundle(
          `import { createTokenizer, loadTokenizer, TOKENIZER_FILE_NAMES } from '@implicit-it/tokenizers';
import { summarize } from './summary.js';

async function fetchedFiles(base) {
  const read = async (name) => {
    const res = await fetch(base + name);
    return res.ok ? res.text() : undefined;
  };
  const texts = {};
  for (const [key, name] of Object.entries(TOKENIZER_FILE_NAMES)) texts[key] = await read(name);
  const json = (text) => (text === undefined ? undefined : JSON.parse(text));
  return {
    source: base,
    tokenizerJson: json(texts.tokenizerJson),
    tokenizerConfig: json(texts.tokenizerConfig),
    specialTokensMap: json(texts.specialTokensMap),
    generationConfig: json(texts.generationConfig),
    chatTemplate: texts.chatTemplate,
  };
}
globalThis.summarizeFetched = async (base, instruction) =>
  summarize(createTokenizer(await fetchedFiles(base)), instruction);
globalThis.loadTokenizerError = () =>
  loadTokenizer(location.origin + '/models/smollm/').then(
    () => 'resolved',
    (e) => ({ name: e.name, code: e.code, message: e.message }),
  );
`,
          { name: 'page.js' },
        );
        pageScript = code;
        const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
        const examples = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
          .map((m) => m[1]!)
          .filter((code) => code.includes('fetch('));
        expect(examples.length).toBe(1);
        readmeScript = (await bundle(examples[0]!, { name: 'readme.ts' })).code;
        browser = await chromium.launch({
          executablePath: CHROMIUM,
          headless: true,
          args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
        });
        context = await browser.newContext();
        page = await context.newPage();
        page.on('pageerror', (e) => errors.push(e.message));
        page.on('console', (m) => logs.push(m.text()));
        await context.route(`${ORIGIN}/**`, async (route) => {
          const path = new URL(route.request().url()).pathname;
          if (path === '/') {
            return route.fulfill({
              contentType: 'text/html',
              body: '<!doctype html><title>tokenizers</title><script type="module" src="/page.js"></script>',
            });
          }
          if (path === '/page.js') return route.fulfill({ contentType: 'text/javascript', body: pageScript });
          if (path === '/readme.html') {
            return route.fulfill({
              contentType: 'text/html',
              body: '<!doctype html><title>readme</title><script type="module" src="/readme.js"></script>',
            });
          }
          if (path === '/readme.js')
            return route.fulfill({ contentType: 'text/javascript', body: readmeScript });
          // the README's example fetches /models/SmolLM2-135M/: the SmolLM fixture
          const file = /^\/models\/(smollm|llama2|SmolLM2-135M)\/([\w.]+)$/.exec(path);
          const fixture = file?.[1] === 'SmolLM2-135M' ? 'smollm' : file?.[1];
          const local = file ? sharedPath('fixtures', 'tokenizers', fixture!, file[2]!) : undefined;
          if (local === undefined || !existsSync(local))
            return route.fulfill({ status: 404, body: 'not found' });
          return route.fulfill({ contentType: 'application/octet-stream', body: readFileSync(local) });
        });
        await page.goto(`${ORIGIN}/`);
        await page.waitForFunction(() => 'summarizeFetched' in globalThis);
      }, 120_000);

      afterAll(async () => {
        await browser?.close();
      });

      it.each([
        [
          'smollm',
          {
            size: 49152,
            eosIds: [2],
            bosId: 1,
            scope: [6, 24],
            chat: [3, 19],
            surfaced: 48822,
            I: 339,
            nl: 198,
          },
        ],
        [
          'llama2',
          {
            size: 32000,
            eosIds: [2],
            bosId: 1,
            scope: [7, 26],
            chat: [6, 26],
            surfaced: 31869,
            I: 306,
            nl: 13,
          },
        ],
      ] as const)(
        'builds from the fetched %s files the vocabulary, prompts and stream that loadTokenizer gives in Node',
        async (name, want) => {
          const inPage = (await page.evaluate(
            ([base, instruction]) =>
              (
                globalThis as unknown as { summarizeFetched: (b: string, i: string) => Promise<unknown> }
              ).summarizeFetched(base, instruction),
            [`${ORIGIN}/models/${name}/`, TIRAMISU] as const,
          )) as Summary;
          const nodeFile = join(app, 'node-summary.mjs');
          writeFileSync(
            nodeFile,
            `import { loadTokenizer } from '@implicit-it/tokenizers';
import { summarize } from './summary.js';
const tok = await loadTokenizer(process.argv[2]);
process.stdout.write(JSON.stringify(summarize(tok, process.argv[3])));
`,
          );
          const inNode = JSON.parse(
            execFileSync('node', [nodeFile, sharedPath('fixtures', 'tokenizers', name), TIRAMISU], {
              cwd: app,
              encoding: 'utf8',
              maxBuffer: 64 * 1024 * 1024,
            }),
          ) as Summary;

          expect(digested(inPage)).toEqual(digested(inNode));
          expect(inPage.surfaces).toEqual(inNode.surfaces);
          // and what they are
          expect(inPage).toMatchObject({
            size: want.size,
            vocabularySize: want.size,
            eosIds: want.eosIds,
            bosId: want.bosId,
            unresolved: [],
            tulu: { scopeStart: want.scope[0], promptLength: want.scope[1] },
            chat: { scopeStart: want.chat[0], promptLength: want.chat[1] },
          });
          expect(inPage.surfaces[want.I]).toBe(' I');
          expect(inPage.surfaces[want.nl]).toBe('\n');
          expect(inPage.surfaces[want.eosIds[0]]).toBe(null); // a special token has no surface text
          expect(inPage.surfaces.filter((s) => s !== null).length).toBe(want.surfaced);
          expect((inPage.deltas as string[]).join('')).toBe(inPage.decoded);
          expect(inPage.decoded).toContain('Sure! 🎉 Here it is: 三明治');
          expect(errors).toEqual([]);
        },
        120_000,
      );

      it("runs the README's In a browser example as written, printing what its comment says", async () => {
        const readmePage = await context.newPage();
        try {
          const printed: string[] = [];
          const failed: string[] = [];
          readmePage.on('console', (m) => printed.push(m.text()));
          readmePage.on('pageerror', (e) => failed.push(e.message));
          await Promise.all([
            readmePage.waitForEvent('console', { predicate: (m) => m.type() === 'log' }),
            readmePage.goto(`${ORIGIN}/readme.html`),
          ]);
          expect(failed).toEqual([]);
          // SmolLM has no chat_template.jinja: its fetch is a 404, which the page logs
          expect(printed.filter((log) => !log.includes('status of 404'))).toEqual(['0 6 24']);
          const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
          expect(readme).toContain(
            'console.log(rules.unresolved.length, prompt.scopeStart, prompt.promptLength); // 0 6 24',
          );
        } finally {
          await readmePage.close();
        }
      });

      it('rejects loadTokenizer there with a TokenizerLoadError saying to fetch the files', async () => {
        const error = await page.evaluate(() =>
          (globalThis as unknown as { loadTokenizerError: () => Promise<unknown> }).loadTokenizerError(),
        );
        expect(error).toEqual({
          name: 'TokenizerLoadError',
          code: 'tokenizers.unsupported',
          message: expect.stringMatching(
            /^http:\/\/tokenizers\.test\/models\/smollm\/: loadTokenizer reads a directory from disk, which the browser build of @implicit-it\/tokenizers cannot; fetch tokenizer\.json .* and pass them to createTokenizer\(\{ source, tokenizerJson, \.\.\. \}\)$/,
          ),
        });
        expect(errors).toEqual([]);
        // (the 404s of the files a fixture does not have are logged: a page's fetch of a missing file is)
        expect(logs.filter((log) => !log.includes('status of 404'))).toEqual([]);
      });
    });
  },
);
