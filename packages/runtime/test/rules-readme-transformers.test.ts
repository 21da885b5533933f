import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { describeShared, sharedPath, TIRAMISU } from '@implicit-it/testkit';
import { expect, it } from 'vitest';
import { loadModel } from '../src/index.js';

// The rules README's "With transformers.js" example (a LogitsProcessor on @implicit-it/rules, with the
// vocabulary and the Tulu prompt from @implicit-it/tokenizers' createTokenizer on the files it reads),
// run as written: its greedy tokens must be this engine's with rules hewitt2024, on a byte-level
// (SmolLM) and a SentencePiece (Llama-2) tokenizer, where decode([id]) alone would lose the leading
// spaces the rules match.
const pkg = resolve(import.meta.dirname, '..');
const readme = readFileSync(join(pkg, '..', 'rules', 'README.md'), 'utf8');
const examples = [...readme.matchAll(/```js\n([\s\S]*?)```/g)]
  .map((m) => m[1]!)
  .filter((code) => code.includes("from '@huggingface/transformers'"));

describeShared(
  "the rules README's transformers.js example",
  ['fixtures/tokenizers/smollm/tokenizer.json', 'fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    it('is one example, on the tiramisu prompt, printing the unresolved entries and S and P', () => {
      expect(examples.length).toBe(1);
      expect(examples[0]).toContain(`instruction: '${TIRAMISU}'`);
      expect(examples[0]).toContain("from '@implicit-it/tokenizers'");
      expect([...examples[0]!.matchAll(/\/\/ prints (.*)$/gm)].map((m) => m[1])).toEqual(['[]', '6 24']);
    });

    it.each([
      ['smollm', 49152, '6 24'],
      ['llama2', 32000, '7 26'],
    ] as const)(
      'on the %s tokenizer, generates the tokens the engine generates with rules hewitt2024',
      async (name, vocabSize, scope) => {
        const { dir } = await createTinyModel({
          seed: 1,
          initScale: 10,
          tokenizerDir: sharedPath('fixtures', 'tokenizers', name),
          vocabSize,
        });
        // inside the package, so that @huggingface/transformers and @implicit-it/rules resolve
        const app = mkdtempSync(join(pkg, 'test', '.readme-'));
        try {
          mkdirSync(join(app, 'models'));
          symlinkSync(dir, join(app, 'models', 'SmolLM2-135M'), 'dir');
          const file = join(app, 'example.mjs');
          writeFileSync(file, `${examples[0]}\nconsole.log(JSON.stringify(responseIds));\n`);
          const out = execFileSync('node', [file], {
            cwd: app,
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'pipe'],
          }).split('\n');
          const theirs = JSON.parse(out.at(-2)!) as number[];
          expect(out.slice(0, 2)).toEqual(['[]', scope]);

          const model = await loadModel(dir, { log: () => {} });
          try {
            const [ours] = await model.generate(TIRAMISU, { rules: 'hewitt2024', maxNewTokens: 64 });
            const [base] = await model.generate(TIRAMISU, { rules: false, maxNewTokens: 64 });
            expect(theirs).toEqual(ours.tokenIds);
            expect(theirs).not.toEqual(base.tokenIds); // the rules changed the answer
          } finally {
            await model.dispose();
          }
        } finally {
          rmSync(app, { recursive: true, force: true });
        }
      },
      120_000,
    );
  },
);
