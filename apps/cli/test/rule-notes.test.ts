import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileRules, createVocabulary } from '@implicit-it/rules';
import { unresolvedNote } from '@implicit-it/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRules, notedByRuntime } from '../src/rule-notes.js';
import { run, startServe, stop, tinyModelDir } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'implicit-it-cli-rule-notes-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// hewitt2024's uniform entries that modelkit's tiny tokenizer has no token for (7 of the 15 resolve)
const UNRESOLVED = 'uniform " <", " We", " should", " *", " -", "   ", " #", " ##"';
/** The note of hewitt2024's rules (or a subset with its uniform rule) on the tiny tokenizer. */
const hewittNote = (where: string) =>
  `note: ${where}: 8 entries do not resolve (no vocabulary item has their exact text) and are left out: ${UNRESOLVED}`;

/** A uniform rule whose one entry is no token of any of the test tokenizers: a no-op rule. */
const TYPO = '{"uniform":{"entries":[{"text":"Sure!","score":5}]}}';
const typoError = (where: string) =>
  `error: ${where}: the uniform rule's one entry, "Sure!", matches no token of this vocabulary, so the rule would change nothing (a run with it would be a run without it)\n` +
  `hint: give each entry the exact text of one token (a leading space is part of it: " Sure"), or its id ({"id": 42, "score": 5}), or leave the rule out; \`implicit-it model inspect MODEL --rules SPEC\` lists which entries resolve\n`;
/** "Sure!" and "\n", which the tiny tokenizer has: one entry of two left out. */
const HALF = '{"uniform":{"entries":[{"text":"Sure!","score":5},{"text":"\\n","score":1}]}}';

/** The lines of stderr that are notes of rule entries (the CLI's, and the runtime's with -v). */
const ruleNotes = (stderr: string) =>
  stderr.split('\n').filter((line) => /do(?:es)? not resolve|match(?:es)? no token/.test(line));

let model: string;
let instructions: string;
beforeAll(async () => {
  model = await tinyModelDir();
  instructions = join(tmp, 'instructions.jsonl');
  writeFileSync(
    instructions,
    ['Say hi.', 'Name a color.', 'Count to three.']
      .map((instruction) => `${JSON.stringify({ instruction, dataset: 'toy' })}\n`)
      .join(''),
  );
});

