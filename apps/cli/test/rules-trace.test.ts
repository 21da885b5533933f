import { compileRules } from '@implicit-it/rules';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { loadTokenizer } from '@implicit-it/tokenizers';
import { beforeAll, describe, expect, it } from 'vitest';
import { run, tinyModelDir } from './helpers.js';

const trace = async (args: string[]) => {
  const r = await run(['rules', 'trace', ...args]);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1); // ONE JSON object
  return JSON.parse(lines[0]!);
};

describeShared(
  'rules trace on the Llama-2 tokenizer (rules-spec.md worked example)',
  ['fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    const llama2 = sharedPath('fixtures', 'tokenizers', 'llama2');

    it('builds the paper prompt (S = 7, P = 26) and scores step t = 3 as the spec says', async () => {
      const out = await trace([
        '--tokenizer',
        llama2,
        '--rules',
        'hewitt2024',
        '--instruction',
        'Give me a recipe for tiramisu.',
        '--response-ids',
        '323,2126,275',
      ]);
      expect(Object.keys(out)).toEqual(['promptIds', 'scopeStart', 'promptLength', 'steps']);
      expect(out.promptIds).toEqual([
        1, 529, 29989, 1792, 29989, 29958, 13, 29954, 573, 592, 263, 9522, 412, 363, 19493, 314, 28311, 29889,
        13, 29966, 29989, 465, 22137, 29989, 29958, 13,
      ]);
      expect(out.scopeStart).toBe(7);
      expect(out.promptLength).toBe(26);
      expect(out.steps.map((s: { t: number }) => s.t)).toEqual([0, 1, 2, 3]);
      const s3 = out.steps[3].scores;
      expect(s3['2']).toBeCloseTo(0.18, 10); // EOS: 15 * 3 / 250
      expect(s3['13']).toBeCloseTo(-0.5, 10); // \n: +1 uniform, -1.5 used
      expect(s3['29966']).toBeCloseTo(-5.5, 10); // <: -4 uniform, -1.5 used
      expect(s3['306']).toBe(-5); // ' I': uniform only
      expect(s3['323']).toBe(-1.5); // a response token: used
      expect(out.steps[0].scores['2']).toBeUndefined(); // no EOS bonus at t = 0
    });

    it('lists every non-zero score: the same as compileRules + RuleSet.scores', async () => {
      const out = await trace([
        '--tokenizer',
        llama2,
        '--instruction',
        'Name three colors.',
        '--response',
        'Red, green and blue.',
      ]);
      const tok = await loadTokenizer(llama2);
      const rules = compileRules('hewitt2024', tok.vocabulary);
      const response = tok.encode('Red, green and blue.', { addSpecialTokens: false });
      expect(out.steps).toHaveLength(response.length + 1);
      const state = rules.createState({ promptIds: out.promptIds, scopeStart: out.scopeStart });
      for (let t = 0; t <= response.length; t++) {
        const want = Object.fromEntries([...rules.scores(state)].map(([id, s]) => [String(id), s]));
        expect(out.steps[t].scores).toEqual(want);
        for (const v of Object.values(out.steps[t].scores)) expect(v).not.toBe(0);
        if (t < response.length) state.append(response[t]!);
      }
    });

    it('takes prompt ids with a scope start, and a rule-set JSON', async () => {
      const out = await trace([
        '--tokenizer',
        llama2,
        '--rules',
        '{"used":{"penalty":-2,"scope":"response"}}',
        '--prompt-ids',
        '1,306,306',
        '--scope-start',
        '1',
        '--response-ids',
        '13',
      ]);
      expect(out).toEqual({
        promptIds: [1, 306, 306],
        scopeStart: 1,
        promptLength: 3,
        steps: [
          { t: 0, scores: {} },
          { t: 1, scores: { 13: -2 } },
        ],
      });
    });
  },
);

