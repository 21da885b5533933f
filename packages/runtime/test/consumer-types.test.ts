import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { typecheckConsumer } from '@implicit-it/testkit';
import { expect, it } from 'vitest';

// A TypeScript consumer with the strictest common settings: the README's example pasted into a .ts
// file, and options passed on as `T | undefined`, must type-check against the built declarations.
it("the README's example and optional options type-check under noUncheckedIndexedAccess and exactOptionalPropertyTypes", () => {
  const pkg = resolve(import.meta.dirname, '..');
  const example = /```js\n([\s\S]*?)```/.exec(readFileSync(join(pkg, 'README.md'), 'utf8'))![1]!;
  expect(
    typecheckConsumer(
      pkg,
      `${example}
// a single prompt's result, and a list of one's, is a result, not \`GenerationResult | undefined\`
const [one] = await model.generate(['Name a color.']);
console.log(one.text, scored.tokenIds.length);
const many = await model.generate(['a', 'b']);
const first: GenerationResult | undefined = many[0];
// options handed on from the caller's own optional settings
const seed: number | undefined = Number(process.env.SEED) || undefined;
const settings: GenerateOptions = { seed, temperature: undefined, stop: undefined, rules: undefined };
await model.generate('Hi', settings);
const scoring: ScoreOptions = { rules: undefined, top: undefined, signal: undefined };
await model.score([{ prompt: 'p', continuation: 'c' }], scoring);
const loading: LoadOptions = { dtype: undefined, executionProvider: undefined, log: undefined };
await (await loadModel(dir, loading)).dispose();
// a prompt buildPrompt built is no GenerateInput (its \`text\` is not a raw prompt): its ids are
const built = model.tokenizer.buildPrompt({ format: 'tulu', instruction: 'Hi' });
// @ts-expect-error
await model.generate(built);
await model.generate({ promptIds: built.ids, scopeStart: built.scopeStart });
// the model's settings are literal unions: a switch over them is exhaustive
const where: 'GPU' | 'CPU' = model.info.provider === 'cuda' ? 'GPU' : 'CPU';
const kvBytes: 2 | 4 = model.info.kvType === 'float16' ? 2 : 4;
const quantized: boolean = model.info.dtype === 'q4' || model.info.dtype === 'q8';
switch (model.info.attention) {
  case 'exported': case 'split': case 'grouped': break;
  default: { const never: never = model.info.attention; void never; }
}
void first, where, kvBytes, quantized;
`.replace(
        "import { loadModel } from '@implicit-it/runtime';",
        "import { type GenerateOptions, type GenerationResult, type LoadOptions, loadModel, type ScoreOptions } from '@implicit-it/runtime';",
      ),
    ),
  ).toBe('');
}, 120_000);
