import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeShared, SHARED_DIR, sharedPath } from '@implicit-it/testkit';
import { describe, expect, it } from 'vitest';
import {
  buildDataset,
  DATASET_RECIPE_NAMES,
  DataFileError,
  datasetSummary,
  examplesToJsonl,
  FinetuneOptionError,
  ownDataName,
} from '../src/index.js';

const DATA = join(SHARED_DIR, 'data');
const files = [
  'data/lima/lima_data.jsonl',
  'data/lima/lima_no_instruction.jsonl',
  'data/gsm8k/train.jsonl',
  'data/mbpp/mbpp.jsonl',
  'data/poetry/poems.csv',
  'data/recipes/recipes.csv',
  'data/chess/games.pgn',
];

describeShared('dataset recipes on ../shared/data', files, () => {
  it.each([
    ['lima', 1030, 0],
    ['lima-response', 1030, 0],
    ['gsm', 1000, 0],
    ['mbpp', 374, 0],
    ['poetry', 571, 2],
    ['recipes', 1000, 0],
    ['chess', 1000, 0],
  ])('%s: %i examples, %i skipped', async (recipe, count, skipped) => {
    const r = await buildDataset({ recipe, dataDir: DATA });
    expect(r.count).toBe(count);
    expect(r.skipped).toBe(skipped);
    expect(r.total).toBe(r.expected);
    expect(new Set(r.train.map((e) => e.id)).size).toBe(count);
  });

  it("lima-response equals the paper's lima_no_instruction.jsonl", async () => {
    const r = await buildDataset({ recipe: 'lima-response', dataDir: DATA });
    const paper = readFileSync(sharedPath('data/lima/lima_no_instruction.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(r.train.map((e) => e.messages)).toEqual(paper.map((e) => e.messages));
    expect(r.train.map((e) => e.id)).toEqual(paper.map((e) => e.id));
  });

  it("single-task layouts follow the paper's make_*.py scripts", async () => {
    const gsm = await buildDataset({ recipe: 'gsm', dataDir: DATA });
    expect(gsm.train[0]!.id).toBe('gsm8k_0');
    expect(gsm.train[0]!.messages[0]!.content).toMatch(/^Natalia sold clips/);
    const mbpp = await buildDataset({ recipe: 'mbpp', dataDir: DATA });
    expect(mbpp.train[0]!.messages[0]!.content).toMatch(/longest chain/); // task_id 601
    // the code as the raw file (and make_mbpp.py) has it, Windows line ends included
    const raw = readFileSync(join(DATA, 'mbpp', 'mbpp.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((r) => r.task_id === 601);
    expect(mbpp.train[0]!.messages[1]!.content).toBe(raw.code);
    expect(raw.code).toContain('\r\n');
    const poetry = await buildDataset({ recipe: 'poetry', dataDir: DATA });
    expect(poetry.train[0]!.messages[0]!.content).toBe('Write a poem called The Phoenix and the Turtle');
    expect(poetry.issues.every((i) => i.kind === 'skipped' && i.line > 1)).toBe(true);
    const recipes = await buildDataset({ recipe: 'recipes', dataDir: DATA });
    expect(recipes.train[0]!.messages[0]!.content).toBe('Recipe for Crispy Salt and Pepper Potatoes');
    expect(recipes.train[0]!.messages[1]!.content).toMatch(
      /^ - 2 lbs baby potatoes\n - 3 tbsp olive oil\n[\s\S]*\n\n\n1\. Preheat/,
    );
    const chess = await buildDataset({ recipe: 'chess', dataDir: DATA });
    expect(chess.train[0]!.messages[0]!.content).toBe('[WhiteElo "3318"]\n[BlackElo "3303"]\n');
    expect(chess.train[0]!.messages[1]!.content).toMatch(/^1\. d4 d5 2\. Nc3 e5 3\. e4 dxe4 /);
    expect(chess.train.every((e) => /^[^{}%]*(1-0|0-1|1\/2-1\/2|\*)$/.test(e.messages[1]!.content))).toBe(
      true,
    );
    expect(chess.train.some((e) => /\d\.\.\./.test(e.messages[1]!.content))).toBe(false);
  });

  it('writes JSONL plus a seeded validation split, and a JSON summary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-data-'));
    const out = join(dir, 'gsm.jsonl');
    const r = await buildDataset({
      recipe: 'gsm',
      dataDir: DATA,
      out,
      validation: { fraction: 0.05, seed: 3 },
    });
    expect([r.count, r.validationCount]).toEqual([950, 50]);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(950);
    expect(Object.keys(JSON.parse(lines[0]!))).toEqual(['dataset', 'id', 'messages']);
    expect(readFileSync(join(dir, 'gsm.val.jsonl'), 'utf8').trim().split('\n')).toHaveLength(50);
    const again = await buildDataset({
      recipe: 'gsm',
      dataDir: DATA,
      validation: { fraction: 0.05, seed: 3 },
    });
    expect(again.validation.map((e) => e.id)).toEqual(r.validation.map((e) => e.id));
    const summary = datasetSummary(r);
    expect(summary).toMatchObject({ recipe: 'gsm', count: 950, skipped: 0, notes: [] });
    expect(summary).not.toHaveProperty('train');
    expect(summary.stats.assistantChars.count).toBe(1000);
  });

  it('a split of no examples writes no validation file; an earlier one is left, and said', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-data-'));
    const out = join(dir, 'gsm.jsonl');
    const val = join(dir, 'gsm.val.jsonl');
    const none = await buildDataset({ recipe: 'gsm', dataDir: DATA, out, validation: { count: 0 } });
    expect([none.count, none.validationCount, none.files, none.notes]).toEqual([1000, 0, { train: out }, []]);
    expect(existsSync(val)).toBe(false);
    await buildDataset({ recipe: 'gsm', dataDir: DATA, out, validation: { count: 5 } });
    const earlier = readFileSync(val, 'utf8');
    const left = `${val} is left as it was, not this build's validation set: this build holds out no examples (all 1000 are in the training set)`;
    for (const validation of [{ count: 0 }, undefined]) {
      const r = await buildDataset({
        recipe: 'gsm',
        dataDir: DATA,
        out,
        ...(validation ? { validation } : {}),
      });
      expect([r.files, r.notes]).toEqual([{ train: out }, [left]]);
      expect(readFileSync(val, 'utf8')).toBe(earlier);
    }
  });
});

