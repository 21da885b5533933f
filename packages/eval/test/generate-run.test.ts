import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeRecorded } from '../src/done-record.js';
import {
  AdapterContractError,
  EvalInputError,
  finishedRun,
  finishedRunDifferences,
  type Generator,
  generateRun,
  type Progress,
  planAblations,
  ResumeMismatchError,
  readInstructions,
  readModelOutputs,
  runAblations,
} from '../src/index.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'eval-gen-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A generator that records what it was asked. */
function recording(fn: (x: string) => string = (x) => `out:${x}`) {
  const seen: string[] = [];
  const generator: Generator = {
    async generateBatch(instructions) {
      seen.push(...instructions);
      return instructions.map((x) => ({ text: fn(x) }));
    },
  };
  return { generator, seen };
}

const instructions = Array.from({ length: 23 }, (_, i) => ({
  instruction: `task ${i} ${'x'.repeat((i % 5) + 1)}`,
  dataset: 'd',
}));

/** Outputs `out:INSTRUCTION`, and fails its third batch (`calls` counts them: reset it to fail again). */
function failingAtThirdBatch(): Generator & { calls: number } {
  return {
    calls: 0,
    async generateBatch(xs) {
      if (++this.calls === 3) throw new Error('boom');
      return xs.map((x) => ({ text: `out:${x}` }));
    },
  };
}

/** Generator "g" over `instructions` into a new OUT, 5 a batch, failing at its third batch (10 journaled). */
async function interruptedRun() {
  const out = join(tmp(), 'o.json');
  const failing = failingAtThirdBatch();
  await expect(
    generateRun({ generator: failing, instructions, out, generatorName: 'g', batchSize: 5 }),
  ).rejects.toThrow('boom');
  return { out, failing };
}

