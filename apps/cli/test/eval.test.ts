import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { HEWITT2024_UNIFORM } from '@implicit-it/rules';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { loadTokenizer } from '@implicit-it/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CACHE, CLI, run, tinyModelDir, waitFor } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'implicit-it-cli-eval-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const WIN_RATE_KEYS = [
  'win_rate',
  'standard_error',
  'n_wins',
  'n_wins_base',
  'n_draws',
  'n_total',
  'discrete_win_rate',
  'avg_length',
];

interface Output {
  instruction: string;
  output: string;
  generator: string;
  dataset: string;
  token_ids?: number[];
}
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
/** hewitt2024's uniform entries by text, as a rule-set JSON gives them. */
const HEWITT_TEXT = () => HEWITT2024_UNIFORM.map(({ text, score }) => ({ text, score }));
const journalLines = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;

/** 240 instructions of varied length, as alpaca_eval.jsonl rows. */
function writeInstructions(file: string, n = 240): string[] {
  const topics = ['rain', 'tiramisu', 'the sea', 'prime numbers', 'a red fox', 'Paris', 'chess', 'bread'];
  const list = Array.from(
    { length: n },
    (_, i) =>
      `${'Please '.repeat(i % 3)}Write ${1 + (i % 5)} sentences about ${topics[i % topics.length]} (#${i}).`,
  );
  writeFileSync(
    file,
    list.map((instruction) => `${JSON.stringify({ instruction, dataset: 'toy' })}\n`).join(''),
  );
  return list;
}

function spawnCli(args: string[]): ChildProcess & { stderrText: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: {
      ...process.env,
      NO_COLOR: '1',
      HF_HUB_OFFLINE: '1',
      IMPLICIT_IT_CACHE: CACHE,
      IMPLICIT_IT_PROGRESS_SECONDS: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  child.stdout!.resume();
  return Object.assign(child, { stderrText: () => stderr });
}

let model: string;
let instructionsFile: string;
let instructions: string[];
beforeAll(async () => {
  model = await tinyModelDir();
  instructionsFile = join(tmp, 'instructions.jsonl');
  instructions = writeInstructions(instructionsFile);
});

describe('eval generate', () => {
  const args = (out: string, extra: string[] = []) => [
    'eval',
    'generate',
    '--model',
    model,
    '--instructions',
    instructionsFile,
    '--max-tokens',
    '24',
    '--batch-size',
    '4',
    '--out',
    out,
    ...extra,
  ];

  it("a finetune job's trained model (JOB/output) is named after its job, not 'output'", async () => {
    const job = join(tmp, 'jobs', 'poetry-ep5-seed1');
    cpSync(model, join(job, 'output'), { recursive: true });
    writeFileSync(join(job, 'job.json'), '{}');
    const out = join(tmp, 'trained.json');
    const r = await run(
      args(out, ['--limit', '1', '--max-tokens', '2']).map((a) => (a === model ? join(job, 'output') : a)),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      `wrote ${out}: 1 output of "poetry-ep5-seed1-hewitt2024" (1 generated, 0 resumed)\n`,
    );
    const generated = await run([
      'generate',
      '-m',
      `${join(job, 'output')}/`,
      '--max-tokens',
      '2',
      '--json',
      'Hi',
    ]);
    expect(JSON.parse(generated.stdout).model).toBe('poetry-ep5-seed1');
    // an output/ that is no job's keeps its own name
    const plain = join(tmp, 'not-a-job', 'output');
    cpSync(model, plain, { recursive: true });
    const other = await run(['generate', '-m', plain, '--max-tokens', '2', '--json', 'Hi']);
    expect(JSON.parse(other.stdout).model).toBe('output');
  });

  it('a finished run of a q4 graph is not taken for one at another --q4-accuracy-level', async () => {
    const { dir } = await createTinyModel({ seed: 1, dtypes: ['fp32', 'q4'], q4AccuracyLevel: 0 });
    const out = join(tmp, 'q4.json');
    const q4 = (...extra: string[]) =>
      run(
        args(out, ['--limit', '2', '--max-tokens', '4', '--dtype', 'q4', ...extra]).map((a) =>
          a === model ? dir : a,
        ),
      );
    expect((await q4()).code).toBe(0);
    expect((await q4('--json')).stdout).toContain('"resumed": 2'); // the same settings: finished
    const raised = await q4('--q4-accuracy-level', '4');
    expect(raised.code).toBe(2);
    expect(raised.stderr).toContain(
      'holds the finished outputs of another run (different --q4-accuracy-level); they are not replaced',
    );
  });

  it("writes alpaca_eval's model_outputs.json (--json summary; --token-ids)", async () => {
    const out = join(tmp, 'small.json');
    const r = await run(args(out, ['--limit', '6', '--name', 'tiny-rules', '--json']));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      out,
      generator: 'tiny-rules',
      count: 6,
      generated: 6,
      resumed: 0,
    });
    const outputs: Output[] = readJson(out);
    expect(outputs.map((o) => o.instruction)).toEqual(instructions.slice(0, 6));
    for (const o of outputs) {
      expect(Object.keys(o).sort()).toEqual(['dataset', 'generator', 'instruction', 'output']);
      expect(o).toMatchObject({ generator: 'tiny-rules', dataset: 'toy', output: expect.any(String) });
    }
    expect(existsSync(`${out}.journal.jsonl`)).toBe(false);
    // the same command again: the finished run is found, nothing is generated
    const again = await run(args(out, ['--limit', '6', '--name', 'tiny-rules', '--json']));
    expect(JSON.parse(again.stdout)).toMatchObject({ count: 6, generated: 0, resumed: 6 });
    expect(again.stderr).toContain(`${out} is already complete (same model, rules and limits)`);
    expect(readJson(out)).toEqual(outputs);

    const ids = join(tmp, 'small-ids.json');
    const text = await run(args(ids, ['--limit', '3', '--rules', 'off', '--token-ids']));
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toBe(`wrote ${ids}: 3 outputs of "${basename(model)}" (3 generated, 0 resumed)\n`);
    for (const o of readJson(ids) as Output[]) {
      expect(o.token_ids!.length).toBeGreaterThan(0);
      expect(o.token_ids!.length).toBeLessThanOrEqual(24);
    }
    // again: found complete, and said so (not "wrote", nothing was written)
    const textAgain = await run(args(ids, ['--limit', '3', '--rules', 'off', '--token-ids']));
    expect(textAgain.stdout).toBe(`${ids}: 3 outputs of "${basename(model)}", already complete\n`);
    // the outputs are one JSON list: a .jsonl path is refused before anything runs
    const jsonl = join(tmp, 'small.jsonl');
    const lines = await run(args(jsonl, ['--limit', '1']));
    expect([lines.code, lines.stderr]).toEqual([
      2,
      `error: --out: ${jsonl} ends in .jsonl, but the outputs file (alpaca_eval's model_outputs.json) is one JSON value, not JSON Lines: give a .json path\n`,
    ]);
    expect(existsSync(jsonl)).toBe(false);
  });

  it('resumes after kill -9: nothing lost, no duplicates, the same outputs as an uninterrupted run', async () => {
    const fresh = join(tmp, 'fresh.json');
    const whole = await run(args(fresh, ['--json']));
    expect(whole.code, whole.stderr).toBe(0);
    expect(JSON.parse(whole.stdout)).toMatchObject({ count: 240, generated: 240, resumed: 0 });

    const out = join(tmp, 'killed.json');
    const journal = `${out}.journal.jsonl`;
    const child = spawnCli(args(out));
    // header + 2 finished batches of 4 (one journal line per output), then kill -9 mid-run
    await waitFor(() => journalLines(journal) >= 9 || child.exitCode !== null);
    child.kill('SIGKILL');
    const [code, signal] = await new Promise<[number | null, string | null]>((res) =>
      child.on('close', (c, s) => res([c, s])),
    );
    expect(signal, `the run ended before it could be killed: ${child.stderrText()}`).toBe('SIGKILL');
    expect(code).toBeNull();
    expect(existsSync(out)).toBe(false);
    const kept = journalLines(journal) - 1;
    expect(kept).toBeGreaterThanOrEqual(8);
    expect(kept).toBeLessThan(240);

    const again = await run(args(out, ['--json']));
    expect(again.code, again.stderr).toBe(0);
    const summary = JSON.parse(again.stdout);
    expect(summary.count).toBe(240);
    // whole batches are journaled in one write each: all of them come back (a torn last line would be cut)
    expect(summary.resumed).toBeGreaterThanOrEqual(8);
    expect(summary.resumed).toBeLessThanOrEqual(kept);
    expect(summary.resumed % 4).toBe(0);
    expect(summary.resumed + summary.generated).toBe(240);
    const outputs: Output[] = readJson(out);
    expect(outputs.map((o) => o.instruction)).toEqual(instructions); // each once, in order
    expect(new Set(outputs.map((o) => o.instruction)).size).toBe(240);
    expect(outputs).toEqual(readJson(fresh)); // greedy: identical to the uninterrupted run
    expect(existsSync(journal)).toBe(false);
  });

  it('Ctrl-C exits 130 and says how to resume', async () => {
    const out = join(tmp, 'interrupted.json');
    const child = spawnCli(args(out));
    await waitFor(() => journalLines(`${out}.journal.jsonl`) >= 2 || child.exitCode !== null);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((res) => child.on('close', res));
    expect(code, child.stderrText()).toBe(130);
    expect(child.stderrText()).toMatch(
      /interrupted; \d+ of 240 outputs are kept in .*interrupted\.json\.journal\.jsonl: rerun the same command to resume/,
    );
    // rerun with other flags: exit 2 naming them, the journal kept
    const journal = `${out}.journal.jsonl`;
    const before = readFileSync(journal, 'utf8');
    const other = await run([...args(out), '--max-tokens', '8', '--rules', 'off']);
    expect(other.code).toBe(2);
    expect(other.stderr).toBe(
      `error: ${journal} holds the unfinished work of a run with other settings (different --max-tokens, --rules (its eos, uniform, used)); it is kept\n` +
        'hint: rerun with the flags it was started with to resume it, or add --replace (or delete it) to start over with these\n',
    );
    expect(readFileSync(journal, 'utf8')).toBe(before);
    // --replace: the unfinished run of other settings is begun again with these
    const replaced = await run([
      ...args(out),
      '--max-tokens',
      '8',
      '--rules',
      'off',
      '--limit',
      '12',
      '--replace',
      '--json',
    ]);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(JSON.parse(replaced.stdout)).toMatchObject({ count: 12, generated: 12, resumed: 0 });
    expect(readJson(out).map((o: Output) => o.instruction)).toEqual(instructions.slice(0, 12));
    expect(existsSync(journal)).toBe(false);
  });

  it("a journal follows the model's files: resumed from a moved copy, refused after its EOS ids change", async () => {
    // copies of the same name (the default --name, the outputs' generator, is the directory's)
    const first = join(tmp, 'first', 'tiny-model');
    cpSync(model, first, { recursive: true });
    const out = join(tmp, 'moved.json');
    const journal = `${out}.journal.jsonl`;
    const on = (dir: string, extra: string[] = []) =>
      args(out, ['--max-tokens', '8', ...extra]).map((a) => (a === model ? dir : a));
    const child = spawnCli(on(first));
    await waitFor(() => journalLines(journal) >= 5 || child.exitCode !== null);
    child.kill('SIGKILL');
    await new Promise((res) => child.on('close', res));
    expect(existsSync(out), `the run ended before it could be killed: ${child.stderrText()}`).toBe(false);
    // the model moved elsewhere, its graph touched
    const moved = join(tmp, 'moved', 'tiny-model');
    cpSync(first, moved, { recursive: true });
    rmSync(first, { recursive: true });
    utimesSync(join(moved, 'onnx', 'model.onnx'), new Date(), new Date(Date.now() + 5000));
    // a copy with other EOS ids is another model: refused naming the file, the journal kept
    const eos = join(tmp, 'eos', 'tiny-model');
    cpSync(moved, eos, { recursive: true });
    const generationConfig = join(eos, 'generation_config.json');
    writeFileSync(generationConfig, JSON.stringify({ ...readJson(generationConfig), eos_token_id: [2, 3] }));
    const before = readFileSync(journal, 'utf8');
    const refused = await run(on(eos));
    expect([refused.code, refused.stderr]).toEqual([
      2,
      `error: ${journal} holds the unfinished work of a run with other settings (different --model (its generation_config.json)); it is kept\n` +
        'hint: rerun with the flags it was started with to resume it, or add --replace (or delete it) to start over with these\n',
    ]);
    expect(readFileSync(journal, 'utf8')).toBe(before);
    // a journal of an older version, which identified the model by directory and modification time
    const [header, ...rest] = before.split('\n');
    const older = JSON.parse(header!);
    const { onnx, dtype } = older.journal.fingerprint.model;
    older.journal.fingerprint.model = { dir: first, onnx, dtype, bytes: 1, mtimeMs: 2 };
    writeFileSync(journal, [JSON.stringify(older), ...rest].join('\n'));
    const old = await run(on(moved));
    expect([old.code, old.stderr]).toEqual([
      2,
      `error: ${journal} holds the unfinished work of a run with other settings (different implicit-it version (the run was started by an older one)); it is kept\n` +
        'hint: this version cannot resume it: finish it with the version that started it, or add --replace (or delete it) to start over\n',
    ]);
    writeFileSync(journal, before);
    const resumed = await run(on(moved, ['--json']));
    expect(resumed.code, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout);
    expect(summary).toMatchObject({ count: 240, generated: 240 - summary.resumed });
    expect(summary.resumed).toBeGreaterThanOrEqual(4);
  });

  it('a copy of the model in a directory of another name: the refusal names the --name that reuses or resumes its outputs', async () => {
    const copy = join(tmp, 'renamed', 'other-name');
    cpSync(model, copy, { recursive: true });
    const out = join(tmp, 'renamed.json');
    const generate = (m: string, extra: string[] = []) =>
      run(args(out, ['--limit', '2', '--max-tokens', '4', ...extra]).map((a) => (a === model ? m : a)));
    expect((await generate(model)).code).toBe(0);
    const name = `${basename(model)}-hewitt2024`;
    const refused = await generate(copy);
    expect([refused.code, refused.stderr]).toEqual([
      2,
      `error: --out: ${out} holds the finished outputs of another run (different --name); they are not replaced\n` +
        `hint: its outputs are named "${name}": if they are this model's (a copy in a directory of another name), add --name ${name} to reuse them; else add --replace (or delete ${out}) to generate it again with these settings, or give another --out\n`,
    ]);
    const reused = await generate(copy, ['--name', name]);
    expect([reused.code, reused.stdout]).toEqual([0, expect.stringContaining(', already complete\n')]);
    // the unfinished work of a run (its journal): the --name that resumes it
    const record = readFileSync(`${out}.done`, 'utf8').trim();
    rmSync(out);
    rmSync(`${out}.done`);
    writeFileSync(`${out}.journal.jsonl`, `{"journal":${record}}\n`);
    const unfinished = await generate(copy);
    expect([unfinished.code, unfinished.stderr]).toEqual([
      2,
      `error: ${out}.journal.jsonl holds the unfinished work of a run with other settings (different --name); it is kept\n` +
        `hint: its outputs are named "${name}": if they are this model's (a copy in a directory of another name), add --name ${name} to resume them; else add --replace (or delete it) to start over with these settings\n`,
    ]);
    const resumed = await generate(copy, ['--name', name, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ generator: name, count: 2 });
    // another setting as well: the usual hint, the name being the least of it
    const other = await generate(copy, ['--max-tokens', '5']);
    expect(other.stderr).toContain('(different --max-tokens); they are not replaced\nhint: add --replace');
  });

  it('exits 2 on bad rules or a bad instructions file, 3 on a missing model', async () => {
    const rules = await run([
      'eval',
      'generate',
      '--model',
      model,
      '--rules',
      'hewitt2025',
      '--instructions',
      instructionsFile,
      '--out',
      join(tmp, 'x.json'),
    ]);
    expect(rules.code).toBe(2);
    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, '{"instruction": "ok"}\n{"text": "no instruction"}\n');
    const file = await run([
      'eval',
      'generate',
      '--model',
      model,
      '--instructions',
      bad,
      '--out',
      join(tmp, 'x.json'),
    ]);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain(`${bad}: line 2: "instruction" must be a string, got undefined`);
    const missing = await run([
      'eval',
      'generate',
      '--model',
      join(tmp, 'nope'),
      '--instructions',
      instructionsFile,
      '--out',
      join(tmp, 'x.json'),
    ]);
    expect(missing.code).toBe(3);
  });
});

