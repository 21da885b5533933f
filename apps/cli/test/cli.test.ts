import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { missingShared, SHARED_DIR, serveHubRepo } from '@implicit-it/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { sharedPathHint } from '../src/shared-dir.js';
import { CACHE, CLI, run, tinyModelDir, waitFor } from './helpers.js';

let model: string;
beforeAll(async () => {
  model = await tinyModelDir();
});

describe('help, version, usage errors', () => {
  const commands = [
    ['rules'],
    ['model'],
    ['generate'],
    ['chat'],
    ['serve'],
    ['rules', 'trace'],
    ['model', 'create'],
    ['model', 'export'],
    ['model', 'inspect'],
    ['doctor'],
    ['install-cuda'],
    ['finetune'],
    ['finetune', 'data'],
    ['finetune', 'plan'],
    ['finetune', 'sweep'],
    ['finetune', 'run'],
    ['eval'],
    ['eval', 'generate'],
    ['eval', 'ablations'],
    ['eval', 'judge'],
    ['eval', 'winrate'],
    ['eval', 'rank'],
    ['eval', 'shift'],
    ['eval', 'report'],
  ];
  it('prints help with examples for the program and every command (exit 0)', async () => {
    const top = await run(['--help']);
    expect(top.code).toBe(0);
    for (const c of [
      'generate',
      'chat',
      'serve',
      'rules',
      'model',
      'doctor',
      'install-cuda',
      'finetune',
      'eval',
    ])
      expect(top.stdout).toContain(c);
    expect(top.stdout).toMatch(/Exit codes: 0 ok, 1 failure, 2 bad usage, 3 model/);
    expect(top.stdout).toContain('NO_COLOR');
    for (const cmd of commands) {
      const r = await run([...cmd, '--help']);
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.stdout, cmd.join(' ')).toMatch(/Examples:\n\s+\$ implicit-it /);
      // defaults read as the flags are written: no JSON array, no default given twice
      const flat = r.stdout.replace(/\s+/g, ' ');
      expect(flat, cmd.join(' ')).not.toMatch(/default: \[/);
      expect(flat, cmd.join(' ')).not.toMatch(/\(default[^()]*\) \(default:/);
    }
    // every command that loads a model takes the same loading flags
    for (const cmd of [
      'generate',
      'chat',
      'serve',
      'eval generate',
      'eval ablations',
      'eval rank',
      'eval shift',
    ]) {
      const help = (await run([...cmd.split(' '), '--help'])).stdout;
      for (const flag of [
        '--offline',
        '--provider <name>',
        '--dtype <dtype>',
        '--threads <n>',
        '--prefill-chunk <n>',
        '--prefix-cache <MiB>',
        '--onnx-log-level <level>',
      ])
        expect(help, `${cmd}: ${flag}`).toContain(flag);
    }
  });

  it("fits every command's --help in 80 columns", async () => {
    // walks the commands each help lists, so that a new command is checked without being named here
    const visited: string[] = [];
    const over: string[] = [];
    const walk = async (cmd: string[]): Promise<void> => {
      visited.push(cmd.join(' '));
      const { stdout } = await run([...cmd, '--help']);
      for (const line of stdout.split('\n'))
        if (line.length > 80) over.push(`${cmd.join(' ') || '(program)'}: ${line}`);
      const list = /\nCommands:\n([\s\S]*?)(?:\n\n|$)/.exec(stdout)?.[1] ?? '';
      for (const [, name] of list.matchAll(/^ {2}([a-z][\w-]*)/gm))
        if (name !== 'help') await walk([...cmd, name!]);
    };
    await walk([]);
    expect(visited.sort()).toEqual(['', ...commands.map((c) => c.join(' '))].sort());
    expect(over).toEqual([]);
  });

  const CLI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
  it("--version prints package.json's version, read when it runs (changeset version bumps it after the build)", async () => {
    const pkgFile = join(CLI_DIR, 'package.json');
    const r = await run(['--version']);
    expect(r).toEqual({
      code: 0,
      stdout: `${JSON.parse(readFileSync(pkgFile, 'utf8')).version}\n`,
      stderr: '',
    });
    // the tarball's layout (package/dist/cli.js, package/package.json), bumped after this build
    const pkg = mkdtempSync(join(tmpdir(), 'implicit-it-cli-version-'));
    try {
      cpSync(join(CLI_DIR, 'dist'), join(pkg, 'dist'), { recursive: true });
      writeFileSync(
        join(pkg, 'package.json'),
        JSON.stringify({ ...JSON.parse(readFileSync(pkgFile, 'utf8')), version: '9.8.7-next.1' }),
      );
      symlinkSync(join(CLI_DIR, 'node_modules'), join(pkg, 'node_modules'), 'dir');
      const bumped = spawnSync(process.execPath, [join(pkg, 'dist', 'cli.js'), '-V'], { encoding: 'utf8' });
      expect([bumped.status, bumped.stdout, bumped.stderr]).toEqual([0, '9.8.7-next.1\n', '']);
    } finally {
      rmSync(pkg, { recursive: true, force: true });
    }
  });

  it('exits 2 on an unknown command, a bad flag value, an unknown rule set', async () => {
    expect((await run(['frobnicate'])).code).toBe(2);
    const bad = await run(['generate', '--model', model, '--max-tokens', 'many', 'Hi']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--max-tokens.*expected an integer/);
    const rules = await run(['generate', '--model', model, '--rules', 'hewitt2025', 'Hi']);
    expect(rules.code).toBe(2);
    expect(rules.stderr).toMatch(/^error: --rules: unknown rule set "hewitt2025"/);
    expect(rules.stderr).toContain('), off, or rule names joined by "-"'); // as documented, not "none"
    const format = await run(['generate', '--model', model, '--format', 'alpaca', 'Hi']);
    expect(format.code).toBe(2);
    const stop = await run(['generate', '--model', model, '--stop', '.', '--stop', '', 'Hi']);
    expect(stop.code).toBe(2);
    expect(stop.stderr).toContain(
      "option '--stop <text>' argument '' is invalid. a stop string has at least one character",
    );
  });

  it('refuses an empty instruction, given or on stdin, with exit 2, before loading the model', async () => {
    for (const words of [[''], ['  ', '']]) {
      const r = await run(['generate', '--model', '/nonexistent/model', ...words]);
      expect([r.code, r.stdout, r.stderr]).toEqual([
        2,
        '',
        'error: the instruction is empty: give one ("Write a haiku about rain."), or - to read it from stdin\n',
      ]);
    }
    const stdin = await run(['generate', '--model', '/nonexistent/model', '-'], { input: ' \n' });
    expect([stdin.code, stdin.stderr]).toEqual([2, 'error: the instruction read from stdin is empty\n']);
  });

  it('names the range of a number flag as meant: a bound left out in parentheses, never a stand-in', async () => {
    const topP = await run(['generate', '--model', model, '--top-p', '0', 'Hi']);
    expect(topP.code).toBe(2);
    expect(topP.stderr).toContain('expected a number in (0, 1], got "0"');
    const lr = await run(['finetune', 'plan', '--learning-rate', '0']);
    expect(lr.code).toBe(2);
    expect(lr.stderr).toContain('expected a number in (0, 1], got "0"');
    const warmup = await run(['finetune', 'plan', '--warmup-ratio', '1']);
    expect(warmup.code).toBe(2);
    expect(warmup.stderr).toContain('expected a number in [0, 1), got "1"');
    // an integer without an upper bound: none shown, not the largest safe integer
    const limit = await run(['eval', 'generate', '--model', model, '--limit', '0']);
    expect(limit.code).toBe(2);
    expect(limit.stderr).toContain(
      `option '--limit <n>' argument '0' is invalid. expected an integer >= 1, got "0"`,
    );
    const huge = await run(['eval', 'shift', '--base', model, '--aligned', model, '--top-k', '1e3']);
    expect(huge.code).toBe(2);
    expect(huge.stderr).toContain('expected an integer >= 0, got "1e3"');
    for (const r of [topP, lr, warmup, limit, huge])
      expect(r.stderr).not.toMatch(/e-324|0\.999999|9007199254740991/);
  });

  it('--max-tokens 0 is a usage error in generate and chat (it printed nothing and exited 0)', async () => {
    const message =
      "error: option '-n, --max-tokens <n>' argument '0' is invalid. expected an integer in [1, 1000000], got \"0\"\n";
    const generate = await run(['generate', '--model', model, '--max-tokens', '0', 'Hi']);
    expect(generate.code).toBe(2);
    expect(generate.stderr).toBe(`${message}(add --help for usage and examples)\n`);
    expect(generate.stdout).toBe('');
    const chat = await run(['chat', '--model', model, '-n', '0'], { input: 'Hi\n' });
    expect(chat.code).toBe(2);
    expect(chat.stderr).toBe(`${message}(add --help for usage and examples)\n`);
  });

  it("names this CLI's option for one another tool names so (--max-new-tokens), where the command has it", async () => {
    const usage = (flag: string, ours: string) =>
      `error: unknown option '${flag}'\n(Did you mean ${ours}?)\n(add --help for usage and examples)\n`;
    const generate = await run(['generate', '--model', model, '--max-new-tokens', '8', 'Hi']);
    expect([generate.code, generate.stderr, generate.stdout]).toEqual([
      2,
      usage('--max-new-tokens', '--max-tokens'),
      '',
    ]);
    const inline = await run(['generate', '--model', model, '--no-rules', 'Hi']);
    expect(inline.stderr).toBe(usage('--no-rules', '--rules off'));
    const chat = await run(['chat', '--model', model, '--system-prompt', 'Be brief.'], { input: 'Hi\n' });
    expect([chat.code, chat.stderr]).toEqual([2, usage('--system-prompt', '--system')]);
    // a command without the option gets commander's own message (serve has no --temperature; its
    // nearest flag is --help)
    const serve = await run(['serve', '--temp', '0.7']);
    expect([serve.code, serve.stderr]).toEqual([2, usage('--temp', '--help')]);
    // and commander's "Did you mean" still comes for a near miss
    const near = await run(['generate', '--model', model, '--top_k', '3', 'Hi']);
    expect(near.stderr).toBe(usage('--top_k', '--top-k'));
  });

  it('finetune sweep --seeds takes the range of plan --seed, and says so by its own flag', async () => {
    const r = await run(['finetune', 'sweep', '--seeds', '1,4294967296']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "error: option '--seeds <list>' argument '1,4294967296' is invalid. expected comma-separated integers in [0, 4294967295], got \"1,4294967296\"\n(add --help for usage and examples)\n",
    );
    // the grid's largest seed is still taken (the parse passes: a required option is asked for next)
    const top = await run(['finetune', 'sweep', '--seeds', '0,4294967295']);
    expect(top.code).toBe(2);
    expect(top.stderr).toBe(
      "error: required option '-o, --out <sweep-dir>' not specified\n(add --help for usage and examples)\n",
    );
  });

  it('exits 3 when the model cannot be found or loaded', async () => {
    const r = await run(['generate', '--model', '/nonexistent/model', 'Hi']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/neither a directory nor a hub id/);
    // a typo beside the directory meant: named, as the path was written
    const models = join(mkdtempSync(join(tmpdir(), 'cli-near-')), 'models');
    mkdirSync(join(models, 'tiny'), { recursive: true });
    const typo = await run(['generate', '--model', join(models, 'tinyy'), 'Hi']);
    expect(typo.code).toBe(3);
    expect(typo.stderr).toBe(
      `error: --model: "${join(models, 'tinyy')}" is neither a directory nor a hub id (owner/name); did you mean ${join(models, 'tiny')}?\nhint: create one with \`implicit-it model create --preset tiny --out DIR\`\n`,
    );
    const empty = await run(['generate', '--model', '/tmp', 'Hi']);
    expect(empty.code).toBe(3);
    // the library's "the `dtype` option (CLI: --dtype)" in the CLI's words
    const dtype = await run(['generate', '--model', model, '--dtype', 'fp16', 'Hi']);
    expect(dtype.code).toBe(3);
    expect(dtype.stderr).toBe(
      `error: ${model}: no ONNX decoder for dtype "fp16": expected onnx/model_fp16.onnx or onnx/decoder_model_merged_fp16.onnx or model_fp16.onnx or decoder_model_merged_fp16.onnx; it has dtype "fp32": choose one with --dtype\n`,
    );
  });

  it('--format chat-template with a tokenizer that has no chat template is a usage error naming the flag', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-no-template-'));
    try {
      cpSync(model, dir, { recursive: true });
      const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
      delete config.chat_template;
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
      const expected =
        `error: --format chat-template: ${basename(dir)} has no chat template (no chat_template in its tokenizer_config.json, no chat_template.jinja)\n` +
        "hint: use --format tulu (the paper's format), or a model whose tokenizer has a chat template\n";
      const generate = await run(['generate', '--model', dir, '--format', 'chat-template', 'Hi']);
      expect(generate.code).toBe(2);
      expect(generate.stderr).toBe(expected);
      const chat = await run(['chat', '--model', dir, '--format', 'chat-template'], { input: 'Hi\n' });
      expect(chat.code).toBe(2);
      expect(chat.stderr).toBe(expected);
      expect(chat.stdout).toBe('');
      // serve refuses at start, not with a 400 on every request; eval before its run
      const serve = await run(['serve', '--model', dir, '--format', 'chat-template', '--port', '0']);
      expect(serve.code).toBe(2);
      expect(serve.stderr).toBe(expected);
      const evalOut = join(dir, 'outputs.json');
      const evaluate = await run([
        'eval',
        'generate',
        '-m',
        dir,
        '--format',
        'chat-template',
        '--out',
        evalOut,
      ]);
      expect([evaluate.code, evaluate.stderr]).toEqual([2, expected]);
      const trace = await run([
        'rules',
        'trace',
        '--tokenizer',
        dir,
        '--format',
        'chat-template',
        '--instruction',
        'Hi',
        '--response',
        'Hello',
      ]);
      expect([trace.code, trace.stderr]).toEqual([
        2,
        `error: --format chat-template: ${dir} has no chat template (no chat_template in its tokenizer_config.json, no chat_template.jinja)\n` +
          "hint: use --format tulu (the paper's format), or a tokenizer that has a chat template\n",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a damaged graph with --provider auto leads with why the CPU failed, not with the skipped CUDA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-corrupt-'));
    try {
      cpSync(model, dir, { recursive: true });
      writeFileSync(join(dir, 'onnx', 'model.onnx'), Buffer.from([0xff, 0x13, 0x07, 0x42, 0x99, 0x00, 0xfe]));
      const r = await run(['generate', '--model', dir, 'Hi']);
      expect(r.code).toBe(3);
      const graph = join(dir, 'onnx', 'model.onnx');
      expect(r.stderr).toMatch(
        new RegExp(
          `^error: ${graph}: no execution provider could load the model: (cpu|cuda): Failed to load model because protobuf parsing failed\\.`,
        ),
      );
      // a CUDA that was not there to try comes last, as context
      const cuda = r.stderr.indexOf('cuda: CUDA binaries');
      if (cuda >= 0) expect(cuda).toBeGreaterThan(r.stderr.indexOf('recreate or download it again'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the READMEs' ../shared paths from a clone elsewhere", () => {
  const root = mkdtempSync(join(tmpdir(), 'cli-shared-hint-'));
  const clone = join(root, 'clone');
  mkdirSync(clone);
  const trace = [
    'rules',
    'trace',
    '--tokenizer',
    '../shared/fixtures/tokenizers/llama2',
    '--instruction',
    'Hi',
    '--response',
    'Hello',
  ];

  it('names where the fixtures are when IMPLICIT_IT_SHARED_DIR (or the CLI) finds them', async (ctx) => {
    if (missingShared('fixtures/tokenizers/llama2/tokenizer.json')) return ctx.skip();
    const r = await run(trace, { cwd: clone, env: { IMPLICIT_IT_SHARED_DIR: SHARED_DIR } });
    expect([r.code, r.stderr]).toEqual([
      3,
      'error: --tokenizer: ../shared/fixtures/tokenizers/llama2 does not exist\n' +
        `hint: ../shared/fixtures/tokenizers/llama2 is relative to this directory; the shared fixtures are in ${SHARED_DIR}: give ${join(SHARED_DIR, 'fixtures', 'tokenizers', 'llama2')}\n`,
    ]);
  });

  it('reads a ..\\shared\\ path (as typed on Windows) as the same file, and names it', async (ctx) => {
    if (missingShared('fixtures/tokenizers/llama2/tokenizer.json')) return ctx.skip();
    for (const typed of [
      '..\\shared\\fixtures\\tokenizers\\llama2',
      '..\\shared/fixtures\\tokenizers/llama2',
    ]) {
      const r = await run([...trace.slice(0, 3), typed, ...trace.slice(4)], {
        cwd: clone,
        env: { IMPLICIT_IT_SHARED_DIR: SHARED_DIR },
      });
      expect([r.code, r.stderr]).toEqual([
        3,
        `error: --tokenizer: ${typed} does not exist\n` +
          `hint: ${typed} is relative to this directory; the shared fixtures are in ${SHARED_DIR}: give ${join(SHARED_DIR, 'fixtures', 'tokenizers', 'llama2')}\n`,
      ]);
    }
    // no x.jsonl in the shared directory, wherever it is: what the path assumes
    expect(sharedPathHint("ENOENT: no such file or directory, open '..\\shared\\data\\x.jsonl'")).toBe(
      "the READMEs' ../shared paths assume a clone beside the shared/ directory (tokenizer fixtures, datasets): run from such a clone, or give the full path (IMPLICIT_IT_SHARED_DIR names it for the defaults)",
    );
  });

  it('stays out of errors where a ../shared path is advice, not the path missing', () => {
    const advice =
      'mbpp.jsonl: holds no records: nothing to train on; restore the file, or pass --data-dir pointing at a complete copy of the shared data (../shared/data)';
    expect(sharedPathHint(advice)).toBeUndefined();
    expect(sharedPathHint('--tokenizer: ../shared/fixtures/tokenizers/nope does not exist')).toEqual(
      expect.any(String),
    );
  });

  it('says what the path assumes when no fixtures are found, and nothing when ../shared is there', async () => {
    const r = await run(['eval', 'rank', '--model', clone, '--data', '../shared/data/x.jsonl'], {
      cwd: clone,
      env: { IMPLICIT_IT_SHARED_DIR: join(root, 'none') },
    });
    expect(r.stderr).toContain(
      "hint: the READMEs' ../shared paths assume a clone beside the shared/ directory (tokenizer fixtures, datasets): run from such a clone, or give the full path (IMPLICIT_IT_SHARED_DIR names it for the defaults)\n",
    );
    mkdirSync(join(root, 'shared'));
    const beside = await run(trace, { cwd: clone });
    expect([beside.code, beside.stderr]).toEqual([
      3,
      'error: --tokenizer: ../shared/fixtures/tokenizers/llama2 does not exist\n',
    ]);
  });
});

describe('generate', () => {
  it('streams the response to stdout, equal to --json text', async () => {
    const streamed = await run(['generate', '--model', model, '-n', '24', 'Give me a recipe for tiramisu.']);
    expect(streamed.code).toBe(0);
    const json = await run([
      'generate',
      '--model',
      model,
      '-n',
      '24',
      '--json',
      'Give me a recipe for tiramisu.',
    ]);
    expect(json.code).toBe(0);
    const out = JSON.parse(json.stdout);
    expect(out).toMatchObject({ rules: 'hewitt2024', finishReason: expect.stringMatching(/stop|length/) });
    expect(out.tokenIds.length).toBe(out.usage.completionTokens);
    expect(out.usage.completionTokens).toBeLessThanOrEqual(24);
    expect(streamed.stdout).toBe(`${out.text}\n`);
  });

  it('--threads and --prefill-chunk reach the runtime (-v says so) and keep the output', async () => {
    const prompt = 'Give me a recipe for tiramisu, with the steps numbered.';
    const plain = JSON.parse(
      (await run(['generate', '--model', model, '-n', '12', '--json', prompt])).stdout,
    );
    const r = await run([
      'generate',
      '--model',
      model,
      '-n',
      '12',
      '--threads',
      '1',
      '--prefill-chunk',
      '3',
      '-v',
      '--json',
      prompt,
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^\[implicit-it\] execution provider: cpu, intra-op threads: 1/m);
    expect(r.stderr).toContain('[implicit-it] prompts prefilled in chunks of 3 positions');
    expect(JSON.parse(r.stdout).tokenIds).toEqual(plain.tokenIds);
    const whole = await run(['generate', '--model', model, '-n', '1', '--prefill-chunk', '0', '-v', 'Hi']);
    expect(whole.stderr).toContain('[implicit-it] prompts prefilled whole');
    for (const [flag, value] of [
      ['--threads', '0'],
      ['--prefill-chunk', '-1'],
      ['--prefill-chunk', '2.5'],
    ] as const) {
      const bad = await run(['generate', '--model', model, flag, value, 'Hi']);
      expect(bad.code, `${flag} ${value}`).toBe(2);
      expect(bad.stderr).toContain(`${flag} <n>' argument '${value}' is invalid`);
    }
  });

  it("--onnx-log-level lets onnxruntime's own lines through; by default stderr has none", async () => {
    // rules without entries of text: no note of entries the tiny tokenizer has no token for either
    const quiet = await run(['generate', '--model', model, '-n', '1', '--rules', 'eos-diversity', 'Hi']);
    expect([quiet.code, quiet.stderr]).toEqual([0, '']);
    const info = await run(['generate', '--model', model, '-n', '1', '--onnx-log-level', 'info', 'Hi']);
    expect(info.code).toBe(0);
    expect(info.stderr).toMatch(/\[I:onnxruntime/);
    const bad = await run(['generate', '--model', model, '--onnx-log-level', 'loud', 'Hi']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("option '--onnx-log-level <level>' argument 'loud' is invalid");
  });

  it.each([
    ['greedy', []],
    ['sampled, printing the seed', ['--temperature', '1']],
  ])(
    'Ctrl-C mid-answer ends the answer line before "error: interrupted" (exit 130), %s',
    async (_, flags) => {
      // a context long enough that the answer streams until the signal comes; a rule keeps the newline
      // token out of it, so that the only newline on stdout is the one that ends the line, and the
      // EOS (a sampled answer could end before the signal, and the signal land on an exiting process)
      const { dir } = await createTinyModel({ seed: 1, initScale: 10, maxPositionEmbeddings: 1_000_000 });
      const eos = [JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8')).eos_token_id].flat();
      const noNewline = JSON.stringify({
        uniform: {
          entries: [{ text: '\n', score: -1000 }, ...eos.map((id: number) => ({ id, score: -1000 }))],
        },
      });
      const child = spawn(
        process.execPath,
        [CLI, 'generate', '--model', dir, '--rules', noNewline, '-n', '900000', ...flags, 'Tell me a story.'],
        { env: { ...process.env, NO_COLOR: '1', HF_HUB_OFFLINE: '1', IMPLICIT_IT_CACHE: CACHE } },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => {
        stdout += d;
      });
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
      try {
        await waitFor(() => stdout.length > 0 || child.exitCode !== null);
      } finally {
        child.kill('SIGINT');
      }
      expect(await closed, stderr).toBe(130);
      // the partial answer's line was left open, and the error was written on it
      expect(stdout.length).toBeGreaterThan(1);
      expect(stdout.indexOf('\n')).toBe(stdout.length - 1);
      if (flags.length === 0) expect(stderr).toBe('error: interrupted\n');
      else expect(stderr).toMatch(/^\[seed \d+\]\nerror: interrupted\n$/);
    },
  );

  it('reads the instruction from stdin', async () => {
    const a = await run(['generate', '--model', model, '-n', '8', '--json', '-'], {
      input: 'Write a haiku.\n',
    });
    const b = await run(['generate', '--model', model, '-n', '8', '--json', 'Write a haiku.']);
    expect(JSON.parse(a.stdout).text).toBe(JSON.parse(b.stdout).text);
  });

  it('--rules off is the base model; subsets and JSON are accepted', async () => {
    const off = JSON.parse(
      (await run(['generate', '--model', model, '-n', '30', '--rules', 'off', '--json', 'Hi'])).stdout,
    );
    expect(off.rules).toBe(false);
    const json = await run([
      'generate',
      '--model',
      model,
      '-n',
      '5',
      '--rules',
      '{"used":{"penalty":-3}}',
      '--json',
      'Hi',
    ]);
    expect(json.code).toBe(0);
    const sub = await run([
      'generate',
      '--model',
      model,
      '-n',
      '5',
      '--rules',
      'eos-uniform',
      '--json',
      'Hi',
    ]);
    expect(JSON.parse(sub.stdout).rules).toBe('eos-uniform');
  });

  it('--compare prints base and base+rules side by side (and both in --json)', async () => {
    const text = await run(
      ['generate', '--model', model, '-n', '40', '--compare', 'Give me a recipe for tiramisu.'],
      {
        env: { COLUMNS: '100' },
      },
    );
    expect(text.code).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toMatch(/^base\s+│ base \+ rules \(hewitt2024\)$/);
    expect(lines.at(-2)).toMatch(/tokens, .* tokens\/s, finish: \w+\s+│ \d+ tokens/);
    for (const line of lines) expect([...line].length).toBeLessThanOrEqual(100);
    const json = JSON.parse(
      (
        await run([
          'generate',
          '--model',
          model,
          '-n',
          '40',
          '--compare',
          '--json',
          'Give me a recipe for tiramisu.',
        ])
      ).stdout,
    );
    expect(json.base.rules).toBe(false);
    expect(json.rules.rules).toBe('hewitt2024');
    expect(json.base.baseRanks.every((r: number) => r === 1)).toBe(true);
    expect(json.rules.baseRanks.length).toBe(json.rules.tokenIds.length);
    expect(json.base.text).not.toBe(json.rules.text);
  });

  it('samples with a new seed each run unless --seed (the seed is in --json); greedy has none', async () => {
    const sample = async (...extra: string[]) =>
      JSON.parse(
        (
          await run([
            'generate',
            '--model',
            model,
            '-n',
            '16',
            '-t',
            '1.5',
            '-r',
            'off',
            '--json',
            ...extra,
            'Hi',
          ])
        ).stdout,
      );
    const [a, b] = [await sample(), await sample()];
    expect(Number.isInteger(a.seed) && Number.isInteger(b.seed)).toBe(true);
    expect(a.seed).not.toBe(b.seed);
    // the printed seed reproduces the run
    expect((await sample('--seed', String(a.seed))).text).toBe(a.text);
    const pinned = [await sample('--seed', '5'), await sample('--seed', '5')];
    expect(pinned.map((r) => r.seed)).toEqual([5, 5]);
    expect(pinned[0].text).toBe(pinned[1].text);
    const greedy = JSON.parse((await run(['generate', '--model', model, '-n', '4', '--json', 'Hi'])).stdout);
    expect(greedy).not.toHaveProperty('seed');
  });

  it('prints the drawn seed on stderr when stderr is not a terminal (plain, --json, --compare)', async () => {
    const args = ['generate', '--model', model, '-n', '5', '-t', '0.8', 'Hi'];
    const plain = await run(args);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toMatch(/^\[seed \d+\]$/m);
    expect(plain.stdout).not.toContain('seed');
    const json = await run([...args, '--json']);
    expect(json.stderr).toContain(`[seed ${JSON.parse(json.stdout).seed}]\n`);
    const compare = await run([...args, '--compare']);
    expect(compare.code).toBe(0);
    expect(compare.stderr).toMatch(/^\[seed \d+\]$/m);
    expect(compare.stdout).not.toContain('seed');
    // greedy decoding has no seed to print
    expect((await run(['generate', '--model', model, '-n', '3', 'Hi'])).stderr).not.toContain('seed');
  });

  it('--trace colours shifted tokens unless NO_COLOR', async () => {
    const args = ['generate', '--model', model, '-n', '40', '--trace', 'Give me a recipe for tiramisu.'];
    const colour = await run(args, { env: { NO_COLOR: undefined, FORCE_COLOR: '1' } });
    expect(colour.stdout.includes('\u001b[43m') || colour.stdout.includes('\u001b[41m')).toBe(true);
    const plain = await run(args, { env: { NO_COLOR: '1', FORCE_COLOR: '1' } });
    expect(plain.stdout).not.toContain('\u001b[');
  });

  it('--compare with --rules off is refused: both columns would be the base model', async () => {
    const r = await run(['generate', '--model', model, '--compare', '--rules', 'off', 'Hi']);
    expect([r.code, r.stdout, r.stderr]).toEqual([
      2,
      '',
      'error: --compare puts the base model beside base + rules: with --rules off both columns would be the base model\nhint: give the rules to compare (--rules hewitt2024, the default, or a subset such as eos-uniform)\n',
    ]);
  });

  it('--compare --trace colours the rules column by base-model rank, in the same layout', async () => {
    const args = ['generate', '--model', model, '-n', '40', '--compare', 'Give me a recipe for tiramisu.'];
    const env = { COLUMNS: '100', NO_COLOR: undefined, FORCE_COLOR: '1' };
    const traced = await run([...args, '--trace'], { env });
    const plain = await run(args, { env });
    expect(traced.code, traced.stderr).toBe(0);
    const shifted = (text: string) => text.includes('\u001b[43m') || text.includes('\u001b[41m');
    expect(shifted(traced.stdout)).toBe(true);
    expect(shifted(plain.stdout)).toBe(false);
    // without the colour codes, the very same text (the footer's tokens/s aside); the base column
    // (all rank 1) is never coloured
    const ansi = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
    // (the footer pads to its column: a tokens/s of other digits moves the padding, so it goes too)
    const strip = (text: string) =>
      text.replace(ansi, '').replace(/[\d.]+ tokens\/s(, finish: \w+) */g, 'N tokens/s$1 ');
    expect(strip(traced.stdout)).toBe(strip(plain.stdout));
    for (const line of traced.stdout.split('\n')) expect(shifted(line.split('│')[0]!)).toBe(false);
  });
});

describe('the default model', () => {
  it('is fetched once from HF_ENDPOINT (here a local server with the hub paths) and then used from the cache', async () => {
    // a tiny model served as HuggingFaceTB/SmolLM2-135M; the CLI fetches it with the hub client
    const hub = await serveHubRepo(model, 'HuggingFaceTB/SmolLM2-135M');
    const { endpoint } = hub;
    const cache = mkdtempSync(join(tmpdir(), 'cli-hub-'));
    const env = { HF_HUB_OFFLINE: undefined, HF_ENDPOINT: endpoint, IMPLICIT_IT_CACHE: cache };
    try {
      const first = await run(['generate', '-n', '6', '--json', 'Hi'], { env });
      expect(first.code).toBe(0);
      const dir = join(cache, 'hub', 'HuggingFaceTB', 'SmolLM2-135M');
      expect(first.stderr).toContain(
        `downloading HuggingFaceTB/SmolLM2-135M (fp32) from ${endpoint} into ${dir}`,
      );
      expect(first.stderr).toContain('fetched onnx/model.onnx');
      expect(first.stderr).not.toContain('RANDOM weights');
      expect(JSON.parse(first.stdout).usage.completionTokens).toBeGreaterThan(0);
      expect(
        readFileSync(join(dir, 'onnx', 'model.onnx')).equals(readFileSync(join(model, 'onnx', 'model.onnx'))),
      ).toBe(true);
      const seen = hub.requests.length;
      const second = await run(['generate', '-n', '6', '--json', 'Hi'], { env });
      expect(second.code).toBe(0);
      expect(second.stderr).not.toContain('downloading');
      expect(JSON.parse(second.stdout).tokenIds).toEqual(JSON.parse(first.stdout).tokenIds);
      expect(hub.requests.length).toBe(seen);
    } finally {
      await hub.close();
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