describe('generateRun', () => {
  it('readModelOutputs names rows without a generator after their file (val-gpt3.5.json: val-gpt3.5)', () => {
    const dir = tmp();
    for (const name of ['val-gpt3.5.json', 'ref.model_outputs.json']) {
      writeFileSync(
        join(dir, name),
        JSON.stringify([
          { instruction: 'a', output: 'b' },
          { instruction: 'c', output: 'd', generator: 'x' },
        ]),
      );
    }
    expect(readModelOutputs(join(dir, 'val-gpt3.5.json')).map((o) => o.generator)).toEqual([
      'val-gpt3.5',
      'x',
    ]);
    expect(readModelOutputs(join(dir, 'ref.model_outputs.json'))[0]!.generator).toBe('ref');
  });

  it('readModelOutputs reads the same rows one a line from a .jsonl file, and names a bad line', () => {
    const dir = tmp();
    const rows = [
      { instruction: 'a', output: 'b', generator: 'x' },
      { instruction: 'c', output: 'd' },
    ];
    writeFileSync(join(dir, 'mine.jsonl'), `${rows.map((r) => JSON.stringify(r)).join('\n')}\n\n`);
    expect(readModelOutputs(join(dir, 'mine.jsonl'))).toEqual([
      { instruction: 'a', output: 'b', generator: 'x' },
      { instruction: 'c', output: 'd', generator: 'mine' },
    ]);
    writeFileSync(join(dir, 'bad.jsonl'), `${JSON.stringify(rows[0])}\n{"instruction": \n`);
    expect(() => readModelOutputs(join(dir, 'bad.jsonl'))).toThrow(
      `${join(dir, 'bad.jsonl')}: line 2 is not valid JSON (a .jsonl file holds one object a line)`,
    );
  });

  it('names the line of a bad .jsonl row (blank lines counted) and the index of a bad array row', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'i.jsonl'), '{"instruction": "a"}\n\n{"instr": "b"}\n');
    expect(() => readInstructions(join(dir, 'i.jsonl'))).toThrow(
      `${join(dir, 'i.jsonl')}: line 3: "instruction" must be a string, got undefined`,
    );
    writeFileSync(join(dir, 'o.jsonl'), '{"instruction": "a", "output": "b"}\n\n\n[1]\n');
    expect(() => readModelOutputs(join(dir, 'o.jsonl'))).toThrow(
      `${join(dir, 'o.jsonl')}: line 4 is not an object`,
    );
    writeFileSync(join(dir, 'i.json'), JSON.stringify([{ instruction: 'a' }, { instruction: 2 }]));
    expect(() => readInstructions(join(dir, 'i.json'))).toThrow(
      `${join(dir, 'i.json')}: [1]: "instruction" must be a string, got 2`,
    );
  });

  it('reads files written on Windows: CRLF line ends and a UTF-8 byte order mark', () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'i.jsonl'),
      '\ufeff{"instruction": "a"}\r\n\r\n{"instruction": "b", "dataset": "d"}\r\n',
    );
    expect(readInstructions(join(dir, 'i.jsonl'))).toEqual([
      { instruction: 'a' },
      { instruction: 'b', dataset: 'd' },
    ]);
    writeFileSync(
      join(dir, 'i.json'),
      '\ufeff[\r\n  {"instruction": "a"},\r\n  {"instruction": "b"}\r\n]\r\n',
    );
    expect(readInstructions(join(dir, 'i.json'))).toEqual([{ instruction: 'a' }, { instruction: 'b' }]);
    writeFileSync(
      join(dir, 'o.json'),
      `\ufeff${JSON.stringify([{ instruction: 'a', output: 'b', generator: 'g' }], null, 2).replaceAll('\n', '\r\n')}`,
    );
    expect(readModelOutputs(join(dir, 'o.json'))).toEqual([
      { instruction: 'a', output: 'b', generator: 'g' },
    ]);
  });

  it('writes model_outputs.json in order, stripped, in batches, with progress', async () => {
    const dir = tmp();
    // stripped as Python's str.strip: U+0085 and U+001C go, the BOM (U+FEFF) at the end stays
    const { generator, seen } = recording((x) => `  \x85out:${x}\n\x1c\ufeff`);
    const progress: Progress[] = [];
    const r = await generateRun({
      generator,
      instructions,
      out: join(dir, 'o.json'),
      generatorName: 'g',
      batchSize: 4,
      onProgress: (p) => progress.push(p),
    });
    expect(r.generated).toBe(23);
    expect(seen.sort()).toEqual(instructions.map((x) => x.instruction).sort());
    const written = readModelOutputs(join(dir, 'o.json'));
    expect(written).toEqual(
      instructions.map((x) => ({
        instruction: x.instruction,
        output: `out:${x.instruction}\n\x1c\ufeff`,
        generator: 'g',
        dataset: 'd',
      })),
    );
    expect(JSON.parse(readFileSync(join(dir, 'o.json'), 'utf8'))[0]).toEqual({
      instruction: 'task 0 x',
      output: 'out:task 0 x\n\x1c\ufeff',
      generator: 'g',
      dataset: 'd',
    });
    expect(progress.at(-1)).toEqual({ phase: 'generate', done: 23, total: 23, resumed: 0 });
    expect(progress.length).toBe(1 + Math.ceil(23 / 4));
    expect(existsSync(join(dir, 'o.json.journal.jsonl'))).toBe(false);
  });

  it('resumes from the journal and refuses a journal of another run', async () => {
    const { out } = await interruptedRun();
    expect(existsSync(out)).toBe(false);
    await expect(
      generateRun({
        generator: recording().generator,
        instructions,
        out,
        generatorName: 'other',
        batchSize: 5,
      }),
    ).rejects.toThrow(ResumeMismatchError);
    const { generator, seen } = recording();
    const r = await generateRun({ generator, instructions, out, generatorName: 'g', batchSize: 5 });
    expect(r.resumed).toBe(10);
    expect(seen.length).toBe(13);
    expect(readModelOutputs(out).map((o) => o.output)).toEqual(
      instructions.map((x) => `out:${x.instruction}`),
    );
  });

  it('replace: true begins a journal of another run again; its own journal is resumed either way', async () => {
    const { out, failing } = await interruptedRun();
    // its own journal: resumed under replace too
    failing.calls = 0;
    await expect(
      generateRun({ generator: failing, instructions, out, generatorName: 'g', batchSize: 5, replace: true }),
    ).rejects.toThrow('boom');
    expect(readFileSync(`${out}.journal.jsonl`, 'utf8').trim().split('\n').length).toBe(1 + 20);
    // another run's: begun again, everything generated by this run
    const { generator, seen } = recording();
    const r = await generateRun({
      generator,
      instructions,
      out,
      generatorName: 'other',
      batchSize: 5,
      replace: true,
    });
    expect([r.resumed, r.generated, seen.length]).toEqual([0, 23, 23]);
    expect(readModelOutputs(out).map((o) => o.generator)).toEqual(instructions.map(() => 'other'));
    expect(existsSync(`${out}.journal.jsonl`)).toBe(false);
  });

  it('refuses instructions given as strings, or rows without a string instruction, before generating, naming the row', async () => {
    const d = tmp();
    const { generator, seen } = recording();
    const out = join(d, 'o.json');
    const run = (instructions: unknown) =>
      generateRun({ generator, generatorName: 'g', out, instructions: instructions as never });
    const refused = async (instructions: unknown, message: string) => {
      const error = await run(instructions).catch((e: unknown) => e);
      expect(EvalInputError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({ field: 'instructions', message });
    };
    await refused(
      [{ instruction: 'a' }, 'What is 2 + 2?'],
      'instructions[1]: expected an { instruction } object, got the string "What is 2 + 2?" (write it as { instruction: "What is 2 + 2?" })',
    );
    await refused(
      [{ prompt: 'a' }],
      'instructions[0]: expected an object with a string "instruction", got {"prompt":"a"}',
    );
    await refused([null], 'instructions[0]: expected an object with a string "instruction", got null');
    const batch = await generateRun({
      generator,
      generatorName: 'g',
      out,
      instructions: [{ instruction: 'a' }],
      batchSize: '4' as unknown as number,
    }).catch((e: unknown) => e);
    expect(batch).toMatchObject({
      field: 'batchSize',
      message: 'batchSize must be a positive integer, got "4"',
    });
    const unnamed = { generator, instructions: [{ instruction: 'a' }] };
    await expect(generateRun({ ...unnamed, generatorName: 'g' } as never)).rejects.toThrow(
      "out: expected the path of the model_outputs.json to write (e.g. 'run/outputs/base.json'), got undefined",
    );
    await expect(generateRun({ ...unnamed, out } as never)).rejects.toThrow(
      "generatorName: expected the generator name of every output (e.g. 'smollm2-rules'), got undefined",
    );
    await refused(
      undefined,
      'instructions: expected an array of { instruction } objects or the path of a .jsonl / .json file of them, got undefined',
    );
    expect(() =>
      planAblations({ instructions: ['a'] as never, outDir: d, modelName: 'm', subsets: ['none'] }),
    ).toThrow('instructions[0]: expected an { instruction } object, got the string "a"');
    expect(seen).toEqual([]);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.journal.jsonl`)).toBe(false);
  });

  it('rejects a generator that breaks its contract', async () => {
    const bad: Generator = { generateBatch: async (xs) => xs.slice(1).map(() => ({ text: '' })) };
    await expect(
      generateRun({ generator: bad, instructions, out: join(tmp(), 'o.json'), generatorName: 'g' }),
    ).rejects.toThrow(AdapterContractError);
  });

  it('survives kill -9 mid-run: the rerun regenerates nothing already journaled', async () => {
    const dir = tmp();
    const many = Array.from({ length: 60 }, (_, i) => ({ instruction: `q${String(i).padStart(2, '0')}` }));
    const file = join(dir, 'instructions.json');
    writeFileSync(file, JSON.stringify(many));
    const out = join(dir, 'o.json');
    const journal = `${out}.journal.jsonl`;
    const dist = resolve(import.meta.dirname, '../dist/index.js');
    expect(existsSync(dist), 'build the package first (turbo runs build before test)').toBe(true);
    const child = spawn(
      process.execPath,
      [resolve(import.meta.dirname, 'fixtures/generate-child.mjs'), dist, file, out, '40'],
      { stdio: 'inherit' },
    );
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
    const lines = () =>
      existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').filter(Boolean).length : 0;
    const deadline = Date.now() + 20_000;
    while (lines() < 1 + 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(existsSync(out)).toBe(false);
    const journaled = readFileSync(journal, 'utf8')
      .split('\n')
      .filter(Boolean)
      .slice(1)
      .map((l) => JSON.parse(l) as { i: number; output: string });
    expect(journaled.length).toBeGreaterThanOrEqual(10);
    expect(journaled.length).toBeLessThan(60);

    const { generator, seen } = recording((x) => ` out:${x} `);
    const r = await generateRun({ generator, instructions: file, out, generatorName: 'slow', batchSize: 2 });
    expect(r.resumed).toBe(journaled.length);
    expect(seen.length).toBe(60 - journaled.length);
    for (const e of journaled) expect(seen).not.toContain(many[e.i]!.instruction);
    expect(readModelOutputs(out).map((o) => o.output)).toEqual(many.map((x) => `out:${x.instruction}`));
    expect(existsSync(journal)).toBe(false);
  }, 30_000);

  it('cuts a torn last journal line instead of failing', async () => {
    const dir = tmp();
    const out = join(dir, 'o.json');
    const calls = { n: 0 };
    const failing: Generator = {
      async generateBatch(xs) {
        if (++calls.n === 2) throw new Error('stop');
        return xs.map((x) => ({ text: `out:${x}` }));
      },
    };
    await expect(
      generateRun({ generator: failing, instructions, out, generatorName: 'g', batchSize: 3 }),
    ).rejects.toThrow('stop');
    writeFileSync(`${out}.journal.jsonl`, `${readFileSync(`${out}.journal.jsonl`, 'utf8')}{"i":7,"outp`);
    const { generator, seen } = recording();
    const r = await generateRun({ generator, instructions, out, generatorName: 'g', batchSize: 3 });
    expect(r.resumed).toBe(3);
    expect(seen.length).toBe(20);
  });
});

