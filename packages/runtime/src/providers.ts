import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ImplicitItError } from '@implicit-it/rules';
import * as ort from 'onnxruntime-node';

/** Execution providers the runtime knows, in priority order for `auto`. */
export type ExecutionProvider = 'cuda' | 'cpu';
export const PROVIDER_PRIORITY: readonly ExecutionProvider[] = ['cuda', 'cpu'];

/** Why each provider can or cannot run here. */
export interface ProviderStatus {
  name: ExecutionProvider;
  available: boolean;
  reason: string;
}

/** The onnxruntime-node package this runtime loads (its directory), if it resolves. */
function ortPackageDir(): string | undefined {
  try {
    return dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  } catch {
    return undefined;
  }
}

function ortBinDir(): string | undefined {
  const dir = ortPackageDir();
  return dir && join(dir, 'bin', `napi-v6`, process.platform, process.arch);
}

/** The CUDA provider library onnxruntime-node loads, where its install script puts it. */
const CUDA_LIBRARY = 'libonnxruntime_providers_cuda.so';

/**
 * Which execution providers can run on this machine, and why not (like onnxruntime's backend
 * registry: each candidate with the reason it was skipped).
 */
export function providerStatus(): ProviderStatus[] {
  const backends = ort.listSupportedBackends?.() ?? [{ name: 'cpu', bundled: true }];
  const bin = ortBinDir();
  return PROVIDER_PRIORITY.map((name) => {
    if (name === 'cpu') return { name, available: true, reason: 'bundled with onnxruntime-node' };
    const listed = backends.some((b) => b.name === 'cuda');
    if (!listed)
      return {
        name,
        available: false,
        reason: `onnxruntime-node ${ort.env.versions.node} has no CUDA backend on ${process.platform}-${process.arch}`,
      };
    const lib = bin && join(bin, CUDA_LIBRARY);
    if (!lib || !existsSync(lib)) {
      return {
        name,
        available: false,
        reason:
          'CUDA binaries not installed: installCudaProvider() (or `implicit-it install-cuda`) fetches them',
      };
    }
    // a Linux driver shows /dev/nvidiactl and /proc/driver/nvidia; WSL 2 passes the GPU through /dev/dxg
    const visible =
      existsSync('/dev/nvidiactl') || existsSync('/proc/driver/nvidia/version') || existsSync('/dev/dxg');
    if (!visible) return { name, available: false, reason: NO_GPU_VISIBLE };
    return { name, available: true, reason: `CUDA binaries at ${lib}` };
  });
}

/** The one reason that may be wrong (a GPU a container exposes otherwise): a provider asked for by name is still tried. */
const NO_GPU_VISIBLE = 'CUDA binaries present but no NVIDIA GPU/driver visible';

/**
 * The providers to try for a request: `auto` = every available one by priority. A provider asked for by
 * name is tried unless its binaries are missing: onnxruntime would only fail on them, loudly, with a
 * message that does not say what to do, where `skipped` carries the status that does.
 */
export function chooseProviders(requested: ExecutionProvider | 'auto'): {
  order: ExecutionProvider[];
  skipped: ProviderStatus[];
} {
  const status = providerStatus();
  if (requested !== 'auto') {
    const wanted = status.find((s) => s.name === requested)!;
    return wanted.available || wanted.reason === NO_GPU_VISIBLE
      ? { order: [requested], skipped: [] }
      : { order: [], skipped: [wanted] };
  }
  return {
    order: status.filter((s) => s.available).map((s) => s.name),
    skipped: status.filter((s) => !s.available),
  };
}

/** `installCudaProvider` failed: `code` says how (`runtime.cuda_platform`, `runtime.cuda_install`). */
export class ProviderInstallError extends ImplicitItError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ProviderInstallError';
  }
}

/** Options of `installCudaProvider`. */
export interface InstallCudaOptions {
  /** Each line the install script prints (stdout and stderr). Default: none are shown. */
  onOutput?: (line: string) => void;
}

/**
 * Fetches onnxruntime-node's CUDA execution provider (about 300 MB from NuGet) next to its CPU binaries,
 * by running the package's own install script with `ONNXRUNTIME_NODE_INSTALL=cuda12`: the script that
 * pnpm 10 skips on install unless `onnxruntime-node` is in `onlyBuiltDependencies` (and where it is not,
 * `pnpm rebuild onnxruntime-node` skips it too). Resolves to the provider library's path. Behind a proxy,
 * set `GLOBAL_AGENT_HTTPS_PROXY` (the script reads it). Running models on the provider needs an NVIDIA
 * driver, CUDA 12 and cuDNN 9 on the machine; `providerStatus()` then lists `cuda` as available.
 *
 * @example
 * const library = await installCudaProvider({ onOutput: console.log });
 */
export async function installCudaProvider(options: InstallCudaOptions = {}): Promise<string> {
  const platform = `${process.platform}-${process.arch}`;
  if (platform !== 'linux-x64')
    throw new ProviderInstallError(
      'runtime.cuda_platform',
      `onnxruntime-node ships no CUDA provider to download for ${platform} (linux-x64 only); models run on the CPU here`,
    );
  const dir = ortPackageDir();
  const script = dir && join(dir, 'script', 'install.js');
  if (!script || !existsSync(script))
    throw new ProviderInstallError(
      'runtime.cuda_install',
      `onnxruntime-node's install script is missing (${script ?? 'onnxruntime-node does not resolve'}); reinstall onnxruntime-node`,
    );
  const install = 'cuda12';
  // The script exits at once, installing nothing, when it believes it runs in onnxruntime-node's own
  // checkout: when npm_package_json (set by `npm exec`, `pnpm run`...) sits in npm_config_local_prefix.
  // Under a script of this project that is true, so neither is passed on.
  const { npm_config_local_prefix: _prefix, npm_package_json: _json, ...env } = process.env;
  const output: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      cwd: dir,
      env: { ...env, ONNXRUNTIME_NODE_INSTALL: install },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let pending = '';
    const onData = (chunk: Buffer) => {
      const lines = (pending + chunk.toString('utf8')).split(/\r?\n/);
      pending = lines.pop() ?? '';
      for (const line of lines) {
        output.push(line);
        options.onOutput?.(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (exit) => {
      if (pending) {
        output.push(pending);
        options.onOutput?.(pending);
      }
      resolve(exit);
    });
  });
  const library = join(ortBinDir()!, CUDA_LIBRARY);
  if (code !== 0) {
    // the script's own error is the last line naming one (a failed download, an unknown value...)
    const reason =
      output
        .filter((l) => /^\s*\w*Error\b/.test(l))
        .at(-1)
        ?.trim() ?? `exit code ${code}`;
    throw new ProviderInstallError(
      'runtime.cuda_install',
      `onnxruntime-node's install script (ONNXRUNTIME_NODE_INSTALL=${install}) failed: ${reason}`,
    );
  }
  if (!existsSync(library))
    throw new ProviderInstallError(
      'runtime.cuda_install',
      `onnxruntime-node's install script (ONNXRUNTIME_NODE_INSTALL=${install}) ran, but ${library} is not there`,
    );
  return library;
}
