import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { ImplicitItError } from '@implicit-it/rules';
import { onnxruntime } from './onnxruntime.js';
import { missingLibraries } from './shared-library.js';

/**
 * Execution providers the runtime knows, in priority order for `auto`.
 *
 * @example
 * const cuda = providerStatus().find((p) => p.name === 'cuda');
 * const executionProvider: ExecutionProvider = cuda?.available ? 'cuda' : 'cpu';
 * const model = await loadModel(modelDir, { executionProvider });
 */
export type ExecutionProvider = 'cuda' | 'cpu';
/**
 * The execution providers `executionProvider: 'auto'` tries, in this order: CUDA first, then the CPU.
 *
 * @example
 * PROVIDER_PRIORITY.join(' > '); // 'cuda > cpu'
 */
export const PROVIDER_PRIORITY: readonly ExecutionProvider[] = ['cuda', 'cpu'];

/**
 * Why each provider can or cannot run here.
 *
 * @example
 * const statuses: ProviderStatus[] = providerStatus();
 * for (const s of statuses) console.log(`${s.name}: ${s.available ? 'usable' : 'not usable'} (${s.reason})`);
 */
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

function ortBinDir(dir = ortPackageDir()): string | undefined {
  return dir && join(dir, 'bin', `napi-v6`, process.platform, process.arch);
}

/** Whether onnxruntime-node's install script has a CUDA provider to download here (`installCudaProvider`). */
const CUDA_DOWNLOADABLE = process.platform === 'linux' && process.arch === 'x64';

/** The CUDA provider library onnxruntime-node loads, where its install script puts it. */
const CUDA_LIBRARY =
  process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';

/**
 * Which execution providers can run on this machine, and why not (like onnxruntime's backend
 * registry: each candidate with the reason it was skipped).
 *
 * @example
 * providerStatus().filter((p) => p.available).map((p) => p.name); // ['cpu'] on a machine without CUDA
 */
export function providerStatus(): ProviderStatus[] {
  return assess().map((a) => a.status);
}

/** A provider's status, and whether to try it anyway when asked for by name: its reason may be wrong. */
export interface Assessment {
  status: ProviderStatus;
  tryWhenNamed: boolean;
}

function assess(): Assessment[] {
  return PROVIDER_PRIORITY.map((name): Assessment => {
    if (name === 'cpu')
      return {
        status: { name, available: true, reason: 'bundled with onnxruntime-node' },
        tryWhenNamed: true,
      };
    const backends = onnxruntime().listSupportedBackends?.() ?? [{ name: 'cpu', bundled: true }];
    if (!backends.some((b) => b.name === 'cuda'))
      return {
        status: {
          name,
          available: false,
          reason: `onnxruntime-node ${onnxruntime().env.versions.node} has no CUDA backend on ${process.platform}-${process.arch}`,
        },
        tryWhenNamed: false,
      };
    return assessCuda(ortBinDir(), gpuVisible());
  });
}

/** Whether an NVIDIA GPU shows: elsewhere than Linux there is no file to look for, and onnxruntime says. */
function gpuVisible(): boolean {
  // a Linux driver shows /dev/nvidiactl and /proc/driver/nvidia; WSL 2 passes the GPU through /dev/dxg
  return (
    process.platform !== 'linux' ||
    existsSync('/dev/nvidiactl') ||
    existsSync('/proc/driver/nvidia/version') ||
    existsSync('/dev/dxg')
  );
}

/**
 * The CUDA provider's status, from onnxruntime-node's binary directory `bin` (where its install
 * script puts the provider) and whether a GPU shows. Exported for tests, not from the package.
 */