describe('runAblations', () => {
  it('writes one file per rule subset, with the paper limits, and skips finished subsets on rerun', async () => {
    const dir = tmp();
    const made: { subset: string; rules: object; max: number | undefined }[] = [];
    const create = (rules: object, subset: string): Generator => ({
      async generateBatch(xs, o) {
        made.push({ subset, rules, max: o.maxNewTokens });
        return xs.map((x) => ({ text: `${subset}:${x}` }));
      },
    });
    const runs = await runAblations({
      createGenerator: create,
      instructions: instructions.slice(0, 3),
      outDir: dir,
      modelName: 'base',
    });
    expect(runs.map((r) => r.subset)).toEqual([
      'eos-uniform-diversity',
      'uniform-diversity',
      'eos-uniform',
      'eos-diversity',
      'none',
    ]);
    const none = readModelOutputs(join(dir, 'none.json'));
    expect(none[0]).toMatchObject({ output: `none:${instructions[0]!.instruction}`, generator: 'base-none' });
    const limits = Object.fromEntries(made.map((m) => [m.subset, m.max]));
    expect(limits).toEqual({
      'eos-uniform-diversity': 8192,
      'uniform-diversity': 512,
      'eos-uniform': 8192,
      'eos-diversity': 8192,
      none: 512,
    });
    expect(made.find((m) => m.subset === 'none')!.rules).toEqual({});
    expect(Object.keys(made.find((m) => m.subset === 'eos-diversity')!.rules).sort()).toEqual([
      'eos',
      'used',
    ]);
    made.length = 0;
    const again = await runAblations({
      createGenerator: create,
      instructions: instructions.slice(0, 3),
      outDir: dir,
      modelName: 'base',
    });
    expect(made.length).toBe(0);
    expect(again.every((r) => r.generated === 0 && r.skipped)).toBe(true);
    expect(runs.some((r) => r.skipped)).toBe(false);
  });

  it('refuses to replace a finished subset whose run differed (model, token limit, token ids) unless replace: true, never reusing its outputs', async () => {
    const dir = tmp();
    const calls: string[] = [];
    const create =
      (model: string) =>
      (_rules: object, subset: string): Generator => ({
        async generateBatch(xs) {
          calls.push(`${model}:${subset}`);
          return xs.map((x, k) => ({ text: `${model}:${x}`, tokenIds: [k, 7] }));
        },
      });
    const base = { instructions: instructions.slice(0, 2), outDir: dir, modelName: 'm', subsets: ['none'] };
    const out = join(dir, 'none.json');
    await runAblations({ ...base, createGenerator: create('A'), fingerprint: { model: 'dirA' } });
    expect(existsSync(join(dir, 'none.json.done'))).toBe(true);
    expect(calls).toEqual(['A:none']);

    // same options: skipped
    const same = await runAblations({
      ...base,
      createGenerator: create('A'),
      fingerprint: { model: 'dirA' },
    });
    expect(same[0]!.generated).toBe(0);
    expect(calls).toEqual(['A:none']);

    // another model dir: refused before generating, naming what differs; the outputs stay
    const refused = await runAblations({
      ...base,
      createGenerator: create('B'),
      fingerprint: { model: 'dirB' },
    }).catch((e) => e);
    expect(refused).toBeInstanceOf(EvalInputError);
    expect(refused.field).toBe('out');
    expect(refused.message).toBe(
      `${out}: holds the finished outputs of another run (different fingerprint.model), so it is not replaced; pass replace: true to replace it, or choose another out`,
    );
    expect(calls).toEqual(['A:none']);
    expect(readModelOutputs(out)[0]!.output).toBe(`A:${instructions[0]!.instruction}`);

    // replace: true regenerates, for another model dir, token limit, token ids
    const other = await runAblations({
      ...base,
      createGenerator: create('B'),
      fingerprint: { model: 'dirB' },
      replace: true,
    });
    expect(other[0]!.generated).toBe(2);
    expect(readModelOutputs(out)[0]!.output).toBe(`B:${instructions[0]!.instruction}`);
    const limited = { ...base, fingerprint: { model: 'dirB' }, maxNewTokens: 7 };
    await expect(runAblations({ ...limited, createGenerator: create('C') })).rejects.toThrow(
      'different maxNewTokens',
    );
    await runAblations({ ...limited, createGenerator: create('C'), replace: true });
    const ids = await runAblations({
      ...limited,
      createGenerator: create('D'),
      tokenIds: true,
      replace: true,
    });
    expect(calls).toEqual(['A:none', 'B:none', 'C:none', 'D:none']);
    expect(ids[0]!.outputs[0]!.token_ids).toEqual([0, 7]);

    // an output file without a record of its run (written some other way) is neither trusted nor replaced
    rmSync(join(dir, 'none.json.done'));
    const withIds = { ...limited, tokenIds: true };
    await expect(runAblations({ ...withIds, createGenerator: create('E') })).rejects.toThrow(
      `${out}: exists, with no record of the run that wrote it (${out}.done): it may be anything, so it is not replaced; pass replace: true to replace it, or choose another out`,
    );
    expect(calls.at(-1)).toBe('D:none');
    await runAblations({ ...withIds, createGenerator: create('E'), replace: true });
    expect(calls.at(-1)).toBe('E:none');
  });

  it('planAblations names the runs runAblations makes, so that outputs on disk can be checked first', async () => {
    const dir = tmp();
    const base = { instructions: instructions.slice(0, 2), outDir: dir, modelName: 'm' };
    const plan = planAblations({ ...base, subsets: ['none', 'eos'], fingerprint: { model: 'dirA' } });
    expect(plan.map((p) => [p.subset, p.run.out, p.run.generatorName, p.run.maxNewTokens])).toEqual([
      ['none', join(dir, 'none.json'), 'm-none', 512],
      ['eos', join(dir, 'eos.json'), 'm-eos', 8192],
    ]);
    expect(plan[1]!.run.fingerprint).toEqual({ model: 'dirA', subset: 'eos', rules: plan[1]!.rules });
    const { generator } = recording();
    await runAblations({
      ...base,
      subsets: ['none'],
      fingerprint: { model: 'dirA' },
      createGenerator: () => generator,
    });
    // the plan of the same options finds the run finished; another model's finds what differs
    expect(finishedRun(plan[0]!.run)?.length).toBe(2);
    const [other] = planAblations({
      ...base,
      subsets: ['none'],
      fingerprint: { model: 'dirB' },
      maxNewTokens: 9,
    });
    expect(finishedRun(other!.run)).toBeUndefined();
    expect(finishedRunDifferences(other!.run)).toEqual(['maxNewTokens', 'fingerprint.model']);
    expect(() => planAblations({ ...base, subsets: ['bogus'] })).toThrow(/unknown rule set "bogus"/);
  });

  it('rejects an unknown subset before generating anything', async () => {
    const { generator, seen } = recording();
    await expect(
      runAblations({
        createGenerator: () => generator,
        instructions,
        outDir: tmp(),
        modelName: 'b',
        subsets: ['eos', 'bogus'],
      }),
    ).rejects.toThrow(/unknown rule set "bogus"/);
    expect(seen.length).toBe(0);
  });
});

