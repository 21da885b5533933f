import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  randomWeights,
  resolveConfig,
  toHfConfig,
  weightSpecs,
  writeSafetensors,
} from '@implicit-it/modelkit';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { describeShared, SHARED_DIR } from '@implicit-it/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CACHE, CLI, run } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'implicit-it-cli-finetune-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const DATA = join(SHARED_DIR, 'data');

describeShared('finetune data', ['data/mbpp/mbpp.jsonl', 'data/poetry/poems.csv'], () => {
  it('--json prints ONE summary object: mbpp 374, nothing skipped', async () => {
    const r = await run(['finetune', 'data', '--recipe', 'mbpp', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({
      recipe: 'mbpp',
      count: 374,
      validationCount: 0,
      total: 374,
      expected: 374,
      rawCount: 974,
      skipped: 0,
      issues: [],
      files: {},
    });
    expect(s.stats.userChars.count).toBe(374);
    expect(s).not.toHaveProperty('train');
  });

  it('--out - writes the JSONL to stdout and the summary to stderr; a directory or the same file is refused', async () => {
    const r = await run(['finetune', 'data', '--recipe', 'mbpp', '--out', '-']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(374);
    expect(JSON.parse(lines[0]!)).toMatchObject({ dataset: 'mbpp', id: 'mbpp_0' });
    expect(r.stderr).toContain('wrote 374 examples to stdout');
    expect(existsSync('-')).toBe(false);
    const dir = mkdtempSync(join(tmpdir(), 'cli-ft-dir-'));
    const isDir = await run(['finetune', 'data', '--recipe', 'mbpp', '--out', dir]);
    expect(isDir.code).toBe(2);
    expect(isDir.stderr).toContain(`--out: ${dir} is a directory; give a file path`);
    const same = join(dir, 'same.jsonl');
    const both = await run([
      'finetune',
      'data',
      '--recipe',
      'mbpp',
      '--validation',
      '5',
      '--out',
      same,
      '--validation-out',
      same,
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('the held-out examples would overwrite the training set');
    expect(existsSync(same)).toBe(false);
  });

  it('--validation-out in a folder that does not exist yet: created, with --out FILE and --out -', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-ft-vo-'));
    const file = await run([
      'finetune',
      'data',
      '--recipe',
      'mbpp',
      '--out',
      join(dir, 'vo', 'train.jsonl'),
      '--validation',
      '10',
      '--validation-out',
      join(dir, 'vo', 'val', 'v.jsonl'),
    ]);
    expect(file.code, file.stderr).toBe(0);
    expect(
      readFileSync(join(dir, 'vo', 'val', 'v.jsonl'), 'utf8')
        .trim()
        .split('\n'),
    ).toHaveLength(10);
    const piped = await run([
      'finetune',
      'data',
      '--recipe',
      'mbpp',
      '--out',
      '-',
      '--validation',
      '10',
      '--validation-out',
      join(dir, 'piped', 'val', 'v.jsonl'),
    ]);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout.trimEnd().split('\n')).toHaveLength(364);
    expect(
      readFileSync(join(dir, 'piped', 'val', 'v.jsonl'), 'utf8')
        .trim()
        .split('\n'),
    ).toHaveLength(10);
  });

  it('--validation 0 writes no validation file and reports none; an earlier one is left, and said', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-ft-v0-'));
    const out = join(dir, 'm.jsonl');
    const val = join(dir, 'm.val.jsonl');
    const data = (args: string[]) => run(['finetune', 'data', '--recipe', 'mbpp', '--out', out, ...args]);
    expect((await data(['--validation', '1'])).code).toBe(0);
    const earlier = readFileSync(val, 'utf8');
    const none = await data(['--validation', '0', '--json']);
    expect(none.code, none.stderr).toBe(0);
    const left = `note: ${val} is left as it was, not this build's validation set: this build holds out no examples (all 374 are in the training set)`;
    expect(none.stderr).toBe(`${left}\n`);
    expect(JSON.parse(none.stdout)).toMatchObject({
      validationCount: 0,
      files: { train: out },
      notes: [left.slice(6)],
    });
    expect(readFileSync(val, 'utf8')).toBe(earlier);
    // with --out -, --validation-out gets no file either
    const piped = join(dir, 'piped-val.jsonl');
    const stdout = await run([
      'finetune',
      'data',
      '--recipe',
      'mbpp',
      '--out',
      '-',
      '--validation',
      '0',
      '--validation-out',
      piped,
    ]);
    expect(stdout.code, stdout.stderr).toBe(0);
    expect(existsSync(piped)).toBe(false);
    expect(stdout.stderr).not.toContain(`wrote ${piped}`);
  });

  it('--validation: a fraction that rounds to no example is refused (exit 2)', async () => {
    const r = await run(['finetune', 'data', '--recipe', 'mbpp', '--validation', '0.0001', '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      '--validation: 0.0001 of 374 examples rounds to 0 held out, an empty validation set',
    );
  });

  it('poetry: 571 examples, the 2 nameless poems skipped with their line numbers', async () => {
    const r = await run(['finetune', 'data', '--recipe', 'poetry', '--data-dir', DATA, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ recipe: 'poetry', count: 571, skipped: 2, expected: 571, rawCount: 573 });
    expect(s.issues.map((i: { line: number; kind: string }) => [i.kind, i.line])).toEqual([
      ['skipped', 10700],
      ['skipped', 13217],
    ]);
    const text = await run(['finetune', 'data', '--recipe', 'poetry', '--data-dir', DATA]);
    expect(text.stdout).toMatch(/^poetry: 571 examples \(571 built, paper 571; 573 raw records, 2 skipped\)/);
    expect(text.stdout).toContain('poetry/poems.csv:10700 skipped: empty "poem name"');
    expect(text.stdout).toContain('(no --out: nothing written)');
  });

  it('writes JSONL with a seeded validation split (a count or a fraction), the same for the same seed', async () => {
    const out = join(tmp, 'mbpp.jsonl');
    const r = await run([
      'finetune',
      'data',
      '--recipe',
      'mbpp',
      '--out',
      out,
      '--validation',
      '0.1',
      '--validation-seed',
      '3',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ count: 337, validationCount: 37, total: 374 });
    expect(s.files).toEqual({ train: out, validation: join(tmp, 'mbpp.val.jsonl') });
    const train = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const val = readFileSync(s.files.validation, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(train).toHaveLength(337);
    expect(val).toHaveLength(37);
    expect(Object.keys(train[0]).sort()).toEqual(['dataset', 'id', 'messages']);
    expect(train[0].messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant']);
    const ids = new Set(train.map((e: { id: string }) => e.id));
    expect(val.some((e: { id: string }) => ids.has(e.id))).toBe(false);

    const again = join(tmp, 'again.jsonl');
    const count = await run([
      'finetune',
      'data',
      '--recipe',
      'mbpp',
      '--out',
      again,
      '--validation',
      '37',
      '--seed', // the former name of --validation-seed, still read
      '3',
      '--validation-out',
      join(tmp, 'again-val.jsonl'),
    ]);
    expect(count.code, count.stderr).toBe(0);
    expect(count.stdout).toMatch(/^mbpp: 337 examples \+ 37 validation/);
    expect(readFileSync(join(tmp, 'again-val.jsonl'), 'utf8')).toBe(readFileSync(s.files.validation, 'utf8'));
    const otherVal = join(tmp, 'other-val.jsonl');
    const other = ['--validation', '37', '--validation-seed', '4', '--validation-out', otherVal];
    expect(
      (await run(['finetune', 'data', '--recipe', 'mbpp', '--out', join(tmp, 'other.jsonl'), ...other])).code,
    ).toBe(0);
    expect(readFileSync(otherVal, 'utf8')).not.toBe(readFileSync(s.files.validation, 'utf8'));
    const seeds = ['--validation-seed', '4', '--seed', '3'];
    const both = await run(['finetune', 'data', '--recipe', 'mbpp', '--validation', '37', ...seeds]);
    expect([both.code, both.stderr]).toEqual([
      2,
      'error: give --validation-seed (--seed is its former name), not both\n',
    ]);
    // a seed without a split would be ignored: said instead
    const alone = await run(['finetune', 'data', '--recipe', 'mbpp', '--validation-seed', '3']);
    expect([alone.code, alone.stderr]).toEqual([
      2,
      'error: --validation-seed needs --validation (the seed of the held-out split)\n',
    ]);
  });

  it('--validation that leaves nothing to train on, or holds out more than there is, exits 2 naming it', async () => {
    const out = join(tmp, 'all-held-out.jsonl');
    const all = await run(['finetune', 'data', '--recipe', 'mbpp', '--validation', '374', '--out', out]);
    expect(all.code).toBe(2);
    expect(all.stderr).toBe(
      'error: --validation: holds out all 374 mbpp examples, which leaves nothing to train on; hold out fewer (a count below 374, or a smaller fraction)\n',
    );
    expect(existsSync(out)).toBe(false);
    const more = await run(['finetune', 'data', '--recipe', 'mbpp', '--validation', '1000']);
    expect(more.code).toBe(2);
    expect(more.stderr).toBe(
      'error: --validation: asks to hold out 1000 of the 374 mbpp examples; give a count of at most 373 (leaving one or more to train on), or a fraction\n',
    );
  });
});

describe('finetune: an --out where nothing can be written', () => {
  it.runIf(process.platform === 'linux')(
    'data and plan refuse it up front: exit 2 naming the flag, not an errno',
    async () => {
      // /proc takes no new files, whoever asks: root, who writes past permission bits, gets ENOENT
      const why =
        process.getuid?.() === 0
          ? 'files cannot be created in /proc (ENOENT: no such file or directory)'
          : '/proc is not writable (permission denied)';
      const cases: [string[], string, string][] = [
        [['data', '--recipe', 'mbpp', '--out'], '--out', 'm.jsonl'],
        [
          [
            'data',
            '--recipe',
            'mbpp',
            '--out',
            join(tmp, 'm.jsonl'),
            '--validation',
            '5',
            '--validation-out',
          ],
          '--validation-out',
          'v/m.jsonl',
        ],
        [['plan', '--recipe', 'mbpp', '--model', 'tiny', '--gpus', '0', '--out'], '--out', 'job'],
        [['sweep', '--recipe', 'mbpp', '--model', 'tiny', '--gpus', '0', '--out'], '--out', 'jobs'],
      ];
      for (const [args, flag, name] of cases) {
        const r = await run(['finetune', ...args, `/proc/${name}`]);
        expect([r.code, r.stderr], args.join(' ')).toEqual([
          2,
          `error: ${flag}: cannot write /proc/${name}: ${why}\nhint: give ${flag} a path in a directory you can write to\n`,
        ]);
      }
      expect(existsSync(join(tmp, 'm.jsonl'))).toBe(false);
    },
  );
});

describe('finetune data: errors', () => {
  it('reports malformed rows with their line numbers (never fatal)', async () => {
    const dir = join(tmp, 'bad-data');
    mkdirSync(join(dir, 'mbpp'), { recursive: true });
    const row = (id: number) =>
      JSON.stringify({ task_id: id, text: `Task ${id}`, code: `def f${id}(): pass` });
    writeFileSync(
      join(dir, 'mbpp', 'mbpp.jsonl'),
      `${row(601)}\n{not json\n${row(602)}\n${JSON.stringify({ task_id: 'x', text: 't', code: 'c' })}\n${row(1)}\n`,
    );
    const r = await run(['finetune', 'data', '--recipe', 'mbpp', '--data-dir', dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ count: 2, rawCount: 5, skipped: 2, expected: 374 });
    expect(s.issues.map((i: { kind: string; line: number }) => [i.kind, i.line])).toEqual([
      ['malformed', 2],
      ['malformed', 4],
    ]);
    const text = await run(['finetune', 'data', '--recipe', 'mbpp', '--data-dir', dir]);
    expect(text.stdout).toContain("2 is not the paper's 374: see the rows below");
    expect(text.stdout).toMatch(/mbpp\/mbpp\.jsonl:2 malformed: /);
    expect(text.stdout).toContain('mbpp/mbpp.jsonl:4 malformed: field "task_id" is not a number');
  });

  it('without --data-dir and no shared data where it is looked for, a usage error says where, writing nothing', async () => {
    const none = join(tmp, 'no-shared');
    const out = join(tmp, 'no-shared.jsonl');
    const r = await run(['finetune', 'data', '--recipe', 'gsm', '--out', out], {
      env: { IMPLICIT_IT_SHARED_DIR: none },
    });
    expect([r.code, r.stderr]).toEqual([
      2,
      `error: --data-dir: give the directory of the paper's raw datasets: the default, data in the shared directory, is not there (no ${join(none, 'data')}, IMPLICIT_IT_SHARED_DIR being ${none})\n` +
        "hint: set IMPLICIT_IT_SHARED_DIR to the repository's shared/ directory (the one that holds data/), or give --data-dir\n",
    ]);
    expect(existsSync(out)).toBe(false);
  });

  it("a build short of the paper's count points at rows below only when there are any", async () => {
    const dir = join(tmp, 'short-data');
    mkdirSync(join(dir, 'mbpp'), { recursive: true });
    const row = (id: number) =>
      JSON.stringify({ task_id: id, text: `Task ${id}`, code: `def f${id}(): pass` });
    writeFileSync(join(dir, 'mbpp', 'mbpp.jsonl'), `${row(601)}\n${row(602)}\n`);
    const r = await run(['finetune', 'data', '--recipe', 'mbpp', '--data-dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("  2 is not the paper's 374\n");
    expect(r.stdout).not.toContain('see the rows below');
  });

  it('nothing to train on exits 1 naming the empty file, writing nothing', async () => {
    const dir = join(tmp, 'empty-data');
    mkdirSync(join(dir, 'mbpp'), { recursive: true });
    writeFileSync(join(dir, 'mbpp', 'mbpp.jsonl'), '');
    const out = join(tmp, 'empty.jsonl');
    const r = await run(['finetune', 'data', '--recipe', 'mbpp', '--data-dir', dir, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `error: ${join(dir, 'mbpp', 'mbpp.jsonl')}: holds no records: nothing to train on; restore the file, or pass --data-dir pointing at a complete copy of the shared data (../shared/data)\n`,
    );
    expect(r.stdout).toBe('');
    expect(existsSync(out)).toBe(false);
  });

  it('exits 2 on an unknown recipe, a bad --validation or a missing data file', async () => {
    const recipe = await run(['finetune', 'data', '--recipe', 'alpaca']);
    expect(recipe.code).toBe(2);
    expect(recipe.stderr).toContain('lima, lima-response, gsm, mbpp, poetry, recipes, chess');
    expect((await run(['finetune', 'data'])).code).toBe(2); // --recipe or --data is required
    const split = await run(['finetune', 'data', '--recipe', 'mbpp', '--validation', '1.5']);
    expect(split.code).toBe(2);
    expect(split.stderr).toMatch(/a count \(an integer >= 0\) or a fraction in \(0, 1\)/);
    const missing = await run(['finetune', 'data', '--recipe', 'gsm', '--data-dir', join(tmp, 'nowhere')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/gsm8k\/train\.jsonl: cannot read it .*--data-dir/);
  });
});

/**
 * `finetune run JOB ARGS` as a child process that a test stops with a signal, as a terminal, a
 * scheduler or systemd would. `reached` waits (up to 10 s) until the job's train.log holds a
 * text: how a test knows the training got that far. `stop` sends the signal and resolves with the
 * exit code and all of stderr.
 */
function startRun(job: string, args: string[]) {
  const child = spawn(process.execPath, [CLI, 'finetune', 'run', job, ...args], {
    env: { ...process.env, NO_COLOR: '1', IMPLICIT_IT_CACHE: CACHE },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const closed = new Promise<number | null>((res) => child.on('close', res));
  const log = join(job, 'train.log');
  return {
    log,
    async reached(text: string): Promise<void> {
      for (let i = 0; i < 200; i++) {
        if (existsSync(log) && readFileSync(log, 'utf8').includes(text)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGKILL');
      throw new Error(`${log} did not show ${JSON.stringify(text)} within 10 s; stderr: ${stderr}`);
    },
    async stop(signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
      child.kill(signal);
      return { code: await closed, stderr };
    },
  };
}

/**
 * A stand-in Python: a wrapper that runs the real python3 without site-packages (-S), on a path
 * holding empty `torch` and `transformers` modules and an `accelerate.commands.launch` that prints
 * train.py's event lines. It makes `finetune run` testable without torch, and the "what to
 * install" list exact whatever the machine has.
 */
function fakePython(): string | undefined {
  if (spawnSync('python3', ['--version']).status !== 0) return undefined;
  const root = join(tmp, 'fakepy');
  const lib = join(root, 'lib');
  for (const m of ['torch', 'transformers', 'accelerate/commands'])
    mkdirSync(join(lib, m), { recursive: true });
  for (const f of ['torch', 'transformers', 'accelerate', 'accelerate/commands'])
    writeFileSync(join(lib, f, '__init__.py'), '');
  writeFileSync(
    join(lib, 'accelerate', 'commands', 'launch.py'),
    `import json, os, sys, time
args = sys.argv[1:]
job = json.load(open(args[args.index("--job") + 1]))
steps = int(args[args.index("--max-steps") + 1]) if "--max-steps" in args else 4
def emit(event, **f): print("IMPLICIT_IT_EVENT " + json.dumps({"event": event, **f}), flush=True)
print("fake accelerate launch, epochs", job["training"]["epochs"], "rank", os.environ.get("MACHINE_RANK"), flush=True)
where = {"device": os.environ["FAKE_DEVICE"], "mixed_precision": "bf16"} if "FAKE_DEVICE" in os.environ else {}
emit("start", total_steps=steps, steps_per_epoch=steps, examples=job["counts"]["train"], epochs=1, **where)
for s in range(1, steps + 1):
    time.sleep(float(os.environ.get("FAKE_STEP_SECONDS", "0")))
    emit("step", step=s, total_steps=steps, epoch=1, loss=2.0 / s, lr=1e-5)
    if os.environ.get("FAKE_CRASH_AFTER_CHECKPOINT") == str(s):
        saved = os.path.join(os.path.dirname(os.path.abspath("job.json")), "checkpoints", "step-%08d" % s)
        os.makedirs(saved, exist_ok=True)
        emit("checkpoint", step=s, path=saved)
        print("RuntimeError: CUDA out of memory", flush=True)
        sys.exit(1)
    if os.environ.get("FAKE_CHECKPOINT_AT") == str(s):
        saved = os.path.join(os.path.dirname(os.path.abspath("job.json")), "checkpoints", "step-%08d" % s)
        os.makedirs(saved, exist_ok=True)
        emit("checkpoint", step=s, path=saved)
emit("eval", epoch=1, step=steps, val_loss=0.75)
emit("saved", path=os.path.join(os.path.dirname(os.path.abspath("job.json")), "output"))
# as train.py: the record of the trained model, which makes the job finished
json.dump({"steps": steps, "total_steps": steps}, open("result.json", "w"))
if os.environ.get("FAKE_ONNX_EXPORTED"):
    emit("onnx", exported=True, path=os.path.join(os.path.dirname(os.path.abspath("job.json")), "output", "onnx"))
else:
    emit("onnx", exported=False, reason=os.environ.get("FAKE_ONNX_REASON", "optimum is not installed"))
emit("done", steps=steps, val_losses=[0.75])
`,
  );
  const python = join(root, 'python');
  writeFileSync(python, `#!/bin/sh\nPYTHONPATH='${lib}' exec python3 -S "$@"\n`);
  chmodSync(python, 0o755);
  return python;
}

describeShared('finetune plan / sweep / run', ['data/mbpp/mbpp.jsonl', 'data/poetry/poems.csv'], () => {
  let model: string;
  let onnxOnly: string;
  let python: string | undefined;
  beforeAll(async () => {
    // train.py loads PyTorch weights: model create --safetensors writes them beside the graph
    onnxOnly = (await createTinyModel()).dir;
    model = join(tmp, 'tiny-pt');
    const created = await run([
      'model',
      'create',
      '--preset',
      'tiny',
      '--seed',
      '1',
      '--safetensors',
      '--out',
      model,
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain(
      'files: config.json, generation_config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx, model.safetensors\n',
    );
    python = fakePython();
  });

  it('plan refuses a model directory without PyTorch weights (model create without --safetensors), naming the flag, exit 3', async () => {
    const out = join(tmp, 'onnx-only');
    const r = await run([
      'finetune',
      'plan',
      '--recipe',
      'mbpp',
      '--model',
      onnxOnly,
      '--gpus',
      '0',
      '--out',
      out,
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `error: --model: ${onnxOnly} has no PyTorch weights for train.py to load (it holds ONNX graphs only, as \`implicit-it model create\` writes them without --safetensors): expected *.safetensors or pytorch_model*.bin (or their .index.json) beside config.json; give a Hugging Face checkpoint directory, or a hub id with a tokenizer directory (a random-weights model to try the mechanics: \`implicit-it model create --safetensors\`, or createModel with safetensors: true)\n`,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('plan writes a multi-node ZeRO-3 job (--json: jobDir, files, job)', async () => {
    const out = join(tmp, 'jobs', 'mbpp');
    const r = await run([
      'finetune',
      'plan',
      '--recipe',
      'mbpp',
      '--model',
      model,
      '--gpus',
      '4',
      '--nodes',
      '2',
      '--epochs',
      '10',
      '--seed',
      '3',
      '--validation',
      '10',
      '--max-seq-length',
      '512',
      '--out',
      out,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const { jobDir, files, job } = JSON.parse(r.stdout);
    expect(jobDir).toBe(out);
    expect(files).toEqual([
      'job.json',
      'accelerate.yaml',
      'launch.sh',
      'train.py',
      'data/train/manifest.json',
      'tokenizer/tokenizer.json',
      'tokenizer/tokenizer_config.json',
      'tokenizer/generation_config.json',
      'ds_zero3.json',
      'data/validation/manifest.json',
    ]);
    for (const f of files) expect(existsSync(join(out, f)), f).toBe(true);
    expect(job).toMatchObject({
      recipe: 'mbpp',
      model,
      tokenizerDir: 'tokenizer',
      training: {
        epochs: 10,
        seed: 3,
        learningRate: 1e-5,
        maxSeqLength: 512,
        effectiveBatchSize: 64,
        gradientAccumulationSteps: 8,
        bf16: true,
        scheduleSteps: 'reference',
      },
      launch: { gpusPerNode: 4, nodes: 2, processes: 8, zero3: true },
      counts: { train: 364, validation: 10 },
      exportOnnx: true,
    });
    expect(job.training.lora).toBeUndefined();
    expect(JSON.parse(readFileSync(join(out, 'job.json'), 'utf8'))).toEqual(job);
    expect(readFileSync(join(out, 'accelerate.yaml'), 'utf8')).toContain('num_processes: 8');

    const text = await run([
      'finetune',
      'plan',
      '--recipe',
      'mbpp',
      '--model',
      model,
      '--gpus',
      '0',
      '--lora-rank',
      '16',
      '--no-export-onnx',
      '--out',
      join(tmp, 'jobs', 'mbpp-lora'),
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^planned .*mbpp-lora\n/);
    expect(text.stdout).toContain('mbpp: 374 train examples');
    expect(text.stdout).toContain('batch 64 = 1 x 1 process x 64 accumulation');
    expect(text.stdout).toContain('fp32, LoRA rank 16 alpha 16');
    expect(text.stdout).toContain('launch    CPU, 1 process');
    // 374 examples, 64 per optimizer step, 5 epochs: 30 steps, int(30 x 0.03) = 0 of warmup
    expect(text.stdout).toContain(
      "  schedule  reference (the paper's; with one process the same as run): 30 steps, 0 warmup, advanced 1 per optimizer step; 30 optimizer steps, lr 0 after the last\n",
    );
    // the tokenizer line names the tokenizer it read, not only the job's copy of it
    expect(text.stdout).toContain(
      `  model     ${model} (tokenizer ${model}, copied to ${join(tmp, 'jobs', 'mbpp-lora', 'tokenizer')})\n`,
    );
    expect(text.stdout).toContain('next: implicit-it finetune run ');
    // the tiny model's context is 512 positions: the paper's 2048 tokens are lowered, with a note
    expect(text.stdout).toContain(', 512 tokens, fp32');
    expect(text.stderr).toBe(
      `note: --max-seq-length 512, not the paper's 2048: the model's context is 512 positions (max_position_embeddings in ${join(model, 'config.json')}); examples are truncated to 512 tokens\n`,
    );
    const lora = JSON.parse(readFileSync(join(tmp, 'jobs', 'mbpp-lora', 'job.json'), 'utf8'));
    expect(lora.training.maxSeqLength).toBe(512);
    expect(lora.training.lora).toEqual({
      rank: 16,
      alpha: 16,
      dropout: 0.1,
      targetModules: ['q_proj', 'o_proj', 'v_proj', 'k_proj', 'gate_proj', 'up_proj', 'down_proj'],
    });
    expect(lora.exportOnnx).toBe(false);
  });

  it("plan --schedule-steps: the paper's schedule on 2 GPUs ends before the run; run's at its last step", async () => {
    const plan = (name: string, ...extra: string[]) =>
      run([
        'finetune',
        'plan',
        '--recipe',
        'mbpp',
        '--model',
        model,
        '--gpus',
        '2',
        '--effective-batch-size',
        '16',
        '--out',
        join(tmp, 'jobs', name),
        ...extra,
      ]);
    // 374 examples, accumulation 8: finetune.py counts 5 x ceil(374 / 8) = 235 schedule steps (7 warmup)
    // and accelerate advances them 2 per optimizer step; each GPU takes 5 x ceil(187 / 8) = 120 steps
    const reference = await plan('sched-reference');
    expect(reference.code, reference.stderr).toBe(0);
    expect(reference.stdout).toContain(
      "  schedule  reference (the paper's): 235 steps, 7 warmup, advanced 2 per optimizer step; 120 optimizer steps, lr 0 from step 119\n",
    );
    const sized = await plan('sched-run', '--schedule-steps', 'run');
    expect(sized.code, sized.stderr).toBe(0);
    expect(sized.stdout).toContain(
      '  schedule  run: 120 steps, 3 warmup, advanced 1 per optimizer step; 120 optimizer steps, lr 0 after the last\n',
    );
    const job = (name: string) => JSON.parse(readFileSync(join(tmp, 'jobs', name, 'job.json'), 'utf8'));
    expect([job('sched-reference').training.scheduleSteps, job('sched-run').training.scheduleSteps]).toEqual([
      'reference',
      'run',
    ]);
    // sweep: every job gets it
    const sweep = await run([
      'finetune',
      'sweep',
      '--recipe',
      'mbpp',
      '--model',
      model,
      '--gpus',
      '0',
      '--epochs',
      '5',
      '--seeds',
      '1,2',
      '--schedule-steps',
      'run',
      '--out',
      join(tmp, 'jobs', 'sched-sweep'),
      '--json',
    ]);
    expect(sweep.code, sweep.stderr).toBe(0);
    for (const j of JSON.parse(sweep.stdout).jobs)
      expect(JSON.parse(readFileSync(join(j.jobDir, 'job.json'), 'utf8')).training.scheduleSteps).toBe('run');
    // the summary shows the schedule of each epoch count, as plan shows its job's: 10 epochs count
    // 10 x ceil(374 / 8) = 470 schedule steps (14 warmup), 10 x ceil(187 / 8) = 240 per GPU
    const grid = await run([
      'finetune',
      'sweep',
      '--recipe',
      'mbpp',
      '--model',
      model,
      '--gpus',
      '2',
      '--effective-batch-size',
      '16',
      '--epochs',
      '5,10',
      '--seeds',
      '1,2',
      '--out',
      join(tmp, 'jobs', 'sched-grid'),
    ]);
    expect(grid.code, grid.stderr).toBe(0);
    expect(grid.stdout).toContain(
      "  schedule  reference (the paper's)\n" +
        '     5 epochs  235 steps, 7 warmup, advanced 2 per optimizer step; 120 optimizer steps, lr 0 from step 119\n' +
        '    10 epochs  470 steps, 14 warmup, advanced 2 per optimizer step; 240 optimizer steps, lr 0 from step 236\n' +
        '  mbpp-ep5-seed1\n',
    );
    const bad = await plan('sched-bad', '--schedule-steps', 'unsplit');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /^error: option '--schedule-steps <how>' argument 'unsplit' is invalid\. Allowed choices are reference, run\.\n/,
    );
    expect(existsSync(join(tmp, 'jobs', 'sched-bad'))).toBe(false);
  });

  it('plan: a hub id without --tokenizer exits 2 (the fix is a flag), an inexact batch size 2, a bad --model 3', async () => {
    const hub = await run([
      'finetune',
      'plan',
      '--recipe',
      'mbpp',
      '--model',
      'meta-llama/Llama-2-7b-hf',
      '--out',
      join(tmp, 'x'),
    ]);
    expect(hub.code).toBe(2);
    expect(hub.stderr).toBe(
      'error: --model meta-llama/Llama-2-7b-hf is not a directory here, so planning has no tokenizer to encode the data with\n' +
        'hint: give --tokenizer DIR, a directory with the tokenizer files of meta-llama/Llama-2-7b-hf (the training machine downloads the model itself)\n',
    );
    const batch = await run([
      'finetune',
      'plan',
      '--recipe',
      'mbpp',
      '--model',
      model,
      '--gpus',
      '3',
      '--out',
      join(tmp, 'x'),
    ]);
    expect(batch.code).toBe(2);
    expect(batch.stderr).toBe(
      'error: --effective-batch-size: 64 is not a multiple of --per-device-batch-size x devices = 3; change the device count or --per-device-batch-size\n',
    );
    expect(existsSync(join(tmp, 'x'))).toBe(false); // refused before anything is written
    const bad = await run([
      'finetune',
      'plan',
      '--recipe',
      'mbpp',
      '--model',
      join(tmp, 'no-model'),
      '--out',
      join(tmp, 'x'),
    ]);
    expect(bad.code).toBe(3);
    expect((await run(['finetune', 'plan', '--recipe', 'mbpp', '--model', model])).code).toBe(2); // --out
  });

  it("plan refuses, up front, a --max-seq-length above the model's context and --zero3 with --gpus 0", async () => {
    const out = join(tmp, 'refused');
    const plan = (...extra: string[]) =>
      run(['finetune', 'plan', '--recipe', 'mbpp', '--model', model, '--gpus', '0', '--out', out, ...extra]);
    const long = await plan('--max-seq-length', '100000');
    expect(long.code).toBe(2);
    expect(long.stderr).toBe(
      `error: --max-seq-length 100000 is more than the model's context of 512 positions (max_position_embeddings in ${join(model, 'config.json')})\nhint: give --max-seq-length 512 or less\n`,
    );
    const one = await plan('--max-seq-length', '1');
    expect([one.code, one.stderr]).toEqual([
      2,
      `error: option '--max-seq-length <n>' argument '1' is invalid. expected an integer >= 2, got "1": a token is trained on as the prediction after at least one token before it\n(add --help for usage and examples)\n`,
    ]);
    const zero3 = await plan('--zero3');
    expect(zero3.code).toBe(2);
    expect(zero3.stderr).toBe(
      'error: --zero3 with --gpus 0: DeepSpeed ZeRO-3 shards a model across GPUs, and a CPU job trains in one plain process\nhint: drop --zero3 for a CPU job, or give --gpus N\n',
    );
    expect(existsSync(out)).toBe(false);
    // the data's own holes, as finetune data reports them
    const all = await plan('--validation', '374');
    expect(all.code).toBe(2);
    expect(all.stderr).toContain('error: --validation: holds out all 374 mbpp examples');
    expect(existsSync(out)).toBe(false);
  });

  it('sweep writes the epoch x seed grid and sweep.json', async () => {
    const out = join(tmp, 'sweep');
    const r = await run([
      'finetune',
      'sweep',
      '--recipe',
      'poetry',
      '--model',
      model,
      '--gpus',
      '0',
      '--epochs',
      '5,7',
      '--seeds',
      '1,2',
      '--max-seq-length',
      '256',
      '--out',
      out,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ sweepDir: out, recipe: 'poetry', epochs: [5, 7], seeds: [1, 2] });
    expect(
      s.jobs.map((j: { name: string; epochs: number; seed: number }) => [j.name, j.epochs, j.seed]),
    ).toEqual([
      ['poetry-ep5-seed1', 5, 1],
      ['poetry-ep5-seed2', 5, 2],
      ['poetry-ep7-seed1', 7, 1],
      ['poetry-ep7-seed2', 7, 2],
    ]);
    for (const j of s.jobs) {
      const job = JSON.parse(readFileSync(join(j.jobDir, 'job.json'), 'utf8'));
      expect([job.training.epochs, job.training.seed, job.counts.train]).toEqual([j.epochs, j.seed, 571]);
    }
    expect(JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')).jobs).toHaveLength(4);
    const bad = await run([
      'finetune',
      'sweep',
      '--recipe',
      'poetry',
      '--model',
      model,
      '--epochs',
      '5,x',
      '--out',
      out,
    ]);
    expect(bad.code).toBe(2);
  });

  it('plan and sweep --out over an earlier run: refused (exit 2) unless --replace, which removes it', async () => {
    const out = join(tmp, 'replan-sweep');
    const sweep = (...flags: string[]) =>
      run([
        'finetune',
        'sweep',
        '--recipe',
        'poetry',
        '--model',
        model,
        '--gpus',
        '0',
        '--max-seq-length',
        '256',
        '--out',
        out,
        ...flags,
      ]);
    expect((await sweep('--epochs', '5,7', '--seeds', '1')).code).toBe(0);
    // another grid: the earlier sweep's jobs would be trained by the printed loop
    const other = await sweep('--epochs', '10', '--seeds', '1');
    expect([other.code, other.stderr]).toEqual([
      2,
      `error: ${out}: holds 2 jobs of an earlier sweep that are not in this grid (poetry-ep5-seed1, poetry-ep7-seed1), which running every job of the directory would train too; give another --out, or pass --replace to remove them\n`,
    ]);
    const replaced = await sweep('--epochs', '10', '--seeds', '1', '--replace');
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stdout).toContain(`next: for j in ${out}/*/; do implicit-it finetune run "$j"; done`);
    expect(readdirSync(out).sort()).toEqual(['poetry-ep10-seed1', 'sweep.json']);
    // plan over a trained job: a poetry model labelled chess, refused
    const job = join(out, 'poetry-ep10-seed1');
    mkdirSync(join(job, 'output'));
    writeFileSync(join(job, 'output', 'config.json'), '{}');
    writeFileSync(join(job, 'result.json'), '{"steps": 8, "total_steps": 8}');
    const plan = (...flags: string[]) =>
      run(['finetune', 'plan', '--recipe', 'mbpp', '--model', model, '--gpus', '0', '--out', job, ...flags]);
    const relabel = await plan();
    expect(relabel.code).toBe(2);
    expect(relabel.stderr).toBe(
      `error: ${job}: holds the trained model in ${join(job, 'output')} (8 of 8 steps, as its result.json says) of the job planned there before (poetry, 10 epochs, seed 1): planning again would label that model with this plan's settings; give another --out, or pass --replace to remove what it left (output/, result.json, checkpoints/, train logs) and plan afresh\n`,
    );
    expect(JSON.parse(readFileSync(join(job, 'job.json'), 'utf8')).recipe).toBe('poetry');
    const again = await plan('--replace');
    expect(again.code, again.stderr).toBe(0);
    expect(existsSync(join(job, 'output'))).toBe(false);
    expect(existsSync(join(job, 'result.json'))).toBe(false);
    expect(JSON.parse(readFileSync(join(job, 'job.json'), 'utf8')).recipe).toBe('mbpp');
  });

  it('run without the Python stack exits 1 listing exactly what to install; nothing starts', async () => {
    const job = join(tmp, 'jobs', 'mbpp'); // 4 GPUs x 2 nodes, ZeRO-3: deepspeed too
    const r = await run(['finetune', 'run', job], { env: { IMPLICIT_IT_PYTHON: '/nonexistent/python3' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      // the library's "the `python` option (CLI: --python)" in the CLI's words
      'error: /nonexistent/python3 could not be started (not found, or not an executable); install Python 3.9+ then: pip install torch transformers accelerate deepspeed; or point --python or IMPLICIT_IT_PYTHON at an interpreter that has them\n',
    );
    expect(existsSync(join(job, 'train.log'))).toBe(false);
    if (!python) return console.warn('[skip] no python3: the partial-stack case is not checked');
    const lora = join(tmp, 'jobs', 'mbpp-lora'); // CPU with LoRA: peft, no deepspeed
    const partial = await run(['finetune', 'run', lora, '--python', python]);
    expect(partial.code).toBe(1);
    expect(partial.stderr).toContain(
      `error: ${python} lacks peft; install with: ${python} -m pip install peft; or point --python or IMPLICIT_IT_PYTHON at an interpreter that has them\n`,
    );
  });

  it('run trains (stand-in Python): --json result, train.log, --env and extra train.py arguments', async (ctx) => {
    if (!python) return ctx.skip();
    const job = join(tmp, 'sweep', 'poetry-ep5-seed1');
    const r = await run([
      'finetune',
      'run',
      job,
      '--python',
      python,
      '--max-steps',
      '3',
      '--env',
      'MACHINE_RANK=0',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({
      jobDir: job,
      steps: 3,
      totalSteps: 3,
      losses: [2, 1, 2 / 3],
      finalLoss: 2 / 3,
      valLosses: [0.75],
      // the stand-in saves no model: modelkit's fallback export has nothing to read either
      onnx: {
        exported: false,
        reason: `optimum is not installed; modelkit could not either: ${join(job, 'output', 'config.json')}: missing: a Hugging Face model directory has config.json beside its weights`,
      },
      outputDir: join(job, 'output'),
      logFile: join(job, 'train.log'),
    });
    expect(result.device).toBeUndefined(); // a log whose start names no device
    const log = readFileSync(join(job, 'train.log'), 'utf8');
    expect(log).toContain('fake accelerate launch, epochs 5 rank 0');
    expect(log.match(/"event": "step"/g)).toHaveLength(3);

    // a saved model in the output (as train.py leaves it): modelkit exports it, optimum being absent
    const config = resolveConfig({ preset: 'tiny' });
    const weights = randomWeights(config, 1);
    mkdirSync(join(job, 'output'), { recursive: true });
    writeFileSync(join(job, 'output', 'config.json'), JSON.stringify(toHfConfig(config)));
    writeSafetensors(
      join(job, 'output', 'model.safetensors'),
      Object.fromEntries(
        weightSpecs(config).map((s) => [s.name, { shape: s.shape, data: weights[s.name]! }]),
      ),
    );
    // the job is finished: training it again is refused before Python starts, without --replace
    const finished = await run(['finetune', 'run', job, '--python', python, '--max-steps', '2']);
    expect([finished.code, finished.stderr]).toEqual([
      2,
      `error: ${job}: the job is finished: it holds the trained model in ${join(job, 'output')} (3 of 3 steps, as its result.json says); running it again would train a new model over it. To do so, from the start, pass --replace; to keep it, plan a new job elsewhere\n`,
    ]);
    const resumed = await run(['finetune', 'run', job, '--python', python, '--resume']);
    expect(resumed.code).toBe(2);
    expect(resumed.stderr).toContain('the job is finished');
    expect(resumed.stderr).toContain('run it with --replace instead of --resume');
    const text = await run([
      'finetune',
      'run',
      job,
      '--replace',
      '--python',
      python,
      '--verbose',
      '--env',
      'FAKE_DEVICE=cuda',
      '--',
      '--max-steps',
      '2',
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /^trained .*poetry-ep5-seed1: 2\/2 steps in [\d.]+ s on cuda \(bf16\), final loss 1\.0000\n/,
    );
    expect(text.stdout).toContain('validation loss by epoch  0.7500');
    expect(text.stdout).toContain(
      `onnx      ${join(job, 'output', 'onnx')} (modelkit; optimum is not installed)`,
    );
    expect(existsSync(join(job, 'output', 'onnx', 'model.onnx'))).toBe(true);
    // it ends with what to do with the model: try it, and generate its outputs for eval judge, under
    // the job's name (the job is outside the working directory: its absolute path)
    expect(text.stdout.slice(text.stdout.indexOf('  log '))).toBe(
      `  log       ${join(job, 'train.log')}\n` +
        `next: implicit-it generate --model ${join(job, 'output')} "INSTRUCTION"\n` +
        `      implicit-it eval generate --model ${join(job, 'output')} --rules off --out run/outputs/poetry-ep5-seed1.json\n`,
    );
    // one step of the job again, with these flags
    const again = (...flags: string[]) =>
      run(['finetune', 'run', job, '--replace', '--python', python!, '--max-steps', '1', ...flags]);
    // the label says why optimum did not export: here its export failed
    const failed = await again('--env', "FAKE_ONNX_REASON=optimum's export failed: ValueError: unsupported");
    expect(failed.code, failed.stderr).toBe(0);
    expect(failed.stdout).toContain(
      `onnx      ${join(job, 'output', 'onnx')} (modelkit; optimum's export failed: ValueError: unsupported)`,
    );
    // --onnx-dtypes fp32,q4: the 4-bit graph too, from the trained weights (by modelkit, whoever
    // wrote the float32 one)
    rmSync(join(job, 'output', 'onnx'), { recursive: true });
    const q4 = await again('--onnx-dtypes', 'fp32,q4');
    expect(q4.code, q4.stderr).toBe(0);
    expect(q4.stdout).toContain(
      `onnx      ${join(job, 'output', 'onnx')} [fp32, q4] (modelkit; optimum is not installed)`,
    );
    expect(readdirSync(join(job, 'output', 'onnx')).sort()).toEqual(['model.onnx', 'model_q4.onnx']);
    // a rerun without q4: the earlier run's 4-bit graph (its weights) is removed, and said so
    const fp32Only = await again();
    expect(fp32Only.stdout).toContain(
      `removed   ${join(job, 'output', 'onnx', 'model_q4.onnx')} (an earlier run's graphs, of other dtypes)`,
    );
    expect(readdirSync(join(job, 'output', 'onnx'))).toEqual(['model.onnx']);
    rmSync(join(job, 'output', 'onnx'), { recursive: true });
    const byOptimum = await again('--env', 'FAKE_ONNX_EXPORTED=1', '--onnx-dtypes', 'fp32,q4', '--json');
    expect(byOptimum.code, byOptimum.stderr).toBe(0);
    expect(JSON.parse(byOptimum.stdout).onnx).toEqual({
      exported: true,
      by: 'optimum',
      path: join(job, 'output', 'onnx'),
      dtypes: ['fp32', 'q4'],
    });
    expect(readdirSync(join(job, 'output', 'onnx'))).toEqual(['model_q4.onnx']); // the stand-in wrote no fp32
    const bad = await again('--onnx-dtypes', 'fp16');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected a comma-separated list of fp32, q4, q8, got "fp16"');
    expect(text.stderr).toContain('fake accelerate launch'); // --verbose echoes the log
  });

  it("the README's offline example runs as written up to finetune run, which the stand-in Python trains, and its next: lines are the README's", async (ctx) => {
    if (!python) return ctx.skip();
    // in a working directory beside shared/, as the README's ../shared paths assume
    const root = join(tmp, 'readme');
    const work = join(root, 'work');
    mkdirSync(work, { recursive: true });
    symlinkSync(SHARED_DIR, join(root, 'shared'));
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const block = readme.slice(readme.indexOf('# offline, no weights to download'));
    const lines = block
      .slice(0, block.indexOf('```'))
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .filter((line) => line.startsWith('implicit-it '))
      .map((line) => line.replace(/\s+#.*$/, ''));
    expect(lines.map((line) => line.split(' ').slice(1, 3).join(' '))).toEqual([
      'model create',
      'finetune plan',
      'finetune run',
      'generate --model',
      'eval generate',
    ]);
    // the commands up to finetune run hold no quoted words
    const [create, plan, train, generate, evaluate] = lines as [string, string, string, string, string];
    const verbatim = (line: string) =>
      run(line.split(/\s+/).slice(1), { cwd: work, env: { IMPLICIT_IT_PYTHON: python } });
    const created = await verbatim(create);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain(
      `created ${join(work, 'models', 'tiny-pt')}\n  preset tiny (vocab_size=49152), seed 0: 3.22M parameters`,
    );
    expect(created.stdout).toContain(', onnx/model.onnx, model.safetensors\n');
    const planned = await verbatim(plan);
    expect(planned.code, planned.stderr).toBe(0);
    expect(planned.stdout).toContain(
      '  data      poetry: 571 train examples (103099 tokens, 88157 trained), 0 validation, 0 dropped, 139 truncated\n',
    );
    expect(planned.stdout).toContain('256 tokens, fp32, full finetuning\n');
    expect(planned.stdout).toContain('  launch    CPU, 1 process\n');
    expect(
      planned.stdout.endsWith(
        'next: implicit-it finetune run jobs/poetry   (or: bash jobs/poetry/launch.sh)\n',
      ),
    ).toBe(true);
    // the README's run (IMPLICIT_IT_PYTHON the stand-in): its next: lines are the README's commands,
    // the instruction left for the user; the stand-in saved no weights, so there is no ONNX graph yet
    const trained = await verbatim(train);
    expect(trained.code, trained.stderr).toBe(0);
    expect(trained.stdout).toMatch(new RegExp(`^trained ${join(work, 'jobs', 'poetry')}: 2/2 steps `));
    expect(trained.stdout.slice(trained.stdout.indexOf('next: '))).toBe(
      'next: give jobs/poetry/output an ONNX graph (the onnx line says why it has none), then:\n' +
        `      ${generate.slice(0, generate.indexOf(' "'))} "INSTRUCTION"\n` +
        `      ${evaluate}\n`,
    );
  });

  it('run on a terminal draws a bar with steps, loss and ETA (and finds a relative --python)', async (ctx) => {
    if (!python || spawnSync('script', ['--version']).status !== 0) return ctx.skip();
    const job = join(tmp, 'sweep', 'poetry-ep5-seed2');
    // util-linux `script` gives the CLI a pseudo-terminal; cwd is tmp, so `fakepy/python` is relative
    const command = `cd '${tmp}' && '${process.execPath}' '${CLI}' finetune run '${job}' --python fakepy/python --max-steps 4 --env FAKE_STEP_SECONDS=0.2`;
    const r = spawnSync('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, NO_COLOR: '1', IMPLICIT_IT_CACHE: CACHE },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stdout).toBe(0);
    // the steps to take from the start event on, before the first optimizer step: never 0/0
    expect(r.stdout).toMatch(/training \[.*\] 0\/4 steps \| loss \? \| ETA \?/);
    expect(r.stdout).not.toContain('0/0 steps');
    expect(r.stdout).toMatch(/training \[.*\] 1\/4 steps \| loss 2\.0000 \| ETA (\?|\d+m\d\ds)/);
    expect(r.stdout).toMatch(/training \[.*\] 4\/4 steps \| loss 0\.5000 \| ETA 0m00s/);
    expect(r.stdout).toContain('4/4 steps in');
  });

  /** `finetune run JOB` with the fake python crashing after its checkpoint at step 2. */
  const crashAfterCheckpoint = (job: string) =>
    run(['finetune', 'run', job, '--python', python!, '--env', 'FAKE_CRASH_AFTER_CHECKPOINT=2']);

  it('run that fails after a checkpoint names the command that resumes it, not the library call', async (ctx) => {
    if (!python) return ctx.skip();
    const job = join(tmp, 'sweep', 'poetry-ep7-seed1');
    const r = await crashAfterCheckpoint(job);
    expect(r.code).toBe(1);
    const dir = job.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(r.stderr).toMatch(
      new RegExp(
        `^error: ${dir}: training exited with 1; a checkpoint at step 2 was saved: resume from it with implicit-it finetune run ${dir} --resume --python ${python.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} --env FAKE_CRASH_AFTER_CHECKPOINT=2; see ${dir}/train\\.log\\. Last lines:\\n(.*\\n)*RuntimeError: CUDA out of memory\\n$`,
      ),
    );
    expect(r.stderr).not.toContain('runJob');
  });

  it("run that fails after a checkpoint, in a directory with a space: the resume command is still the CLI's, quoted", async (ctx) => {
    if (!python) return ctx.skip();
    // the library quotes such a path in its own resume command; the CLI puts its own in its place
    const job = join(tmp, 'my jobs', 'crash');
    cpSync(join(tmp, 'sweep', 'poetry-ep7-seed2'), job, { recursive: true });
    const r = await crashAfterCheckpoint(job);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `a checkpoint at step 2 was saved: resume from it with implicit-it finetune run '${job}' --resume --python ${python} --env FAKE_CRASH_AFTER_CHECKPOINT=2; see ${job}/train.log.`,
    );
    expect(r.stderr).not.toContain('runJob');
  });

  it('run: Ctrl-C stops the training and exits 130', async (ctx) => {
    if (!python) return ctx.skip();
    const job = join(tmp, 'sweep', 'poetry-ep7-seed2');
    const training = startRun(job, ['--python', python, '--env', 'FAKE_STEP_SECONDS=5']);
    // once the stand-in has started (its first line is in train.log), interrupt
    await training.reached('fake accelerate');
    const started = Date.now();
    const { code, stderr } = await training.stop('SIGINT');
    expect(code, stderr).toBe(130);
    expect(stderr).toContain('interrupted before a checkpoint was saved');
    // the job saves one at each epoch's end: the flag that saves them more often, by its name
    expect(stderr).toContain(
      `to lose less of a long epoch, plan the job again with --checkpointing N (implicit-it finetune plan ... --out ${job} --checkpointing N)`,
    );
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('run: SIGTERM stops the training as Ctrl-C does, exits 143, and the resume keeps the flags given', async (ctx) => {
    if (!python) return ctx.skip();
    const job = join(tmp, 'sweep', 'poetry-ep7-seed2'); // interrupted before a checkpoint: runs again
    const env = ['--env', 'FAKE_STEP_SECONDS=1', '--env', 'FAKE_CHECKPOINT_AT=1', '--env', "NOTE=it's"];
    const training = startRun(job, ['--python', python, ...env, '--max-steps', '9']);
    // once the stand-in has saved its checkpoint, stop it as a scheduler or systemd would
    await training.reached('"event": "checkpoint"');
    const started = Date.now();
    const { code, stderr } = await training.stop('SIGTERM');
    expect(code, stderr).toBe(143);
    expect(stderr).toBe(
      `error: stopped by SIGTERM; continue from the checkpoint at step 1 with: implicit-it finetune run ${job} --resume --python ${python} --env FAKE_STEP_SECONDS=1 --env FAKE_CHECKPOINT_AT=1 --env 'NOTE=it'\\''s' --max-steps 9\n`,
    );
    expect(Date.now() - started).toBeLessThan(4000);
    // the training's processes are gone with it: the log grows no more
    const size = readFileSync(training.log, 'utf8').length;
    await new Promise((r) => setTimeout(r, 1500));
    expect(readFileSync(training.log, 'utf8').length).toBe(size);
  });

  it('plan --out - is refused: a job is a directory', async () => {
    const r = await run(['finetune', 'plan', '--recipe', 'mbpp', '--model', 'tiny', '--out', '-']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--out: a job is a directory; give its path, not -');
  });

  it('run on a directory that is not a job exits 2, saying what it is and what to do', async () => {
    const empty = mkdtempSync(join(tmp, 'not-a-job-'));
    const r = await run(['finetune', 'run', empty]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `error: ${empty}: not a training job (no job.json)\nhint: give a directory written by \`implicit-it finetune plan\` (or one job of \`finetune sweep\`); write one with: implicit-it finetune plan --recipe NAME --model DIR --out ${empty}\n`,
    );
    expect(r.stderr).not.toContain('planJob');
    // a sweep's directory: run its jobs, one by one
    const sweep = mkdtempSync(join(tmp, 'a-sweep-'));
    for (const job of ['e5-s1', 'e7-s1']) {
      mkdirSync(join(sweep, job));
      writeFileSync(join(sweep, job, 'job.json'), '{}');
    }
    const onSweep = await run(['finetune', 'run', sweep]);
    expect([onSweep.code, onSweep.stderr]).toEqual([
      2,
      `error: ${sweep}: a sweep of 2 training jobs, not one job (no job.json)\nhint: run each job: implicit-it finetune run ${join(sweep, 'e5-s1')}, and so on (for job in ${sweep}/*/; do implicit-it finetune run "$job"; done)\n`,
    ]);
    // a model directory: not to be planned into, but trained by a job
    const model = mkdtempSync(join(tmp, 'a-model-'));
    writeFileSync(join(model, 'config.json'), '{}');
    const onModel = await run(['finetune', 'run', model]);
    expect([onModel.code, onModel.stderr]).toEqual([
      2,
      `error: ${model}: a model directory, not a training job (no job.json)\nhint: plan a job that trains it: implicit-it finetune plan --recipe NAME --model ${model} --out jobs/NAME\n`,
    ]);
  });
});

describe('finetune data: your own examples (--data)', () => {
  const row = (user: string, assistant: string) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: user },
        { role: 'assistant', content: assistant },
      ],
    });

  it('builds a messages file as a recipe, its rows checked with their lines, with no paper to compare with', async () => {
    const file = join(tmp, 'my-chats.jsonl');
    writeFileSync(
      file,
      `${row('Hi', 'Hello!')}\n${JSON.stringify({ prompt: 'p', completion: 'c' })}\n${row('Q', 'A')}\n`,
    );
    const out = join(tmp, 'own', 'train.jsonl');
    const r = await run(['finetune', 'data', '--data', file, '--remove-instructions', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `my-chats: 2 examples (2 built from 3 rows of ${file}, 1 left out; user turns emptied)`,
    );
    expect(r.stdout).not.toContain('paper');
    expect(r.stdout).toContain(
      'my-chats.jsonl:2 malformed: not a messages row but a prompt/completion row: write it as {"messages": [',
    );
    expect(
      readFileSync(out, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).messages[0].content),
    ).toEqual(['', '']);
    const json = JSON.parse((await run(['finetune', 'data', '--data', file, '--json'])).stdout);
    expect(json).toMatchObject({
      recipe: 'my-chats',
      count: 2,
      expected: 3,
      source: { file, removeInstructions: false },
    });
  });

  it('exits 2 on neither or both of --recipe and --data, and on the flags that do not go with --data', async () => {
    const file = join(tmp, 'one.jsonl');
    writeFileSync(file, `${row('Hi', 'Hello!')}\n`);
    for (const [args, message] of [
      [
        [],
        "error: give --recipe NAME (one of the paper's training sets) or --data FILE.jsonl (your own examples)\n",
      ],
      [
        ['--recipe', 'gsm', '--data', file],
        "error: --recipe gsm and --data: give one (a recipe builds the paper's data, --data reads yours)\n",
      ],
      [
        ['--data', file, '--data-dir', DATA],
        "error: --data-dir is where the recipes' raw files are: drop it with --data, which names your file\n",
      ],
      [
        ['--recipe', 'lima', '--remove-instructions'],
        'error: --remove-instructions applies to --data: the recipes say it themselves\n',
      ],
    ] as const) {
      const r = await run(['finetune', 'data', ...args]);
      expect([r.code, r.stderr.split('hint:')[0]], args.join(' ')).toEqual([2, message]);
    }
    const missing = await run(['finetune', 'data', '--data', join(tmp, 'nope.jsonl')]);
    expect([missing.code, missing.stderr]).toEqual([
      2,
      `error: ${join(tmp, 'nope.jsonl')}: cannot read it (ENOENT); give --data a JSONL file of {"messages": [...]} rows\n`,
    ]);
  });
});

describeShared(
  'finetune plan and sweep: your own examples (--data)',
  ['fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    it('plan a job of the file, named after it, job.json recording the file and its SHA-256', async () => {
      const file = join(tmp, 'support.jsonl');
      const rows = [1, 2, 3].map((i) =>
        JSON.stringify({
          messages: [
            { role: 'user', content: `q${i}` },
            { role: 'assistant', content: `a${i}` },
          ],
        }),
      );
      writeFileSync(file, rows.join('\n'));
      const common = [
        '--data',
        file,
        '--model',
        'meta-llama/Llama-2-7b-hf',
        '--tokenizer',
        join(SHARED_DIR, 'fixtures/tokenizers/llama2'),
        '--gpus',
        '0',
      ];
      const out = join(tmp, 'jobs', 'support');
      const r = await run(['finetune', 'plan', ...common, '--out', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`  data      support (${file}): 3 train examples`);
      const job = JSON.parse(readFileSync(join(out, 'job.json'), 'utf8'));
      expect(job.recipe).toBe('support');
      expect(job.source).toMatchObject({ file, removeInstructions: false });
      expect(job.source.sha256).toMatch(/^[0-9a-f]{64}$/);
      // a relative --model under a local directory that does not hold it: a typo more likely than a hub id
      mkdirSync(join(tmp, 'models', 'Llama-2-7b'), { recursive: true });
      const typo = common.map((a) => (a === 'meta-llama/Llama-2-7b-hf' ? 'models/Llama-2-7b-hf' : a));
      const typoPlan = await run(['finetune', 'plan', ...typo, '--out', join(tmp, 'jobs', 'typo')], {
        cwd: tmp,
      });
      expect(typoPlan.code, typoPlan.stderr).toBe(0);
      expect(typoPlan.stderr).toBe(
        'note: --model models/Llama-2-7b-hf: no such directory here (though ./models is one), so it is planned as a hub id, which the training machine downloads; did you mean models/Llama-2-7b?\n',
      );
      const sweep = await run([
        'finetune',
        'sweep',
        ...common,
        '--epochs',
        '5',
        '--seeds',
        '1,2',
        '--out',
        join(tmp, 'jobs', 'support-sweep'),
        '--json',
      ]);
      expect(sweep.code, sweep.stderr).toBe(0);
      const planned = JSON.parse(sweep.stdout);
      expect([planned.recipe, planned.jobs.map((j: { name: string }) => j.name)]).toEqual([
        'support',
        ['support-ep5-seed1', 'support-ep5-seed2'],
      ]);
    });
  },
);
