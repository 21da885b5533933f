// Which libraries a Linux shared library loads, and which of them the dynamic loader would not find:
// how `providerStatus` tells "the CUDA provider is installed but CUDA 12 is not" before onnxruntime
// tries (and fails with dlopen's message for the first missing one only).
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** What the dynamic section of an ELF shared library names. */
export interface DynamicSection {
  /** DT_NEEDED: the sonames loaded with it, in order */
  needed: string[];
  /** DT_RUNPATH (searched after LD_LIBRARY_PATH), as written: `$ORIGIN` not yet substituted */
  runpath: string[];
  /** DT_RPATH (searched before LD_LIBRARY_PATH, and only when there is no DT_RUNPATH) */
  rpath: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

/**
 * The dynamic section of a 64-bit little-endian ELF file (x86-64, AArch64): `null` for any other
 * file, one without a dynamic section included. Reads the headers and the string table only, not the
 * whole file (the CUDA provider is several hundred MB).
 */
export function readDynamicSection(file: string): DynamicSection | null {
  const fd = openSync(file, 'r');
  try {
    const read = (offset: bigint | number, length: number): Buffer => {
      // an offset past any file (a corrupt header) reads nothing, like one past this file's end
      if (BigInt(offset) > BigInt(Number.MAX_SAFE_INTEGER)) return Buffer.alloc(0);
      const buffer = Buffer.alloc(length);
      const n = readSync(fd, buffer, 0, length, Number(offset));
      return buffer.subarray(0, n);
    };
    const header = read(0, 64);
    const elf64le =
      header.length === 64 &&
      header.readUInt32BE(0) === 0x7f454c46 &&
      header[4] === 2 && // ELFCLASS64
      header[5] === 1; // ELFDATA2LSB
    if (!elf64le) return null;
    const phoff = header.readBigUInt64LE(0x20);
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    if (phentsize < 56 || phentsize * phnum > 1 << 20) return null;
    const table = read(phoff, phentsize * phnum);
    if (table.length < phentsize * phnum) return null;
    const loads: { vaddr: bigint; offset: bigint; size: bigint }[] = [];
    let dynamic: { offset: bigint; size: bigint } | undefined;
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      const type = table.readUInt32LE(at);
      const offset = table.readBigUInt64LE(at + 8);
      const vaddr = table.readBigUInt64LE(at + 16);
      const size = table.readBigUInt64LE(at + 32);
      if (type === PT_LOAD) loads.push({ vaddr, offset, size });
      else if (type === PT_DYNAMIC) dynamic = { offset, size };
    }
    if (!dynamic || dynamic.size > 1n << 20n) return null;
    const entries = read(dynamic.offset, Number(dynamic.size));
    const tags: [bigint, bigint][] = [];
    let strtab: bigint | undefined;
    for (let at = 0; at + 16 <= entries.length; at += 16) {
      const tag = entries.readBigInt64LE(at);
      const value = entries.readBigUInt64LE(at + 8);
      if (tag === DT_NULL) break;
      if (tag === DT_STRTAB) strtab = value;
      else tags.push([tag, value]);
    }
    // DT_STRTAB holds an address: the loaded segment that contains it says where that is in the file
    const segment =
      strtab === undefined ? undefined : loads.find((l) => strtab! >= l.vaddr && strtab! < l.vaddr + l.size);
    if (strtab === undefined || !segment) return null;
    const strings = strtab - segment.vaddr + segment.offset;
    const string = (index: bigint): string => {
      let text = '';
      for (let at = strings + index; ; at += 256n) {
        const chunk = read(at, 256);
        const end = chunk.indexOf(0);
        text += chunk.subarray(0, end === -1 ? chunk.length : end).toString('utf8');
        if (end !== -1 || chunk.length < 256) return text;
      }
    };
    const section: DynamicSection = { needed: [], runpath: [], rpath: [] };
    for (const [tag, value] of tags) {
      if (tag === DT_NEEDED) section.needed.push(string(value));
      else if (tag === DT_RUNPATH) section.runpath.push(...string(value).split(':'));
      else if (tag === DT_RPATH) section.rpath.push(...string(value).split(':'));
    }
    return section;
  } finally {
    closeSync(fd);
  }
}