describe('Journal', () => {
  it('accepts the same header with keys in another order, refuses a different one', async () => {
    const { Journal } = await import('../src/index.js');
    const path = join(tmp(), 'j.jsonl');
    const a = Journal.open<{ i: number }>(path, { model: 'x', opts: { a: 1, b: 2 } });
    a.append([{ i: 1 }]);
    a.close();
    const b = Journal.open<{ i: number }>(path, { opts: { b: 2, a: 1 }, model: 'x' });
    expect(b.entries).toEqual([{ i: 1 }]);
    b.close();
    expect(() => Journal.open(path, { model: 'y', opts: { a: 1, b: 2 } })).toThrow(ResumeMismatchError);
    // the error names the settings that differ, down into the fingerprint, not the raw headers
    const c = Journal.open<{ i: number }>(`${path}.2`, { n: 1, fingerprint: { rules: 'off', model: 'm' } });
    c.close();
    const error = (() => {
      try {
        Journal.open(`${path}.2`, { n: 2, fingerprint: { rules: 'hewitt2024', model: 'm' } });
      } catch (e) {
        return e as InstanceType<typeof ResumeMismatchError>;
      }
    })();
    expect(error?.differences).toEqual(['n', 'fingerprint.rules']);
    // and carries the journal's own header, for a message that names what that run was
    expect(error?.stored).toEqual({ n: 1, fingerprint: { rules: 'off', model: 'm' } });
    expect(error?.message).toBe(
      `${path}.2: was written by a run with other settings (different n, fingerprint.rules); delete it to start over, or rerun with the options it was written with`,
    );
  });

  it('header: the settings a journal was begun with, read without opening it; undefined for none or a damaged one', async () => {
    const { Journal } = await import('../src/index.js');
    const path = join(tmp(), 'h.jsonl');
    expect(Journal.header(path)).toBeUndefined();
    const header = {
      generator: 'tiny-custom',
      fingerprint: { rules: { used: { penalty: -2, scope: 'response' } } },
    };
    const j = Journal.open<{ i: number }>(path, header);
    j.append([{ i: 1 }]);
    j.close();
    expect(Journal.header(path)).toEqual(header);
    // a header longer than one read, and a first line split across reads
    const long = { generator: 'g', note: 'x'.repeat(200_000) };
    const k = Journal.open<{ i: number }>(`${path}.long`, long);
    k.append([{ i: 1 }]);
    k.close();
    expect(Journal.header(`${path}.long`)).toEqual(long);
    for (const text of ['', '{"journal":{"a":1}', 'not json\n', '{"journal":[1]}\n', '{"other":{}}\n']) {
      writeFileSync(path, text);
      expect(Journal.header(path), JSON.stringify(text)).toBeUndefined();
    }
  });

  it('restart: begins a journal of another run, or a damaged one, again; resumes its own', async () => {
    const { Journal } = await import('../src/index.js');
    const path = join(tmp(), 'j.jsonl');
    const a = Journal.open<{ i: number }>(path, { model: 'x' });
    a.append([{ i: 1 }, { i: 2 }]);
    a.close();
    const own = Journal.open<{ i: number }>(path, { model: 'x' }, { restart: true });
    expect(own.entries).toEqual([{ i: 1 }, { i: 2 }]);
    own.close();
    const other = Journal.open<{ i: number }>(path, { model: 'y' }, { restart: true });
    expect(other.entries).toEqual([]);
    other.append([{ i: 3 }]);
    other.close();
    expect(readFileSync(path, 'utf8')).toBe('{"journal":{"model":"y"}}\n{"i":3}\n');
    // a damaged line before the last: refused without restart, begun again with it
    writeFileSync(path, '{"journal":{"model":"y"}}\nnot json\n{"i":3}\n');
    expect(() => Journal.open(path, { model: 'y' })).toThrow(
      `${path}: line 2 is not valid JSON (the file is damaged); delete it to start over, or rerun with the options it was written with`,
    );
    const damaged = Journal.open<{ i: number }>(path, { model: 'y' }, { restart: true });
    expect(damaged.entries).toEqual([]);
    damaged.close();
    expect(readFileSync(path, 'utf8')).toBe('{"journal":{"model":"y"}}\n');
  });

  it('headerDifferences names the paths within the fingerprint down to the values that differ', async () => {
    const { headerDifferences } = await import('../src/index.js');
    const model = (eos: string, graph = 'g1') => ({
      onnx: 'onnx/model.onnx',
      files: { 'generation_config.json': eos, 'onnx/model.onnx': graph },
    });
    expect(
      headerDifferences(
        { n: 1, opts: { a: 1 }, fingerprint: { model: model('e2'), rules: { eos: {} } } },
        { n: 1, opts: { a: 2 }, fingerprint: { model: model('e1'), rules: 'off' } },
      ),
    ).toEqual(['opts', 'fingerprint.model.files.generation_config.json', 'fingerprint.rules']);
    // a key only one side has (a record of an older fingerprint) is named where it is
    expect(
      headerDifferences(
        { fingerprint: { model: model('e1') } },
        { fingerprint: { model: { onnx: 'onnx/model.onnx', mtimeMs: 1 } } },
      ),
    ).toEqual(['fingerprint.model.files', 'fingerprint.model.mtimeMs']);
  });

  it('cuts off an unparsable last line (ended by a newline or not), refuses damage before it', async () => {
    const { Journal } = await import('../src/index.js');
    const path = join(tmp(), 'j.jsonl');
    const a = Journal.open<{ i: number }>(path, { model: 'x' });
    a.append([{ i: 1 }, { i: 2 }]);
    a.close();
    const good = readFileSync(path, 'utf8');
    for (const tail of ['{"i":3', '\0\0\0\0\n', '{"i":3,\n']) {
      writeFileSync(path, good + tail);
      const b = Journal.open<{ i: number }>(path, { model: 'x' });
      expect(b.entries).toEqual([{ i: 1 }, { i: 2 }]);
      b.append([{ i: 3 }]);
      b.close();
      expect(readFileSync(path, 'utf8')).toBe(`${good}{"i":3}\n`);
    }
    const lines = good.split('\n');
    writeFileSync(path, [lines[0], 'garbage', lines[2], ''].join('\n'));
    expect(() => Journal.open(path, { model: 'x' })).toThrow(
      `${path}: line 2 is not valid JSON (the file is damaged)`,
    );
  });
});