describe('rule entries that match no token', () => {
  it('checkRules gives their note, and refuses an enabled rule with nothing resolved', () => {
    const vocab = createVocabulary({ surfaces: ['</s>', ' I', '\n', ' Sure'], eosIds: [0] });
    expect(() =>
      checkRules({ uniform: { entries: [{ text: 'Sure!', score: 5 }] } }, vocab, '--rules x'),
    ).toThrow(`--rules x: the uniform rule's one entry, "Sure!", matches no token of this vocabulary`);
    expect(() =>
      checkRules(
        {
          uniform: {
            entries: [
              { text: 'Sure!', score: 5 },
              { text: 'Yes!', score: 1 },
            ],
          },
        },
        vocab,
        '--rules x',
      ),
    ).toThrow(
      `--rules x: none of the uniform rule's 2 entries ("Sure!", "Yes!") matches a token of this vocabulary`,
    );
    // an EOS ramp on a vocabulary that names no EOS raises nothing
    const noEos = createVocabulary({ surfaces: ['a', ' I'], eosIds: [] });
    expect(() => checkRules('eos', noEos, '--rules eos')).toThrow(
      '--rules eos: the eos rule has no id to raise, as the tokenizer names no EOS id, so the rule would change nothing',
    );
    // an id past the vocabulary: refused naming the flag, before anything runs
    expect(() => checkRules({ uniform: { entries: [{ id: 9, score: 1 }] } }, vocab, '--rules x')).toThrow(
      '--rules x: uniform.entries[0].id: id 9 is outside the vocabulary [0, 4)',
    );
    // entries by id, and rules off, have nothing to note
    expect(checkRules({ uniform: { entries: [{ id: 1, score: 1 }] } }, vocab, '--rules x')).toBeUndefined();
    expect(checkRules(false, vocab, '--rules off')).toBeUndefined();
    expect(
      checkRules(
        {
          uniform: {
            entries: [
              { text: 'Sure!', score: 5 },
              { text: ' Sure', score: 5 },
            ],
          },
        },
        vocab,
        '--rules x',
      ),
    ).toBe(
      'note: --rules x: uniform entry "Sure!" does not resolve (no vocabulary item has its exact text) and is left out',
    );
    // the start rule's "!" and "\n" are entries too, listed by rule
    expect(
      checkRules(
        {
          uniform: {
            entries: [
              { text: 'A', score: 1 },
              { text: ' I', score: 1 },
            ],
          },
          start: true,
        },
        vocab,
        '--rules x',
      ),
    ).toBe(
      'note: --rules x: 2 entries do not resolve (no vocabulary item has their exact text) and are left out: uniform "A"; start "!"',
    );
    // the runtime's note of a rule set checked already is its -v duplicate; others are not
    const runtimeNote = (spec: string) => unresolvedNote(spec, compileRules(spec, vocab).unresolved);
    expect(notedByRuntime(runtimeNote('hewitt2024-prose'))).toBe(false);
    checkRules('hewitt2024-prose', vocab, '--rules hewitt2024-prose');
    expect(notedByRuntime(runtimeNote('hewitt2024-prose'))).toBe(true);
    expect(notedByRuntime(runtimeNote('eos-uniform'))).toBe(false);
    expect(notedByRuntime('prompts prefilled in chunks of 256 positions')).toBe(false);
  });

  it('generate notes them on stderr once (with -v too), --json stays JSON, and a no-op rule is refused', async () => {
    const plain = await run(['generate', '-m', model, '-n', '4', 'Hi']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(ruleNotes(plain.stderr)).toEqual([hewittNote('--rules hewitt2024')]);
    // -v: the runtime's own note of the same rule set is not said a second time
    const verbose = await run(['generate', '-m', model, '-n', '4', '-v', '--json', 'Hi']);
    expect(verbose.code, verbose.stderr).toBe(0);
    expect(ruleNotes(verbose.stderr)).toEqual([hewittNote('--rules hewitt2024')]);
    expect(JSON.parse(verbose.stdout)).toMatchObject({ rules: 'hewitt2024' });
    const compare = await run([
      'generate',
      '-m',
      model,
      '-n',
      '2',
      '--compare',
      '--rules',
      'eos-uniform',
      'Hi',
    ]);
    expect(ruleNotes(compare.stderr)).toEqual([hewittNote('--rules eos-uniform')]);
    const half = await run(['generate', '-m', model, '-n', '2', '--rules', HALF, 'Hi']);
    expect(half.code, half.stderr).toBe(0);
    expect(ruleNotes(half.stderr)).toEqual([
      'note: --rules custom JSON: uniform entry "Sure!" does not resolve (no vocabulary item has its exact text) and is left out',
    ]);
    expect(
      ruleNotes((await run(['generate', '-m', model, '-n', '2', '--rules', 'eos-diversity', 'Hi'])).stderr),
    ).toEqual([]);
    const typo = await run(['generate', '-m', model, '-n', '2', '--rules', TYPO, 'Hi']);
    expect([typo.code, typo.stdout, typo.stderr]).toEqual([2, '', typoError('--rules custom JSON')]);
  });

  it('a rules file is named by its @path in notes, refusals and the chat header, not as "custom JSON"', async () => {
    const half = join(tmp, 'half.json');
    writeFileSync(half, HALF);
    const typoFile = join(tmp, 'typo-rules.json');
    writeFileSync(typoFile, TYPO);
    const gen = await run(['generate', '-m', model, '-n', '2', '--rules', `@${half}`, 'Hi']);
    expect(gen.code, gen.stderr).toBe(0);
    expect(ruleNotes(gen.stderr)).toEqual([
      `note: --rules @${half}: uniform entry "Sure!" does not resolve (no vocabulary item has its exact text) and is left out`,
    ]);
    const typo = await run(['generate', '-m', model, '-n', '2', '--rules', `@${typoFile}`, 'Hi']);
    expect([typo.code, typo.stdout, typo.stderr]).toEqual([2, '', typoError(`--rules @${typoFile}`)]);
    const chat = await run(['chat', '-m', model, '-n', '2', '--rules', `@${half}`], {
      input: `/rules @${half}\n/rules\n`,
    });
    expect(chat.code, chat.stderr).toBe(0);
    expect(chat.stdout).toContain(`rules: @${half}, format: tulu\n`);
    expect(chat.stdout).toContain(
      `you> rules: @${half}\nyou> rules in use: ${HALF} (/rules SPEC changes them)\n`,
    );
  });

  it('eval generate, rank and shift note them once a run, not per instruction, and refuse a no-op rule before any work', async () => {
    const out = join(tmp, 'run', 'outputs', 'rules.json');
    const flags = ['--instructions', instructions, '--max-tokens', '2', '--batch-size', '1'];
    const gen = await run(['eval', 'generate', '-m', model, ...flags, '--out', out, '--json']);
    expect(gen.code, gen.stderr).toBe(0);
    expect(ruleNotes(gen.stderr)).toEqual([hewittNote('--rules hewitt2024')]);
    expect(JSON.parse(gen.stdout)).toMatchObject({ count: 3, generated: 3 });

    const typoOut = join(tmp, 'run', 'outputs', 'typo.json');
    const typo = await run(['eval', 'generate', '-m', model, ...flags, '--rules', TYPO, '--out', typoOut]);
    expect([typo.code, typo.stderr]).toEqual([2, typoError('--rules custom JSON')]);
    expect(existsSync(typoOut)).toBe(false);
    expect(existsSync(`${typoOut}.journal.jsonl`)).toBe(false);

    const data = join(tmp, 'alpaca.json');
    writeFileSync(
      data,
      JSON.stringify([
        { instruction: 'Say hi.', input: '', output: 'Hi!' },
        { instruction: 'Count.', input: '', output: 'One, two.' },
      ]),
    );
    const rank = await run(['eval', 'rank', '-m', model, '--data', data, '--limit', '2', '--rules', TYPO]);
    expect([rank.code, rank.stderr]).toEqual([2, typoError('--rules custom JSON')]);
    const ranked = await run([
      'eval',
      'rank',
      '-m',
      model,
      '--data',
      data,
      '--limit',
      '2',
      '--rules',
      'uniform',
    ]);
    expect(ranked.code, ranked.stderr).toBe(0);
    expect(ruleNotes(ranked.stderr)).toEqual([hewittNote('--rules uniform')]);

    const shiftFlags = ['eval', 'shift', '--base', model, '--aligned', model, ...flags];
    const shift = await run([
      ...shiftFlags,
      '--aligned-rules',
      'hewitt2024',
      '--out',
      join(tmp, 'run', 'shift', 'rules.json'),
    ]);
    expect(shift.code, shift.stderr).toBe(0);
    expect(ruleNotes(shift.stderr)).toEqual([hewittNote('--aligned-rules hewitt2024')]);
    const shiftTypo = await run([
      ...shiftFlags,
      '--aligned-rules',
      TYPO,
      '--out',
      join(tmp, 'run', 'shift', 'typo.json'),
    ]);
    expect([shiftTypo.code, shiftTypo.stderr]).toEqual([2, typoError('--aligned-rules custom JSON')]);
  });

  it('eval ablations notes each subset that leaves entries out, once, when the subset begins', async () => {
    const runDir = join(tmp, 'ablations');
    const args = [
      'eval',
      'ablations',
      '-m',
      model,
      '--run-dir',
      runDir,
      '--instructions',
      instructions,
      '--max-tokens',
      '2',
      '--batch-size',
      '1',
      '--subsets',
      'eos-uniform,none,uniform-diversity,eos-diversity',
    ];
    const r = await run(args);
    expect(r.code, r.stderr).toBe(0);
    expect(ruleNotes(r.stderr)).toEqual([
      hewittNote('--subsets eos-uniform'),
      hewittNote('--subsets uniform-diversity'),
    ]);
    // a rerun finds every subset finished: nothing runs, nothing to note
    const again = await run(args);
    expect([again.code, ruleNotes(again.stderr)]).toEqual([0, []]);
  });

  it('chat notes its rules and each /rules change; a /rules that would change nothing is refused, the rules kept', async () => {
    const r = await run(['chat', '-m', model, '-n', '2'], {
      input: `/rules ${TYPO}\n/rules eos-uniform\n`,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `/rules custom JSON: the uniform rule's one entry, "Sure!", matches no token of this vocabulary, so the rule would change nothing`,
    );
    expect(r.stdout).toContain('rules: eos-uniform\n');
    expect(ruleNotes(r.stderr)).toEqual([hewittNote('--rules hewitt2024'), hewittNote('/rules eos-uniform')]);
    const typo = await run(['chat', '-m', model, '--rules', TYPO]);
    expect([typo.code, typo.stderr]).toEqual([2, typoError('--rules custom JSON')]);
  });

  it("serve's default rules are noted once per model (the API's line), before it listens; a no-op rule is refused", async () => {
    const server = startServe(['-m', model, '-m', `other=${model}`]);
    // answering first: a SIGINT at once after "listening" can land before serve's handler (a race of its own)
    expect((await fetch(`${await server.url}/health`)).status).toBe(200);
    expect(await stop(server.child, server.exited)).toBe(0);
    // the API logs the entries left out of each model's default rules; the CLI does not say them again
    expect(ruleNotes(server.stderr()).map((line) => line.slice(0, line.indexOf(' left out')))).toEqual([
      `[implicit-it api] rules hewitt2024 on the model "${model.split('/').at(-1)}": 8 entries match no token of its vocabulary and are`,
      '[implicit-it api] rules hewitt2024 on the model "other": 8 entries match no token of its vocabulary and are',
    ]);
    const typo = await run(['serve', '-m', model, '--port', '0', '--rules', TYPO]);
    expect([typo.code, typo.stderr]).toEqual([2, typoError('--rules custom JSON')]);
  });
});
