import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The environment variables this setup sets for the run (and puts back after it): the temporary
 * directory, the configuration and cache directories of the programs tests spawn, the tiny-model
 * cache, and onnxruntime's two telemetry switches.
 *
 * @example
 * import { RUN_ENV } from '@implicit-it/testkit/global-setup';
 * RUN_ENV; // ['TMPDIR', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'IMPLICIT_IT_MODELKIT_CACHE', 'ORT_DISABLE_TELEMETRY', 'ORT_TELEMETRY_DISABLED']
 */
export const RUN_ENV = [
  'TMPDIR',
  'XDG_CONFIG_HOME',
  'XDG_CACHE_HOME',
  'IMPLICIT_IT_MODELKIT_CACHE',
  'ORT_DISABLE_TELEMETRY',
  'ORT_TELEMETRY_DISABLED',
] as const;

/** The directories the setup makes in the run's temporary directory, by the variable that names each. */
const OWN_DIRS = { XDG_CONFIG_HOME: 'config', XDG_CACHE_HOME: 'cache' } as const;

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
 * - configuration and cache directories of the run's own (`XDG_CONFIG_HOME`, `XDG_CACHE_HOME`: `config`
 *   and `cache` in that directory) for the programs tests spawn. The browser tests' Chromium keeps its
 *   crash reporter's database under `$XDG_CONFIG_HOME/chromium/Crash Reports` whatever profile
 *   directory it is given (playwright's is a temporary one), and dconf's cache under `$XDG_CACHE_HOME`:
 *   every run wrote `~/.config/chromium` and `~/.cache/dconf` before. Tests leave the user's own
 *   directories alone; `~/.cache/implicit-it` is named from the home directory, not from these.
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
  for (const [name, sub] of Object.entries(OWN_DIRS)) {
    process.env[name] = join(dir, sub);
    mkdirSync(process.env[name]);
  }
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
      const kept = existsSync(dir) ? readdirSync(dir, { recursive: true }) : [];
      const own: readonly string[] = Object.values(OWN_DIRS);
      if (kept.some((entry) => !own.includes(String(entry))))
        console.log(`[testkit] kept the run's temporary files in ${dir} (IMPLICIT_IT_KEEP_TMP=1)`);
      return;
    }
    rmSync(dir, { recursive: true, force: true });
  };
}