describe('rules trace: usage', () => {
  let tokenizer: string;
  beforeAll(async () => {
    tokenizer = await tinyModelDir();
  });

  it('works with any tokenizer directory, an empty response gives one step', async () => {
    const out = await trace(['--tokenizer', tokenizer, '--instruction', 'Hi', '--response', '']);
    expect(out.steps).toHaveLength(1);
    expect(out.scopeStart).toBeGreaterThan(0);
    expect(out.promptLength).toBe(out.promptIds.length);
  });

  it('exits 2 for missing or conflicting inputs, 3 for a missing tokenizer', async () => {
    const base = ['rules', 'trace', '--tokenizer', tokenizer];
    expect((await run([...base, '--response', 'x'])).code).toBe(2); // no prompt
    expect((await run([...base, '--instruction', 'x'])).code).toBe(2); // no response
    expect((await run([...base, '--instruction', 'x', '--prompt-ids', '1', '--response', 'x'])).code).toBe(2);
    expect((await run([...base, '--prompt-ids', '1,2', '--response', 'x'])).code).toBe(2); // no scope start
    // --preset, the former name of --rules, is still read; both at odds are refused
    const both = await run([
      ...base,
      '--preset',
      'hewitt2024',
      '--rules',
      '{}',
      '--instruction',
      'x',
      '--response',
      'y',
    ]);
    expect([both.code, both.stderr]).toEqual([
      2,
      'error: give --rules (--preset is its former name), not both\n',
    ]);
    const former = await run([...base, '--preset', 'eos-uniform', '--instruction', 'x', '--response', 'y']);
    const current = await run([...base, '-r', 'eos-uniform', '--instruction', 'x', '--response', 'y']);
    expect([former.code, former.stdout]).toEqual([0, current.stdout]);
    expect(current.stdout).not.toBe((await run([...base, '--instruction', 'x', '--response', 'y'])).stdout);
    expect((await run([...base, '--prompt-ids', '1,a', '--scope-start', '0', '--response', 'x'])).code).toBe(
      2,
    );
    expect(
      (await run([...base, '--prompt-ids', '1,99999', '--scope-start', '0', '--response', 'x'])).code,
    ).toBe(2);
    const preset = await run([...base, '--rules', 'nope', '--instruction', 'x', '--response', 'y']);
    expect(preset.code).toBe(2);
    // the flag given, and the documented name of no rules (off), not the library's "none"
    expect(preset.stderr).toMatch(
      /^error: --rules: unknown rule set "nope" \(did you mean off\?\): expected a preset \(hewitt2024, [^)]*\), off, or rule names joined by "-"/,
    );
    expect(preset.stderr).not.toContain('"none"');
    const missing = await run([
      'rules',
      'trace',
      '--tokenizer',
      '/nonexistent',
      '--instruction',
      'x',
      '--response',
      'y',
    ]);
    expect(missing.code).toBe(3);
  });

  it('names a refused --scope-start or id alone, without the notes of unresolved rule entries', async () => {
    // the tiny tokenizer resolves 8 of hewitt2024's entries to nothing: 8 notes came before the error
    const base = ['rules', 'trace', '--tokenizer', tokenizer, '--response-ids', '3'];
    const past = await run([...base, '--prompt-ids', '1,2', '--scope-start', '5']);
    expect([past.code, past.stderr]).toEqual([
      2,
      'error: --scope-start 5 is past the end of the prompt (2 ids)\n',
    ]);
    const outside = await run([...base, '--prompt-ids', '1,99999', '--scope-start', '0']);
    expect([outside.code, outside.stderr]).toEqual([
      2,
      'error: --prompt-ids: id 99999 is outside the vocabulary [0, 512)\n',
    ]);
    // a trace that runs still notes them
    const ok = await run([...base, '--prompt-ids', '1,2', '--scope-start', '1']);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain(
      'note: uniform entry " We" does not resolve: no vocabulary item has the surface text " We"\n',
    );
  });
});
