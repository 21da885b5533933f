// Hub ids are fetched with the real hub client of @huggingface/transformers, from a local HTTP server
// that serves a modelkit model under the hub's paths (`/{id}/resolve/main/{file}`): no network needed.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type LocalHub, serveHubRepo } from '@implicit-it/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMissingPackage, progressLines } from '../src/hub.js';
import { hubEndpoint, loadModel, ModelLoadError, resolveModel } from '../src/index.js';
import { diverseModelDir } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'runtime-hub-'));
let source = '';
let hub: LocalHub;

/** Every file under `dir`, relative to it, sorted. */
const filesOf = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => statSync(join(dir, f)).isFile())
    .map((f) => relative(dir, join(dir, f)))
    .sort();

beforeAll(async () => {
  source = await diverseModelDir();
  hub = await serveHubRepo(source, 'test-org/tiny');
});
afterAll(async () => {
  await hub.close();
  rmSync(work, { recursive: true, force: true });
});

describe('hub ids', () => {
  it('are fetched from the endpoint into the cache, in the Hugging Face layout, with progress', async () => {
    const cacheDir = join(work, 'cache');
    const lines: string[] = [];
    const dir = await resolveModel('test-org/tiny', {
      cacheDir,
      endpoint: `${hub.endpoint}/`,
      onProgress: (l) => lines.push(l),
    });
    expect(dir).toBe(join(cacheDir, 'test-org', 'tiny'));
    // every file the engine reads, byte for byte
    expect(filesOf(dir)).toEqual(filesOf(source));
    for (const f of filesOf(source))
      expect(readFileSync(join(dir, f)).equals(readFileSync(join(source, f)))).toBe(true);
    expect(lines[0]).toBe(`downloading test-org/tiny (fp32) from ${hub.endpoint} into ${dir}`);
    expect(lines.slice(1).sort()).toEqual(filesOf(source).map((f) => `fetched ${f}`));
    expect(hub.requests.every((r) => r.startsWith('GET /test-org/tiny/resolve/main/'))).toBe(true);
  });

  it('load offline from the cache once fetched, and generate as the source directory does', async () => {
    const cacheDir = join(work, 'cache');
    const before = hub.requests.length;
    const fromHub = await loadModel('test-org/tiny', { cacheDir, offline: true, log: () => {} });
    const fromDir = await loadModel(source, { log: () => {} });
    const options = { maxNewTokens: 12, ignoreEos: true };
    const [a] = await fromHub.generate(['Give me a recipe for tiramisu.'], options);
    const [b] = await fromDir.generate(['Give me a recipe for tiramisu.'], options);
    expect(a!.tokenIds).toHaveLength(12);
    expect(a!.tokenIds).toEqual(b!.tokenIds);
    expect(hub.requests.length).toBe(before);
    await fromHub.dispose();
    await fromDir.dispose();
  });

  it('an id the endpoint does not have fails with the endpoint, the cause and what to do', async () => {
    const cacheDir = join(work, 'cache-missing');
    const err = await resolveModel('test-org/missing', { cacheDir, endpoint: hub.endpoint }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.code).toBe('runtime.hub_unreachable');
    expect(err.file).toBe(join(cacheDir, 'test-org', 'missing'));
    expect(err.message).toMatch(
      new RegExp(
        `^could not fetch "test-org/missing" from ${hub.endpoint} \\(.*config\\.json.*\\); check the id and your network, or pass a local model directory$`,
      ),
    );
  });

  it('the endpoint defaults to HF_ENDPOINT, else huggingface.co', () => {
    const saved = process.env.HF_ENDPOINT;
    try {
      delete process.env.HF_ENDPOINT;
      expect(hubEndpoint()).toBe('https://huggingface.co');
      process.env.HF_ENDPOINT = 'https://hf-mirror.example/';
      expect(hubEndpoint()).toBe('https://hf-mirror.example');
      expect(hubEndpoint('http://127.0.0.1:9000//')).toBe('http://127.0.0.1:9000');
    } finally {
      if (saved === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved;
    }
  });

  it('progress: each tenth of a large file once, each file fetched once', () => {
    const lines: string[] = [];
    const report = progressLines((l) => lines.push(l));
    const total = 50e6;
    report({ status: 'initiate', file: 'onnx/model.onnx' });
    for (let loaded = 0; loaded <= total; loaded += 2e6)
      report({ status: 'progress', file: 'onnx/model.onnx', loaded, total });
    report({ status: 'progress', file: 'config.json', loaded: 700, total: 700 });
    report({ status: 'done', file: 'onnx/model.onnx' });
    report({ status: 'done', file: 'config.json' });
    report({ status: 'done', file: 'config.json' });
    expect(lines).toEqual([
      ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map(
        (t) => `onnx/model.onnx: ${(Math.ceil(t * 2.5) * 2).toFixed(1)} MB of 50.0 MB (${t * 10}%)`,
      ),
      'fetched onnx/model.onnx',
      'fetched config.json',
    ]);
  });
});

// @huggingface/transformers is an optional peer dependency: a Node resolve hook makes it missing, as
// it is where it is not installed, for the built package (`pnpm test` builds first), imported as an
// ES module and required as a CommonJS one.
describe('without @huggingface/transformers', () => {
  const hook = `export async function resolve(specifier, context, next) {
  if (specifier !== '@huggingface/transformers') return next(specifier, context);
  throw Object.assign(new Error("Cannot find package '@huggingface/transformers' imported from " + context.parentURL), { code: 'ERR_MODULE_NOT_FOUND' });
}`;
  const script = (load: string) => `import { createRequire, register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
const { resolveModel } = ${load};
const local = await resolveModel(${JSON.stringify(source)});
const error = await resolveModel('test-org/tiny', { cacheDir: ${JSON.stringify(join(work, 'no-client'))}, endpoint: ${JSON.stringify(hub.endpoint)} }).catch((e) => e);
console.log(JSON.stringify({ local, name: error.name, code: error.code, message: error.message, cause: error.cause?.code }));`;
  const dist = (file: string) => fileURLToPath(new URL(`../dist/${file}`, import.meta.url));

  for (const [kind, load] of [
    ['ES module', `await import(${JSON.stringify(pathToFileURL(dist('index.js')).href)})`],
    ['CommonJS', `createRequire(import.meta.url)(${JSON.stringify(dist('index.cjs'))})`],
  ] as const) {
    it(`${kind}: local directories load, a hub id fails with what to install`, () => {
      const before = hub.requests.length;
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script(load)], {
        encoding: 'utf8',
      });
      expect(JSON.parse(out)).toEqual({
        local: source,
        name: 'ModelLoadError',
        code: 'runtime.hub_client_missing',
        message:
          'fetching "test-org/tiny" from the hub needs @huggingface/transformers, an optional peer dependency of @implicit-it/runtime: install it (npm install @huggingface/transformers@4.3.1), or pass a local model directory',
        cause: 'ERR_MODULE_NOT_FOUND',
      });
      expect(hub.requests.length).toBe(before); // nothing fetched
    });
  }

  it('a missing package is told from a package that fails to load something of its own', () => {
    const missing = (message: string, code = 'ERR_MODULE_NOT_FOUND') =>
      Object.assign(new Error(message), { code });
    const name = '@huggingface/transformers';
    expect(isMissingPackage(missing(`Cannot find package '${name}' imported from /x/index.js`), name)).toBe(
      true,
    );
    expect(
      isMissingPackage(missing(`Cannot find module '${name}'\nRequire stack:`, 'MODULE_NOT_FOUND'), name),
    ).toBe(true);
    expect(
      isMissingPackage(
        missing(`Cannot find package 'sharp' imported from /x/node_modules/${name}/dist/a.js`),
        name,
      ),
    ).toBe(false);
    expect(isMissingPackage(new Error(`'${name}' failed`), name)).toBe(false);
    expect(isMissingPackage(undefined, name)).toBe(false);
  });
});
