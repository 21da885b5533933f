import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The environment variables this setup sets for the run (and puts back after it).
 *
 * @example
 * import { TEMP_DIR_ENV } from '@implicit-it/testkit/temp-dir';
 * TEMP_DIR_ENV; // ['TMPDIR', 'IMPLICIT_IT_MODELKIT_CACHE']
 */
export const TEMP_DIR_ENV = ['TMPDIR', 'IMPLICIT_IT_MODELKIT_CACHE'] as const;

/**
 * A vitest `globalSetup` that gives a package's test run a temporary directory of its own and removes
 * it when the run ends: the tests' `mkdtempSync(join(tmpdir(), ...))` directories, and those of the
 * programs they spawn (the CLI's bin, Python, onnxruntime's installer), land in it through `TMPDIR`
 * (vitest's workers and their children inherit it). Without it each run left its models and files in
 * the system's temporary directory (285 MB for modelkit's tests alone).
 *
 * The cache of `createTinyModel` (`<tmp>/implicit-it-modelkit`) is meant to outlive a run, so it is
 * pinned to the system temporary directory through `IMPLICIT_IT_MODELKIT_CACHE` unless that is set.
 * `IMPLICIT_IT_KEEP_TMP=1` keeps the run's directory and prints where it is, to look at what a failing
 * test wrote.
 *
 * @example
 * // vitest.config.ts
 * import { defineConfig } from 'vitest/config';
 * export default defineConfig({ test: { globalSetup: ['@implicit-it/testkit/temp-dir'] } });
 */
export default function setup(): () => void {
  const saved = TEMP_DIR_ENV.map((name) => [name, process.env[name]] as const);
  const system = tmpdir();
  const dir = mkdtempSync(join(system, 'implicit-it-test-'));
  process.env.IMPLICIT_IT_MODELKIT_CACHE ??= join(system, 'implicit-it-modelkit');
  process.env.TMPDIR = dir;
  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    if (process.env.IMPLICIT_IT_KEEP_TMP === '1') {
      if (existsSync(dir) && readdirSync(dir).length > 0)
        console.log(`[testkit] kept the run's temporary files in ${dir} (IMPLICIT_IT_KEEP_TMP=1)`);
      return;
    }
    rmSync(dir, { recursive: true, force: true });
  };
}