export function assessCuda(bin: string | undefined, visible: boolean): Assessment {
  const no = (reason: string, tryWhenNamed = false): Assessment => ({
    status: { name: 'cuda', available: false, reason },
    tryWhenNamed,
  });
  const lib = bin && join(bin, CUDA_LIBRARY);
  if (!lib || !existsSync(lib))
    return no(
      CUDA_DOWNLOADABLE
        ? `CUDA binaries not installed: ${REINSTALL} fetches them`
        : `CUDA binaries not installed (no ${lib ?? CUDA_LIBRARY})`,
    );
  // a container may expose a GPU otherwise: a provider asked for by name is still tried
  if (!visible) return no(NO_GPU_VISIBLE, true);
  if (process.platform === 'linux') {
    let missing: ReturnType<typeof missingLibraries>;
    try {
      missing = missingLibraries(lib);
    } catch (error) {
      // unreadable (permissions): onnxruntime, asked by name, says whether it loads
      return no(`${lib} cannot be read (${(error as Error).message})`, true);
    }
    if (missing === null)
      return no(
        `${lib} is not a 64-bit shared library (an interrupted install?): ${REINSTALL} installs it again`,
      );
    // all that the loader would not find (dlopen names the first only): mostly CUDA 12 and cuDNN 9
    // absent, or another CUDA major version in their place. Asked for by name, the provider is still
    // tried: a library preloaded, or found some way not emulated here, is not seen.
    if (missing.length > 0)
      return no(
        `CUDA binaries at ${lib}, but the libraries it loads are not found: ${missing
          .map((m) => (m.others.length ? `${m.name} (only ${m.others.join(', ')} here)` : m.name))
          .join(
            ', ',
          )}. onnxruntime-node ${onnxruntime().env.versions.node}'s CUDA provider needs CUDA 12 and cuDNN 9 for CUDA 12: install them, or put their directories on LD_LIBRARY_PATH`,
        true,
      );
  }
  return { status: { name: 'cuda', available: true, reason: `CUDA binaries at ${lib}` }, tryWhenNamed: true };
}

/** How the CUDA provider is (re)installed. */
// the packages' way of naming a call and its CLI command: the CLI shows the command alone (inCliTerms)
const REINSTALL = '`installCudaProvider()` (CLI: implicit-it install-cuda)';

const NO_GPU_VISIBLE = 'CUDA binaries present but no NVIDIA GPU/driver visible';

/**
 * The providers to try for a request: `auto` = every available one by priority. A provider asked for by
 * name is tried unless its binaries are missing or broken: onnxruntime would only fail on them, loudly, with a
 * message that does not say what to do, where `skipped` carries the status that does.
 */
export function chooseProviders(requested: ExecutionProvider | 'auto'): {
  order: ExecutionProvider[];
  skipped: ProviderStatus[];
  /** the status of a provider tried though it looked unusable: context for onnxruntime's error */
  doubts: ProviderStatus[];
} {
  const assessed = assess();
  if (requested !== 'auto') {
    const wanted = assessed.find((a) => a.status.name === requested);
    if (!wanted)
      throw new RangeError(
        `executionProvider: expected auto or one of ${assessed.map((a) => a.status.name).join(', ')}, got ${JSON.stringify(requested)}`,
      );
    if (wanted.status.available) return { order: [requested], skipped: [], doubts: [] };
    return wanted.tryWhenNamed
      ? { order: [requested], skipped: [], doubts: [wanted.status] }
      : { order: [], skipped: [wanted.status], doubts: [] };
  }
  return {
    order: assessed.filter((a) => a.status.available).map((a) => a.status.name),
    skipped: assessed.filter((a) => !a.status.available).map((a) => a.status),
    doubts: [],
  };
}

/**
 * `installCudaProvider` failed: `code` says how (`runtime.cuda_platform`, `runtime.cuda_install`), and
 * `param` names the option at fault: `from` when the package given is missing or not the one needed.
 *
 * @example
 * try {
 *   await installCudaProvider({ from: './missing.nupkg' });
 * } catch (error) {
 *   if (error instanceof ProviderInstallError) console.error(error.code, error.param); // runtime.cuda_install from
 * }
 */
export class ProviderInstallError extends ImplicitItError {
  /** The `InstallCudaOptions` option at fault, e.g. `from`; none when the install itself failed. */
  readonly param: string | undefined;
  constructor(code: string, message: string, options?: { cause?: unknown; param?: string }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProviderInstallError';
    this.param = options?.param;
  }
}

/**
 * Options of `installCudaProvider`.
 *
 * @example
 * // offline: the package fetched by other means (see cudaPackageUrl)
 * const options: InstallCudaOptions = { from: './microsoft.ml.onnxruntime.gpu.linux.nupkg', onOutput: console.log };
 * const library = await installCudaProvider(options);
 */
