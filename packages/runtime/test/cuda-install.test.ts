// installCudaProvider runs onnxruntime-node's real install script. Nothing here reaches the network: the
// script's HTTPS requests go through a proxy of the test's (GLOBAL_AGENT_HTTPS_PROXY, which the script's
// global-agent reads), either one that refuses connections or one that answers as api.nuget.org with a
// certificate the child trusts (NODE_EXTRA_CA_CERTS) and serves a NuGet package of fake libraries. That
// certificate also names localhost: through a CONNECT proxy, global-agent 4.1.3 checks the name
// "localhost" instead of the host's (gajus/global-agent#83), which is why real proxies fail and `from`
// exists.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describeWithBinary } from '@implicit-it/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cudaPackageUrl, installCudaProvider, ProviderInstallError } from '../src/index.js';

const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
const ortDir = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
const ortRequire = createRequire(join(ortDir, 'package.json'));

it.skipIf(linuxX64)('installCudaProvider says where no CUDA provider is shipped', async () => {
  await expect(installCudaProvider()).rejects.toMatchObject({ code: 'runtime.cuda_platform' });
});

describe.runIf(linuxX64)('installCudaProvider', () => {
  const work = mkdtempSync(join(tmpdir(), 'runtime-cuda-'));
  /** A copy of onnxruntime-node (its package.json and install script, beside its two dependencies) to install into. */
  const packageDir = join(work, 'node_modules', 'onnxruntime-node');
  const bin = join(packageDir, 'bin', 'napi-v6', 'linux', 'x64');
  const version: string = ortRequire('./script/install-metadata-versions.js').nuget[0].version;
  const base = 'https://api.nuget.org/v3-flatcontainer/microsoft.ml.onnxruntime.gpu.linux';
  const nupkgUrl = `${base}/${version}/microsoft.ml.onnxruntime.gpu.linux.${version}.nupkg`;
  // incompressible bytes, so the package is as large as the library in it and its download takes a while
  const cudaLibrary = randomBytes(3 << 20);
  const requests: string[] = [];
  const tunnels: Socket[] = [];
  let proxy: Server;
  const nupkgFile = join(work, 'provider.nupkg');
  /** A NuGet package of fake provider libraries, with the .nuspec a real one has. */
  function nupkg(packageVersion: string): Buffer {
    const id = 'Microsoft.ML.OnnxRuntime.Gpu.Linux';
    const AdmZip = ortRequire('adm-zip');
    const zip = new AdmZip();
    zip.addFile(
      `${id}.nuspec`,
      Buffer.from(
        `<package><metadata><id>${id}</id><version>${packageVersion}</version></metadata></package>`,
      ),
    );
    zip.addFile('runtimes/linux-x64/native/libonnxruntime_providers_cuda.so', cudaLibrary);
    zip.addFile('runtimes/linux-x64/native/libonnxruntime_providers_shared.so', Buffer.from('shared'));
    zip.addFile('runtimes/linux-x64/native/libonnxruntime_providers_tensorrt.so', Buffer.from('tensorrt'));
    return zip.toBuffer();
  }

  beforeAll(async () => {
    mkdirSync(packageDir, { recursive: true });
    cpSync(join(ortDir, 'package.json'), join(packageDir, 'package.json'));
    cpSync(join(ortDir, 'script'), join(packageDir, 'script'), { recursive: true });
    for (const dep of ['global-agent', 'adm-zip'])
      symlinkSync(dirname(ortRequire.resolve(`${dep}/package.json`)), join(work, 'node_modules', dep));
    writeFileSync(nupkgFile, nupkg(version));
  });
  afterAll(() => {
    vi.unstubAllEnvs();
    rmSync(work, { recursive: true, force: true });
  });

  it('reports the script failing to download, with its own error and output', async () => {
    vi.stubEnv('GLOBAL_AGENT_HTTPS_PROXY', 'http://127.0.0.1:9'); // nothing listens there
    const lines: string[] = [];
    const error = await installCudaProvider({ packageDir, onOutput: (l) => lines.push(l) }).catch((e) => e);
    vi.unstubAllEnvs();
    expect(error).toBeInstanceOf(ProviderInstallError);
    expect(error).toMatchObject({ code: 'runtime.cuda_install', param: undefined });
    expect(error.message).toBe(
      "onnxruntime-node's install script (ONNXRUNTIME_NODE_INSTALL=cuda12) failed: Error: connect ECONNREFUSED 127.0.0.1:9",
    );
    expect(lines).toContain('Error: connect ECONNREFUSED 127.0.0.1:9');
    expect(existsSync(bin)).toBe(false);
  });

  it('installs from a NuGet package downloaded by other means, and says what is wrong with a wrong one', async () => {
    expect(cudaPackageUrl(packageDir)).toBe(nupkgUrl);
    const notZip = join(work, 'not.nupkg');
    writeFileSync(notZip, 'an HTML error page');
    const wrong = join(work, 'wrong.nupkg');
    writeFileSync(wrong, nupkg('1.19.2'));
    const errors = await Promise.all(
      [join(work, 'missing.nupkg'), notZip, wrong].map((from) =>
        installCudaProvider({ packageDir, from }).catch((e) => e),
      ),
    );
    // the package given is at fault, not the install: param names the option
    for (const e of errors)
      expect(e).toMatchObject({ name: 'ProviderInstallError', code: 'runtime.cuda_install', param: 'from' });
    expect(errors[0].message).toBe(`${join(work, 'missing.nupkg')}: no such file (download ${nupkgUrl})`);
    expect(errors[1].message).toMatch(/^.+not\.nupkg: not a NuGet package \(.+\)$/);
    expect(errors[2].message).toBe(
      `${wrong} is Microsoft.ML.OnnxRuntime.Gpu.Linux 1.19.2, but this onnxruntime-node needs Microsoft.ML.OnnxRuntime.Gpu.Linux ${version} (${nupkgUrl})`,
    );
    expect(existsSync(bin)).toBe(false);

    const library = await installCudaProvider({ packageDir, from: nupkgFile });
    expect(library).toBe(join(bin, 'libonnxruntime_providers_cuda.so'));
    expect(readFileSync(library).equals(cudaLibrary)).toBe(true);
    expect(readFileSync(join(bin, 'libonnxruntime_providers_tensorrt.so'), 'utf8')).toBe('tensorrt');
    expect(readdirSync(bin).sort()).toEqual([
      'libonnxruntime_providers_cuda.so',
      'libonnxruntime_providers_shared.so',
      'libonnxruntime_providers_tensorrt.so',
    ]);
    rmSync(join(packageDir, 'bin'), { recursive: true });
  });

  describeWithBinary('from a NuGet feed of its own', 'openssl', 'apt-get install -y openssl', () => {
    beforeAll(async () => {
      const key = join(work, 'key.pem');
      // biome-ignore format: one command line
      const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=api.nuget.org',
      '-addext', 'subjectAltName=DNS:api.nuget.org,DNS:localhost', '-keyout', key, '-out', join(work, 'cert.pem')];
      execFileSync('openssl', args, { stdio: 'ignore' });
      const json = (body: unknown) => ({ type: 'application/json', body: Buffer.from(JSON.stringify(body)) });
      const routes = new Map([
        [
          'https://api.nuget.org/v3/index.json',
          json({
            resources: [
              { '@id': 'https://api.nuget.org/v3-flatcontainer/', '@type': 'PackageBaseAddress/3.0.0' },
            ],
          }),
        ],
        [`${base}/index.json`, json({ versions: [version] })],
        [nupkgUrl, { type: 'application/octet-stream', body: readFileSync(nupkgFile) }],
      ]);
      const nuget = createHttpsServer(
        { key: readFileSync(key), cert: readFileSync(join(work, 'cert.pem')) },
        async (req, res) => {
          const url = `https://${req.headers.host}${req.url}`;
          requests.push(`GET ${url}`);
          const route = routes.get(url);
          if (!route) return void res.writeHead(404).end();
          res.writeHead(200, { 'content-type': route.type, 'content-length': route.body.length });
          // the package in 64 KiB pieces over about 1.5 s, as a slow network would send it
          const piece = route.body.length > 1 << 20 ? 1 << 16 : route.body.length;
          for (let at = 0; at < route.body.length; at += piece) {
            res.write(route.body.subarray(at, at + piece));
            if (piece < route.body.length) await new Promise((r) => setTimeout(r, 30));
          }
          res.end();
        },
      );
      proxy = createHttpServer();
      proxy.on('connect', (req, socket: Socket) => {
        requests.push(`CONNECT ${req.url}`);
        tunnels.push(socket);
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        nuget.emit('connection', socket);
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    });
    afterAll(async () => {
      vi.unstubAllEnvs();
      for (const socket of tunnels) socket.destroy();
      await new Promise((r) => proxy.close(r));
    });

    it('fetches the provider from NuGet into the package, with progress, and not again once there', async () => {
      const { port } = proxy.address() as AddressInfo;
      vi.stubEnv('GLOBAL_AGENT_HTTPS_PROXY', `http://127.0.0.1:${port}`);
      vi.stubEnv('NODE_EXTRA_CA_CERTS', join(work, 'cert.pem'));
      const lines: string[] = [];
      const progress: number[] = [];
      const library = await installCudaProvider({
        packageDir,
        onOutput: (l) => lines.push(l),
        onProgress: (bytes) => progress.push(bytes),
      });
      expect(library).toBe(join(bin, 'libonnxruntime_providers_cuda.so'));
      expect(readFileSync(library).equals(cudaLibrary)).toBe(true);
      expect(readFileSync(join(bin, 'libonnxruntime_providers_shared.so'), 'utf8')).toBe('shared');
      expect(lines[0]).toBe(`Downloading ${nupkgUrl}`);
      expect(lines).toContain(
        `Extracting runtimes/linux-x64/native/libonnxruntime_providers_cuda.so to ${library}`,
      );
      // every request went to NuGet's hosts through the proxy
      expect(requests.filter((r) => r.startsWith('CONNECT'))).toEqual(
        Array(requests.length / 2).fill('CONNECT api.nuget.org:443'),
      );
      expect(requests.filter((r) => r.startsWith('GET')).at(-1)).toBe(`GET ${nupkgUrl}`);
      // the download was seen growing, never past the package's size
      expect(progress.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThan(progress[i - 1]!);
      expect(progress.at(-1)).toBeLessThanOrEqual(cudaLibrary.length + 4096);

      // the provider is there: the script checks its files and fetches nothing
      const before = requests.length;
      await expect(installCudaProvider({ packageDir })).resolves.toBe(library);
      expect(requests.length).toBe(before);
      vi.unstubAllEnvs();
    }, 60_000);
  });
});
