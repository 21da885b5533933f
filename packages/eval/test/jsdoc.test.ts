import { resolve } from 'node:path';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';
import { doneRecordPath } from '../src/done-record.js';
import { abortableDelay } from '../src/rate-limiter.js';

// Every export of the package carries a description and an @example (style.md), every @example in
// src/ type-checks against the package's own API, as a consumer would write it, and the values the
// examples state in comments are the values they give.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/eval' };
// what the examples name without defining: a consumer's own models, adapters, files and rows; and
// the internal helpers that the examples of internal functions call, typed as src/ declares them
const prelude = `declare const model: RuntimeModel;
declare const baseModel: RuntimeModel;
declare const generator: Generator;
declare const scorer: Scorer;
declare const baseRanks: RankSource;
declare const judge: JudgeClient;
declare const options: RunAblationsOptions;
declare const instructions: EvalInstruction[];
declare const outputs: ModelOutput[];
declare const aligned: ModelOutput[];
declare const annotations: Annotation[];
declare const data: AlpacaExample[];
declare const stats: WinRateStats;
declare const request: JudgeRequest;
declare const response: ChatCompletionResponse;
declare const generatorName: string;
declare const fingerprint: Record<string, unknown>;
declare const out: string;
declare const file: string;
declare const baselineFile: string;
declare const dir: string;
declare const label: string;
declare const key: string;
declare const url: string;
declare const controller: AbortController;
declare const e: unknown;
declare const abortableDelay: typeof import('../src/rate-limiter.js').abortableDelay;
declare const doneRecordPath: typeof import('../src/done-record.js').doneRecordPath;
`;

// the free names of the examples that state values: they define their own rows and stats, and call
// only the internal helpers below (the real ones; the package's exports are in scope already)
const free = () => ({ doneRecordPath, abortableDelay });

// a new export gets a description and an @example too
describeJsdoc({
  ...pkg,
  prelude,
  exports: 130,
  // ImplicitItError is re-exported: its example is the rules package's
  minExamples: 129,
  stated: { module: () => import('../src/index.js'), importer: (s) => import(s), free, minimum: 35 },
});
