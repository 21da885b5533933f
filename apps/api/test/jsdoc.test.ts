import { resolve } from 'node:path';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';

// Every export of src/index.ts (createApp and what embedding it takes) carries a description and an
// @example (style.md), and every @example in src/ type-checks against the package's own API, as a
// consumer would write it.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/api' };
// what the examples name without defining: a consumer's own model, app and response; and the
// internals that the examples of internal middleware use, typed as src/ declares them
const prelude = `declare const model: import('@implicit-it/runtime').BaseModel;
declare const app: ApiApp;
declare const config: PlaygroundConfig;
declare const signal: AbortSignal;
declare const work: () => Promise<void>;
declare const tooBusy: () => Response;
declare const bearerAuth: typeof import('../src/auth.js').bearerAuth;
declare const WorkQueue: typeof import('../src/work-queue.js').WorkQueue;
`;

// a new export gets a description and an @example too
describeJsdoc({ ...pkg, prelude, exports: 21 });