describe('eval ablations', () => {
  it('one model_outputs.json per subset in RUN/outputs; a rerun skips finished subsets', async () => {
    const runDir = join(tmp, 'run');
    const args = [
      'eval',
      'ablations',
      '--model',
      model,
      '--instructions',
      instructionsFile,
      '--run-dir',
      runDir,
      '--subsets',
      'none,eos-uniform-diversity',
      '--limit',
      '5',
      '--max-tokens',
      '16',
      '--name',
      'tiny',
      '--json',
    ];
    const r = await run(args);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.runDir).toBe(runDir);
    expect(s.runs).toEqual([
      {
        subset: 'none',
        generator: 'tiny-none',
        out: join(runDir, 'outputs', 'none.json'),
        count: 5,
        generated: 5,
        resumed: 0,
        skipped: false,
      },
      {
        subset: 'eos-uniform-diversity',
        generator: 'tiny-eos-uniform-diversity',
        out: join(runDir, 'outputs', 'eos-uniform-diversity.json'),
        count: 5,
        generated: 5,
        resumed: 0,
        skipped: false,
      },
    ]);
    const none: Output[] = readJson(join(runDir, 'outputs', 'none.json'));
    expect(none.map((o) => o.generator)).toEqual(Array(5).fill('tiny-none'));
    const again = JSON.parse((await run(args)).stdout);
    const counts = (r: { stdout: string }) =>
      JSON.parse(r.stdout).runs.map((x: { generated: number; resumed: number }) => [x.generated, x.resumed]);
    expect(counts({ stdout: JSON.stringify(again) })).toEqual([
      [0, 5],
      [0, 5],
    ]);
    expect(again.runs.map((x: { skipped: boolean }) => x.skipped)).toEqual([true, true]);
    // finished subsets are said to be skipped, as the README says, not resumed
    const text = await run(args.filter((a) => a !== '--json'));
    expect(text.stdout).toBe(
      `wrote 0 of 2 ablation outputs in ${join(runDir, 'outputs')} (2 finished before)\n` +
        '  none                   5 outputs (skipped: finished by an earlier run with these settings)\n' +
        '  eos-uniform-diversity  5 outputs (skipped: finished by an earlier run with these settings)\n' +
        `next: implicit-it eval judge --run-dir ${runDir}\n`,
    );
    // the same model elsewhere (a copy, its graph touched): its finished outputs are found
    const copy = join(tmp, 'model-copy');
    cpSync(model, copy, { recursive: true });
    utimesSync(join(copy, 'onnx', 'model.onnx'), new Date(), new Date(Date.now() + 5000));
    const withCopy = args.map((a) => (a === model ? copy : a));
    expect(counts(await run(withCopy))).toEqual([
      [0, 5],
      [0, 5],
    ]);
    // without --name the copy's name is its directory's: the refusal names the --name that reuses them
    const unnamed = await run(
      withCopy.filter((a, i) => a !== '--json' && a !== '--name' && withCopy[i - 1] !== '--name'),
    );
    const outputsOf = (subset: string) => join(runDir, 'outputs', `${subset}.json`);
    expect([unnamed.code, unnamed.stderr]).toEqual([
      2,
      `error: --run-dir: ${outputsOf('none')} holds the finished outputs of another run (different --name); they are not replaced\n` +
        `hint: its outputs are named "tiny-none": if they are this model's (a copy in a directory of another name), add --name tiny to reuse them; else add --replace (or delete ${outputsOf('none')}) to generate it again with these settings, or give another --run-dir\n`,
    ]);
    // with other EOS ids it is another model: its outputs are not reused, nor do they replace these
    // (as eval generate refuses its --out), before anything is generated
    const generationConfig = join(copy, 'generation_config.json');
    writeFileSync(generationConfig, JSON.stringify({ ...readJson(generationConfig), eos_token_id: [2, 3] }));
    const noneFile = join(runDir, 'outputs', 'none.json');
    const refusal = (what: string, file = noneFile) =>
      `error: --run-dir: ${file} holds the finished outputs of another run (different ${what}); they are not replaced\n` +
      `hint: add --replace (or delete ${file}) to generate it again with these settings, or give another --run-dir\n`;
    const refused = await run(withCopy);
    expect([refused.code, refused.stderr]).toEqual([2, refusal('--model (its generation_config.json)')]);
    expect(readJson(noneFile)).toEqual(none);
    const other = await run([...args, '--max-tokens', '8']);
    expect([other.code, other.stderr]).toEqual([2, refusal('--max-tokens')]);
    // every subset is checked before the first is generated: with none.json deleted, the other
    // subset's outputs are refused and none.json is not written
    rmSync(noneFile);
    const second = await run(withCopy);
    expect([second.code, second.stderr]).toEqual([
      2,
      refusal('--model (its generation_config.json)', join(runDir, 'outputs', 'eos-uniform-diversity.json')),
    ]);
    expect(existsSync(noneFile)).toBe(false);
    // --replace: both subsets generated again with these settings
    expect(counts(await run([...withCopy, '--replace']))).toEqual([
      [5, 0],
      [5, 0],
    ]);
    expect(counts(await run(withCopy))).toEqual([
      [0, 5],
      [0, 5],
    ]);
    const typo = await run([
      'eval',
      'ablations',
      '--model',
      model,
      '--run-dir',
      runDir,
      '--subsets',
      'none,eos-unifrom',
    ]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('--subsets: unknown rule set "eos-unifrom"');
  });
});

/** Writes rows as a .jsonl of {instruction} (or any objects) and returns the file. */
function jsonl(name: string, rows: (string | object)[]): string {
  const file = join(tmp, name);
  writeFileSync(
    file,
    rows.map((r) => `${JSON.stringify(typeof r === 'string' ? { instruction: r } : r)}\n`).join(''),
  );
  return file;
}