export interface InstallCudaOptions {
  /**
   * A NuGet package already downloaded (`cudaPackageUrl()` says which): its libraries are extracted
   * into onnxruntime-node without the network, the way for hosts behind a proxy or offline.
   */
  from?: string | undefined;
  /** Each line the install script prints (stdout and stderr). Default: none are shown. */
  onOutput?: ((line: string) => void) | undefined;
  /** Called about twice a second while the package downloads, with the bytes received so far. */
  onProgress?: ((bytes: number) => void) | undefined;
  /** The onnxruntime-node package directory to install into. Default: the one this runtime loads. */
  packageDir?: string | undefined;
}

/** What onnxruntime-node's install metadata says of its CUDA provider for linux-x64. */
interface CudaManifest {
  name: string;
  version: string;
  /** where NuGet serves the package */
  url: string;
  /** library file name -> its path inside the NuGet package */
  files: Map<string, string>;
}

function cudaManifest(dir: string): CudaManifest {
  const metadata = createRequire(join(dir, 'package.json'))('./script/install-metadata.js') as {
    manifests: Record<string, Record<string, { package: string; path: string }>>;
    packages: Record<string, { name: string; versions: { feed: string; version: string }[] }>;
  };
  const manifest = metadata.manifests['linux/x64:cuda12'];
  const pkg = metadata.packages['nuget:linux/x64:cuda12'];
  const version = pkg?.versions.find((v) => v.feed === 'nuget')?.version;
  if (!manifest || !pkg || !version)
    throw new ProviderInstallError(
      'runtime.cuda_install',
      `onnxruntime-node's install metadata (${join(dir, 'script', 'install-metadata.js')}) names no CUDA 12 package for linux-x64`,
    );
  const id = pkg.name.toLowerCase();
  const url = `https://api.nuget.org/v3-flatcontainer/${id}/${version}/${id}.${version}.nupkg`;
  const files = new Map(
    Object.entries(manifest).map(([file, { path }]) => [file.replace(/^\.\//, ''), path]),
  );
  return { name: pkg.name, version, url, files };
}

/**
 * Where NuGet serves the CUDA provider package that this onnxruntime-node needs (about 300 MB), for
 * fetching it by other means and installing it with `installCudaProvider({ from })`.
 *
 * @example
 * console.log(`fetch ${cudaPackageUrl()}, then: installCudaProvider({ from: '<the .nupkg>' })`);
 */
export function cudaPackageUrl(packageDir?: string): string {
  const dir = packageDir ?? ortPackageDir();
  if (!dir) throw new ProviderInstallError('runtime.cuda_install', 'onnxruntime-node does not resolve');
  return cudaManifest(dir).url;
}

/** Extracts the provider's libraries from a downloaded NuGet package into `bin`. */
function installFromPackage(dir: string, bin: string, file: string): void {
  const { name, version, url, files } = cudaManifest(dir);
  if (!existsSync(file))
    throw new ProviderInstallError('runtime.cuda_install', `${file}: no such file (download ${url})`, {
      param: 'from',
    });
  // the zip reader onnxruntime-node's own install script uses: a dependency of that package
  type Zip = {
    getEntries(): { entryName: string; getData(): Buffer }[];
    getEntry(name: string): { getData(): Buffer } | null;
  };
  let zip: Zip;
  try {
    const AdmZip = createRequire(join(dir, 'package.json'))('adm-zip') as new (file: string) => Zip;
    zip = new AdmZip(file);
  } catch (cause) {
    throw new ProviderInstallError(
      'runtime.cuda_install',
      `${file}: not a NuGet package (${(cause as Error).message})`,
      { cause, param: 'from' },
    );
  }
  const nuspec = zip.getEntries().find((e) => e.entryName.endsWith('.nuspec'));
  const spec = nuspec?.getData().toString('utf8') ?? '';
  const id = /<id>([^<]+)<\/id>/.exec(spec)?.[1];
  const found = /<version>([^<]+)<\/version>/.exec(spec)?.[1];
  if (id?.toLowerCase() !== name.toLowerCase() || found !== version)
    throw new ProviderInstallError(
      'runtime.cuda_install',
      `${file} is ${id ?? 'no package'} ${found ?? ''}`.trimEnd() +
        `, but this onnxruntime-node needs ${name} ${version} (${url})`,
      { param: 'from' },
    );
  mkdirSync(bin, { recursive: true });
  for (const [library, path] of files) {
    const entry = zip.getEntry(path);
    if (!entry)
      throw new ProviderInstallError(
        'runtime.cuda_install',
        `${file} lacks ${path}, which onnxruntime-node needs`,
        { param: 'from' },
      );
    // written beside, then renamed: an interrupted install leaves no half library that looks installed
    const target = join(bin, library);
    writeFileSync(`${target}.partial`, entry.getData());
    renameSync(`${target}.partial`, target);
  }
}

/** Bytes of the NuGet packages under `dir` (the install script downloads them there); 0 while there are none. */
function downloadedBytes(dir: string): number {
  let bytes = 0;
  try {
    for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' }))
      if (f.endsWith('.nupkg')) bytes += statSync(join(dir, f)).size;
  } catch {
    // the script removes its directory when it is done
  }
  return bytes;
}

/**
 * Fetches onnxruntime-node's CUDA execution provider (about 300 MB from NuGet) next to its CPU binaries,
 * by running the package's own install script with `ONNXRUNTIME_NODE_INSTALL=cuda12`: the script that
 * pnpm 10 skips on install unless `onnxruntime-node` is in `onlyBuiltDependencies` (and where it is not,
 * `pnpm rebuild onnxruntime-node` skips it too). Where the provider's files are already there, the script
 * fetches nothing. Resolves to the provider library's path. The script's downloads do not work through
 * an HTTPS proxy (its global-agent 4.1.3 checks the certificate against the wrong name, gajus/global-agent#83):
 * behind one, or offline, fetch `cudaPackageUrl()` by other means and pass the file as `from`. Running
 * models on the provider needs an NVIDIA driver, CUDA 12 and cuDNN 9 on the machine; `providerStatus()`
 * then lists `cuda` as available.
 *
 * @example
 * const library = await installCudaProvider({
 *   onOutput: console.log,
 *   onProgress: (bytes) => console.log(`${(bytes / 1e6).toFixed(0)} MB`),
 * });
 */
export async function installCudaProvider(options: InstallCudaOptions = {}): Promise<string> {
  if (!CUDA_DOWNLOADABLE)
    throw new ProviderInstallError(
      'runtime.cuda_platform',
      `onnxruntime-node ships no CUDA provider to download for ${process.platform}-${process.arch} (linux-x64 only); models run on the CPU here`,
    );
  const dir = options.packageDir ?? ortPackageDir();
  const script = dir && join(dir, 'script', 'install.js');
  if (!dir || !script || !existsSync(script))
    throw new ProviderInstallError(
      'runtime.cuda_install',
      `onnxruntime-node's install script is missing (${script ?? 'onnxruntime-node does not resolve'}); reinstall onnxruntime-node`,
    );
  const bin = ortBinDir(dir)!;
  const library = join(bin, CUDA_LIBRARY);
  if (options.from !== undefined) {
    installFromPackage(dir, bin, options.from);
    return library;
  }
  const install = 'cuda12';
  // The script exits at once, installing nothing, when it believes it runs in onnxruntime-node's own
  // checkout: when npm_package_json (set by `npm exec`, `pnpm run`...) sits in npm_config_local_prefix.
  // Under a script of this project that is true, so neither is passed on. Its temporary directory is
  // one of ours, where the download's progress can be read.
  const { npm_config_local_prefix: _prefix, npm_package_json: _json, ...env } = process.env;
  const temp = mkdtempSync(join(tmpdir(), 'implicit-it-cuda-'));
  const output: string[] = [];
  let code: number | null;
  let lastBytes = 0;
  const progress = setInterval(() => {
    const bytes = downloadedBytes(temp);
    if (bytes > lastBytes) options.onProgress?.(bytes);
    lastBytes = Math.max(lastBytes, bytes);
  }, 500);
  try {
    code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [script], {
        cwd: dir,
        env: { ...env, ONNXRUNTIME_NODE_INSTALL: install, TMPDIR: temp },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      for (const stream of [child.stdout, child.stderr])
        createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
          output.push(line);
          options.onOutput?.(line);
        });
      child.on('error', reject);
      child.on('close', resolve);
    });
  } finally {
    clearInterval(progress);
    rmSync(temp, { recursive: true, force: true });
  }
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
