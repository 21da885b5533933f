#!/usr/bin/env node
import { CommanderError } from 'commander';
import { CliError, EXIT, exitCodeOf, inCliTerms, painter } from './output.js';
import { createProgram } from './program.js';
import { sharedPathHint } from './shared-dir.js';

// `implicit-it ... | head` closes the pipe early: that ends the output, it is not an error
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
    throw error;
  });
}

async function main(): Promise<void> {
  const program = createProgram();
  const override = (cmd: typeof program) => {
    cmd.exitOverride();
    for (const sub of cmd.commands) override(sub);
  };
  override(program);
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // help and version exit 0; every parse error is a usage error (the message is already printed)
      process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    const paint = painter(process.stderr);
    const message = inCliTerms(error instanceof Error ? error.message : String(error));
    process.stderr.write(`${paint('red', 'error:')} ${message}\n`);
    if (error instanceof CliError && error.hint)
      process.stderr.write(`${paint('dim', `hint: ${error.hint}`)}\n`);
    const shared = sharedPathHint(message);
    if (shared) process.stderr.write(`${paint('dim', `hint: ${shared}`)}\n`);
    if (process.env.IMPLICIT_IT_DEBUG && error instanceof Error && error.stack)
      process.stderr.write(`${error.stack}\n`);
    process.exitCode = exitCodeOf(error);
  }
}

await main();