/** A fresh directory under tmp. */
function dirIn(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe('eval: what is refused up front, and what fails clearly', () => {
  const long = (verb: string) =>
    `${verb} this: ${'the quick brown fox jumps over the lazy dog, '.repeat(30)}`;

  it('instructions too long for the context: exit 1 before anything is generated, naming them and the fix', async () => {
    const file = jsonl('too-long.jsonl', [
      'Say hi.',
      'Name a color.',
      long('Summarize'),
      'Count.',
      long('Shorten'),
    ]);
    const out = join(tmp, 'too-long', 'o.json');
    const r = await run(['eval', 'generate', '--model', model, '--instructions', file, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^error: 2 of the 5 instructions of ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} do not fit in the context of --model ${basename(model)}: ` +
          `their prompts leave no position to generate in, the model's context being 512 tokens \\(max_position_embeddings\\): ` +
          `#2 "Summarize this: the quick brown fox jumps over..." \\(\\d+ tokens\\), #4 "Shorten this: the quick brown fox jumps over th..." \\(\\d+ tokens\\) ` +
          `\\(# counts rows of the file from 0; nothing was generated\\)\nhint: use a model with a longer context, or leave them out: ` +
          '--limit 2 stops before the first, or give --instructions a file without them\n$',
      ),
    );
    expect(existsSync(join(tmp, 'too-long'))).toBe(false); // no journal, no outputs
    // one of them alone; the fix the hint gives works
    const one = jsonl('one-too-long.jsonl', ['Say hi.', long('Summarize')]);
    const single = await run(['eval', 'generate', '--model', model, '--instructions', one, '--out', out]);
    expect(single.code).toBe(1);
    expect(single.stderr).toContain(
      `error: instruction #1 "Summarize this: the quick brown fox jumps over..." (`,
    );
    expect(single.stderr).toContain(
      `tokens) of ${one} does not fit in the context of --model ${basename(model)}: its prompt`,
    );
    expect(single.stderr).toContain(
      'hint: use a model with a longer context, or leave it out: --limit 1 stops before it',
    );
    const fixed = await run([
      'eval',
      'generate',
      '--model',
      model,
      '--instructions',
      file,
      '--limit',
      '2',
      '--max-tokens',
      '4',
      '--out',
      out,
    ]);
    expect(fixed.code, fixed.stderr).toBe(0);
    // ablations check the same before their first subset
    const runDir = join(tmp, 'too-long-run');
    const abl = await run([
      'eval',
      'ablations',
      '--model',
      model,
      '--instructions',
      file,
      '--run-dir',
      runDir,
      '--subsets',
      'none',
    ]);
    expect(abl.code).toBe(1);
    expect(abl.stderr).toContain('error: 2 of the 5 instructions of');
    expect(existsSync(join(runDir, 'outputs'))).toBe(false);
  });

  it('a prompt that fits but leaves fewer positions than --max-tokens: the output stops at the context', async () => {
    const tok = await loadTokenizer(model);
    const promptLength = (text: string) => tok.buildPrompt({ format: 'tulu', instruction: text }).ids.length;
    const text = long('Repeat').repeat(3);
    let [lo, hi] = [0, text.length]; // the shortest prefix whose prompt has 505 tokens or more
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (promptLength(text.slice(0, mid)) >= 505) hi = mid;
      else lo = mid + 1;
    }
    const instruction = text.slice(0, lo);
    const n = promptLength(instruction);
    expect(n).toBeGreaterThanOrEqual(505);
    expect(n).toBeLessThan(512);
    const out = join(tmp, 'at-context.json');
    const r = await run([
      'eval',
      'generate',
      '--model',
      model,
      '--instructions',
      jsonl('at-context.jsonl', [instruction]),
      '--rules',
      'off',
      '--max-tokens',
      '64',
      '--token-ids',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const [o] = readJson(out) as Output[];
    const eos = [readJson(join(model, 'generation_config.json')).eos_token_id].flat();
    const ids = o!.token_ids!;
    expect(ids.length).toBeLessThanOrEqual(512 - n);
    if (!eos.includes(ids.at(-1))) expect(ids.length).toBe(512 - n);
  });

  it('an --out, --run-dir or --cache-dir of the wrong kind: exit 2 naming the flag, before any model loads, nothing left behind', async () => {
    const dir = dirIn('out-is-a-dir');
    const file = join(tmp, 'a-file.json');
    writeFileSync(file, '[]');
    const cases: [string[], string][] = [
      [
        ['generate', '--model', model, '--instructions', instructionsFile, '--limit', '2', '--out', dir],
        `--out: ${dir} is a directory; give a file path (e.g. ${join(dir, 'outputs.json')})`,
      ],
      [
        ['generate', '--model', model, '--instructions', instructionsFile, '--out', join(file, 'o.json')],
        `--out: ${file} is a file, so ${join(file, 'o.json')} cannot be created`,
      ],
      [
        ['ablations', '--model', model, '--instructions', instructionsFile, '--run-dir', file],
        `--run-dir: ${file} is a file; give a run directory (created when missing)`,
      ],
      [
        ['shift', '--base', model, '--aligned', model, '--limit', '2', '--out', dir],
        `--out: ${dir} is a directory; give a file path (e.g. ${join(dir, 'shift.json')})`,
      ],
      [
        ['shift', '--base', model, '--aligned', model, '--limit', '2', '--aligned-out', dir],
        `--aligned-out: ${dir} is a directory; give a file path`,
      ],
      [
        ['rank', '--model', model, '--data', file, '--out', dir],
        `--out: ${dir} is a directory; give a file path (e.g. ${join(dir, 'ranking.json')})`,
      ],
      [
        ['judge', '--outputs', file, '--out', dir, '--base-url', 'http://127.0.0.1:9/v1'],
        `--out: ${dir} is a directory; give a file path (e.g. ${join(dir, 'annotations.json')})`,
      ],
      [
        [
          'judge',
          '--outputs',
          file,
          '--out',
          join(tmp, 'ann.json'),
          '--cache-dir',
          file,
          '--base-url',
          'http://127.0.0.1:9/v1',
        ],
        `--cache-dir: ${file} is a file; the judge cache is a directory`,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await run(['eval', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain(`error: ${message}`);
    }
    expect(readdirSync(dir)).toEqual([]); // no X.tmp-*, no X.journal.jsonl
    expect(readdirSync(tmp).filter((f) => f.startsWith('out-is-a-dir.'))).toEqual([]);
  });

  it.runIf(process.platform === 'linux')(
    'an --out, --run-dir or --cache-dir where no file can be created: exit 2 naming the flag, before any work',
    async () => {
      const file = join(tmp, 'outputs-to-judge.json');
      writeFileSync(file, JSON.stringify([{ instruction: 'a', output: 'b', generator: 'g' }]));
      const judge = ['judge', '--outputs', file, '--base-url', 'http://127.0.0.1:9/v1'];
      // /proc takes no new files, whoever asks: root, who writes past permission bits, gets ENOENT
      const why =
        process.getuid?.() === 0
          ? 'files cannot be created in /proc (ENOENT: no such file or directory)'
          : '/proc is not writable (permission denied)';
      const cases: [string[], string, string][] = [
        [['generate', '--model', model, '--instructions', instructionsFile, '--out'], '--out', 'x.json'],
        [['rank', '--model', model, '--data', file, '--out'], '--out', 'x.json'],
        [['shift', '--base', model, '--aligned', model, '--limit', '2', '--out'], '--out', 'x.json'],
        [
          ['shift', '--base', model, '--aligned', model, '--limit', '2', '--aligned-out'],
          '--aligned-out',
          'x.json',
        ],
        [[...judge, '--out'], '--out', 'implicit-it/ann.json'],
        [[...judge, '--out', join(tmp, 'ann.json'), '--cache-dir'], '--cache-dir', 'cache'],
        [
          ['ablations', '--model', model, '--instructions', instructionsFile, '--run-dir'],
          '--run-dir',
          'run',
        ],
      ];
      for (const [args, flag, name] of cases) {
        const r = await run(['eval', ...args, `/proc/${name}`]);
        expect([r.code, r.stderr], args.join(' ')).toEqual([
          2,
          `error: ${flag}: cannot write /proc/${name}: ${why}\nhint: give ${flag} a path in a directory you can write to\n`,
        ]);
      }
    },
  );

  it.skipIf(process.getuid?.() === 0)(
    'an --out in a directory without write permission: exit 2 naming it, not an errno after the work',
    async () => {
      const dir = dirIn('read-only');
      chmodSync(dir, 0o555);
      try {
        const out = join(dir, 'sub', 'x.json');
        const r = await run([
          'eval',
          'generate',
          '--model',
          model,
          '--instructions',
          instructionsFile,
          '--out',
          out,
        ]);
        expect([r.code, r.stderr]).toEqual([
          2,
          `error: --out: cannot write ${out}: ${dir} is not writable (permission denied)\nhint: give --out a path in a directory you can write to\n`,
        ]);
      } finally {
        chmodSync(dir, 0o755);
      }
    },
  );

  it('judge: --base-url (or $OPENAI_BASE_URL) must be an http(s) URL: exit 2 before any request', async () => {
    const outputs = join(tmp, 'judge-url-outputs.json');
    writeFileSync(outputs, JSON.stringify([{ instruction: 'a', output: 'b', generator: 'g' }]));
    const args = [
      'eval',
      'judge',
      '--outputs',
      outputs,
      '--baseline',
      outputs,
      '--out',
      join(tmp, 'judge-url', 'a.json'),
    ];
    for (const url of ['not-a-url', 'ftp://example.com/v1']) {
      const r = await run([...args, '--base-url', url], { timeout: 10_000 });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `error: --base-url: expected an http:// or https:// URL, got ${JSON.stringify(url)}\n` +
          'hint: give the endpoint up to /v1, e.g. http://127.0.0.1:8080/v1 or https://api.openai.com/v1\n',
      );
    }
    const env = await run(args, { env: { OPENAI_BASE_URL: 'localhost:8080' }, timeout: 10_000 });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain(
      'error: $OPENAI_BASE_URL: expected an http:// or https:// URL, got "localhost:8080"',
    );
    expect(existsSync(join(tmp, 'judge-url'))).toBe(false);
  });

  it('judge: a closed port fails within seconds (exit 1), saying why it waits and what to check', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as AddressInfo;
    await new Promise((r) => probe.close(r));
    const baseline = join(tmp, 'judge-closed-baseline.json');
    const outputs = join(tmp, 'judge-closed-outputs.json');
    writeFileSync(baseline, JSON.stringify([{ instruction: 'a', output: 'b', generator: 'ref' }]));
    writeFileSync(outputs, JSON.stringify([{ instruction: 'a', output: 'c', generator: 'g' }]));
    const t0 = Date.now();
    const r = await run(
      [
        'eval',
        'judge',
        '--outputs',
        outputs,
        '--baseline',
        baseline,
        '--out',
        join(tmp, 'judge-closed', 'a.json'),
        '--base-url',
        `http://127.0.0.1:${port}/v1`,
      ],
      { timeout: 20_000 },
    );
    expect(Date.now() - t0).toBeLessThan(10_000); // it retried for a minute or two
    expect(r.code).toBe(1);
    const cause = `cannot connect (connect ECONNREFUSED 127.0.0.1:${port})`;
    const lines = r.stderr.split('\n');
    expect(lines.slice(0, 2).map((l) => l.replace(/in \d\.\d s/, 'in N s'))).toEqual([
      `judge: retry 1 in N s: ${cause}`,
      `judge: retry 2 in N s: ${cause}`,
    ]);
    expect(lines.slice(2)).toEqual([
      `error: judge request to http://127.0.0.1:${port}/v1/chat/completions failed after 3 attempts: ${cause}; check that the judge server is up and that --base-url or $OPENAI_BASE_URL names it`,
      '',
    ]);
    expect(existsSync(join(tmp, 'judge-closed', 'a.json'))).toBe(false);
    // ten pairs: the requests in flight fail alike, and their retries are a line per attempt, not one each
    const tenBaseline = join(tmp, 'judge-closed-baseline-10.json');
    const tenOutputs = join(tmp, 'judge-closed-outputs-10.json');
    const ten = (output: string) =>
      Array.from({ length: 10 }, (_, k) => ({ instruction: `i${k}`, output, generator: output }));
    writeFileSync(tenBaseline, JSON.stringify(ten('b')));
    writeFileSync(tenOutputs, JSON.stringify(ten('c')));
    const many = await run(
      [
        'eval',
        'judge',
        '--outputs',
        tenOutputs,
        '--baseline',
        tenBaseline,
        '--out',
        join(tmp, 'judge-closed', 'b.json'),
      ].concat(['--base-url', `http://127.0.0.1:${port}/v1`]),
      { timeout: 20_000 },
    );
    expect(many.code).toBe(1);
    const retries = many.stderr.split('\n').filter((l) => l.startsWith('judge: retry'));
    expect(retries.length).toBeLessThanOrEqual(4); // 8 before: one per request and attempt
    expect(retries[0]).toMatch(
      new RegExp(
        `^judge: retry 1 for each of \\d+ requests in \\d\\.\\d-\\d\\.\\d s: ${cause.replace(/[()]/g, '\\$&')}$`,
      ),
    );
    expect(many.stderr).toContain(
      `error: judge request to http://127.0.0.1:${port}/v1/chat/completions failed after 3 attempts`,
    );
    const help = await run(['eval', 'judge', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      '--max-retries <n> retries of 408/409/429/5xx, timeouts and lost connections, with backoff (default 6); a connection refused or a host not found: 2 at most, within about 1.5 s',
    );
  });

  it('empty inputs are errors naming the flag and the file, not results', async () => {
    const emptyJsonl = jsonl('empty.jsonl', []);
    const emptyJson = join(tmp, 'empty.json');
    writeFileSync(emptyJson, '[]\n');
    const nulls = join(tmp, 'null-annotations.json');
    writeFileSync(
      nulls,
      JSON.stringify([{ instruction: 'a', output_1: 'x', output_2: 'y', preference: null }]),
    );
    const emptyRun = dirIn('empty-run');
    const baseline = join(tmp, 'one-output.json');
    writeFileSync(baseline, JSON.stringify([{ instruction: 'a', output: 'b', generator: 'g' }]));
    const cases: [string[], number, string][] = [
      [
        ['generate', '--model', model, '--instructions', emptyJsonl, '--out', join(tmp, 'e', 'o.json')],
        2,
        `--instructions: ${emptyJsonl} has no instructions`,
      ],
      [
        ['ablations', '--model', model, '--instructions', emptyJson, '--run-dir', join(tmp, 'e')],
        2,
        `--instructions: ${emptyJson} has no instructions`,
      ],
      [
        ['winrate', '--annotations', emptyJson],
        2,
        `--annotations: ${emptyJson} has no annotations (an empty list)`,
      ],
      [
        ['winrate', '--annotations', nulls],
        1,
        `--annotations: none of the 1 annotations in ${nulls} has a preference (all are null: no judgement), so there is no win rate`,
      ],
      [
        ['shift', '--base', model, '--aligned', emptyJson],
        2,
        `--aligned: ${emptyJson} has no outputs (an empty list)`,
      ],
      [
        ['shift', '--base', model, '--aligned', model, '--instructions', emptyJsonl],
        2,
        `--instructions: ${emptyJsonl} has no instructions`,
      ],
      [
        ['report', emptyRun],
        2,
        `${emptyRun}: nothing to report: no annotations/*.json, ranking/*.json or shift/*.json in it`,
      ],
      [
        [
          'judge',
          '--outputs',
          emptyJson,
          '--out',
          join(tmp, 'e', 'a.json'),
          '--baseline',
          baseline,
          '--base-url',
          'http://127.0.0.1:9/v1',
        ],
        2,
        `--outputs: ${emptyJson} has no outputs (an empty list)`,
      ],
      [
        ['rank', '--model', model, '--data', emptyJson],
        2,
        `--data: ${emptyJson} has no examples; response ranking needs at least 2`,
      ],
    ];
    for (const [args, code, message] of cases) {
      const r = await run(['eval', ...args]);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr, args.join(' ')).toContain(`error: ${message}`);
      expect(r.stdout, args.join(' ')).toBe('');
    }
    expect(existsSync(join(tmp, 'e'))).toBe(false);
    expect(readdirSync(emptyRun)).toEqual([]);
  });

  it('report: a file given for the run directory is said to be a file, and what to give', async () => {
    const file = join(tmp, 'not-a-run.json');
    writeFileSync(file, '[]');
    const r = await run(['eval', 'report', file]);
    expect([r.code, r.stderr]).toEqual([
      2,
      `error: ${file} is a file, not a run directory\nhint: give the run directory that holds annotations/, ranking/ or shift/ (as eval judge --run-dir, eval rank --out RUN/ranking/NAME.json and eval shift --out RUN/shift/NAME.json fill it)\n`,
    ]);
    const missing = await run(['eval', 'report', join(tmp, 'no-such-run')]);
    expect([missing.code, missing.stderr]).toEqual([
      2,
      `error: ${join(tmp, 'no-such-run')}: no such run directory\n`,
    ]);
  });

  it('a default under the shared directory that is not there: the error names the path looked at and IMPLICIT_IT_SHARED_DIR', async () => {
    const shared = dirIn('empty-shared');
    const env = { IMPLICIT_IT_SHARED_DIR: shared };
    const missing = (flag: string, what: string, file: string) =>
      `error: ${flag}: give ${what}: the default, ${file} in the shared directory, is not there (no ${join(shared, file)}, IMPLICIT_IT_SHARED_DIR being ${shared})\n` +
      `hint: set IMPLICIT_IT_SHARED_DIR to the repository's shared/ directory (the one that holds ${file}), or give ${flag}\n`;
    const generate = await run(['eval', 'generate', '--model', model, '--out', join(tmp, 'no-shared.json')], {
      env,
    });
    expect([generate.code, generate.stderr]).toEqual([
      2,
      missing('--instructions', 'a .jsonl or .json file', 'data/alpaca_eval/alpaca_eval.jsonl'),
    ]);
    const rank = await run(['eval', 'rank', '--model', model], { env });
    expect([rank.code, rank.stderr]).toEqual([
      2,
      missing('--data', "Alpaca's alpaca_data.json", 'data/alpaca/alpaca_data_2k.json'),
    ]);
    const outputs = jsonl('no-shared-outputs.jsonl', [
      { instruction: 'Hi', output: 'Hello', generator: 'm' },
    ]);
    const judge = await run(
      ['eval', 'judge', '--outputs', outputs, '--out', join(tmp, 'no-shared-annotations.json')],
      { env },
    );
    expect([judge.code, judge.stderr]).toEqual([
      2,
      missing('--baseline', 'the baseline outputs', 'data/alpaca_eval/gpt4_1106_preview.model_outputs.json'),
    ]);
  });

  it('generate --name: the default its help names, MODEL alone with --rules off', async () => {
    const help = await run(['eval', 'generate', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      'the "generator" field (default: MODEL-RULES, e.g. tiny-hewitt2024; tiny-variant for --rules @variant.json (tiny-file-hewitt2024 for @hewitt2024.json), tiny-custom-HASH for inline JSON; MODEL alone with --rules off)',
    );
    const args = [
      '--model',
      model,
      '--instructions',
      instructionsFile,
      '--limit',
      '1',
      '--max-tokens',
      '2',
      '--json',
    ];
    const off = await run([
      'eval',
      'generate',
      ...args,
      '--rules',
      'off',
      '--out',
      join(tmp, 'name-off.json'),
    ]);
    expect(off.code, off.stderr).toBe(0);
    expect(JSON.parse(off.stdout).generator).toBe(basename(model));
  });

  it('judge: when no judgement can be read, the annotations are written, then exit 1 with the count', async () => {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () =>
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'Both are fine.' } }] })),
      );
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    try {
      const rows = ['a', 'b', 'c'].map((x) => ({ instruction: `Say ${x}.`, dataset: 'toy' }));
      const baseline = join(tmp, 'unread-baseline.json');
      const outputs = join(tmp, 'unread-outputs.json');
      writeFileSync(baseline, JSON.stringify(rows.map((r) => ({ ...r, output: 'base', generator: 'b' }))));
      writeFileSync(outputs, JSON.stringify(rows.map((r) => ({ ...r, output: 'mine', generator: 'm' }))));
      const out = join(tmp, 'unread', 'annotations.json');
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const r = await run([
        'eval',
        'judge',
        '--outputs',
        outputs,
        '--baseline',
        baseline,
        '--out',
        out,
        '--base-url',
        url,
        '--judge-model',
        'mute',
        '--json',
      ]);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({
        out,
        requests: 3,
        unreadable: 3,
        stats: { n_total: 0, win_rate: null },
      });
      expect(r.stderr).toContain(
        `error: unread-outputs: none of the 3 judgements could be read (no "m" or "M" in the judge's answer or its top_logprobs), so there is no win rate; ${out} keeps them with preference null\n` +
          `hint: check that --judge-model mute at ${url} answers with the single token m or M; its answers are cached in ${join(tmp, 'unread', '.judge-cache')}: delete that to ask again\n`,
      );
      expect((readJson(out) as { preference: unknown }[]).map((a) => a.preference)).toEqual([
        null,
        null,
        null,
      ]);
    } finally {
      server.close();
    }
  });

  it('winrate: a preference other than [1, 2], 0 or null is refused, naming the annotation', async () => {
    const file = join(tmp, 'bad-preference.json');
    const row = (preference: number) => ({ instruction: 'a', output_1: 'x', output_2: 'yy', preference });
    writeFileSync(file, JSON.stringify([row(2), row(7)]));
    const r = await run(['eval', 'winrate', '--annotations', file, '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `error: ${file}: [1].preference must be a number in [1, 2] (1: output_1 is better, 2: output_2, 1.5 a draw), 0 (a draw, as older files write it) or null (no judgement), got 7`,
    );
    writeFileSync(file, JSON.stringify([row(2), row(0), row(1.25)]));
    const ok = await run(['eval', 'winrate', '--annotations', file, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ n_total: 3, n_wins: 1, n_wins_base: 1, n_draws: 1 });
  });

  it('winrate: annotations without a preference (refused by the judge, unreadable) are named as left out', async () => {
    const file = join(tmp, 'some-unjudged.json');
    const row = (preference: number | null, extra = {}) => ({
      instruction: 'a',
      output_1: 'x',
      output_2: 'yy',
      preference,
      ...extra,
    });
    writeFileSync(
      file,
      JSON.stringify([
        row(2),
        row(1),
        row(null, { preference_source: 'refused', judge_error: 'HTTP 400' }),
        row(null, { preference_source: 'refused', judge_error: 'HTTP 400' }),
        row(null, { preference_source: 'none' }),
        // refused once, its preference given since (by hand): a judgement like the others
        row(2, { preference_source: 'refused', judge_error: 'HTTP 400' }),
      ]),
    );
    const r = await run(['eval', 'winrate', '--annotations', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ n_total: 3, n_wins: 2 });
    expect(r.stderr).toContain(
      '3 of 6 annotations have no preference and are left out of the win rate: 2 refused by the judge (their judge_error is in the file; eval judge asks for them again), 1 without a judgement that could be read',
    );
    // all judged: no such line
    writeFileSync(file, JSON.stringify([row(2), row(1)]));
    expect((await run(['eval', 'winrate', '--annotations', file])).stderr).not.toContain('no preference');
  });

  it('rank: --data, --limit and --negatives checked against the data; a response longer than the context is cut, as ratio_eval.py cuts at 1024', async () => {
    const data = join(tmp, 'alpaca-long.json');
    const examples = [
      { instruction: 'Say hi.', input: '', output: 'Hi!' },
      { instruction: 'Name a color.', input: '', output: long('Red') },
      { instruction: 'Count.', input: '', output: 'One, two.' },
    ];
    writeFileSync(data, JSON.stringify(examples));
    const n = await run(['eval', 'rank', '--model', model, '--data', data, '--limit', '5']);
    expect(n.code).toBe(2);
    expect(n.stderr).toContain(`error: --limit: ${data} has 3 examples; give --limit 3 or less`);
    // --n, its former name, is still read (and hidden from --help); both at odds are refused
    const former = await run(['eval', 'rank', '--model', model, '--data', data, '--n', '5']);
    expect(former.stderr).toContain(`error: --limit: ${data} has 3 examples`);
    const both = await run(['eval', 'rank', '--model', model, '--data', data, '--n', '2', '--limit', '3']);
    expect([both.code, both.stderr]).toEqual([2, 'error: give --limit (--n is its former name), not both\n']);
    const help = await run(['eval', 'rank', '--help']);
    expect(help.stdout).toContain('--limit <n>');
    expect(help.stdout).not.toContain('--n <n>');
    // one example has no other to draw its random responses from: the minimum of 2 says so
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      '--limit <n> only the first n examples, at least 2: the random responses are drawn from the others among them (default 1000, as the paper)',
    );
    const why =
      "each example's real response is ranked against random responses drawn from the other examples among the first n";
    const one = await run(['eval', 'rank', '--model', model, '--data', data, '--limit', '1']);
    expect([one.code, one.stderr]).toEqual([
      2,
      `error: option '--limit <n>' argument '1' is invalid. expected an integer >= 2, got "1": ${why}\n(add --help for usage and examples)\n`,
    ]);
    const formerOne = await run(['eval', 'rank', '--model', model, '--data', data, '--n', '1']);
    expect(formerOne.stderr).toContain(`expected an integer >= 2, got "1": ${why}\n`);
    // and --max-seq-length's minimum of 2: a token is scored after another
    const short = await run(['eval', 'rank', '--model', model, '--data', data, '--max-seq-length', '1']);
    expect([short.code, short.stderr]).toEqual([
      2,
      `error: option '--max-seq-length <n>' argument '1' is invalid. expected an integer >= 2, got "1": a response token is scored after at least one token before it\n(add --help for usage and examples)\n`,
    ]);
    const k = await run([
      'eval',
      'rank',
      '--model',
      model,
      '--data',
      data,
      '--limit',
      '3',
      '--negatives',
      '3',
      '--draw',
      'distinct',
    ]);
    expect(k.code).toBe(2);
    expect(k.stderr).toContain(
      'error: --negatives: with --draw distinct each of the --limit 3 examples draws its random responses from the 2 others; give --negatives 2 or less\n' +
        'hint: --draw paper (the default) draws with replacement',
    );
    // ratio_eval.py's draws (the default) are with replacement: Python's random.seed(0) draws
    // [1, 1], [0, 1], [2, 1]; an example's own draws are dropped, so the long response is scored
    // as real once and as a random one three times
    const rankWith = (extra: string[]) =>
      run(['eval', 'rank', '-m', model, '--data', data, '--limit', '3', '--negatives', '2', ...extra]); // -m as in generate
    const paper = await rankWith(['--json']);
    expect(paper.code, paper.stderr).toBe(0);
    expect(JSON.parse(paper.stdout)).toMatchObject({ draw: 'paper', truncated: 4, pairs: 4 });
    expect(paper.stderr).toContain('warning: 4 of the 7 scored responses were longer');
    const rank = (extra: string[]) => rankWith(['--draw', 'distinct', ...extra]);
    // the long response is scored wherever it is drawn (as real once, as a random one twice): cut at
    // the 512-token context, with a warning; a shorter --max-seq-length cuts every response
    const r = await rank(['--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ truncated: 3, pairs: 6 });
    expect(r.stderr).toContain(
      "warning: 3 of the 9 scored responses were longer than the scorer's maximum length with their prompt: their scores cover their first tokens, as ratio_eval.py's --max_seq_length cuts them",
    );
    const cut = await rank(['--max-seq-length', '2', '--json']);
    expect(cut.code, cut.stderr).toBe(0);
    // no response token fits after a prompt of more than 2 tokens: nothing to compare
    expect(JSON.parse(cut.stdout)).toMatchObject({ truncated: 9, pairs: 0 });
    const text = await rank([]);
    expect(text.stdout).toContain(
      `  3 responses cut at 512 tokens with their prompt: the context of ${basename(model)} (shorter than --max-seq-length 1024)\n`,
    );
    const shorter = await rank(['--max-seq-length', '300']);
    expect(shorter.stdout).toContain(
      '  3 responses cut at 300 tokens with their prompt (--max-seq-length)\n',
    );
    expect(text.stdout).toContain(
      '  examples whose real response beat k of its random responses (up to 2): ',
    );
    // a random model's mean scores are tiny: printed to 3 significant digits, not as 0.0000
    const means = text.stdout.match(/mean score \(exp mean log-prob\): real (\S+), random (\S+)\n/);
    const { meanReal, meanRandom } = JSON.parse(r.stdout);
    expect(means?.slice(1)).toEqual(
      [meanReal, meanRandom].map((x: number) => (Math.abs(x) < 1e-3 ? x.toPrecision(3) : x.toFixed(4))),
    );
    expect(Number(means![1])).toBeCloseTo(meanReal, 6);
  });

  it('ablations: --subsets must list something, and nothing twice', async () => {
    const base = [
      'eval',
      'ablations',
      '--model',
      model,
      '--instructions',
      instructionsFile,
      '--run-dir',
      join(tmp, 'subsets'),
    ];
    const cases: [string, string][] = [
      ['none,none', '--subsets: "none" is listed twice'],
      ['none,off', '--subsets: "none" and "off" are the same rules; list one of them'],
      [
        'eos-uniform,uniform-eos',
        '--subsets: "eos-uniform" and "uniform-eos" are the same rules; list one of them',
      ],
      ['', '--subsets: the list is empty; give rule subsets separated by commas'],
    ];
    for (const [subsets, message] of cases) {
      const r = await run([...base, '--subsets', subsets]);
      expect(r.code, subsets).toBe(2);
      expect(r.stderr, subsets).toContain(`error: ${message}`);
    }
    // a subset is a name (its outputs are RUN/outputs/NAME.json): rule-set JSON, a file or a word
    // that names no rules is refused before the model loads, naming --subsets as other flags' errors do
    const expected = (value: string) =>
      `error: --subsets: unknown rule set ${JSON.stringify(value)}: expected a preset (hewitt2024, hewitt2024-llama2-ids, hewitt2024-prose), off, or rule names joined by "-" from eos, uniform, diversity, start (e.g. eos-uniform-diversity, uniform-diversity, eos-uniform, eos-diversity)\n`;
    const hint =
      'hint: eval ablations runs named rule subsets; for a rule set of your own, run eval generate --rules @file.json --out RUN/outputs/NAME.json\n';
    const file = join(tmp, 'cfg.json');
    writeFileSync(file, '{"eos":true}');
    for (const [value, stderr] of [
      [`@${file}`, expected(`@${file}`) + hint],
      ['{"eos":true}', expected('{"eos":true}') + hint],
      ['none,base', expected('base')],
    ]) {
      const r = await run([...base, '--subsets', value!]);
      expect([r.code, r.stderr], value).toEqual([2, stderr]);
    }
    expect(existsSync(join(tmp, 'subsets'))).toBe(false);
  });

  it('generate: a finished --out of other settings, or of unknown origin, is not replaced', async () => {
    const out = join(tmp, 'settings.json');
    const generate = (target: string, limit: string, extra: string[]) => [
      'eval',
      'generate',
      '--model',
      model,
      '--instructions',
      instructionsFile,
      '--limit',
      limit,
      '--out',
      target,
      ...extra,
    ];
    const args = (extra: string[]) => generate(out, '2', ['--max-tokens', '4', ...extra]);
    expect((await run(args(['--rules', 'off']))).code).toBe(0);
    const before = readFileSync(out, 'utf8');
    const hint = `hint: add --replace (or delete ${out}) to generate it again with these settings, or give another --out\n`;
    const rules = await run(args(['--rules', 'hewitt2024']));
    expect(rules.code).toBe(2);
    expect(rules.stderr).toBe(
      `error: --out: ${out} holds the finished outputs of another run (different --rules (its eos, uniform, used)); they are not replaced\n${hint}`,
    );
    const more = await run(args(['--rules', 'off', '--max-tokens', '5', '--token-ids', '--name', 'other']));
    expect(more.code).toBe(2);
    expect(more.stderr).toContain('(different --name, --max-tokens, --token-ids); they are not replaced');
    expect(readFileSync(out, 'utf8')).toBe(before);
    // the same settings: the finished run is found, as before
    const same = await run(args(['--rules', 'off']));
    expect(same.code).toBe(0);
    expect(same.stdout).toContain(', already complete\n');
    const foreign = join(tmp, 'foreign.json');
    writeFileSync(foreign, '[]\n');
    const intoForeign = (extra: string[]) => run(generate(foreign, '1', extra));
    const f = await intoForeign([]);
    expect(f.code).toBe(2);
    expect(f.stderr).toContain(
      `error: --out: ${foreign} exists, and there is no record of the run that wrote it (${foreign}.done): it may be anything, so it is not replaced`,
    );
    expect(readFileSync(foreign, 'utf8')).toBe('[]\n');
    // --replace writes over both, with these settings
    const replaced = await run(args(['--rules', 'hewitt2024', '--replace', '--json']));
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(JSON.parse(replaced.stdout)).toMatchObject({ count: 2, generated: 2, resumed: 0 });
    const name = `${basename(model)}-hewitt2024`;
    expect(readJson(out).map((o: Output) => o.generator)).toEqual([name, name]);
    const sameAgain = await run(args(['--rules', 'hewitt2024', '--replace']));
    expect([sameAgain.code, sameAgain.stdout]).toEqual([0, expect.stringContaining(', already complete\n')]);
    const f2 = await intoForeign(['--max-tokens', '4', '--replace']);
    expect(f2.code, f2.stderr).toBe(0);
    expect(readJson(foreign)).toHaveLength(1);
  });

  describe('generate: rules are compared as they compile, not as they are written', () => {
    const generate = (out: string, rules: string, extra: string[] = []) =>
      run([
        'eval',
        'generate',
        '--model',
        model,
        '--instructions',
        instructionsFile,
        '--limit',
        '2',
        '--max-tokens',
        '4',
        '--out',
        out,
        '--rules',
        rules,
        ...extra,
      ]);
    const M = () => basename(model);
    const hint = (out: string) =>
      `hint: add --replace (or delete ${out}) to generate it again with these settings, or give another --out\n`;
    /** The default name of inline JSON: `custom-` and six hex digits of the canonical config's sha256. */
    const customName = (canonicalJson: string) =>
      `${M()}-custom-${createHash('sha256').update(canonicalJson).digest('hex').slice(0, 6)}`;
    const USED = '{"used":{"penalty":-1.5,"scope":"conversation"}}';
    const rulesFile = (name: string, json: string) => {
      const file = join(tmp, name);
      writeFileSync(file, json);
      return `@${file}`;
    };

    it('a rerun with the same rules written otherwise finds the finished run, which keeps its name; its record holds the rules whole', async () => {
      const out = join(tmp, 'same-rules.json');
      const first = await generate(out, 'diversity', ['--json']);
      expect(first.code, first.stderr).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({ generator: `${M()}-diversity`, generated: 2 });
      expect(readJson(`${out}.done`).fingerprint.rules).toEqual(JSON.parse(USED));
      const before = readFileSync(out, 'utf8');
      for (const rules of [
        '{"used":true}',
        '{"used":{}}',
        ' {"used":{"scope":"conversation","penalty":-1.5},"eos":false} ',
        'used',
        rulesFile('spelled-out.json', USED),
      ]) {
        const again = await generate(out, rules);
        expect([again.code, again.stdout], rules).toEqual([
          0,
          `${out}: 2 outputs of "${M()}-diversity", already complete\n`,
        ]);
        expect(again.stderr, rules).toContain(
          `${out} holds outputs of these rules (written otherwise) named "${M()}-diversity": they keep that name\n`,
        );
      }
      expect(readFileSync(out, 'utf8')).toBe(before);
    });

    it('rules that differ in one weight, one entry, the EOS ramp or a rule are refused, naming what differs', async () => {
      const out = join(tmp, 'other-rules.json');
      const hewitt = await generate(out, 'hewitt2024');
      expect(hewitt.code, hewitt.stderr).toBe(0);
      const entries = HEWITT_TEXT();
      const cases: [string, string][] = [
        ['{"eos":true,"uniform":true,"used":{"penalty":-1.4}}', 'used.penalty'],
        [
          JSON.stringify({ eos: true, uniform: { entries: entries.slice(1) }, used: true }),
          'uniform.entries',
        ],
        [
          JSON.stringify({
            eos: true,
            uniform: { entries: entries.map((e, i) => (i === 3 ? { ...e, score: e.score + 1 } : e)) },
            used: true,
          }),
          'uniform.entries',
        ],
        ['{"eos":{"rampLength":200},"uniform":true,"used":true}', 'eos.rampLength'],
        ['{"eos":{"afterRamp":"hold"},"uniform":true,"used":true}', 'eos.afterRamp'],
        ['hewitt2024-prose', 'eos.afterRamp, uniform.entries, used.scope'],
        ['eos-uniform', 'used'],
        ['eos-uniform-diversity-start', 'start'],
      ];
      for (const [rules, parts] of cases) {
        const r = await generate(out, rules);
        expect([r.code, r.stderr], rules).toEqual([
          2,
          `error: --out: ${out} holds the finished outputs of another run (different --rules (its ${parts})); they are not replaced\n${hint(out)}`,
        ]);
      }
      // written otherwise, the same: found
      const same = await generate(
        out,
        JSON.stringify({ used: {}, uniform: { entries: entries.reverse() }, eos: true }),
      );
      expect([same.code, same.stdout]).toEqual([
        0,
        `${out}: 2 outputs of "${M()}-hewitt2024", already complete\n`,
      ]);
    });

    it('the default name: the file of @file.json, else custom and a hash of the rules; two rule sets of your own do not collide', async () => {
      const run2 = async (name: string, rules: string) => {
        const r = await generate(join(tmp, `${name}.json`), rules, ['--json']);
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout).generator as string;
      };
      const inline = await run2('inline-a', '{"used":{"penalty":-2}}');
      expect(inline).toBe(customName('{"used":{"penalty":-2,"scope":"conversation"}}'));
      // the same rules written otherwise: the same hash; other rules: another
      expect(await run2('inline-b', '{"used":{"scope":"conversation","penalty":-2}}')).toBe(inline);
      const other = await run2('inline-c', '{"used":{"penalty":-3}}');
      expect(other).toBe(customName('{"used":{"penalty":-3,"scope":"conversation"}}'));
      expect(other).not.toBe(inline);
      expect(await run2('from-file', rulesFile('my-variant.json', '{"used":{"penalty":-2}}'))).toBe(
        `${M()}-my-variant`,
      );
      // a file named as rules are: not their name, which would say other rules
      mkdirSync(join(tmp, 'rule-files'), { recursive: true });
      for (const [file, stem] of [
        ['rule-files/hewitt2024.json', 'hewitt2024'],
        ['rule-files/eos-uniform.json', 'eos-uniform'],
        ['rule-files/off.json', 'off'],
        ['rule-files/custom-abcdef.json', 'custom-abcdef'],
      ])
        expect(await run2(`named-${stem}`, rulesFile(file!, '{"used":{"penalty":-2}}'))).toBe(
          `${M()}-file-${stem}`,
        );
      // presets and subsets as before
      expect(await run2('preset', 'eos-uniform')).toBe(`${M()}-eos-uniform`);
      expect(await run2('off', 'off')).toBe(M());
      // the same rules read from a file of another name: a name the default cannot know, said
      const out = join(tmp, 'from-file.json');
      const renamed = await generate(out, rulesFile('renamed.json', '{"used":{"penalty":-2}}'));
      expect([renamed.code, renamed.stderr]).toEqual([
        2,
        `error: --out: ${out} holds the finished outputs of another run (different --name); they are not replaced\n` +
          `hint: its outputs are named "${M()}-my-variant" (this model's, with these rules named otherwise): add --name ${M()}-my-variant to reuse them; else add --replace (or delete ${out}) to generate it again with these settings, or give another --out\n`,
      ]);
    });

    it('reads the records of older versions, which held the rules as written and named JSON "custom": finished, or a journal to resume', async () => {
      const out = join(tmp, 'older-rules.json');
      expect((await generate(out, '{"used":true}')).code).toBe(0);
      // as an older version wrote it: the spec as given, the outputs named MODEL-custom
      const old = `${M()}-custom`;
      const record = readJson(`${out}.done`);
      const outputs = (readJson(out) as Output[]).map((o) => ({ ...o, generator: old }));
      writeFileSync(out, `${JSON.stringify(outputs, null, 2)}\n`);
      const older = {
        ...record,
        generator: old,
        fingerprint: { ...record.fingerprint, rules: { used: true } },
      };
      writeFileSync(`${out}.done`, `${JSON.stringify(older)}\n`);
      for (const rules of ['{"used":true}', 'diversity']) {
        const again = await generate(out, rules);
        expect([again.code, again.stdout], rules).toEqual([
          0,
          `${out}: 2 outputs of "${old}", already complete\n`,
        ]);
      }
      // other rules than the record's: refused, naming what differs as far as the record says it
      // (it holds `used: true`, not the whole config)
      const other = await generate(out, '{"used":{"penalty":-2}}');
      expect([other.code, other.stderr]).toEqual([
        2,
        `error: --out: ${out} holds the finished outputs of another run (different --rules (its used)); they are not replaced\n${hint(out)}`,
      ]);
      // a pending journal of an older version, begun with --rules diversity: resumed by the same rules
      rmSync(out);
      rmSync(`${out}.done`);
      const journal = `${out}.journal.jsonl`;
      const begun = {
        ...record,
        generator: `${M()}-diversity`,
        fingerprint: { ...record.fingerprint, rules: 'diversity' },
      };
      writeFileSync(journal, `${JSON.stringify({ journal: begun })}\n`);
      const refused = await generate(out, '{"used":{"penalty":-2}}');
      expect([refused.code, refused.stderr]).toEqual([
        2,
        `error: ${journal} holds the unfinished work of a run with other settings (different --rules); it is kept\n` +
          'hint: rerun with the flags it was started with to resume it, or add --replace (or delete it) to start over with these\n',
      ]);
      const resumed = await generate(out, '{"used":true}', ['--json']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(JSON.parse(resumed.stdout)).toMatchObject({
        generator: `${M()}-diversity`,
        count: 2,
        generated: 2,
      });
      expect(readJson(`${out}.done`).fingerprint.rules).toBe('diversity');
      // a journal of these very rules as this version records them, one rule differing: named
      const mine = readJson(`${out}.done`);
      rmSync(out);
      rmSync(`${out}.done`);
      writeFileSync(
        journal,
        `${JSON.stringify({ journal: { ...mine, fingerprint: { ...mine.fingerprint, rules: { used: { penalty: -2, scope: 'conversation' } } } } })}\n`,
      );
      const differs = await generate(out, 'diversity');
      expect(differs.stderr).toContain(
        `error: ${journal} holds the unfinished work of a run with other settings (different --rules (its used.penalty)); it is kept\n`,
      );
    });
  });
});

