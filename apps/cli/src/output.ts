import { ImplicitItError } from '@implicit-it/rules';

/**
 * Exit codes (also in `--help` and the README):
 * 0 success; 1 the work failed; 2 bad usage (flags, arguments, rule specs); 3 a model or tokenizer
 * could not be found or loaded; 130 interrupted (Ctrl-C).
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, load: 3, interrupted: 130 } as const;

/** An error that ends the command with a message and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A usage error (exit 2). */
export const usage = (message: string, hint?: string) => new CliError(message, EXIT.usage, hint);

/** Whether to colour a stream: a TTY, NO_COLOR unset, TERM not dumb; FORCE_COLOR forces it. */
export function colorEnabled(stream: NodeJS.WriteStream = process.stdout): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true && process.env.TERM !== 'dumb';
}

const codes = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  cyan: [36, 39],
  bgYellow: [43, 49],
  bgRed: [41, 49],
} as const;

export type Style = keyof typeof codes;

/** Styles text for a stream, or leaves it plain when colour is off. */
export function painter(stream: NodeJS.WriteStream = process.stdout) {
  const on = colorEnabled(stream);
  return (style: Style, text: string) =>
    on ? `\u001b[${codes[style][0]}m${text}\u001b[${codes[style][1]}m` : text;
}

/**
 * `n` and a noun, singular for 1: `counted(1, 'output')` is '1 output', `counted(2, 'output')` '2 outputs'.
 */
export function counted(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}

/** Prints one JSON value on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A message for stderr (not part of a command's output). */
export function note(message: string): void {
  process.stderr.write(`${message}\n`);
}

const USAGE_CODES = new Set([
  'rules.invalid_config',
  'runtime.bad_option',
  'runtime.bad_dtype',
  'runtime.prompt_too_long',
  'runtime.empty_prompt',
  'tokenizers.invalid_prompt',
  'tokenizers.no_chat_template',
  'modelkit.invalid_config',
  'finetune.invalid_option',
  'finetune.invalid_job',
  'eval.invalid_input',
]);

/**
 * A library message in the CLI's words. The packages name an option as the library takes it, then
 * the flag that sets it (the \`python\` option (CLI: --python), \`overwrite: true\` (CLI: --force),
 * \`runJob(dir, { resume: true })\` (CLI: implicit-it finetune run DIR --resume)); the CLI shows
 * the flag or command alone ("point --python or IMPLICIT_IT_PYTHON at ...").
 *
 * @example
 * inCliTerms('or give the `tokenizer` option (CLI: --tokenizer DIR), a directory'); // 'or give --tokenizer DIR, a directory'
 */