/** The loader's cache as `ldconfig -p` lists it: soname -> path, for this process's architecture. */
let ldCache: Map<string, string> | undefined;

function loaderCache(): Map<string, string> {
  if (ldCache) return ldCache;
  ldCache = new Map();
  // ldconfig lives in /sbin on many distributions, where a user's PATH may not reach
  for (const ldconfig of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    let listing: string;
    try {
      listing = execFileSync(ldconfig, ['-p'], {
        encoding: 'utf8',
        timeout: 5000,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      continue;
    }
    const arch = process.arch === 'x64' ? 'x86-64' : process.arch === 'arm64' ? 'AArch64' : undefined;
    for (const line of listing.split('\n')) {
      const m = /^\s+(\S+) \(([^)]*)\) => (.+)$/.exec(line);
      if (!m) continue;
      const [, name, flags, path] = m as unknown as [string, string, string, string];
      if (arch && !flags.includes(arch)) continue; // a 32-bit or foreign library of the same name
      if (!ldCache.has(name)) ldCache.set(name, path);
    }
    break;
  }
  return ldCache;
}

/** Where the loader looks last, when neither the paths nor the cache name a library. */
const DEFAULT_DIRS = ['/lib64', '/usr/lib64', '/lib', '/usr/lib'];

/** Options of `missingLibraries`: the environment it resolves against (the process's by default). */
export interface ResolveOptions {
  /** LD_LIBRARY_PATH (default: the process's) */
  libraryPath?: string;
  /** soname -> path, as the loader's cache lists them (default: `ldconfig -p`) */
  cache?: ReadonlyMap<string, string>;
}

/** A library the loader would not find, with the other versions of it that it would. */
export interface MissingLibrary {
  /** the soname needed, e.g. `libcublasLt.so.12` */
  name: string;
  /** sonames of other versions on the search path, e.g. `['libcublasLt.so.13']` */
  others: string[];
}

/**
 * The libraries `file` needs (DT_NEEDED) that the Linux dynamic loader would not find, searched as
 * ld.so(8) does: DT_RPATH (when there is no DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH (`$ORIGIN` is the
 * file's directory), the loader's cache, the default directories. `null` when `file` is not a 64-bit
 * little-endian ELF file with a dynamic section (nothing can be said).
 */
export function missingLibraries(file: string, options: ResolveOptions = {}): MissingLibrary[] | null {
  const section = readDynamicSection(file);
  if (!section) return null;
  const origin = dirname(realpathSync(file));
  const expand = (dirs: string[]) =>
    dirs.filter((d) => d !== '').map((d) => d.replace(/\$(ORIGIN\b|\{ORIGIN\})/g, origin));
  // relative entries are relative to the working directory, for the loader as for existsSync
  const libraryPath = (options.libraryPath ?? process.env.LD_LIBRARY_PATH ?? '')
    .split(/[:;]/)
    .filter((d) => d !== '');
  const dirs = [
    ...(section.runpath.length === 0 ? expand(section.rpath) : []),
    ...libraryPath,
    ...expand(section.runpath),
  ];
  const cache = options.cache ?? loaderCache();
  const found = (name: string) =>
    name.includes('/')
      ? existsSync(name)
      : dirs.some((d) => existsSync(join(d, name))) ||
        cache.has(name) ||
        DEFAULT_DIRS.some((d) => existsSync(join(d, name)));
  const missing = section.needed.filter((name) => !found(name));
  if (missing.length === 0) return [];
  // every file name on the search path, listed once for all the missing libraries
  const present = new Set(cache.keys());
  for (const d of new Set([...dirs, ...DEFAULT_DIRS])) {
    try {
      for (const n of readdirSync(d)) present.add(n);
    } catch {}
  }
  return missing.map((name) => ({ name, others: otherVersions(name, present) }));
}

/** `libfoo.so.N` for other N among `present`: what is there instead of the version needed. */
function otherVersions(name: string, present: ReadonlySet<string>): string[] {
  const at = name.indexOf('.so.');
  if (at === -1) return [];
  const prefix = name.slice(0, at + 4);
  return [...present]
    .filter((n) => n !== name && n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
    .sort();
}
