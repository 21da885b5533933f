import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import setup, { RUN_ENV } from '../src/global-setup.js';

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
  // the tiny-model cache outlives the run
  expect(process.env.IMPLICIT_IT_MODELKIT_CACHE).toBe(join(system, 'implicit-it-modelkit'));
  const left = mkdtempSync(join(tmpdir(), 'left-behind-'));
  writeFileSync(join(left, 'model.onnx'), 'x');
  teardown();
  expect(existsSync(dir)).toBe(false);
  expect(tmpdir()).toBe(system);
  expect(process.env.IMPLICIT_IT_MODELKIT_CACHE).toBeUndefined();
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