export function inCliTerms(message: string): string {
  return message.replace(/(?:the )?`[^`]+`(?: option)? \(CLI: (.+?)\)(?=$|[\s;,.:])/gm, '$1');
}

/** The exit code an error ends the CLI with. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (ImplicitItError.isInstance(error)) {
    // finetune's "no tokenizer.json in the model/tokenizer directory" is a tokenizer that cannot be
    // found, and "no PyTorch weights in the model directory" a model train.py cannot load
    const field = (error as { field?: unknown }).field;
    if (error.code === 'finetune.invalid_option' && (field === 'tokenizer' || field === 'model'))
      return EXIT.load;
    // a raw data file that cannot be read (a --data-dir without it) is a missing input file, as
    // eval's --instructions or --data; one that holds nothing to train on is work that failed
    const cause = (error as { cause?: { code?: unknown } }).cause;
    if (error.code === 'finetune.missing_data' && typeof cause?.code === 'string') return EXIT.usage;
    if (USAGE_CODES.has(error.code)) return EXIT.usage;
    // a generation or scoring stopped through its signal (the runtime's), a run stopped so (eval's)
    if (error.code === 'runtime.aborted' || error.code === 'eval.aborted') return EXIT.interrupted;
    if (error.name === 'ModelLoadError' || error.name === 'TokenizerLoadError') return EXIT.load;
  }
  return EXIT.failure;
}

/**
 * Text for a terminal: control characters other than newline and tab (a random-weights model emits
 * them) would move the cursor or clear the screen, so they show as U+FFFD. Pipes get the text as is.
 */
export function forTerminal(text: string, stream: NodeJS.WriteStream = process.stdout): string {
  if (!stream.isTTY) return text;
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    out +=
      (code < 0x20 && ch !== '\n' && ch !== '\t') || code === 0x7f || (code >= 0x80 && code < 0xa0)
        ? '\ufffd'
        : ch;
  }
  return out;
}

/**
 * A word for the shell, in a command a message prints for the user to copy and run: as it is when it
 * holds only characters the shell reads as themselves, else quoted for the shell of `platform`.
 *
 * POSIX (sh, bash, zsh): in single quotes, where nothing is special; a `'` is written `'\''`.
 *
 * Windows (`win32`): for PowerShell, the terminal Windows 10 and 11 open, and where possible cmd.exe.
 * PowerShell reads `'\''` otherwise than sh, and cmd keeps single quotes as part of the word, so the word
 * is in double quotes, which group it in both; what each shell then reads specially is escaped:
 * - `"` is written `""`: PowerShell reads one `"`, and so does node.exe's argument parser (the
 *   Microsoft C runtime's) in the line cmd hands over as it is; cmd's own quote state stays in step,
 *   so the `&`, `|`, `<`, `>` and `^` of the word stay quoted for it.
 * - `$` and the backtick get a backtick (PowerShell expands `$name` in double quotes), and so do the
 *   typographic quotes that PowerShell reads as `"`; cmd would keep those backticks (no form works in
 *   both). cmd expands `%NAME%` even in quotes, with no escape on a command line: left as it is.
 * - backslashes are literal to node.exe's parser except before a `"`: a run of them before a `"` (or
 *   before the closing one) is doubled, as cmd and Windows PowerShell 5.1 pass the word on unescaped;
 *   PowerShell 7.3+ escapes it again itself, so there such a word ends in one more `\` (a directory
 *   path still names the same directory).
 * - left bare on POSIX but quoted here: `--` (PowerShell takes it as the end of its own parameters,
 *   and npm's `.ps1` shim of the command would drop it), `--%` (PowerShell's stop-parsing token), a word starting with `-` that holds `.` or
 *   `:` (PowerShell splits `-a.b` in two), and any `@` (splatting) or `,` (an array).
 * - the empty word is `""`; Windows PowerShell 5.1 drops an empty argument to a program whatever the
 *   quoting, as it loses a `"` inside one.
 *
 * @example
 * shellWord('jobs/mbpp', 'linux'); // 'jobs/mbpp'
 * shellWord("NOTE=it's", 'linux'); // "'NOTE=it'\\''s'"
 * shellWord('C:\\my jobs\\', 'win32'); // '"C:\\my jobs\\\\"'
 * shellWord('NOTE=$HOME', 'win32'); // '"NOTE=`$HOME"'
 */
export function shellWord(word: string, platform: NodeJS.Platform = process.platform): string {
  if (platform !== 'win32') return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
  const bare = /^[\w%+=:./\\-]+$/.test(word) && word !== '--' && word !== '--%' && !/^-.*[.:]/.test(word);
  if (bare) return word;
  const escaped = word
    .replace(/(\\*)("|$)/g, (_, slashes: string, quote: string) => `${slashes}${slashes}${quote}${quote}`)
    .replace(/[`$\u201c\u201d\u201e]/g, '`$&');
  return `"${escaped}"`;
}

/**
 * A command line of `words` for the shell of `platform`, each word as `shellWord` writes it.
 *
 * @example
 * shellCommand(['implicit-it', 'finetune', 'run', 'my job'], 'linux'); // "implicit-it finetune run 'my job'"
 * shellCommand(['implicit-it', 'finetune', 'run', 'my job'], 'win32'); // 'implicit-it finetune run "my job"'
 */
export function shellCommand(words: readonly string[], platform: NodeJS.Platform = process.platform): string {
  return words.map((word) => shellWord(word, platform)).join(' ');
}