describeShared(
  'eval winrate',
  ['data/alpaca_eval/annotations/leaderboard_rows.csv', 'data/alpaca_eval/annotations/claude-2.json'],
  () => {
    const dir = sharedPath('data', 'alpaca_eval', 'annotations');
    const rows = () => {
      const [header, ...lines] = readFileSync(join(dir, 'leaderboard_rows.csv'), 'utf8').trim().split('\n');
      const keys = header!.split(',');
      return lines.map((line) => Object.fromEntries(line.split(',').map((c, i) => [keys[i]!, c])));
    };

    it('--json is ONE object with exactly the leaderboard keys, equal to every published row to 1e-6', async () => {
      const published = rows();
      expect(published.length).toBeGreaterThan(0);
      for (const row of published) {
        const name = row['']!;
        const r = await run(['eval', 'winrate', '--annotations', join(dir, `${name}.json`), '--json']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout.trim().split('\n')).toHaveLength(1);
        const stats = JSON.parse(r.stdout);
        expect(Object.keys(stats)).toEqual(WIN_RATE_KEYS);
        for (const key of WIN_RATE_KEYS) {
          expect(Math.abs(stats[key] - Number(row[key])), `${name}.${key}`).toBeLessThan(1e-6);
        }
      }
    });

    it('prints the statistics as a table; a bad file exits 2', async () => {
      const r = await run(['eval', 'winrate', '--annotations', join(dir, 'claude-2.json')]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        [
          'win_rate           17.188240',
          'standard_error     1.174828',
          'n_wins             131',
          'n_wins_base        673',
          'n_draws            1',
          'n_total            805',
          'discrete_win_rate  16.335404',
          'avg_length         1069',
          '',
        ].join('\n'),
      );
      const bad = join(tmp, 'not-annotations.json');
      writeFileSync(bad, '{"preference": 2}');
      const e = await run(['eval', 'winrate', '--annotations', bad]);
      expect(e.code).toBe(2);
      expect(e.stderr).toContain('expected a JSON array of annotations');
    });
  },
);

