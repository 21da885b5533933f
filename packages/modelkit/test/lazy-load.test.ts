import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';

const dist = resolve(import.meta.dirname, '..', 'dist');

/** A script that imports a build of the package, writes a model, and prints whether protobufjs was loaded after each. */
const scripts = {
  ESM: (out: string) => `
    import { createRequire } from 'node:module';
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/protobufjs/'));
    const modelkit = await import(${JSON.stringify(join(dist, 'index.js'))});
    const onImport = loaded();
    await modelkit.createModel({ preset: 'tiny', out: ${JSON.stringify(out)} });
    console.log(JSON.stringify([onImport, loaded()]));`,
  CommonJS: (out: string) => `
    const loaded = () => Object.keys(require.cache).some((k) => k.includes('/protobufjs/'));
    const modelkit = require(${JSON.stringify(join(dist, 'index.cjs'))});
    const onImport = loaded();
    modelkit
      .createModel({ preset: 'tiny', out: ${JSON.stringify(out)} })
      .then(() => console.log(JSON.stringify([onImport, loaded()])));`,
};

// importing protobufjs takes some 45 ms, which every importer of modelkit paid (the CLI on each of
// its commands): it is loaded when a graph is first written or read
it.each(['ESM', 'CommonJS'] as const)(
  'the %s build loads protobufjs when a graph is written, not on import',
  (build) => {
    const out = join(mkdtempSync(join(tmpdir(), 'modelkit-lazy-')), 'tiny');
    const printed = execFileSync(
      process.execPath,
      [build === 'ESM' ? '--input-type=module' : '--input-type=commonjs', '-e', scripts[build](out)],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(printed)).toEqual([false, true]);
  },
);