describe('bad input', () => {
  it('reports malformed rows with their lines, never crashes, never silently changes the count', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-bad-'));
    mkdirSync(join(dir, 'gsm8k'));
    mkdirSync(join(dir, 'recipes'));
    const good = (i: number) => JSON.stringify({ question: `q${i}`, answer: `a${i}` });
    writeFileSync(
      join(dir, 'gsm8k/train.jsonl'),
      [good(0), '{not json', good(2), JSON.stringify({ question: 1 }), good(4)].join('\n'),
    );
    const gsm = await buildDataset({ recipe: 'gsm', dataDir: dir });
    expect(gsm.count).toBe(3);
    expect(gsm.issues.map((i) => [i.kind, i.line])).toEqual([
      ['malformed', 2],
      ['malformed', 4],
    ]);
    expect(gsm.issues[1]!.reason).toMatch(/"question"/);
    expect(gsm.train.map((e) => e.id)).toEqual(['gsm8k_0', 'gsm8k_2', 'gsm8k_4']);

    writeFileSync(
      join(dir, 'recipes/recipes.csv'),
      'Title,Ingredients,Instructions,Image_Name\nA,"[\'x\', \'y\']","Mix\nwell",a\nB,"__import__(\'os\')",Boom,b\nC,"[\'z\']",Cook,c\n',
    );
    const rec = await buildDataset({ recipe: 'recipes', dataDir: dir });
    expect(rec.count).toBe(2);
    expect(rec.issues).toMatchObject([{ kind: 'malformed', line: 4, file: 'recipes/recipes.csv' }]);
    expect(rec.train[0]!.messages[1]!.content).toBe(' - x\n - y\n\n\nMix\nwell');
  });

  it('nothing to train on is an error naming why, and nothing is written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-empty-'));
    mkdirSync(join(dir, 'gsm8k'));
    const file = join(dir, 'gsm8k', 'train.jsonl');
    const out = join(dir, 'out.jsonl');
    writeFileSync(file, '');
    const empty = await buildDataset({ recipe: 'gsm', dataDir: dir, out }).catch((e) => e);
    expect(empty).toBeInstanceOf(DataFileError);
    expect(empty.message).toBe(
      `${file}: holds no records: nothing to train on; restore the file, or pass the \`dataDir\` option (CLI: --data-dir) pointing at a complete copy of the shared data (../shared/data)`,
    );
    writeFileSync(file, '{not json\n{"question": 1}\n');
    await expect(buildDataset({ recipe: 'gsm', dataDir: dir, out })).rejects.toThrow(
      `${file}: none of its 2 records makes a gsm example (2 skipped, the first at line 1: `,
    );
    writeFileSync(file, [1, 2, 3].map((i) => JSON.stringify({ question: `q${i}`, answer: 'a' })).join('\n'));
    for (const validation of [{ count: 3 }, { fraction: 0.9 }])
      await expect(buildDataset({ recipe: 'gsm', dataDir: dir, out, validation })).rejects.toThrow(
        'validation: holds out all 3 gsm examples, which leaves nothing to train on; hold out fewer (a count below 3, or a smaller fraction)',
      );
    // more than there is: the range that leaves something to train on, not the split's [0, 3]
    await expect(
      buildDataset({ recipe: 'gsm', dataDir: dir, out, validation: { count: 4 } }),
    ).rejects.toThrow(
      'validation: asks to hold out 4 of the 3 gsm examples; give a count of at most 2 (leaving one or more to train on), or a fraction',
    );
    expect(existsSync(out)).toBe(false);
  });

  it('creates the folder of the validation output, and writes nothing when it cannot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-valout-'));
    mkdirSync(join(dir, 'gsm8k'));
    const rows = [1, 2, 3, 4].map((i) => JSON.stringify({ question: `q${i}`, answer: 'a' }));
    writeFileSync(join(dir, 'gsm8k', 'train.jsonl'), rows.join('\n'));
    const out = join(dir, 'vo', 'train.jsonl');
    const valOut = join(dir, 'vo', 'val', 'v.jsonl');
    const r = await buildDataset({ recipe: 'gsm', dataDir: dir, out, validation: { count: 1, out: valOut } });
    expect(r.files).toEqual({ train: out, validation: valOut });
    expect(readFileSync(valOut, 'utf8').trim().split('\n')).toHaveLength(1);
    // a folder that cannot be made (a file is in the way): refused before the training file is written
    writeFileSync(join(dir, 'blocker'), '');
    const out2 = join(dir, 'vo2', 'train.jsonl');
    const err = await buildDataset({
      recipe: 'gsm',
      dataDir: dir,
      out: out2,
      validation: { count: 1, out: join(dir, 'blocker', 'v.jsonl') },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(FinetuneOptionError);
    expect(err.field).toBe('validation.out');
    expect(err.message).toMatch(
      `validation.out: cannot create the folder of ${join(dir, 'blocker', 'v.jsonl')} (`,
    );
    expect(existsSync(out2)).toBe(false);
  });

  it('throws DataFileError for a missing file and FinetuneOptionError for an unknown recipe', async () => {
    await expect(buildDataset({ recipe: 'gsm', dataDir: '/nonexistent' })).rejects.toThrow(DataFileError);
    await expect(buildDataset({ recipe: 'gsm', dataDir: '/nonexistent' })).rejects.toThrow(/--data-dir/);
    await expect(buildDataset({ recipe: 'alpaca' })).rejects.toThrow(FinetuneOptionError);
    expect(DATASET_RECIPE_NAMES).toHaveLength(7);
  });
});

