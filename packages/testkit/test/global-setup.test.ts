import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import setup, { RUN_ENV } from '../src/global-setup.js';
import { describeWithBinary } from '../src/index.js';

beforeEach(() => {
  // as a run starts outside this one: none of them set
  for (const name of RUN_ENV) if (name !== 'TMPDIR') vi.stubEnv(name, undefined);
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

it("points TMPDIR at the run's own directory, for spawned programs too, and removes it at the end", () => {
  const system = tmpdir();
  const teardown = setup();
  const dir = tmpdir();
  expect(dirname(dir)).toBe(system);
  expect(basename(dir)).toMatch(/^implicit-it-test-/);
  expect(execFileSync('sh', ['-c', 'printf %s "$TMPDIR"'], { encoding: 'utf8' })).toBe(dir);
  // spawned programs keep their configuration and caches in the run too
  expect(
    execFileSync('sh', ['-c', 'printf "%s %s" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"'], { encoding: 'utf8' }),
  ).toBe(`${join(dir, 'config')} ${join(dir, 'cache')}`);
  expect([existsSync(join(dir, 'config')), existsSync(join(dir, 'cache'))]).toEqual([true, true]);
  // the tiny-model cache outlives the run
  expect(process.env.IMPLICIT_IT_MODELKIT_CACHE).toBe(join(system, 'implicit-it-modelkit'));
  const left = mkdtempSync(join(tmpdir(), 'left-behind-'));
  writeFileSync(join(left, 'model.onnx'), 'x');
  teardown();
  expect(existsSync(dir)).toBe(false);
  expect(tmpdir()).toBe(system);
  expect(process.env.IMPLICIT_IT_MODELKIT_CACHE).toBeUndefined();
  expect([process.env.XDG_CONFIG_HOME, process.env.XDG_CACHE_HOME]).toEqual([undefined, undefined]);
});

it('puts back the configuration and cache directories a developer set', () => {
  vi.stubEnv('XDG_CONFIG_HOME', '/home/me/.config-elsewhere');
  const teardown = setup();
  expect(process.env.XDG_CONFIG_HOME).toBe(join(tmpdir(), 'config'));
  teardown();
  expect(process.env.XDG_CONFIG_HOME).toBe('/home/me/.config-elsewhere');
});

const CHROMIUM = process.env.IMPLICIT_IT_CHROMIUM ?? '/usr/bin/chromium';

describeWithBinary("Chromium in a run's environment", CHROMIUM, 'apt-get install -y chromium', () => {
  it('writes its crash database and caches into the run, nothing into the home directory', () => {
    const teardown = setup();
    try {
      const home = mkdtempSync(join(tmpdir(), 'home-'));
      // as the browser tests start it (playwright adds a temporary profile), loading a page
      execFileSync(
        CHROMIUM,
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--dump-dom',
          'about:blank',
        ],
        { env: { ...process.env, HOME: home }, stdio: 'ignore', timeout: 60_000 },
      );
      expect(readdirSync(home)).toEqual([]);
      expect(existsSync(join(tmpdir(), 'config', 'chromium', 'Crash Reports'))).toBe(true);
    } finally {
      teardown();
    }
    // Chromium's start takes 1-2 s alone and past vitest's default 5 s while the other packages' tests
    // share the machine: the wait is the browser's own limit above
  }, 60_000);
});

it("turns onnxruntime's telemetry off for the run, under both names, unless either is set", () => {
  let teardown = setup();
  expect([process.env.ORT_DISABLE_TELEMETRY, process.env.ORT_TELEMETRY_DISABLED]).toEqual(['1', '1']);
  teardown();
  expect([process.env.ORT_DISABLE_TELEMETRY, process.env.ORT_TELEMETRY_DISABLED]).toEqual([
    undefined,
    undefined,
  ]);
  vi.stubEnv('ORT_TELEMETRY_DISABLED', '0');
  teardown = setup();
  expect([process.env.ORT_DISABLE_TELEMETRY, process.env.ORT_TELEMETRY_DISABLED]).toEqual([undefined, '0']);
  teardown();
});

it('leaves a cache directory that was set alone', () => {
  vi.stubEnv('IMPLICIT_IT_MODELKIT_CACHE', '/somewhere/models');
  const teardown = setup();
  expect(process.env.IMPLICIT_IT_MODELKIT_CACHE).toBe('/somewhere/models');
  teardown();
  expect(process.env.IMPLICIT_IT_MODELKIT_CACHE).toBe('/somewhere/models');
});

it('IMPLICIT_IT_KEEP_TMP=1 keeps what the run wrote and says where', () => {
  vi.stubEnv('IMPLICIT_IT_KEEP_TMP', '1');
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const teardown = setup();
  const dir = tmpdir();
  writeFileSync(join(dir, 'out.jsonl'), '{}\n');
  teardown();
  expect(existsSync(join(dir, 'out.jsonl'))).toBe(true);
  expect(log).toHaveBeenCalledWith(
    `[testkit] kept the run's temporary files in ${dir} (IMPLICIT_IT_KEEP_TMP=1)`,
  );
  rmSync(dir, { recursive: true });
});

it('IMPLICIT_IT_KEEP_TMP=1 says nothing of a run that wrote nothing (its empty config and cache directories aside)', () => {
  vi.stubEnv('IMPLICIT_IT_KEEP_TMP', '1');
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const teardown = setup();
  const dir = tmpdir();
  teardown();
  expect(log).not.toHaveBeenCalled();
  rmSync(dir, { recursive: true });
});