describe('finishedRunDifferences', () => {
  it('names what differs from the run recorded in OUT.done; [] for the same run; undefined without a record', async () => {
    const dir = tmp();
    const out = join(dir, 'o.json');
    const run = {
      instructions: instructions.slice(0, 3),
      out,
      generatorName: 'g',
      maxNewTokens: 8,
      fingerprint: { model: 'm', rules: 'off' },
    };
    expect(finishedRunDifferences(run)).toBeUndefined();
    await generateRun({ ...run, generator: recording().generator });
    expect(finishedRunDifferences(run)).toEqual([]);
    expect(
      finishedRunDifferences({
        ...run,
        instructions: instructions.slice(0, 4),
        maxNewTokens: 9,
        tokenIds: true,
        fingerprint: { model: 'm', rules: 'hewitt2024', format: 'raw' },
      }),
    ).toEqual(['instructions', 'maxNewTokens', 'tokenIds', 'fingerprint.rules', 'fingerprint.format']);
    expect(finishedRunDifferences({ ...run, generatorName: 'h', fingerprint: undefined })).toEqual([
      'generator',
      'fingerprint',
    ]);
    writeFileSync(`${out}.done`, '{not json');
    expect(finishedRunDifferences(run)).toBeUndefined();
  });
});

describe('writeRecorded', () => {
  it('writes OUT, then OUT.done; a write that fails leaves no record of the run before', async () => {
    const dir = tmp();
    const out = join(dir, 'r.json');
    await writeRecorded(out, { b: 1, a: 2 }, async (path) => writeFileSync(path, 'first'));
    expect(readFileSync(out, 'utf8')).toBe('first');
    expect(readFileSync(`${out}.done`, 'utf8')).toBe('{"a":2,"b":1}\n');
    const seen: boolean[] = [];
    await expect(
      writeRecorded(out, { a: 3 }, async () => {
        seen.push(existsSync(`${out}.done`));
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    // the record was gone before the write began, and none was written after it failed
    expect(seen).toEqual([false]);
    expect(existsSync(`${out}.done`)).toBe(false);
  });
});
