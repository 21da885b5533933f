import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerChat } from './commands/chat.js';
import { registerDoctor } from './commands/doctor.js';
import { registerEval } from './commands/eval.js';
import { registerFinetune } from './commands/finetune.js';
import { registerGenerate } from './commands/generate.js';
import { registerInstallCuda } from './commands/install-cuda.js';
import { registerModel } from './commands/model.js';
import { registerRules } from './commands/rules-trace.js';
import { registerServe } from './commands/serve.js';

/**
 * The version in this package's package.json, read when the program is made. The bin runs as
 * dist/cli.js, one folder below package.json in the workspace and in the published tarball alike
 * (and src/program.ts, under vitest, too). Read, not baked into the build: `changeset version`
 * rewrites package.json after the build, and a bundled version then printed the old one.
 *
 * @example
 * packageVersion(); // the `version` of @implicit-it/cli's package.json, such as '0.3.1'
 */
export function packageVersion(): string {
  const file = new URL('../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/**
 * Option names people bring from other tools (transformers' `generate()`, OpenAI's API, llama.cpp,
 * PyTorch training scripts), and what this CLI calls them. Too far from ours for commander's own
 * "Did you mean" (which stops at 3 edits).
 */
const OPTION_SYNONYMS: Readonly<Record<string, string>> = {
  '--max-new-tokens': '--max-tokens',
  '--max_new_tokens': '--max-tokens',
  '--max_tokens': '--max-tokens',
  '--max-length': '--max-tokens',
  '--n-predict': '--max-tokens',
  '--temp': '--temperature',
  '--greedy': '--temperature 0',
  '--model-dir': '--model',
  '--model-path': '--model',
  '--model_name_or_path': '--model',
  '--system-prompt': '--system',
  '--stop-sequence': '--stop',
  '--stop-string': '--stop',
  '--no-rules': '--rules off',
  '--device': '--provider',
  '--gpu': '--provider cuda',
  '--cuda': '--provider cuda',
  '--lr': '--learning-rate',
  '--num-epochs': '--epochs',
  '--num_train_epochs': '--epochs',
};

/**
 * What `implicit-it` says of an unknown option another tool names so (`--max-new-tokens`): the option of
 * this command that does it, where the command has one; undefined otherwise.
 *
 * @example
 * const generate = createProgram().commands.find((c) => c.name() === 'generate')!;
 * synonymHint(generate, '--max-new-tokens=64'); // '(Did you mean --max-tokens?)'
 * synonymHint(generate, '--learning-rate'); // undefined
 */
export function synonymHint(command: Command, flag: string): string | undefined {
  const ours = OPTION_SYNONYMS[flag.split('=')[0]!];
  const long = ours?.split(' ')[0];
  if (!ours || !command.options.some((o) => o.long === long)) return undefined;
  return `(Did you mean ${ours}?)`;
}

/** The program's commands: an unknown option another tool names so gets this CLI's name for it. */
class CliCommand extends Command {
  override createCommand(name?: string): Command {
    return new CliCommand(name);
  }

  unknownOption(flag: string): void {
    const hint = synonymHint(this, flag);
    if (hint) this.error(`error: unknown option '${flag}'\n${hint}`, { code: 'commander.unknownOption' });
    (Command.prototype as unknown as { unknownOption(flag: string): void }).unknownOption.call(this, flag);
  }
}

/**
 * The `implicit-it` program: every command registers itself here.
 *
 * @example
 * await createProgram().parseAsync(['node', 'implicit-it', 'doctor']);
 */
export function createProgram(): Command {
  const program = new CliCommand('implicit-it')
    .description(
      'Instruction following without instruction tuning (Hewitt et al., 2024): a base language model plus ' +
        'three hand-written decoding rules, from the command line.',
    )
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(add --help for usage and examples)')
    .configureHelp({ sortSubcommands: false, showGlobalOptions: false, minWidthToWrap: 24 })
    .addHelpText(
      'after',
      `
Examples:
  $ implicit-it generate "Give me a recipe for tiramisu."   # stream an answer
  $ implicit-it generate --compare "List three colors."     # base vs + rules
  $ implicit-it chat --model ./models/smol                  # multi-turn
  $ implicit-it serve --port 8080                           # API + playground
  $ implicit-it rules trace --tokenizer DIR --instruction "Hi" --response "Hey"
  $ implicit-it model create --preset tiny --out ./models/tiny
  $ implicit-it finetune data --recipe mbpp --out data/mbpp.jsonl
  $ implicit-it finetune plan --recipe lima-response --model DIR --gpus 8 \\
      --out jobs/res
  $ implicit-it eval generate --model DIR --rules hewitt2024 \\
      --out run/outputs/rules.json                          # AlpacaEval outputs
  $ implicit-it eval winrate --annotations run/annotations/rules.json --json
  $ implicit-it doctor
  $ implicit-it install-cuda                                # the CUDA provider

Exit codes: 0 ok, 1 failure, 2 bad usage, 3 model/tokenizer not found or not
loadable, 130 interrupted.
Colour follows the terminal; NO_COLOR=1 turns it off, FORCE_COLOR=1 on.`,
    );
  registerGenerate(program);
  registerChat(program);
  registerServe(program);
  registerRules(program);
  registerModel(program);
  registerFinetune(program);
  registerEval(program);
  registerDoctor(program);
  registerInstallCuda(program);
  return program;
}
