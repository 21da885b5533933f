import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { resolveRuleSpec } from '@implicit-it/rules';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';
import { afterAll } from 'vitest';
import { bearerAuth } from '../src/auth.js';
import { type ApiApp, ApiError, createApp, type PlaygroundConfig } from '../src/index.js';
import { WorkQueue } from '../src/work-queue.js';
import { tinyModel, tinyModelDir } from './helpers.js';

// Every export of src/index.ts (createApp and what embedding it takes) carries a description and an
// @example (style.md), every @example in src/ type-checks against the package's own API, as a
// consumer would write it, and the values the examples state in comments
// (`error.code; // 'model_not_found'`) are the values they give, with a tiny modelkit model served.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/api' };
// what the examples name without defining: a consumer's own model, app and response; and the
// internals that the examples of internal middleware use, typed as src/ declares them
const prelude = `declare const model: import('@implicit-it/runtime').BaseModel;
declare const app: ApiApp;
declare const server: RunningServer;
declare const config: PlaygroundConfig;
declare const signal: AbortSignal;
declare const work: () => Promise<void>;
declare const tooBusy: () => Response;
declare const bearerAuth: typeof import('../src/auth.js').bearerAuth;
declare const WorkQueue: typeof import('../src/work-queue.js').WorkQueue;
`;

// the names the examples leave to the reader, as values: the tiny model (loaded once), and an app
// serving it made anew for each example (its metrics count that example's requests only)
async function free() {
  const model = await tinyModel();
  const app: ApiApp = createApp({ models: [{ id: 'tiny', model }], log: () => {} });
  const config: PlaygroundConfig = {
    models: ['tiny'],
    rules: resolveRuleSpec('hewitt2024'),
    rulesName: 'hewitt2024',
    ruleDefaults: resolveRuleSpec('eos-uniform-diversity-start'),
    auth: false,
    maxTokens: 512,
  };
  return {
    model,
    app,
    config,
    signal: new AbortController().signal,
    work: async () => {},
    tooBusy: () => Response.json(new ApiError(503, 'busy').body, { status: 503 }),
    bearerAuth,
    WorkQueue,
  };
}

// a consumer's model directory 'models/SmolLM2-135M': the tiny model's files under that name
const consumer = mkdtempSync(join(tmpdir(), 'implicit-it-api-jsdoc-'));
cpSync(await tinyModelDir(), join(consumer, 'models', 'SmolLM2-135M'), { recursive: true });
afterAll(async () => {
  await (await tinyModel()).dispose();
  rmSync(consumer, { recursive: true, force: true });
});

// a new export gets a description and an @example too
describeJsdoc({
  ...pkg,
  prelude,
  exports: 23,
  stated: {
    module: () => import('../src/index.js'),
    importer: (s) => import(s),
    free,
    // (loaded quietly: the runtime's load log is no value of the example's)
    rewrite: {
      "loadModel('models/SmolLM2-135M')": `loadModel(${JSON.stringify(join(consumer, 'models', 'SmolLM2-135M'))}, { log: () => {} })`,
    },
    minimum: 6,
  },
});
