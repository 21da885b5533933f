import { compileRules } from '@implicit-it/rules';
import { describe, expect, it, vi } from 'vitest';
import { loadModel } from '../src/index.js';
import { diverseModelDir } from './helpers.js';

// every compile of a rule set, as the runtime's modules call it
vi.mock('@implicit-it/rules', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@implicit-it/rules')>();
  return { ...actual, compileRules: vi.fn(actual.compileRules) };
});

describe('the default rules at load', () => {
  it('are compiled once: the check before the weights load is the set the model keeps', async () => {
    const compile = vi.mocked(compileRules);
    const dir = await diverseModelDir();
    // an entry that matches no token: its note is logged once
    const rules = { eos: true, uniform: { entries: [{ text: 'no such token here', score: -2 }] } };
    const lines: string[] = [];
    compile.mockClear();
    const model = await loadModel(dir, { log: (line) => lines.push(line), rules });
    try {
      expect(compile.mock.calls.map(([spec]) => spec)).toEqual([rules]);
      expect(model.rules()).toBe(compile.mock.results[0]!.value);
      expect(lines.filter((l) => l.startsWith('rules '))).toEqual([
        'rules given: 1 entry matches no token of this vocabulary and is left out: uniform "no such token here" (no vocabulary item has the surface text "no such token here")',
      ]);
      // a request naming the same rules finds them in the cache
      await model.generate('Hi', { maxNewTokens: 2, rules: { ...rules } });
      expect(compile).toHaveBeenCalledTimes(1);
    } finally {
      await model.dispose();
    }
  });

  it("are the model's defaultRules, as given: a spec, a compiled set, undefined where none", async () => {
    const dir = await diverseModelDir();
    const quiet = { log: () => {} };
    const bare = await loadModel(dir, quiet);
    const named = await loadModel(dir, { ...quiet, rules: 'hewitt2024-prose' });
    const set = compileRules('eos-uniform', bare.tokenizer.vocabulary);
    const compiled = await loadModel(dir, { ...quiet, rules: set });
    const off = await loadModel(dir, { ...quiet, rules: false });
    try {
      expect(bare.defaultRules).toBeUndefined();
      expect(bare.rules()).toBeNull();
      expect(named.defaultRules).toBe('hewitt2024-prose');
      expect(named.rules()?.config).toEqual(
        compileRules('hewitt2024-prose', bare.tokenizer.vocabulary).config,
      );
      expect(compiled.defaultRules).toBe(set);
      expect(compiled.rules()).toBe(set);
      // off as given: told apart from none given (a server's own default then does not apply)
      expect(off.defaultRules).toBe(false);
      expect(off.rules()).toBeNull();
    } finally {
      await Promise.all([bare, named, compiled, off].map((m) => m.dispose()));
    }
  });
});
