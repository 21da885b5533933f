import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The environment variables this setup sets for the run (and puts back after it): the temporary
 * directory, the tiny-model cache, and onnxruntime's two telemetry switches.
 *
 * @example
 * import { RUN_ENV } from '@implicit-it/testkit/global-setup';
 * RUN_ENV; // ['TMPDIR', 'IMPLICIT_IT_MODELKIT_CACHE', 'ORT_DISABLE_TELEMETRY', 'ORT_TELEMETRY_DISABLED']
 */
export const RUN_ENV = [
  'TMPDIR',
  'IMPLICIT_IT_MODELKIT_CACHE',
  'ORT_DISABLE_TELEMETRY',
  'ORT_TELEMETRY_DISABLED',
] as const;

/**
 * A vitest `globalSetup` (every package's `vitest.config.ts` lists it) that sets up the environment
 * of a package's test run, which vitest's workers and the programs they spawn (the CLI's bin, Python)
 * inherit:
 *
 * - a temporary directory of the run's own (`TMPDIR`), removed when the run ends: the tests'
 *   `mkdtempSync(join(tmpdir(), ...))` directories land there. Without it each run left its models
 *   and files in the system's temporary directory (285 MB for modelkit's tests alone). The cache of
 *   `createTinyModel` (`<tmp>/implicit-it-modelkit`) is meant to outlive a run, so it is pinned to the
 *   system temporary directory through `IMPLICIT_IT_MODELKIT_CACHE` unless that is set.
 *   `IMPLICIT_IT_KEEP_TMP=1` keeps the run's directory and prints where it is.
 * - onnxruntime's telemetry off (`ORT_DISABLE_TELEMETRY=1`, and `ORT_TELEMETRY_DISABLED=1` for later
 *   versions, unless either is set): tests create sessions with onnxruntime-node directly too, not
 *   only through `@implicit-it/runtime`, which turns it off itself.
 *
 * @example
 * // vitest.config.ts
 * import { defineConfig } from 'vitest/config';
 * export default defineConfig({ test: { globalSetup: ['@implicit-it/testkit/global-setup'] } });
 */
export default function setup(): () => void {
  const saved = RUN_ENV.map((name) => [name, process.env[name]] as const);
  const system = tmpdir();
  const dir = mkdtempSync(join(system, 'implicit-it-test-'));
  process.env.IMPLICIT_IT_MODELKIT_CACHE ??= join(system, 'implicit-it-modelkit');
  process.env.TMPDIR = dir;
  if (!process.env.ORT_DISABLE_TELEMETRY?.trim() && !process.env.ORT_TELEMETRY_DISABLED?.trim()) {
    process.env.ORT_DISABLE_TELEMETRY = '1';
    process.env.ORT_TELEMETRY_DISABLED = '1';
  }
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
