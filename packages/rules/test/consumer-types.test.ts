import { resolve } from 'node:path';
import { typecheckConsumer } from '@implicit-it/testkit';
import { expect, it } from 'vitest';

// A TypeScript consumer with exactOptionalPropertyTypes hands on its own optional settings
// (`T | undefined`): every option and config type the package takes must accept them, as
// parseRuleSetConfig, compileRules and createState do (test/undefined-options.test.ts).
it('optional options and config fields take undefined under exactOptionalPropertyTypes', () => {
  const source = `
import {
  type CompileOptions,
  compileRules,
  createVocabulary,
  type EosRuleOptions,
  eosBonus,
  idVocabulary,
  parseRuleSetConfig,
  type RuleSetConfig,
  type StartRuleOptions,
  type StateInit,
  type UniformEntry,
  type UniformRuleOptions,
  type UsedRuleOptions,
  type Vocabulary,
} from '@implicit-it/rules';

declare const settings: {
  ramp: number | undefined;
  hold: 'zero' | 'hold' | undefined;
  scope: 'conversation' | 'response' | undefined;
  text: string | undefined;
  length: number | undefined;
  on: boolean | undefined;
  pieceOf: ((id: number) => string | undefined) | undefined;
};
const eos: EosRuleOptions = { rampLength: settings.ramp, maxBonus: undefined, afterRamp: settings.hold, ids: undefined };
const entry: UniformEntry = { id: 3, score: 1, text: settings.text };
const uniform: UniformRuleOptions = { entries: settings.on ? [entry] : undefined };
const used: UsedRuleOptions = { penalty: undefined, scope: settings.scope };
const start: StartRuleOptions = { weight: settings.ramp, exclamationBonus: undefined, newlinePenalty: undefined };
const config: RuleSetConfig = { eos, uniform, used, start: settings.on ? start : undefined };
parseRuleSetConfig(config);
eosBonus(10, eos);
const vocab: Vocabulary = createVocabulary({ surfaces: ['<eos>', ' I'], eosIds: [0], pieceOf: settings.pieceOf });
const plain: Vocabulary = { ...idVocabulary({ size: 4, eosIds: [0] }), pieceOf: undefined };
const options: CompileOptions = { custom: undefined };
const rules = compileRules(config, vocab, options);
compileRules('hewitt2024', plain, { custom: undefined });
const init: StateInit = { promptIds: [1, 2], scopeStart: 0, promptLength: settings.length };
rules.createState(init);
`;
  expect(typecheckConsumer(resolve(import.meta.dirname, '..'), source)).toBe('');
}, 120_000);
