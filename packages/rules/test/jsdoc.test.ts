import { resolve } from 'node:path';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';
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

// the names the examples leave to the reader, as values: Llama-2 ids (rules-spec.md's prompt)
function free() {
  const surfaces: string[] = Array.from({ length: 32000 }, (_, id) => `w${id}`);
  for (const { text, llama2Id } of HEWITT2024_UNIFORM) surfaces[llama2Id] = text;
  const vocab = createVocabulary({ surfaces, eosIds: [2] });
  const rules = compileRules('hewitt2024', vocab);
  const row = () => new Float32Array(32000);
  return {
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
}

// a new export gets a description and an @example too
describeJsdoc({
  ...pkg,
  prelude,
  exports: 43,
  stated: { module: () => import('../src/index.js'), free, minimum: 25 },
});