/**
 * An OpenAI-compatible judge that always answers "M" with P(M) = 0.75, P(m) = 0.25, and wants a key;
 * a prompt with `[too-long]` in it gets a 400, as a prompt over the judge model's context does.
 */
/** A judge endpoint; `requests` counts the requests it answered, `received` every request it got. */
function fakeJudge(
  key: string,
): Promise<{ server: Server; url: string; requests: () => number; received: () => number }> {
  let requests = 0;
  let received = 0;
  const body = (req: IncomingMessage) =>
    new Promise<string>((res) => {
      let s = '';
      req.on('data', (d) => {
        s += d;
      });
      req.on('end', () => res(s));
    });
  const server = createServer(async (req, res) => {
    const request = JSON.parse(await body(req));
    received++;
    if (req.headers.authorization !== `Bearer ${key}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"message":"bad key"}}');
      return;
    }
    const { model, max_tokens, logprobs, top_logprobs } = request;
    if (model !== 'fake-judge' || max_tokens !== 1 || logprobs !== true || top_logprobs !== 5) {
      res
        .writeHead(400, { 'content-type': 'application/json' })
        .end('{"error":{"message":"unexpected request"}}');
      return;
    }
    if (JSON.stringify(request.messages).includes('[too-long]')) {
      res
        .writeHead(400, { 'content-type': 'application/json' })
        .end('{"error":{"message":"the prompt is longer than the model\'s context"}}');
      return;
    }
    requests++;
    const top = [
      { token: 'M', logprob: Math.log(0.75) },
      { token: 'm', logprob: Math.log(0.25) },
    ];
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        choices: [
          {
            message: { role: 'assistant', content: 'M' },
            logprobs: { content: [{ ...top[0], top_logprobs: top }] },
          },
        ],
      }),
    );
  });
  return new Promise((res) =>
    server.listen(0, '127.0.0.1', () =>
      res({
        server,
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
        requests: () => requests,
        received: () => received,
      }),
    ),
  );
}

describeShared(
  'eval judge / rank / shift / report',
  [
    'data/alpaca_eval/alpaca_eval.jsonl',
    'data/alpaca_eval/gpt4_1106_preview.model_outputs.json',
    'data/alpaca/alpaca_data_2k.json',
    'data/val/val.jsonl',
    'data/val/val-gpt3.5.json',
  ],
  () => {
    let judgeServer: Awaited<ReturnType<typeof fakeJudge>>;
    let longModel: string;
    const runDir = join(tmp, 'shared-run');
    beforeAll(async () => {
      judgeServer = await fakeJudge('s3cret');
      // the tiny preset with 4096 positions: Alpaca's responses do not fit in 512
      longModel = (await createTinyModel({ maxPositionEmbeddings: 4096 })).dir;
    });
    afterAll(() => judgeServer?.server.close());
    /** The flags that point eval judge at the fake judge (its key in FAKE_JUDGE_KEY). */
    const fakeJudgeFlags = () => [
      '--base-url',
      judgeServer.url,
      '--judge-model',
      'fake-judge',
      '--api-key-env',
      'FAKE_JUDGE_KEY',
    ];
    /** eval judge --run-dir DIR against the fake judge. */
    const judgeRunDir = (dir: string, extra: string[]) =>
      run(['eval', 'judge', '--run-dir', dir, ...fakeJudgeFlags(), ...extra], {
        env: { FAKE_JUDGE_KEY: 's3cret' },
      });

    it('generate defaults to the AlpacaEval instructions', async () => {
      const out = join(runDir, 'outputs', 'rules.json');
      const r = await run([
        'eval',
        'generate',
        '--model',
        model,
        '--limit',
        '8',
        '--max-tokens',
        '24',
        '--name',
        'tiny-rules',
        '--token-ids',
        '--out',
        out,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const outputs: Output[] = readJson(out);
      const first = readFileSync(sharedPath('data', 'alpaca_eval', 'alpaca_eval.jsonl'), 'utf8')
        .split('\n')
        .slice(0, 8);
      expect(outputs.map((o) => o.instruction)).toEqual(first.map((l) => JSON.parse(l).instruction));
      expect(outputs[0]!.dataset).toBe(JSON.parse(first[0]!).dataset);
    });

    it('judge: the key from the env, alpaca_eval annotations, cached on rerun, winrate agrees', async () => {
      const out = join(runDir, 'annotations', 'rules.json');
      const args = [
        'eval',
        'judge',
        '--outputs',
        join(runDir, 'outputs', 'rules.json'),
        '--out',
        out,
        ...fakeJudgeFlags(),
        '--json',
      ];
      const r = await run(args, { env: { FAKE_JUDGE_KEY: 's3cret' } });
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout);
      expect(s).toMatchObject({
        name: 'rules',
        out,
        requests: 8,
        answered: 8,
        cacheHits: 0,
        identical: 0,
        discreteFallbacks: 0,
        unreadable: 0,
      });
      expect(judgeServer.requests()).toBe(8);
      const annotations = readJson(out);
      expect(annotations).toHaveLength(8);
      for (const a of annotations) {
        expect(a).toMatchObject({
          generator_1: 'gpt4_1106_preview',
          generator_2: 'tiny-rules',
          annotator: `weighted_judge:fake-judge@${judgeServer.url}`,
          preference_source: 'logprobs',
        });
        // the judge prefers whatever it sees second (M): the model unless the order was switched
        expect(a.preference).toBeCloseTo(a.is_switched_outputs ? 1.25 : 1.75, 12);
      }
      const expected =
        (100 * annotations.reduce((t: number, a: { preference: number }) => t + a.preference - 1, 0)) / 8;
      expect(s.stats.win_rate).toBeCloseTo(expected, 10);
      expect(Object.keys(s.stats)).toEqual(WIN_RATE_KEYS);

      const again = JSON.parse((await run(args, { env: { FAKE_JUDGE_KEY: 's3cret' } })).stdout);
      expect(again).toMatchObject({ requests: 0, cacheHits: 8 });
      expect(judgeServer.requests()).toBe(8);
      expect(again.stats).toEqual(s.stats);

      const wr = JSON.parse((await run(['eval', 'winrate', '--annotations', out, '--json'])).stdout);
      expect(wr).toEqual(s.stats);
    });

    it('judge: a wrong key exits 1 naming the variable; OpenAI without a key exits 2 before any request', async () => {
      const args = [
        'eval',
        'judge',
        '--outputs',
        join(runDir, 'outputs', 'rules.json'),
        '--out',
        join(tmp, 'denied.json'),
        '--cache-dir',
        join(tmp, 'denied-cache'),
        ...fakeJudgeFlags(),
      ];
      const denied = await run(args, { env: { FAKE_JUDGE_KEY: 'wrong' } });
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain('HTTP 401');
      expect(denied.stderr).toContain('check the API key in FAKE_JUDGE_KEY');
      const noKey = await run(
        ['eval', 'judge', '--outputs', join(runDir, 'outputs', 'rules.json'), '--out', join(tmp, 'x.json')],
        { env: { OPENAI_API_KEY: undefined, OPENAI_BASE_URL: undefined } },
      );
      expect(noKey.code).toBe(2);
      expect(noKey.stderr).toContain('OPENAI_API_KEY is not set');
      expect((await run(['eval', 'judge', '--base-url', judgeServer.url])).code).toBe(2); // neither --outputs nor --run-dir
    });

    it('rank: the response-ranking statistics, consistent with the scores it writes', async () => {
      const out = join(runDir, 'ranking', 'tiny.json');
      const r = await run([
        'eval',
        'rank',
        '--model',
        longModel,
        '--data',
        sharedPath('data', 'alpaca', 'alpaca_data_2k.json'),
        '--limit',
        '8',
        '--negatives',
        '3',
        '--bootstrap',
        '200',
        '--out',
        out,
        '--json',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout);
      expect(s).toMatchObject({ out, n: 8, negatives: 3, seed: 0, ci: { level: 0.95, resamples: 200 } });
      expect(s).not.toHaveProperty('examples');
      const full = readJson(out);
      expect(full.examples).toHaveLength(8);
      const pairs = full.examples.flatMap((e: { real: number; negatives: { score: number }[] }) =>
        e.negatives.map((n) => [e.real, n.score]),
      );
      // random.seed(0) draws [6, 6, 0], [4, 7, 6], [4, 7, 5], [3, 2, 4], [2, 1, 4], [2, 4, 1], ...:
      // examples 0, 3 and 4 drew themselves once, which ratio_eval.py's counting drops
      expect(full.examples.map((e: { negatives: { j: number }[] }) => e.negatives.map((x) => x.j))).toEqual([
        [6, 6],
        [4, 7, 6],
        [4, 7, 5],
        [2, 4],
        [2, 1],
        [2, 4, 1],
        [1, 5, 7],
        [1, 5, 6],
      ]);
      expect(s.pairs).toBe(21);
      expect(s.wins).toBe(pairs.filter(([a, b]: number[]) => a! > b!).length);
      expect(s.percent).toBeCloseTo((100 * s.wins) / 21, 10);
      expect(s.histogram.reduce((a: number, b: number) => a + b, 0)).toBe(8);
      expect(s.ci.low).toBeLessThanOrEqual(s.percent);
      expect(s.ci.high).toBeGreaterThanOrEqual(s.percent);
      const { out: _o, ...withoutOut } = s;
      const { examples: _e, ...fileSummary } = full;
      expect(fileSummary).toEqual(withoutOut);
    });

    it("shift: the base model's own greedy tokens are 100% unshifted; the rules shift some", async () => {
      const base = join(tmp, 'base-ids.json');
      const gen = await run([
        'eval',
        'generate',
        '--model',
        model,
        '--rules',
        'off',
        '--limit',
        '6',
        '--max-tokens',
        '24',
        '--token-ids',
        '--out',
        base,
      ]);
      expect(gen.code, gen.stderr).toBe(0);
      // the text's tokens: an output's final end-of-sequence id is not ranked
      const eos = new Set([readJson(join(model, 'generation_config.json')).eos_token_id].flat());
      const textTokens = (outputs: Output[]) =>
        outputs.reduce((n, o) => n + o.token_ids!.length - (eos.has(o.token_ids!.at(-1)) ? 1 : 0), 0);
      const tokens = textTokens(readJson(base));
      const r = await run(['eval', 'shift', '--base', model, '--aligned', base, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toContain('token_ids'); // generated with --token-ids: ranked exactly
      const s = JSON.parse(r.stdout);
      expect(s.outputs).toBe(6);
      expect(s.overall).toMatchObject({
        tokens,
        unshifted: tokens,
        marginal: 0,
        shifted: 0,
        percent: { unshifted: 100 },
      });

      const out = join(runDir, 'shift', 'rules.json');
      const shiftArgs = [
        'eval',
        'shift',
        '--base',
        model,
        '--aligned',
        model,
        '--aligned-rules',
        'hewitt2024',
        '--limit',
        '6',
      ];
      const rules = await run([...shiftArgs, '--max-tokens', '24', '--out', out, '--json']);
      expect(rules.code, rules.stderr).toBe(0);
      const sr = JSON.parse(rules.stdout);
      expect(sr).toMatchObject({
        out,
        alignedOutputs: join(runDir, 'outputs', `${basename(model)}-hewitt2024.json`), // run layout
        outputs: 6,
      });
      expect(sr.label).toBe(`${basename(model)}-hewitt2024 vs ${basename(model)}`);
      expect(sr.overall.unshifted).toBeLessThan(sr.overall.tokens);
      expect(sr.overall.unshifted + sr.overall.marginal + sr.overall.shifted).toBe(sr.overall.tokens);
      const aligned: Output[] = readJson(sr.alignedOutputs);
      expect(sr.overall.tokens).toBe(textTokens(aligned));
      const { out: _o, alignedOutputs: _a, ...result } = sr;
      expect(readJson(out)).toEqual(result);
      // the same command again reuses the aligned outputs; other settings do not replace them
      const again = await run([...shiftArgs, '--max-tokens', '24', '--out', out, '--json']);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toContain(
        `${sr.alignedOutputs} is already complete (same model, rules and limits): its outputs are reused`,
      );
      expect(JSON.parse(again.stdout)).toEqual(sr);
      // the text summary names the aligned outputs' file (in RUN/outputs/, which eval judge --run-dir reads)
      const text = await run([...shiftArgs, '--max-tokens', '24', '--out', out]);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain(`aligned outputs in ${sr.alignedOutputs}\nwrote ${out}\n`);
      const other = await run([...shiftArgs, '--max-tokens', '25', '--out', out]);
      expect(other.code).toBe(2);
      expect(other.stderr).toContain(
        `error: --aligned-out: ${sr.alignedOutputs} holds the finished outputs of another run (different --max-tokens); they are not replaced`,
      );
      expect(readJson(sr.alignedOutputs)).toEqual(aligned);
      const misuse = await run([
        'eval',
        'shift',
        '--base',
        model,
        '--aligned',
        base,
        '--aligned-rules',
        'hewitt2024',
      ]);
      expect(misuse.code).toBe(2);
      // a mistyped outputs file is named as such, not as a bad model
      const typo = await run(['eval', 'shift', '--base', model, '--aligned', join(tmp, 'no-such.json')]);
      expect(typo.code).toBe(2);
      expect(typo.stderr).toContain(
        `--aligned: ${join(tmp, 'no-such.json')} does not exist (an outputs .json file, or a model directory)`,
      );
      // a missing instructions file is named with its flag, as every other input
      const noInstructions = await run([
        'eval',
        'generate',
        '-m',
        model,
        '--instructions',
        join(tmp, 'no-such.jsonl'),
        '--out',
        join(tmp, 'never.json'),
      ]);
      expect(noInstructions.code).toBe(2);
      expect(noInstructions.stderr).toMatch(
        new RegExp(`^error: --instructions: ${join(tmp, 'no-such.jsonl')}: `),
      );
      const badBase = await run(['eval', 'shift', '--base', join(tmp, 'no-model'), '--aligned', base]);
      expect(badBase.code).toBe(3);
      expect(badBase.stderr).toContain(
        `--base: "${join(tmp, 'no-model')}" is neither a directory nor a hub id`,
      );
    });

    it('report: report.md and charts from the run directory', async () => {
      const r = await run(['eval', 'report', runDir, '--title', 'Tiny run', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout);
      expect(s.markdownPath).toBe(join(runDir, 'report.md'));
      expect(s.winrates.map((w: { name: string }) => w.name)).toEqual(['rules']);
      expect(s.rankings).toEqual(['tiny']);
      expect(s.shifts).toEqual(['rules']);
      // the aligned outputs eval shift wrote into outputs/ were not judged: said, not left out silently
      expect(r.stderr).toContain(
        `1 outputs file in ${join(runDir, 'outputs')} not judged, so without a win rate (${basename(model)}-hewitt2024): eval judge --run-dir ${runDir} judges them`,
      );
      expect(s.charts.length).toBeGreaterThan(0);
      for (const c of s.charts) expect(readFileSync(c, 'utf8')).toMatch(/^<svg/);
      const md = readFileSync(s.markdownPath, 'utf8');
      expect(md.startsWith('# Tiny run')).toBe(true);
      expect(readdirSync(join(runDir, 'charts')).length).toBe(s.charts.length);
      expect((await run(['eval', 'report', join(tmp, 'no-run')])).code).toBe(2);
    });

    it("the README's epoch choice: val.jsonl outputs per epoch count, judged against GPT-3.5's, a win rate each", async () => {
      const dir = join(tmp, 'val');
      for (const [e, seed] of [
        [5, 1],
        [7, 2],
      ] as const) {
        // stand-ins for two trained epoch counts: tiny models of different seeds
        const trained = (await createTinyModel({ seed })).dir;
        const g = await run([
          'eval',
          'generate',
          '-m',
          trained,
          '--rules',
          'off',
          '--max-tokens',
          '8',
          '--limit',
          '4',
          '--instructions',
          sharedPath('data', 'val', 'val.jsonl'),
          '--name',
          `ep${e}`,
          '--out',
          join(dir, 'outputs', `ep${e}.json`),
        ]);
        expect(g.code, g.stderr).toBe(0);
      }
      const judged = await judgeRunDir(dir, ['--baseline', sharedPath('data', 'val', 'val-gpt3.5.json')]);
      expect(judged.code, judged.stderr).toBe(0);
      for (const e of [5, 7]) {
        const annotations = readJson(join(dir, 'annotations', `ep${e}.json`));
        expect(annotations).toHaveLength(4);
        expect(annotations[0]).toMatchObject({ generator_1: 'val-gpt3.5', generator_2: `ep${e}` });
      }
      const report = await run(['eval', 'report', dir, '--json']);
      expect(report.code, report.stderr).toBe(0);
      expect(JSON.parse(report.stdout).winrates.map((w: { name: string }) => w.name)).toEqual(['ep5', 'ep7']);
    });

    it('judge --run-dir judges every outputs/NAME.json', async () => {
      const dir = join(tmp, 'judge-run');
      mkdirSync(join(dir, 'outputs'), { recursive: true });
      for (const name of ['a', 'b']) {
        const outputs = (readJson(join(runDir, 'outputs', 'rules.json')) as Output[])
          .slice(0, 3)
          .map((o) => ({ ...o, generator: name }));
        writeFileSync(join(dir, 'outputs', `${name}.json`), JSON.stringify(outputs));
      }
      const r = await judgeRunDir(dir, ['--json']);
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout);
      expect(s.results.map((x: { name: string; out: string }) => [x.name, x.out])).toEqual([
        ['a', join(dir, 'annotations', 'a.json')],
        ['b', join(dir, 'annotations', 'b.json')],
      ]);
      expect(existsSync(join(dir, '.judge-cache'))).toBe(true);
    });
  },
);

describe('eval judge: inputs checked before the first request, and resumed work said', () => {
  let judgeServer: Awaited<ReturnType<typeof fakeJudge>>;
  const dir = join(tmp, 'judge-checks');
  const baselineFile = join(dir, 'baseline.json');
  const rows = (generator: string, n: number, from = 0) =>
    Array.from({ length: n }, (_, i) => ({
      instruction: `Question ${from + i}?`,
      output: `${generator} answers ${from + i}.`,
      generator,
    }));
  const judge = (args: string[]) =>
    run(
      [
        'eval',
        'judge',
        '--baseline',
        baselineFile,
        '--base-url',
        judgeServer.url,
        '--judge-model',
        'fake-judge',
        '--api-key-env',
        'FAKE_JUDGE_KEY',
        ...args,
      ],
      { env: { FAKE_JUDGE_KEY: 'k3y' } },
    );
  beforeAll(async () => {
    judgeServer = await fakeJudge('k3y');
    mkdirSync(dir, { recursive: true });
    writeFileSync(baselineFile, JSON.stringify(rows('ref', 5)));
  });
  afterAll(() => judgeServer?.server.close());

  it('--run-dir: a later outputs file without baseline outputs fails before any request, naming both files', async () => {
    const runDir = join(dir, 'run');
    mkdirSync(join(runDir, 'outputs'), { recursive: true });
    writeFileSync(join(runDir, 'outputs', 'a.json'), JSON.stringify(rows('a', 3)));
    writeFileSync(join(runDir, 'outputs', 'b.json'), JSON.stringify(rows('b', 2, 4)));
    const before = judgeServer.requests();
    const r = await judge(['--run-dir', runDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `--run-dir: ${join(runDir, 'outputs', 'b.json')}: 1 of the 2 instructions have no output in the baseline ${baselineFile} (first: "Question 5?")`,
    );
    expect(judgeServer.requests()).toBe(before);
    expect(existsSync(join(runDir, 'annotations', 'a.json'))).toBe(false);
  });

  it('--run-dir: each warning names the outputs file it is about', async () => {
    const runDir = join(dir, 'warned');
    mkdirSync(join(runDir, 'outputs'), { recursive: true });
    writeFileSync(join(runDir, 'outputs', 'a.json'), JSON.stringify(rows('a', 3)));
    writeFileSync(join(runDir, 'outputs', 'b.json'), JSON.stringify(rows('b', 2)));
    const r = await judge(['--run-dir', runDir]);
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split('\n').filter((line) => line.startsWith('warning: '));
    expect(warnings).toEqual([
      `warning: ${join(runDir, 'outputs', 'a.json')}: the model's outputs cover 3 of the baseline's 5 instructions: the win rate is over that subset, not the whole set`,
      `warning: ${join(runDir, 'outputs', 'b.json')}: the model's outputs cover 2 of the baseline's 5 instructions: the win rate is over that subset, not the whole set`,
    ]);
    // --json names the judge as the annotations and the cache do: the model at its endpoint
    const json = await judge(['--run-dir', runDir, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const judgeId = `fake-judge@${judgeServer.url}`;
    expect(JSON.parse(json.stdout)).toMatchObject({ runDir, judge: judgeId });
    expect(readJson(join(runDir, 'annotations', 'a.json'))[0].annotator).toBe(`weighted_judge:${judgeId}`);
    // --outputs names its one file itself
    const one = await judge([
      '--outputs',
      join(runDir, 'outputs', 'a.json'),
      '--out',
      join(dir, 'warned-a.json'),
    ]);
    expect(one.stderr).toContain(
      "warning: the model's outputs cover 3 of the baseline's 5 instructions: the win rate is over that subset, not the whole set\n",
    );
  });

  it('the summary counts one pair, win, loss or draw in the singular', async () => {
    const outputs = join(dir, 'single.json');
    writeFileSync(outputs, JSON.stringify(rows('single', 1)));
    const out = join(dir, 'single-annotations.json');
    const r = await judge(['--outputs', outputs, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`: win rate 25.00% ± n/a over 1 pair (0 wins, 1 loss, 0 draws) -> ${out}\n`);
  });

  it("a judge's 400 for one pair leaves it unjudged, named with the judge's message; the others are judged, and a rerun asks again", async () => {
    const outputs = join(dir, 'refused.json');
    const out = join(dir, 'refused-annotations.json');
    const judged = rows('r', 5);
    judged[1]!.output += ' [too-long]';
    writeFileSync(outputs, JSON.stringify(judged));
    const message = `judge request to ${judgeServer.url}/chat/completions failed: HTTP 400: {"error":{"message":"the prompt is longer than the model's context"}}`;
    const received = judgeServer.received();
    const r = await judge(['--outputs', outputs, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(judgeServer.received() - received).toBe(5);
    expect(r.stderr).toContain(
      `warning: 1 of 5 pairs were not judged: the judge refused their request (# counts outputs from 0): output #1 of ${outputs} (instruction "Question 1?"): ${message}. ` +
        `They are left out of the win rate (preference null, "judge_error" in ${out}), which is over the other 4; ` +
        'a rerun asks for them again (judge with a model that takes them, such as one with a longer context, or leave those outputs out)\n',
    );
    expect(r.stdout).toContain(' over 4 pairs (');
    expect(r.stdout).toContain(
      '  5 judge requests (4 answered, 1 refused by the judge: not judged, rerun to ask again), 0 cached, 0 identical pairs\n',
    );
    const annotations = readJson(out) as { preference: number | null; judge_error?: string }[];
    expect(annotations[1]).toMatchObject({
      preference: null,
      preference_source: 'refused',
      judge_error: message,
    });
    expect(annotations.filter((a) => a.preference !== null)).toHaveLength(4);
    // the rerun asks the judge for the refused pair again (the others are cached): one request sent,
    // refused again, none answered
    const asked = judgeServer.received();
    const again = await judge(['--outputs', outputs, '--out', out, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(judgeServer.received() - asked).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({
      requests: 1,
      answered: 0,
      cacheHits: 4,
      notJudged: [{ index: 1, instruction: 'Question 1?', status: 400, message }],
    });
  });

  it('a judge that refuses every pair: exit 1, no win rate, saying it was refused', async () => {
    const outputs = join(dir, 'all-refused.json');
    const out = join(dir, 'all-refused-annotations.json');
    writeFileSync(
      outputs,
      JSON.stringify(rows('all', 2).map((x) => ({ ...x, output: `${x.output} [too-long]` }))),
    );
    const r = await judge(['--outputs', outputs, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error: all-refused: no pair was judged (2 refused by the judge), so there is no win rate; ${out} keeps them with preference null\n` +
        'hint: the judge refused every request (warned above, with its message): judge with a model that takes them (a longer context); a rerun asks again\n',
    );
    // the requests were sent, and refused: the summary counts them, not "0 judge requests"
    expect(r.stdout).toContain(
      '  2 judge requests (0 answered, 2 refused by the judge: not judged, rerun to ask again), 0 cached, 0 identical pairs\n',
    );
    const received = judgeServer.received();
    const json = await judge(['--outputs', outputs, '--out', out, '--json']);
    expect(json.code).toBe(1);
    expect(judgeServer.received() - received).toBe(2);
    const result = JSON.parse(json.stdout);
    expect(result).toMatchObject({ requests: 2, answered: 0, cacheHits: 0, identical: 0 });
    expect(result.notJudged.map((p: { index: number; status: number }) => [p.index, p.status])).toEqual([
      [0, 400],
      [1, 400],
    ]);
  });

  it('a rerun with part of the pairs cached says how many need no request, not that it resumes', async () => {
    const outputs = join(dir, 'partial.json');
    const out = join(dir, 'partial-annotations.json');
    writeFileSync(outputs, JSON.stringify(rows('m', 3)));
    expect((await judge(['--outputs', outputs, '--out', out])).code).toBe(0);
    writeFileSync(outputs, JSON.stringify(rows('m', 5)));
    const before = judgeServer.requests();
    const r = await judge(['--outputs', outputs, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(judgeServer.requests() - before).toBe(2);
    expect(r.stderr).toContain('judging: 3 of 5 need no request (identical outputs or cached judgements)\n');
    // a first run whose outputs are partly the baseline's: draws without a request, nothing resumed
    const copies = join(dir, 'copies.json');
    writeFileSync(copies, JSON.stringify([...rows('ref', 3), ...rows('c', 2, 3)]));
    const first = await judge(['--outputs', copies, '--out', join(dir, 'copies-annotations.json')]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain(
      'judging: 3 of 5 need no request (identical outputs or cached judgements)\n',
    );
    expect(first.stderr).not.toContain('resuming');
  });

  it("another judge's, baseline's or seed's annotations are not replaced (exit 2, before any request) unless --replace; the same settings judge again", async () => {
    const outputs = join(dir, 'replace.json');
    const out = join(dir, 'replace-annotations.json');
    writeFileSync(outputs, JSON.stringify(rows('r', 4)));
    expect((await judge(['--outputs', outputs, '--out', out])).code).toBe(0);
    const runDir = join(dir, 'run-replace');
    mkdirSync(join(runDir, 'outputs'), { recursive: true });
    writeFileSync(join(runDir, 'outputs', 'a.json'), JSON.stringify(rows('a', 2)));
    expect((await judge(['--run-dir', runDir])).code).toBe(0);
    // the same settings: judged again into OUT, from the cache
    const before = judgeServer.requests();
    const again = await judge(['--outputs', outputs, '--out', out]);
    expect(again.code, again.stderr).toBe(0);
    // the same judge elsewhere is another judge; another baseline (the same instructions), another seed
    const otherBaseline = join(dir, 'replace-baseline.json');
    writeFileSync(otherBaseline, JSON.stringify(rows('other-ref', 5)));
    const elsewhere = judgeServer.url.replace('127.0.0.1', 'localhost');
    for (const [args, differs] of [
      [['--base-url', elsewhere], '--judge-model / --base-url'],
      [['--baseline', otherBaseline], '--baseline'],
      [['--seed', '7'], '--seed'],
    ] as const) {
      const r = await judge(['--outputs', outputs, '--out', out, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toBe(
        `error: --out: ${out} holds the finished annotations of another run (different ${differs}); they are not replaced\n` +
          `hint: add --replace (or delete ${out}) to judge again with these settings, or give another --out\n`,
      );
    }
    // another model's outputs into the same file; a run directory's annotations as well
    const theirs = join(dir, 'replace-theirs.json');
    writeFileSync(theirs, JSON.stringify(rows('t', 4)));
    const other = await judge(['--outputs', theirs, '--out', out]);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain("(different outputs' generator)");
    const ann = join(runDir, 'annotations', 'a.json');
    const seeded = await judge(['--run-dir', runDir, '--seed', '7']);
    expect(seeded.code).toBe(2);
    expect(seeded.stderr).toContain(
      `error: --run-dir: ${ann} holds the finished annotations of another run (different --seed); they are not replaced\n`,
    );
    // a file that no judging wrote (no OUT.done) may be anything
    const foreign = join(dir, 'replace-foreign.json');
    writeFileSync(foreign, '[]');
    const unknown = await judge(['--outputs', outputs, '--out', foreign]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      `error: --out: ${foreign} exists, and there is no record of the run that wrote it (${foreign}.done): it may be anything, so it is not replaced\n`,
    );
    expect(judgeServer.requests()).toBe(before);
    expect(readJson(out)[0].annotator).toBe(`weighted_judge:fake-judge@${judgeServer.url}`);
    const replaced = await judge(['--outputs', outputs, '--out', out, '--seed', '7', '--replace']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(readJson(`${out}.done`).seed).toBe(7);
    // and now these settings are the file's: the same command judges again
    expect((await judge(['--outputs', outputs, '--out', out, '--seed', '7'])).code).toBe(0);
  });

  it('--run-dir with --out is refused; .jsonl outputs are read; winrate names model outputs as such', async () => {
    const runDir = join(dir, 'run-out');
    mkdirSync(join(runDir, 'outputs'), { recursive: true });
    writeFileSync(join(runDir, 'outputs', 'a.json'), JSON.stringify(rows('a', 2)));
    const both = await judge(['--run-dir', runDir, '--out', join(dir, 'x.json')]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain(
      'error: --out is for --outputs: --run-dir writes each RUN_DIR/annotations/NAME.json itself',
    );
    expect(existsSync(join(runDir, 'annotations'))).toBe(false);

    const jsonl = join(dir, 'lines.jsonl');
    writeFileSync(
      jsonl,
      rows('l', 2)
        .map((r) => `${JSON.stringify(r)}\n`)
        .join(''),
    );
    const out = join(dir, 'lines-annotations.json');
    const judged = await judge(['--outputs', jsonl, '--out', out, '--json']);
    expect(judged.code, judged.stderr).toBe(0);
    expect(readJson(out).map((a: { generator_2: string }) => a.generator_2)).toEqual(['l', 'l']);

    const wrong = await run(['eval', 'winrate', '--annotations', baselineFile]);
    expect(wrong.code).toBe(2);
    // in the CLI's words: the command, not the library function (it said "(judgePairs, or implicit-it eval judge)")
    expect(wrong.stderr).toBe(
      `error: ${baselineFile}: [0].output_1 must be a string, got undefined: this looks like model outputs ({instruction, output, generator}), not annotations; judge them against a baseline first with implicit-it eval judge, which writes annotations\n`,
    );
  });
});

describe('eval rank and eval shift: a finished --out is reused, never replaced by other settings', () => {
  const dir = join(tmp, 'finished-results');
  beforeAll(() => mkdirSync(dir, { recursive: true }));

  it('rank: the same command reuses the result; another --seed is refused naming it', async () => {
    const data = join(dir, 'alpaca.json');
    writeFileSync(
      data,
      JSON.stringify(
        ['Say hi.', 'Name a color.', 'Count to two.', 'Name a fruit.'].map((instruction, i) => ({
          instruction,
          input: '',
          output: ['Hi!', 'Red.', 'One, two.', 'Apple.'][i],
        })),
      ),
    );
    const out = join(dir, 'ranking.json');
    const rank = (extra: string[]) =>
      run([
        'eval',
        'rank',
        '-m',
        model,
        '--data',
        data,
        '--limit',
        '4',
        '--negatives',
        '1',
        '--out',
        out,
        ...extra,
      ]);
    const first = await rank(['--json']);
    expect(first.code, first.stderr).toBe(0);
    const written = readFileSync(out, 'utf8');
    const again = await rank(['--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(
      `${out} is already complete (same model, data and settings): nothing to do`,
    );
    expect(JSON.parse(again.stdout)).toEqual(JSON.parse(first.stdout));
    // rules written otherwise that compile alike (the default is off): the same ranking; others differ
    for (const rules of ['none', '{}', '{"eos":false}']) {
      const same = await rank(['--rules', rules, '--json']);
      expect([same.code, JSON.parse(same.stdout)], rules).toEqual([0, JSON.parse(first.stdout)]);
    }
    const ruled = await rank(['--rules', '{"used":true}']);
    expect(ruled.stderr).toContain(
      `error: --out: ${out} holds the finished result of another run (different --rules (its used)); it is not replaced`,
    );
    const other = await rank(['--seed', '1', '--bootstrap', '10']);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain(
      `error: --out: ${out} holds the finished result of another run (different --seed, --bootstrap); it is not replaced`,
    );
    const distinct = await rank(['--draw', 'distinct']);
    expect(distinct.code).toBe(2);
    expect(distinct.stderr).toContain(`(different --draw); it is not replaced`);
    expect(readFileSync(out, 'utf8')).toBe(written);
    // another --bootstrap alone: the interval again from the stored scores, nothing scored
    const wider = await rank(['--bootstrap', '10', '--json']);
    expect(wider.code, wider.stderr).toBe(0);
    expect(wider.stderr).toContain(
      `${out} holds the scores of this ranking: its interval computed again with --bootstrap 10, nothing scored`,
    );
    const rewritten = JSON.parse(readFileSync(out, 'utf8'));
    expect(rewritten.ci.resamples).toBe(10);
    expect(rewritten.examples).toEqual(JSON.parse(written).examples);
    expect(JSON.parse(wider.stdout)).toMatchObject({
      pairs: JSON.parse(first.stdout).pairs,
      ci: { resamples: 10 },
    });
    // and back to the default: the very file of the first run
    expect((await rank([])).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(written);
    // a file of unknown origin is not replaced either
    const stray = join(dir, 'stray.json');
    writeFileSync(stray, '{}');
    const unknown = await run([
      'eval',
      'rank',
      '-m',
      model,
      '--data',
      data,
      '--limit',
      '4',
      '--negatives',
      '1',
      '--out',
      stray,
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(`there is no record of the run that wrote it (${stray}.done)`);
    // --replace ranks again over a result of other settings
    const replaced = await rank(['--seed', '1', '--replace', '--json']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).seed).toBe(1);
    expect(JSON.parse(replaced.stdout).seed).toBe(1);
    const seed1 = await rank(['--seed', '1']);
    expect([seed1.code, seed1.stderr]).toEqual([0, expect.stringContaining(`${out} is already complete`)]);
  });

  it('shift: the same command reuses the result; another --top-k is refused naming it', async () => {
    const aligned = join(dir, 'aligned.json');
    writeFileSync(
      aligned,
      JSON.stringify([
        { instruction: 'Say hi.', output: 'Hi there!', generator: 'toy' },
        { instruction: 'Count to two.', output: 'One, two.', generator: 'toy' },
      ]),
    );
    const out = join(dir, 'shift.json');
    const shift = (extra: string[]) =>
      run(['eval', 'shift', '--base', model, '--aligned', aligned, '--out', out, ...extra]);
    const first = await shift(['--top-k', '3', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const again = await shift(['--top-k', '3', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`${out} is already complete`);
    expect(JSON.parse(again.stdout)).toEqual(JSON.parse(first.stdout));
    const other = await shift(['--top-k', '5']);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain(
      `error: --out: ${out} holds the finished result of another run (different --top-k); it is not replaced`,
    );
    const replaced = await shift(['--top-k', '5', '--replace', '--json']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(JSON.parse(replaced.stdout).overall).toEqual(JSON.parse(first.stdout).overall);
    const five = await shift(['--top-k', '5']);
    expect([five.code, five.stderr]).toEqual([0, expect.stringContaining(`${out} is already complete`)]);
  });

  it("shift: token_ids of another tokenizer than --base's are refused (exit 2, naming both), before any ranking", async () => {
    // the same model with another tokenizer.json (the same vocabulary, written otherwise: another digest)
    const other = join(dir, 'other-tokenizer');
    cpSync(model, other, { recursive: true });
    const tokenizerFile = join(other, 'tokenizer.json');
    writeFileSync(tokenizerFile, JSON.stringify(readJson(tokenizerFile), null, 1));
    const digest = (m: string) =>
      `sha256:${createHash('sha256')
        .update(readFileSync(join(m, 'tokenizer.json')))
        .digest('hex')
        .slice(0, 12)}`;
    const outputs = join(dir, 'with-ids.json');
    const args = ['--instructions', instructionsFile, '--limit', '2', '--max-tokens', '4'];
    const generated = await run([
      'eval',
      'generate',
      '--model',
      model,
      ...args,
      '--token-ids',
      '--out',
      outputs,
    ]);
    expect(generated.code, generated.stderr).toBe(0);
    const hint =
      "hint: give --base the model that generated them (or one with its tokenizer), or outputs without token_ids (eval generate without --token-ids), whose text --base's tokenizer encodes itself\n";
    const recorded = await run(['eval', 'shift', '--base', other, '--aligned', outputs]);
    expect([recorded.code, recorded.stderr]).toEqual([
      2,
      `error: --aligned ${outputs}: its token_ids come from another tokenizer than --base other-tokenizer's (tokenizer.json ${digest(model)} in ${outputs}.done, ${digest(other)} in --base): ranked under --base they would be other tokens\n${hint}`,
    ]);
    // a model directory whose outputs would carry its own tokenizer's ids
    const dirAligned = await run(['eval', 'shift', '--base', other, '--aligned', model, ...args]);
    expect(dirAligned.code).toBe(2);
    expect(dirAligned.stderr).toContain(
      `error: --aligned ${model} has another tokenizer than --base other-tokenizer (tokenizer.json ${digest(model)} and ${digest(other)}): the token ids it generates would be other tokens under --base\n`,
    );
    // the same tokenizer: ranked, as before
    expect((await run(['eval', 'shift', '--base', model, '--aligned', outputs])).code).toBe(0);
    // without a record, ids past --base's vocabulary say the same (not an error of the first batch)
    const vocabulary = readJson(join(model, 'config.json')).vocab_size;
    const foreign = join(dir, 'foreign-ids.json');
    writeFileSync(
      foreign,
      JSON.stringify([
        { instruction: 'Say hi.', output: 'Hi', generator: 'x', token_ids: [1, 2] },
        { instruction: 'Say bye.', output: 'Bye', generator: 'x', token_ids: [3, vocabulary + 7] },
      ]),
    );
    const unrecorded = await run(['eval', 'shift', '--base', model, '--aligned', foreign]);
    expect([unrecorded.code, unrecorded.stderr]).toEqual([
      2,
      `error: --aligned ${foreign}: output #1 has token id ${vocabulary + 7}, not an id of --base ${basename(model)} (its ids are in [0, ${vocabulary})): its token_ids come from another tokenizer\n${hint}`,
    ]);
  });

  it('shift: outputs are ranked under the prompt their run recorded (--format, --add-bos); a flag that differs is refused', async () => {
    const generate = async (name: string, extra: string[]) => {
      const out = join(dir, `${name}.json`);
      const r = await run([
        'eval',
        'generate',
        '--model',
        model,
        '--instructions',
        instructionsFile,
        '--limit',
        '3',
        '--max-tokens',
        '6',
        '--token-ids',
        '--out',
        out,
        ...extra,
      ]);
      expect(r.code, r.stderr).toBe(0);
      return out;
    };
    const shift = (outputs: string, extra: string[]) =>
      run(['eval', 'shift', '--base', model, '--aligned', outputs, '--json', ...extra]);
    const raw = await generate('prompt-raw', ['--format', 'raw']);
    const recorded = await shift(raw, ['--out', join(dir, 'prompt-raw-shift.json')]);
    expect(recorded.code, recorded.stderr).toBe(0);
    expect(recorded.stderr).toBe(
      `--aligned ${raw}: ranked under the prompt its outputs were generated with (--format raw, from ${raw}.done)\n`,
    );
    // the very ranks of --format raw, and recorded as such
    const given = await shift(raw, ['--format', 'raw']);
    expect([given.code, given.stderr]).toEqual([0, '']);
    const { out: _out, ...ranked } = JSON.parse(recorded.stdout);
    expect(ranked).toEqual(JSON.parse(given.stdout));
    expect(readJson(join(dir, 'prompt-raw-shift.json.done')).fingerprint.format).toBe('raw');
    const tulu = await shift(raw, ['--format', 'tulu']);
    expect([tulu.code, tulu.stderr]).toEqual([
      2,
      `error: --format tulu: ${raw} was generated with --format raw (its run record, ${raw}.done): ranked under another prompt than the one its outputs followed, its tokens' ranks would mean nothing\n` +
        'hint: leave --format out to rank them under the prompt they were generated with, or give --aligned outputs generated with these flags\n',
    ]);
    // --add-bos: recorded, taken when left out, refused when the other is given
    const bos = await generate('prompt-bos', ['--add-bos']);
    const taken = await shift(bos, []);
    expect([taken.code, taken.stderr]).toEqual([
      0,
      `--aligned ${bos}: ranked under the prompt its outputs were generated with (--add-bos, from ${bos}.done)\n`,
    ]);
    expect(JSON.parse(taken.stdout)).toEqual(JSON.parse((await shift(bos, ['--add-bos'])).stdout));
    const noBos = await shift(bos, ['--no-add-bos', '-f', 'raw']);
    expect([noBos.code, noBos.stderr]).toEqual([
      2,
      `error: --format raw, --no-add-bos: ${bos} was generated with --format tulu and --add-bos (its run record, ${bos}.done): ranked under another prompt than the one its outputs followed, its tokens' ranks would mean nothing\n` +
        'hint: leave --format and --no-add-bos out to rank them under the prompt they were generated with, or give --aligned outputs generated with these flags\n',
    ]);
    const plain = await generate('prompt-plain', []);
    const extraBos = await shift(plain, ['--add-bos']);
    expect(extraBos.code).toBe(2);
    expect(extraBos.stderr).toContain(
      `error: --add-bos: ${plain} was generated with neither --add-bos nor --no-add-bos (its run record, ${plain}.done)`,
    );
    // the default prompt, recorded: nothing to say
    expect(await shift(plain, [])).toMatchObject({ code: 0, stderr: '' });
    // outputs without a record (from elsewhere) are ranked under the flags, as before
    const copy = join(dir, 'prompt-raw-copy.json');
    cpSync(raw, copy);
    const unrecorded = await shift(copy, ['--format', 'tulu']);
    expect([unrecorded.code, unrecorded.stderr]).toEqual([0, '']);
  });

  it('shift: tokens that are part of a character are listed as their bytes, each its own', async () => {
    const tok = await loadTokenizer(model);
    const partial = Array.from({ length: tok.vocabulary.size }, (_, id) => id).filter(
      (id) => tok.tokenText(id) === '\ufffd',
    );
    const [a, b, c] = partial;
    const bytes = (id: number) =>
      [...tok.tokenBytes(id)].map((x) => `<0x${x.toString(16).toUpperCase().padStart(2, '0')}>`).join('');
    const aligned = join(dir, 'partial-characters.json');
    writeFileSync(
      aligned,
      JSON.stringify([
        { instruction: 'Say hi.', output: '', generator: 'toy', token_ids: [a, b, c, a, b, c, a, b, c] },
      ]),
    );
    const r = await run(['eval', 'shift', '--base', model, '--aligned', aligned, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { topShifted } = JSON.parse(r.stdout) as {
      topShifted: { id: number; text: string; count: number }[];
    };
    expect(topShifted.length).toBeGreaterThan(1);
    for (const t of topShifted) expect(t.text).toBe(bytes(t.id));
    const text = await run(['eval', 'shift', '--base', model, '--aligned', aligned]);
    expect(text.stdout).toContain(
      `  most shifted: ${topShifted.map((t) => `"${bytes(t.id)}" ${t.count}`).join(', ')}\n`,
    );
    expect(text.stdout).not.toContain('\ufffd');
    // a result written before, with U+FFFD for each: told apart by id
    const out = join(dir, 'partial-characters-shift.json');
    expect((await run(['eval', 'shift', '--base', model, '--aligned', aligned, '--out', out])).code).toBe(0);
    const older = readJson(out);
    for (const t of older.topShifted) t.text = '\ufffd';
    writeFileSync(out, JSON.stringify(older));
    const reused = await run(['eval', 'shift', '--base', model, '--aligned', aligned, '--out', out]);
    expect(reused.stderr).toContain(`${out} is already complete`);
    expect(reused.stdout).toContain(
      `  most shifted: ${topShifted.map((t) => `"\ufffd" (id ${t.id}) ${t.count}`).join(', ')}\n`,
    );
  });

  it('shift of a model directory without --out keeps its outputs in NAME.outputs.json here, as --help says', async () => {
    const here = mkdtempSync(join(tmpdir(), 'cli-shift-here-'));
    try {
      const r = await run(
        [
          'eval',
          'shift',
          '--base',
          model,
          '--aligned',
          model,
          '--aligned-rules',
          'eos-uniform',
          '--limit',
          '2',
          '--max-tokens',
          '4',
        ],
        { cwd: here },
      );
      expect(r.code, r.stderr).toBe(0);
      const name = `${basename(model)}-eos-uniform`;
      expect(r.stdout).toContain(`wrote the aligned outputs to ${join(here, `${name}.outputs.json`)}\n`);
      expect(readdirSync(here).sort()).toEqual([`${name}.outputs.json`, `${name}.outputs.json.done`]);
      const help = await run(['eval', 'shift', '--help']);
      expect(help.stdout.replace(/\s+/g, ' ')).toContain(
        'else OUT.aligned-outputs.json; without --out, NAME.outputs.json in this directory)',
      );
    } finally {
      rmSync(here, { recursive: true, force: true });
    }
  });

  it('shift --top-k 0 lists no tokens, the statistics only, as --help says; a negative one exits 2', async () => {
    const aligned = join(dir, 'aligned-top-k.json');
    writeFileSync(
      aligned,
      JSON.stringify([{ instruction: 'Say hi.', output: 'Hi there! 42 ~~', generator: 'toy' }]),
    );
    const shift = (extra: string[]) =>
      run(['eval', 'shift', '--base', model, '--aligned', aligned, ...extra]);
    const all = await shift(['--json']);
    expect(all.code, all.stderr).toBe(0);
    const stats = JSON.parse(all.stdout);
    expect(stats.overall.shifted).toBeGreaterThan(0);
    expect(stats.topShifted.length).toBeGreaterThan(0);
    const none = await shift(['--top-k', '0', '--json']);
    expect(none.code, none.stderr).toBe(0);
    expect(JSON.parse(none.stdout)).toEqual({ ...stats, topShifted: [] });
    const text = await shift(['--top-k', '0']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^token shift \(aligned-top-k vs .+\): \d+ tokens in 1 output: unshifted /);
    // outputs without token_ids are tokenized again: said, with the exact way
    expect(text.stderr).toContain(
      `warning: --aligned ${aligned}: its outputs have no token_ids, so their text is tokenized again, which can rank tokens the model did not generate (eval generate strips whitespace); for an exact shift, write them with eval generate --token-ids, or give --aligned the model directory (with --aligned-rules)`,
    );
    expect(text.stdout).not.toContain('most shifted');
    const help = await run(['eval', 'shift', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      '--top-k <n> shifted tokens to list (default 20; 0: none, the statistics only)',
    );
    const negative = await shift(['--top-k', '-1']);
    expect(negative).toEqual({
      code: 2,
      stdout: '',
      stderr: `error: option '--top-k <n>' argument '-1' is invalid. expected an integer >= 0, got "-1"\n(add --help for usage and examples)\n`,
    });
  });
});
