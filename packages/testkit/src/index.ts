import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { describe } from 'vitest';

export { typecheckConsumer } from './consumer-types.js';

/** The repository root: the nearest directory upwards holding pnpm-workspace.yaml. */
export function repoRoot(from: string = process.cwd()): string {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no pnpm-workspace.yaml above ${from}`);
    dir = up;
  }
}

/**
 * `../shared` beside the repository root, or IMPLICIT_IT_SHARED_DIR (a relative path is taken from the
 * repository root: each package's tests run in the package's directory).
 */
export const SHARED_DIR = resolve(repoRoot(), process.env.IMPLICIT_IT_SHARED_DIR || join('..', 'shared'));

/** A path under the shared directory. */
export function sharedPath(...parts: string[]): string {
  return join(SHARED_DIR, ...parts);
}

/** True when CI demands the shared material (IMPLICIT_IT_REQUIRE_SHARED=1). */
export const REQUIRE_SHARED = process.env.IMPLICIT_IT_REQUIRE_SHARED === '1';

/** The first missing path of `parts` under ../shared, or undefined when all exist. */
export function missingShared(...paths: string[]): string | undefined {
  return paths.map((p) => sharedPath(p)).find((p) => !existsSync(p));
}

/** True when CI installed the external programs tests use (IMPLICIT_IT_REQUIRE_TOOLS=1). */
export const REQUIRE_TOOLS = process.env.IMPLICIT_IT_REQUIRE_TOOLS === '1';

/**
 * `describe` for tests that run an external program (Chromium, tmux): skipped with a message saying how
 * to install it when it is missing, a failure when IMPLICIT_IT_REQUIRE_TOOLS=1 (CI installs them).
 *
 * @example
 * describeWithBinary('playground in headless Chromium', CHROMIUM, 'apt-get install -y chromium', () => { ... });
 */
export function describeWithBinary(name: string, binary: string, install: string, fn: () => void): void {
  const found = binary.includes('/') ? existsSync(binary) : onPath(binary);
  if (!found && REQUIRE_TOOLS) {
    describe(name, () => {
      throw new Error(`${binary} is missing and IMPLICIT_IT_REQUIRE_TOOLS=1: install it with ${install}`);
    });
    return;
  }
  if (!found) {
    console.warn(`[skip] ${name}: ${binary} is missing (install it with: ${install})`);
    describe.skip(`${name} (skipped: ${binary} missing)`, fn);
    return;
  }
  describe(name, fn);
}

function onPath(binary: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(join(dir, binary)));
}

/**
 * `describe` for tests that read ../shared: skipped with a message when a file is missing, a failure
 * when IMPLICIT_IT_REQUIRE_SHARED=1.
 *
 * @example
 * describeShared('llama2 fixture', ['fixtures/tokenizers/llama2/tokenizer.json'], () => { ... });
 */
export function describeShared(name: string, paths: string[], fn: () => void): void {
  const missing = missingShared(...paths);
  if (missing && REQUIRE_SHARED) {
    describe(name, () => {
      throw new Error(
        `${missing} is missing and IMPLICIT_IT_REQUIRE_SHARED=1: the shared material must be present`,
      );
    });
    return;
  }
  if (missing) {
    console.warn(`[skip] ${name}: ${missing} is missing (set up ../shared to run these tests)`);
    describe.skip(`${name} (skipped: ${missing} missing)`, fn);
    return;
  }
  describe(name, fn);
}

/** A local stand-in for the Hugging Face hub (see {@link serveHubRepo}). */
export interface LocalHub {
  /** `http://127.0.0.1:<port>`: what `HF_ENDPOINT` or the `endpoint` option take. */
  endpoint: string;
  /** Every request, as `METHOD /path`. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * Serves the files of `dir` as the hub repository `repo` (`/{repo}/resolve/main/{file}`), with what the
 * hub client of @huggingface/transformers asks for: GET, HEAD, and single byte ranges. Anything else
 * is a 404. For testing downloads without a network.
 *
 * @example
 * const hub = await serveHubRepo(modelDir, 'test-org/tiny');
 * await resolveModel('test-org/tiny', { endpoint: hub.endpoint, cacheDir });
 * await hub.close();
 */
export async function serveHubRepo(dir: string, repo: string): Promise<LocalHub> {
  const requests: string[] = [];
  const prefix = `/${repo}/resolve/main/`;
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const url = decodeURIComponent(req.url ?? '');
    const path = url.startsWith(prefix) ? url.slice(prefix.length) : null;
    const file = path && !path.split('/').includes('..') ? join(dir, path) : null;
    const size = file ? statSync(file, { throwIfNoEntry: false }) : undefined;
    if (!file || !size?.isFile()) {
      res.writeHead(404).end('Entry not found');
      return;
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    const [start, end] = range
      ? [Number(range[1]), Math.min(Number(range[2]), size.size - 1)]
      : [0, size.size - 1];
    res.writeHead(range ? 206 : 200, {
      'content-length': end - start + 1,
      ...(range ? { 'content-range': `bytes ${start}-${end}/${size.size}` } : {}),
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file, { start, end }).pipe(res);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((done) => server.close(() => done())),
  };
}

/** The instruction of the paper's worked prompt example (rules-spec.md). */
export const TIRAMISU = 'Give me a recipe for tiramisu.';
/** OLMo's EOS id in the shared OLMo tokenizer: the BOS stand-in of the paper's OLMo prompts (it names no BOS). */
export const OLMO_EOS = 50279;
/** The Tulu prompt of {@link TIRAMISU} on the shared OLMo tokenizer: `<|user|>\n` is 5 tokens, S is 5, P is 21. */
export const OLMO_TULU_TIRAMISU: readonly number[] = [
  29, 93, 4537, 49651, 187, 19735, 479, 247, 13612, 323, 45310, 312, 37364, 15, 187, 29, 93, 515, 5567, 49651,
  187,
];

/**
 * Options of modelkit's `createTinyModel` for a tiny model on the shared OLMo tokenizer (its vocabulary
 * the tokenizer's) with OLMo-1B-hf's special ids: no BOS, EOS {@link OLMO_EOS}, PAD 1. Weights are
 * scaled so that greedy outputs are diverse. Use under `describeShared` with
 * `fixtures/tokenizers/olmo/tokenizer.json`.
 */
export function tinyOlmoModelOptions() {
  return {
    seed: 1,
    initScale: 10,
    tokenizerDir: sharedPath('fixtures', 'tokenizers', 'olmo'),
    vocabSize: 50280,
    bosTokenId: null,
    eosTokenId: OLMO_EOS,
    padTokenId: 1,
  };
}

/**
 * Options of modelkit's `createTinyModel` for a tiny model on the shared Llama-2 tokenizer
 * (SentencePiece, its 32,000 ids). Use under `describeShared` with
 * `fixtures/tokenizers/llama2/tokenizer.json`.
 */
export function tinyLlama2ModelOptions() {
  return { seed: 1, tokenizerDir: sharedPath('fixtures', 'tokenizers', 'llama2'), vocabSize: 32000 };
}