describeShared('buildDataset output paths', ['data/mbpp/mbpp.jsonl'], () => {
  it('refuses a validation output that is the training output', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'ft-same-')), 'same.jsonl');
    await expect(
      buildDataset({ recipe: 'mbpp', dataDir: DATA, out, validation: { count: 5, out } }),
    ).rejects.toThrow(`validation.out: is the training output ${out}`);
  });
});

describe('your own data (data: FILE.jsonl)', () => {
  const row = (user: string, assistant: string, extra: object = {}) =>
    JSON.stringify({
      ...extra,
      messages: [
        { role: 'user', content: user },
        { role: 'assistant', content: assistant },
      ],
    });

  it('builds messages rows as the recipes build theirs: ids given where missing, bad rows listed with their lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-own-'));
    const file = join(dir, 'my chats.jsonl');
    const text = [
      row('Name a prime.', '7'),
      row('Capital of France?', 'Paris.', { id: 'paris', dataset: 'geo' }),
      '{not json',
      JSON.stringify({ instruction: 'Add 2 and 2.', input: '', output: '4' }),
      row('Again?', 'Yes.', { id: 'paris' }),
      row('Say nothing.', ''),
      JSON.stringify({
        messages: [{ role: 'system', content: 'Be brief.' }, ...JSON.parse(row('Hi', 'Hello.')).messages],
      }),
    ].join('\n');
    writeFileSync(file, `${text}\n`);
    const out = join(dir, 'out.jsonl');
    const built = await buildDataset({ data: file, out });
    expect(built.recipe).toBe('my-chats');
    expect(built.source).toEqual({
      file,
      sha256: createHash('sha256').update(`${text}\n`).digest('hex'),
      removeInstructions: false,
    });
    expect([built.count, built.total, built.expected, built.rawCount, built.skipped]).toEqual([
      3, 3, 7, 7, 4,
    ]);
    expect(built.train.map((e) => [e.dataset, e.id])).toEqual([
      ['my-chats', 'my-chats_0'],
      ['geo', 'paris'],
      ['my-chats', 'my-chats_6'],
    ]);
    expect(built.issues.map((i) => [i.file, i.line, i.kind])).toEqual([
      ['my chats.jsonl', 3, 'malformed'],
      ['my chats.jsonl', 4, 'malformed'],
      ['my chats.jsonl', 5, 'malformed'],
      ['my chats.jsonl', 6, 'malformed'],
    ]);
    expect(built.issues.slice(1).map((i) => i.reason)).toEqual([
      'not a messages row but an Alpaca row ({instruction, input, output}): write it as {"messages": [{"role": "user", "content": instruction (and input)}, {"role": "assistant", "content": output}]}',
      'id "paris" is the id of line 2 too: ids name one example each',
      'no assistant message with content: nothing to train on (the loss is on assistant turns only)',
    ]);
    expect(readFileSync(out, 'utf8')).toBe(examplesToJsonl(built.train));
    // response tuning on your own data: every user turn emptied, the system turn kept
    const responses = await buildDataset({ data: file, removeInstructions: true });
    expect(responses.train[2]!.messages.map((m) => m.content)).toEqual(['Be brief.', '', 'Hello.']);
    expect(responses.source!.removeInstructions).toBe(true);
  });

  it('reads a file written on Windows: CRLF line ends and a UTF-8 byte order mark', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-own-'));
    const file = join(dir, 'notepad.jsonl');
    writeFileSync(
      file,
      `\ufeff${row('Name a prime.', '7')}\r\n\r\n${row('Capital of France?', 'Paris.')}\r\n`,
    );
    const built = await buildDataset({ data: file });
    expect(built.issues).toEqual([]);
    expect([built.count, built.rawCount]).toEqual([2, 2]);
    expect(built.train.map((e) => [e.id, e.messages.map((m) => m.content)])).toEqual([
      ['notepad_0', ['Name a prime.', '7']],
      ['notepad_1', ['Capital of France?', 'Paris.']],
    ]);
  });

  it('names itself apart from the recipes, and refuses what cannot be meant', async () => {
    expect(['gsm.jsonl', 'poetry', 'a b+c.JSONL', '.jsonl'].map(ownDataName)).toEqual([
      'gsm-data',
      'poetry-data',
      'a-b-c',
      'data',
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'ft-own-bad-'));
    const file = join(dir, 'mine.jsonl');
    writeFileSync(file, `${row('q', 'a')}\n`);
    await expect(buildDataset({})).rejects.toThrow(
      'recipe: give a dataset recipe (one of the paper\'s training sets), or `data`: a JSONL file of your own {"messages": [...]} rows',
    );
    await expect(buildDataset({ recipe: 'gsm', data: file })).rejects.toThrow(
      'data: give either a recipe or `data` (your own examples), not both',
    );
    await expect(buildDataset({ recipe: 'lima', removeInstructions: true })).rejects.toThrow(
      'removeInstructions: applies to your own `data`; the recipes say it themselves (lima-response is LIMA with its instructions removed)',
    );
    const missing = join(dir, 'nope.jsonl');
    await expect(buildDataset({ data: missing })).rejects.toThrow(
      `${missing}: cannot read it (ENOENT); give \`data\` (CLI: --data) a JSONL file of {"messages": [...]} rows`,
    );
    writeFileSync(file, `${JSON.stringify({ prompt: 'p', completion: 'c' })}\n`);
    await expect(buildDataset({ data: file })).rejects.toThrow(
      `${file}: none of its 1 records makes a mine example (1 skipped, the first at line 1: not a messages row but a prompt/completion row`,
    );
    expect(
      (await buildDataset({ recipe: 'gsm', dataDir: '/nowhere', removeInstructions: false }).catch((e) => e))
        .name,
    ).toBe(
      'DataFileError', // false is no removal asked for: the recipe is read (and its file is missing)
    );
    // undefined is no option given, as a spread of optional settings leaves it
    writeFileSync(file, `${row('q', 'a')}\n`);
    expect((await buildDataset({ data: file, recipe: undefined, removeInstructions: undefined })).count).toBe(
      1,
    );
  });
});

describe('buildDataset options', () => {
  it('refuses an unknown option, or a validation split it cannot read, before reading any data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-options-'));
    const out = join(dir, 'train.jsonl');
    const refused = async (options: object, field: string, message: string) => {
      const error = await buildDataset({ recipe: 'gsm', dataDir: join(dir, 'none'), out, ...options }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(FinetuneOptionError);
      expect(error).toMatchObject({ field, message: `${field}: ${message}` });
    };
    await refused(
      { valdation: { fraction: 0.05 } },
      'valdation',
      'not an option of buildDataset (did you mean validation?); the options are recipe, data, removeInstructions, dataDir, out, validation, onProgress',
    );
    await refused(
      { validation: 0.05 },
      'validation',
      'expected an object such as { fraction: 0.05, seed: 1 } or { count: 50 }, got 0.05',
    );
    await refused(
      { validation: { fracton: 0.05 } },
      'validation.fracton',
      'not an option of the validation split (did you mean validation.fraction?); the options are validation.fraction, validation.count, validation.seed, validation.out',
    );
    await expect(buildDataset(undefined as never)).rejects.toThrow(
      'options: expected an object of buildDataset options',
    );
    expect(existsSync(out)).toBe(false);
  });
});
