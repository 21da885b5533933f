import { installCudaProvider, ProviderInstallError, providerStatus } from '@implicit-it/runtime';
import type { Command } from 'commander';
import { CliError, EXIT, note, painter } from '../output.js';

export function registerInstallCuda(program: Command): void {
  program
    .command('install-cuda')
    .description(
      "fetch onnxruntime-node's CUDA execution provider (CUDA 12, about 300 MB from NuGet): the install script a pnpm 10 install skips",
    )
    .option('-q, --quiet', "hide the install script's own output")
    .addHelpText(
      'after',
      `
onnxruntime-node fetches its CUDA provider in an install script. pnpm 10 runs no dependency's install
script unless it is listed in onlyBuiltDependencies (and then \`pnpm rebuild onnxruntime-node\` skips it
too), so a plain install is CPU-only. This command runs that script for the onnxruntime-node the runtime
loads, then checks the provider library is there. Linux x64 only; running models on the provider needs
an NVIDIA driver, CUDA 12 and cuDNN 9. Behind a proxy, set GLOBAL_AGENT_HTTPS_PROXY (the script reads it).

Prints the provider library's path on stdout. Exit code 0 when it is installed, 1 otherwise.

Examples:
  $ implicit-it install-cuda
  $ implicit-it doctor                      # then: is the cuda provider usable here, and if not, why
  $ implicit-it generate --provider cuda "Give me a recipe for tiramisu."`,
    )
    .action(async (flags: { quiet?: boolean }) => {
      const paint = painter(process.stderr);
      note("running onnxruntime-node's install script (ONNXRUNTIME_NODE_INSTALL=cuda12), from api.nuget.org");
      const library = await installCudaProvider({
        onOutput: flags.quiet ? undefined : (line) => note(paint('dim', line)),
      }).catch((error: unknown) => {
        if (error instanceof ProviderInstallError && error.code === 'runtime.cuda_install')
          throw new CliError(
            error.message,
            EXIT.failure,
            'the download needs https access to api.nuget.org; behind a proxy, set GLOBAL_AGENT_HTTPS_PROXY',
          );
        throw error;
      });
      process.stdout.write(`${library}\n`);
      const cuda = providerStatus().find((p) => p.name === 'cuda');
      note(
        cuda?.available
          ? 'the cuda execution provider is ready: --provider cuda (or executionProvider: "cuda")'
          : `installed, but the cuda provider cannot run here yet: ${cuda?.reason ?? 'unknown'}`,
      );
    });
}
