import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { createProgram } from '../src/program.js';

// Every command line the CLI shows as an example (each command's --help) or a README writes is one
// the CLI parses: its commands and flags exist, its values pass their checks and its required
// options are there. Parsed by the program itself with every action replaced by nothing, so that no
// example runs (they load models, call a judge, start a server).
const root = resolve(import.meta.dirname, '..', '..', '..');

/** The program with no-op actions and errors thrown instead of printed and exited. */
function parseOnly(): Command {
  const program = createProgram();
  const quiet = (cmd: Command) => {
    cmd.exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
    if (cmd.commands.length === 0) cmd.action(() => {});
    for (const sub of cmd.commands) quiet(sub);
  };
  quiet(program);
  return program;
}

/** A command's --help text, examples included (commander adds them as help text after). */
function helpOf(cmd: Command): string {
  let text = '';
  cmd.configureOutput({ writeOut: (s) => (text += s) });
  cmd.outputHelp();
  return text;
}

function* allCommands(cmd: Command): Generator<Command> {
  yield cmd;
  for (const sub of cmd.commands) yield* allCommands(sub);
}

/**
 * The words of a shell command line as the shell passes them: quotes removed, a backslash-newline
 * joins lines, and it ends at an unquoted `#`, `|`, `>`, `<`, `;` or `&` (what follows is not ours).
 * A `$VAR` stands for some value: `1`.
 */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && line[i + 1] === '\n') {
      i++;
      continue;
    }
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unclosed ${c} in ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '$' && /\w/.test(line[i + 1] ?? '')) {
      word = `${word ?? ''}1`;
      while (/\w/.test(line[i + 1] ?? '')) i++;
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if ('#|><;&'.includes(c) && word === null) break;
    else word = (word ?? '') + c;
  }
  if (word !== null) words.push(word);
  return words;
}

/** The `implicit-it ...` command lines of a text: `$ implicit-it`, `pnpm implicit-it` or a bare one. */
function commandLines(text: string): string[] {
  const joined = text.replace(/\\\n\s*/g, ' ');
  return [...joined.matchAll(/^\s*(?:\$ |pnpm )?implicit-it (.*)$/gm)].map((m) => m[1]!.trim());
}

/** The fenced sh blocks of a markdown file. */
function shellBlocks(file: string): string {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/```(?:sh|bash|console)\n([\s\S]*?)```/g)].map((m) => m[1]).join('\n');
}

async function parses(args: string[]): Promise<string | null> {
  try {
    await parseOnly().parseAsync(args, { from: 'user' });
    return null;
  } catch (error) {
    if (error instanceof CommanderError && error.exitCode === 0) return null; // --help, --version
    return error instanceof Error ? error.message : String(error);
  }
}

describe('shellWords', () => {
  it('reads quotes, continuations and comments as the shell does', () => {
    expect(shellWords(`generate --max-tokens 32 "Give me a recipe."   # stream it`)).toEqual([
      'generate',
      '--max-tokens',
      '32',
      'Give me a recipe.',
    ]);
    expect(shellWords("eval generate -m jobs/ep$e/output --rules 'a b' \\\n  --out x | head -1")).toEqual([
      'eval',
      'generate',
      '-m',
      'jobs/ep1/output',
      '--rules',
      'a b',
      '--out',
      'x',
    ]);
    expect(shellWords('rules trace --instruction "Hi # there"')).toEqual([
      'rules',
      'trace',
      '--instruction',
      'Hi # there',
    ]);
  });
});

describe('example command lines', () => {
  const program = createProgram();
  const sources: [string, string[]][] = [
    ...[...allCommands(program)].map((cmd): [string, string[]] => [
      `implicit-it ${cmd.name() === 'implicit-it' ? '' : cmdPath(cmd)}--help`,
      commandLines(helpOf(cmd)),
    ]),
    ['apps/cli/README.md', commandLines(shellBlocks(resolve(root, 'apps/cli/README.md')))],
    ['README.md', commandLines(shellBlocks(resolve(root, 'README.md')))],
    ['apps/api/README.md', commandLines(shellBlocks(resolve(root, 'apps/api/README.md')))],
  ];

  it('finds the examples of every command and of the READMEs', () => {
    for (const [where, lines] of sources) expect(lines.length, where).toBeGreaterThan(0);
    expect(sources.reduce((n, [, lines]) => n + lines.length, 0)).toBeGreaterThanOrEqual(100);
  });

  it('parses every one: commands, flags, values and required options as written', async () => {
    const failures: string[] = [];
    for (const [where, lines] of sources)
      for (const line of lines) {
        const problem = await parses(shellWords(line));
        if (problem) failures.push(`${where}: implicit-it ${line}\n  ${problem}`);
      }
    expect(failures).toEqual([]);
  });

  it('would catch a flag that is not there, a bad value and a missing required option', async () => {
    expect(await parses(shellWords('generate --max-new-tokens 3 "Hi"'))).toBe(
      "error: unknown option '--max-new-tokens'\n(Did you mean --max-tokens?)",
    );
    expect(await parses(shellWords('generate -n 0 "Hi"'))).toBe(
      "error: option '-n, --max-tokens <n>' argument '0' is invalid. expected an integer in [1, 1000000], got \"0\"",
    );
    expect(await parses(shellWords('model create --preset tiny'))).toBe(
      "error: required option '-o, --out <dir>' not specified",
    );
  });
});

/** `eval generate ` for the command `generate` under `eval`. */
function cmdPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return `${names.join(' ')} `;
}
