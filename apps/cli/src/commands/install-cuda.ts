import {
  cudaPackageUrl,
  installCudaProvider,
  ProviderInstallError,
  providerStatus,
} from '@implicit-it/runtime';
import type { Command } from 'commander';
import { CliError, EXIT, note, painter } from '../output.js';

const MB = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** Download progress on stderr: one line rewritten in place on a terminal, a line per 50 MB elsewhere. */
function progressPrinter(): { update: (bytes: number) => void; done: () => void } {
  const tty = process.stderr.isTTY === true;
  let shown = 0;
  return {
    update: (bytes) => {
      if (tty) process.stderr.write(`\rdownloaded ${MB(bytes)}`);
      else if (bytes - shown >= 50e6 || shown === 0) note(`downloaded ${MB(bytes)}`);
      else return;
      shown = bytes;
    },
    done: () => {
      if (tty && shown > 0) process.stderr.write('\n');
    },
  };
}

export function registerInstallCuda(program: Command): void {
  program
    .command('install-cuda')
    .description(
      "fetch onnxruntime-node's CUDA execution provider (CUDA 12, about 300 MB from NuGet): the install script a pnpm 10 install skips",
    )
    .option('--from <file>', 'install from a NuGet package (.nupkg) already downloaded, without the network')
    .option('-q, --quiet', "hide the install script's own output and the download's progress")
    .addHelpText(
      'after',
      `
onnxruntime-node fetches its CUDA provider in an install script. pnpm 10 runs no
dependency's install script unless it is listed in onlyBuiltDependencies (and
then \`pnpm rebuild onnxruntime-node\` skips it too), so a plain install is
CPU-only. This command runs that script for the onnxruntime-node the runtime
loads, then checks the provider library is there. Linux x64 only; running models
on the provider needs an NVIDIA driver, CUDA 12 and cuDNN 9.

The script cannot download through an HTTPS proxy. Behind one, or offline,
download the package it would fetch (this command's error names it) by other
means and install it with --from.

Prints the provider library's path on stdout. Exit code 0 when it is installed,
2 when the --from file is missing or not the package needed, 1 when the install
fails.

Examples:
  $ implicit-it install-cuda
  $ implicit-it install-cuda \\
      --from ~/Downloads/microsoft.ml.onnxruntime.gpu.linux.1.30.0.nupkg
  $ implicit-it doctor    # then: is the cuda provider usable, and if not, why
  $ implicit-it generate --provider cuda "Give me a recipe for tiramisu."`,
    )
    .action(async (flags: { from?: string; quiet?: boolean }) => {
      const paint = painter(process.stderr);
      const progress = progressPrinter();
      if (flags.from === undefined)
        note(
          "running onnxruntime-node's install script (ONNXRUNTIME_NODE_INSTALL=cuda12), from api.nuget.org",
        );
      const library = await installCudaProvider({
        ...(flags.from !== undefined ? { from: flags.from } : {}),
        onOutput: flags.quiet ? undefined : (line) => note(paint('dim', line)),
        onProgress: flags.quiet ? undefined : progress.update,
      })
        .catch((error: unknown) => {
          // a --from file that is missing or not the package needed is a bad argument
          if (ProviderInstallError.isInstance(error) && error.param === 'from')
            throw new CliError(error.message, EXIT.usage);
          if (ProviderInstallError.isInstance(error) && error.code === 'runtime.cuda_install')
            throw new CliError(
              error.message,
              EXIT.failure,
              flags.from === undefined
                ? `without direct https access to api.nuget.org (a proxy, no network), download ${cudaPackageUrl()} and run: implicit-it install-cuda --from FILE`
                : undefined,
            );
          throw error;
        })
        .finally(() => progress.done());
      process.stdout.write(`${library}\n`);
      const cuda = providerStatus().find((p) => p.name === 'cuda');
      note(
        cuda?.available
          ? 'the cuda execution provider is ready: --provider cuda (or executionProvider: "cuda")'
          : `installed, but the cuda provider cannot run here yet: ${cuda?.reason ?? 'unknown'}`,
      );
    });
}
