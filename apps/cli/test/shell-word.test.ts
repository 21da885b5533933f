import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { eachJobCommand, planNext, resumeCommand, runNext } from '../src/commands/finetune.js';
import { shellCommand, shellWord } from '../src/output.js';

// Commands printed for the user to copy and run: POSIX single quotes (unchanged), and on Windows
// double quotes that PowerShell and, where it can, cmd.exe read as the same words.
const words: [string, string, string][] = [
  // word, POSIX, Windows
  ['jobs/mbpp', 'jobs/mbpp', 'jobs/mbpp'],
  ['C:\\jobs\\mbpp', "'C:\\jobs\\mbpp'", 'C:\\jobs\\mbpp'],
  ['fp32,q4', 'fp32,q4', '"fp32,q4"'],
  ['@rules.json', '@rules.json', '"@rules.json"'],
  ['--resume', '--resume', '--resume'],
  ['--', '--', '"--"'],
  ['--%', '--%', '"--%"'],
  ['--lr=0.5', '--lr=0.5', '"--lr=0.5"'],
  ['-x:y', '-x:y', '"-x:y"'],
  ['a.b:c', 'a.b:c', 'a.b:c'],
  ['100%', '100%', '100%'],
  ['%PATH%', '%PATH%', '%PATH%'],
  ['', "''", '""'],
  ['my jobs/x', "'my jobs/x'", '"my jobs/x"'],
  ["NOTE=it's", "'NOTE=it'\\''s'", '"NOTE=it\'s"'],
  ['say "hi"', `'say "hi"'`, '"say ""hi"""'],
  ['$HOME', "'$HOME'", '"`$HOME"'],
  ['a`b', "'a`b'", '"a``b"'],
  ['C:\\my jobs\\', "'C:\\my jobs\\'", '"C:\\my jobs\\\\"'],
  ['C:\\my jobs\\x', "'C:\\my jobs\\x'", '"C:\\my jobs\\x"'],
  ['a\\"b', `'a\\"b'`, '"a\\\\""b"'],
  ['a & b | c ^ d', "'a & b | c ^ d'", '"a & b | c ^ d"'],
  ['\u201chi\u201d', "'\u201chi\u201d'", '"`\u201chi`\u201d"'],
];

