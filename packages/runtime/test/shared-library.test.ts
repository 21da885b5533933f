// The dependency check behind providerStatus's CUDA reasons: ELF files built here (the layout a linker
// writes, reduced to what the loader reads) and onnxruntime-node's own libraries.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { assessCuda } from '../src/providers.js';
import { missingLibraries, readDynamicSection } from '../src/shared-library.js';

const linux = process.platform === 'linux';
const work = mkdtempSync(join(tmpdir(), 'runtime-elf-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

/**
 * A 64-bit little-endian ELF shared library with a dynamic section naming `needed` (and a runpath or
 * rpath): one PT_LOAD segment mapping the whole file at 0x400000, one PT_DYNAMIC, the string table.
 */
function elf(spec: { needed: string[]; runpath?: string; rpath?: string; elfClass?: 1 | 2 }): Buffer {
  const base = 0x400000n;
  const strings: string[] = [];
  let strSize = 1; // the table starts with an empty string
  const intern = (s: string) => {
    strings.push(s);
    const at = strSize;
    strSize += Buffer.byteLength(s) + 1;
    return BigInt(at);
  };
  const tags: [bigint, bigint][] = spec.needed.map((n) => [1n, intern(n)]);
  if (spec.runpath !== undefined) tags.push([29n, intern(spec.runpath)]);
  if (spec.rpath !== undefined) tags.push([15n, intern(spec.rpath)]);
  const strOff = 64 + 2 * 56;
  const dynOff = Math.ceil((strOff + strSize) / 8) * 8;
  tags.push([5n, base + BigInt(strOff)], [0n, 0n]); // DT_STRTAB, DT_NULL
  const size = dynOff + tags.length * 16;
  const b = Buffer.alloc(size);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = spec.elfClass ?? 2;
  b[5] = 1; // little-endian
  b[6] = 1;
  b.writeUInt16LE(3, 16); // ET_DYN
  b.writeUInt16LE(62, 18); // x86-64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(64n, 0x20); // e_phoff
  b.writeUInt16LE(64, 0x34);
  b.writeUInt16LE(56, 0x36);
  b.writeUInt16LE(2, 0x38);
  const phdr = (at: number, type: number, offset: number, filesz: number) => {
    b.writeUInt32LE(type, at);
    b.writeUInt32LE(4, at + 4);
    b.writeBigUInt64LE(BigInt(offset), at + 8);
    b.writeBigUInt64LE(base + BigInt(offset), at + 16);
    b.writeBigUInt64LE(base + BigInt(offset), at + 24);
    b.writeBigUInt64LE(BigInt(filesz), at + 32);
    b.writeBigUInt64LE(BigInt(filesz), at + 40);
  };
  phdr(64, 1, 0, size); // PT_LOAD
  phdr(120, 2, dynOff, tags.length * 16); // PT_DYNAMIC
  let at = strOff + 1;
  for (const s of strings) at += b.write(s, at) + 1;
  tags.forEach(([tag, value], i) => {
    b.writeBigInt64LE(tag, dynOff + i * 16);
    b.writeBigUInt64LE(value, dynOff + i * 16 + 8);
  });
  return b;
}

function file(path: string, content: Buffer | string = ''): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  return path;
}

describe('readDynamicSection', () => {
  it('reads DT_NEEDED in order, DT_RUNPATH and DT_RPATH split at colons', () => {
    const long = `/opt/${'x'.repeat(300)}/lib`; // longer than one read of the string table
    const lib = file(
      join(work, 'read', 'libprovider.so'),
      elf({ needed: ['libcublasLt.so.12', 'libcudnn.so.9', 'libc.so.6'], runpath: `$ORIGIN:${long}` }),
    );
    expect(readDynamicSection(lib)).toEqual({
      needed: ['libcublasLt.so.12', 'libcudnn.so.9', 'libc.so.6'],
      runpath: ['$ORIGIN', long],
      rpath: [],
    });
    const old = file(join(work, 'read', 'librpath.so'), elf({ needed: ['libm.so.6'], rpath: '/a:/b' }));
    expect(readDynamicSection(old)).toEqual({ needed: ['libm.so.6'], runpath: [], rpath: ['/a', '/b'] });
  });

  it('is null for what is not a 64-bit little-endian ELF file, and for a truncated one', () => {
    expect(readDynamicSection(file(join(work, 'read', 'random.so'), randomBytes(4096)))).toBeNull();
    expect(readDynamicSection(file(join(work, 'read', 'empty.so')))).toBeNull();
    expect(readDynamicSection(file(join(work, 'read', 'text.so'), 'version https://git-lfs'))).toBeNull();
    const elf32 = elf({ needed: ['libc.so.6'], elfClass: 1 });
    expect(readDynamicSection(file(join(work, 'read', 'elf32.so'), elf32))).toBeNull();
    const whole = elf({ needed: ['libc.so.6'] });
    expect(readDynamicSection(file(join(work, 'read', 'cut.so'), whole.subarray(0, 100)))).toBeNull();
    const corrupt = Buffer.from(whole);
    corrupt.writeBigUInt64LE(0xffff_ffff_ffff_fff0n, 0x20); // e_phoff past any file
    expect(readDynamicSection(file(join(work, 'read', 'corrupt.so'), corrupt))).toBeNull();
  });
});

describe('missingLibraries', () => {
  const root = join(work, 'resolve');
  const cache = new Map([['libcached.so.1', '/somewhere/libcached.so.1']]);

  it('searches LD_LIBRARY_PATH, DT_RUNPATH with $ORIGIN, the cache; names other versions of what is missing', () => {
    file(join(root, 'path', 'libinpath.so.2'));
    file(join(root, 'path', 'libcublasLtFake.so.13'));
    file(join(root, 'path', 'libcublasLtFake.so.13.1.0.3')); // not a soname: not listed
    file(join(root, 'pkg', 'sub', 'libnear.so.3'));
    const lib = file(
      join(root, 'pkg', 'libprovider.so'),
      elf({
        needed: ['libcached.so.1', 'libinpath.so.2', 'libnear.so.3', 'libcublasLtFake.so.12', 'libgone.so.9'],
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the loader's own ${ORIGIN} syntax
        runpath: '${ORIGIN}/sub',
      }),
    );
    expect(missingLibraries(lib, { libraryPath: join(root, 'path'), cache })).toEqual([
      { name: 'libcublasLtFake.so.12', others: ['libcublasLtFake.so.13'] },
      { name: 'libgone.so.9', others: [] },
    ]);
    // without LD_LIBRARY_PATH, what only it held is missing too
    expect(missingLibraries(lib, { libraryPath: '', cache })?.map((m) => m.name)).toEqual([
      'libinpath.so.2',
      'libcublasLtFake.so.12',
      'libgone.so.9',
    ]);
  });

  it('follows DT_RPATH only where there is no DT_RUNPATH, as the loader does', () => {
    file(join(root, 'rpath', 'libold.so.1'));
    const both = file(
      join(root, 'both.so'),
      elf({ needed: ['libold.so.1'], rpath: join(root, 'rpath'), runpath: '/nowhere' }),
    );
    expect(missingLibraries(both, { libraryPath: '', cache })).toEqual([{ name: 'libold.so.1', others: [] }]);
    const rpathOnly = file(
      join(root, 'rpath-only.so'),
      elf({ needed: ['libold.so.1'], rpath: join(root, 'rpath') }),
    );
    expect(missingLibraries(rpathOnly, { libraryPath: '', cache })).toEqual([]);
  });

  it.runIf(linux && process.arch === 'x64')(
    "onnxruntime-node's own binding finds everything it loads (libonnxruntime.so.1 through $ORIGIN)",
    () => {
      const ortDir = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
      const binding = join(ortDir, 'bin', 'napi-v6', 'linux', 'x64', 'onnxruntime_binding.node');
      const section = readDynamicSection(binding)!;
      expect(section.needed).toContain('libonnxruntime.so.1');
      expect(section.needed).toContain('libc.so.6');
      expect(section.runpath.map((d) => d.replace(/\/$/, ''))).toEqual(['$ORIGIN']);
      // the loader's real cache (ldconfig -p) finds the C library, $ORIGIN the onnxruntime library
      expect(missingLibraries(binding, { libraryPath: '' })).toEqual([]);
      const copy = file(
        join(work, 'alone', 'onnxruntime_binding.node'),
        elf({ needed: section.needed, runpath: '$ORIGIN/' }),
      );
      expect(missingLibraries(copy, { libraryPath: '' })).toEqual([
        { name: 'libonnxruntime.so.1', others: [] },
      ]);
    },
  );
});

describe.runIf(linux)('the CUDA provider status', () => {
  const bin = join(work, 'bin');
  const lib = join(bin, 'libonnxruntime_providers_cuda.so');
  const version = ort.env.versions.node;

  it('a provider library whose dependencies are missing: each one named, with the versions that are there', () => {
    file(join(work, 'cuda13', 'libcudartFake.so.13'));
    file(join(bin, 'libonnxruntime_providers_shared.so'));
    file(
      lib,
      elf({
        needed: ['libonnxruntime_providers_shared.so', 'libcudartFake.so.12', 'libcudnnFake.so.9'],
        runpath: '$ORIGIN',
      }),
    );
    vi.stubEnv('LD_LIBRARY_PATH', join(work, 'cuda13'));
    expect(assessCuda(bin, true)).toEqual({
      status: {
        name: 'cuda',
        available: false,
        reason: `CUDA binaries at ${lib}, but the libraries it loads are not found: libcudartFake.so.12 (only libcudartFake.so.13 here), libcudnnFake.so.9. onnxruntime-node ${version}'s CUDA provider needs CUDA 12 and cuDNN 9 for CUDA 12: install them, or put their directories on LD_LIBRARY_PATH`,
      },
      tryWhenNamed: true, // asked for by name, onnxruntime still tries: it has the last word
    });
    // the same directories on LD_LIBRARY_PATH: nothing missing
    file(join(work, 'cuda12', 'libcudartFake.so.12'));
    file(join(work, 'cuda12', 'libcudnnFake.so.9'));
    vi.stubEnv('LD_LIBRARY_PATH', `${join(work, 'cuda13')}:${join(work, 'cuda12')}`);
    expect(assessCuda(bin, true)).toEqual({
      status: { name: 'cuda', available: true, reason: `CUDA binaries at ${lib}` },
      tryWhenNamed: true,
    });
    // no GPU shows: that is said first, whatever the libraries
    expect(assessCuda(bin, false)).toEqual({
      status: {
        name: 'cuda',
        available: false,
        reason: 'CUDA binaries present but no NVIDIA GPU/driver visible',
      },
      tryWhenNamed: true,
    });
  });

  it('a provider library that is not one (an interrupted install) is not tried; none at all says how to install', () => {
    file(lib, randomBytes(1024));
    expect(assessCuda(bin, true)).toEqual({
      status: {
        name: 'cuda',
        available: false,
        reason: `${lib} is not a 64-bit shared library (an interrupted install?): \`installCudaProvider()\` (CLI: implicit-it install-cuda) installs it again`,
      },
      tryWhenNamed: false,
    });
    expect(assessCuda(join(work, 'no-bin'), true).status.reason).toMatch(/^CUDA binaries not installed/);
    // a directory in the library's place: not read, said so, and onnxruntime has the last word
    const odd = join(work, 'odd-bin');
    mkdirSync(join(odd, 'libonnxruntime_providers_cuda.so'), { recursive: true });
    expect(assessCuda(odd, true)).toEqual({
      status: {
        name: 'cuda',
        available: false,
        reason: `${join(odd, 'libonnxruntime_providers_cuda.so')} cannot be read (EISDIR: illegal operation on a directory, read)`,
      },
      tryWhenNamed: true,
    });
  });
});