describe('shellWord', () => {
  it.each(words)('writes %j as %s on POSIX and %s on Windows', (word, posix, win32) => {
    expect(shellWord(word, 'linux')).toBe(posix);
    expect(shellWord(word, 'darwin')).toBe(posix);
    expect(shellWord(word, 'win32')).toBe(win32);
  });

  it('follows the platform it runs on by default', () => {
    expect(shellWord('my job')).toBe(shellWord('my job', process.platform));
    expect(shellCommand(['run', 'my job'])).toBe(shellCommand(['run', 'my job'], process.platform));
  });

  // cmd.exe hands node.exe the line as it is: what node's own argument parser (the C runtime's on
  // Windows, which the quoting follows) makes of each Windows word, modelled here by its rules
  it.each(words.filter(([w]) => !/[$`\u201c\u201d]/.test(w)))(
    "gives %j back through the Windows C runtime's argument rules",
    (word) => {
      expect(msvcrtArgs(shellCommand(['x', word, 'y'], 'win32'))).toEqual(['x', word, 'y']);
    },
  );

  it.runIf(process.platform !== 'win32')('gives every word back through sh', () => {
    const all = words.map(([w]) => w);
    const echoed = spawnSync('sh', ['-c', `printf '%s\\0' ${shellCommand(all, 'linux')}`], {
      encoding: 'utf8',
    });
    expect(echoed.stdout.split('\0').slice(0, -1)).toEqual(all);
  });
});

describe('the commands finetune prints', () => {
  const flags = { python: 'C:\\Program Files\\Python312\\python.exe', env: ["NOTE=it's $5"], maxSteps: 9 };

  it('resumes with every flag, quoted for the platform', () => {
    expect(resumeCommand('jobs/my job', ['--lr=0.5', ''], flags, 'linux')).toBe(
      "implicit-it finetune run 'jobs/my job' --resume --python 'C:\\Program Files\\Python312\\python.exe' " +
        "--env 'NOTE=it'\\''s $5' --max-steps 9 -- --lr=0.5 ''",
    );
    expect(resumeCommand('jobs\\my job', ['--lr=0.5', ''], flags, 'win32')).toBe(
      'implicit-it finetune run "jobs\\my job" --resume --python "C:\\Program Files\\Python312\\python.exe" ' +
        '--env "NOTE=it\'s `$5" --max-steps 9 "--" "--lr=0.5" ""',
    );
    expect(resumeCommand('jobs/x', [], { onnxDtypes: ['fp32', 'q4'], json: true }, 'linux')).toBe(
      'implicit-it finetune run jobs/x --resume --onnx-dtypes fp32,q4 --json',
    );
    expect(resumeCommand('jobs\\x', [], { onnxDtypes: ['fp32', 'q4'], json: true }, 'win32')).toBe(
      'implicit-it finetune run jobs\\x --resume --onnx-dtypes "fp32,q4" --json',
    );
  });

  it("plan's next line: launch.sh here only off Windows, where bash is WSL's", () => {
    expect(planNext('jobs/my job', 1, 'linux')).toBe(
      "next: implicit-it finetune run 'jobs/my job'   (or: bash 'jobs/my job'/launch.sh)\n",
    );
    expect(planNext('jobs/mbpp', 1, 'linux')).toBe(
      'next: implicit-it finetune run jobs/mbpp   (or: bash jobs/mbpp/launch.sh)\n',
    );
    expect(planNext('jobs\\my job', 1, 'win32')).toBe('next: implicit-it finetune run "jobs\\my job"\n');
    expect(planNext('jobs/mbpp', 2, 'linux')).toBe(
      'next: implicit-it finetune run jobs/mbpp\n' +
        '      or on each node: MACHINE_RANK=<0..1> MAIN_PROCESS_IP=<node 0> bash jobs/mbpp/launch.sh\n',
    );
    // the nodes' command line is bash's (VAR=value before the command), quoted for it on every platform
    expect(planNext('jobs/my job', 2, 'linux')).toBe(
      "next: implicit-it finetune run 'jobs/my job'\n" +
        "      or on each node: MACHINE_RANK=<0..1> MAIN_PROCESS_IP=<node 0> bash 'jobs/my job'/launch.sh\n",
    );
    expect(planNext('jobs/my job', 3, 'win32')).toBe(
      'next: implicit-it finetune run "jobs/my job"\n' +
        "      or on each node: MACHINE_RANK=<0..2> MAIN_PROCESS_IP=<node 0> bash 'jobs/my job'/launch.sh\n",
    );
  });

  it("run's next lines: the trained model tried with generate and its outputs generated for eval judge", () => {
    const exported = { exported: true, by: 'modelkit' as const, dtypes: ['fp32' as const] };
    expect(runNext('jobs/poetry/output', 'poetry', exported, 'linux')).toBe(
      'next: implicit-it generate --model jobs/poetry/output "INSTRUCTION"\n' +
        '      implicit-it eval generate --model jobs/poetry/output --rules off --out run/outputs/poetry.json\n',
    );
    expect(runNext('jobs/my job/output', 'my job', exported, 'linux')).toBe(
      `next: implicit-it generate --model 'jobs/my job/output' "INSTRUCTION"\n` +
        `      implicit-it eval generate --model 'jobs/my job/output' --rules off --out 'run/outputs/my job.json'\n`,
    );
    expect(runNext('jobs\\my job\\output', 'my job', exported, 'win32')).toBe(
      'next: implicit-it generate --model "jobs\\my job\\output" "INSTRUCTION"\n' +
        '      implicit-it eval generate --model "jobs\\my job\\output" --rules off --out "run/outputs/my job.json"\n',
    );
    // only a quantized graph (--onnx-dtypes q4): loaded as that dtype
    expect(runNext('jobs/poetry/output', 'poetry', { exported: true, dtypes: ['q4'] }, 'linux')).toBe(
      'next: implicit-it generate --model jobs/poetry/output --dtype q4 "INSTRUCTION"\n' +
        '      implicit-it eval generate --model jobs/poetry/output --dtype q4 --rules off --out run/outputs/poetry.json\n',
    );
    // no graph: exported first, by model export where nothing tried (planned with --no-export-onnx) ...
    expect(runNext('jobs/poetry/output', 'poetry', undefined, 'linux')).toBe(
      'next: implicit-it model export jobs/poetry/output   (no ONNX graph was written; generate and eval load one), then:\n' +
        '      implicit-it generate --model jobs/poetry/output "INSTRUCTION"\n' +
        '      implicit-it eval generate --model jobs/poetry/output --rules off --out run/outputs/poetry.json\n',
    );
    // ... or as the onnx line says where the export failed (modelkit's too: model export would fail alike)
    expect(runNext('jobs/poetry/output', 'poetry', { exported: false, reason: 'x' }, 'linux')).toBe(
      'next: give jobs/poetry/output an ONNX graph (the onnx line says why it has none), then:\n' +
        '      implicit-it generate --model jobs/poetry/output "INSTRUCTION"\n' +
        '      implicit-it eval generate --model jobs/poetry/output --rules off --out run/outputs/poetry.json\n',
    );
  });

  it("a sweep's jobs one after another: a sh loop, or PowerShell's", () => {
    expect(eachJobCommand('sweeps/my sweep', 'job', 'linux')).toBe(
      `for job in 'sweeps/my sweep'/*/; do implicit-it finetune run "$job"; done`,
    );
    expect(eachJobCommand('sweeps/mbpp', undefined, 'linux')).toBe(
      'for j in sweeps/mbpp/*/; do implicit-it finetune run "$j"; done',
    );
    expect(eachJobCommand('sweeps\\my sweep', 'job', 'win32')).toBe(
      'Get-ChildItem -Directory -LiteralPath "sweeps\\my sweep" | ForEach-Object { implicit-it finetune run $_.FullName }',
    );
  });
});

/**
 * The words the Microsoft C runtime (and so node.exe) reads from a command line: whitespace outside
 * quotes separates them; `"` toggles quoting, `""` inside quotes is one `"`; 2n backslashes before a
 * `"` are n backslashes (the `"` then quoting), 2n+1 are n and a literal `"`; other backslashes are
 * literal.
 */
function msvcrtArgs(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    let arg = '';
    let quoted = false;
    for (; i < line.length; i++) {
      const c = line[i];
      if (!quoted && (c === ' ' || c === '\t')) break;
      if (c === '\\') {
        let n = 0;
        while (line[i + n] === '\\') n++;
        arg += '\\'.repeat(line[i + n] === '"' ? Math.floor(n / 2) : n);
        if (line[i + n] === '"' && n % 2 === 1) {
          arg += '"';
          i += n; // past the escaped quote
        } else i += n - 1; // the loop reads what follows (a quote that quotes, or any other)
        continue;
      }
      if (c === '"') {
        if (quoted && line[i + 1] === '"') {
          arg += '"';
          i++;
        } else quoted = !quoted;
        continue;
      }
      arg += c;
    }
    args.push(arg);
  }
  return args;
}
