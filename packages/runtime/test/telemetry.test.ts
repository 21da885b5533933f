import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { beforeAll, describe, expect, it } from 'vitest';
import { ORT_TELEMETRY_VARIABLES } from '../src/index.js';

// Each case runs in a process of its own (onnxruntime decides on its telemetry once per process),
// importing the built package (`pnpm test` builds first), with a home and a temporary directory of
// its own: onnxruntime 1.30 with its telemetry on writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime
// (a device id, a SQLite queue of events) and TMPDIR/mat-debug-PID.log once a session is created.
const runtime = resolve(import.meta.dirname, '..', 'dist', 'index.js');
let modelDir: string;
beforeAll(async () => {
  modelDir = (await createTinyModel({ seed: 3 })).dir;
});

function inProcess(body: string, env: Record<string, string> = {}) {
  const home = mkdtempSync(join(tmpdir(), 'runtime-telemetry-'));
  const temp = join(home, 'tmp');
  mkdirSync(temp);
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !(ORT_TELEMETRY_VARIABLES as readonly string[]).includes(k) && k !== 'XDG_CACHE_HOME',
    ),
  );
  const script = `
    const runtime = await import(${JSON.stringify(runtime)});
    const modelDir = ${JSON.stringify(modelDir)};
    ${body}
    console.log(JSON.stringify({ state: runtime.disableOnnxTelemetry(), env: ${JSON.stringify(ORT_TELEMETRY_VARIABLES)}.map((k) => process.env[k] ?? null) }));`;
  // a file, not --eval: a worker thread inherits the process's flags, --input-type included
  const file = join(home, 'run.mjs');
  writeFileSync(file, script);
  const printed = execFileSync(process.execPath, [file], {
    encoding: 'utf8',
    env: { ...clean, HOME: home, TMPDIR: temp, ...env },
  });
  return {
    ...(JSON.parse(printed.trim().split('\n').at(-1)!) as { state: object; env: (string | null)[] }),
    wrote: {
      cache: existsSync(join(home, '.cache', 'Microsoft')),
      tmp: readdirSync(temp).filter((name) => name.startsWith('mat-debug-')),
    },
  };
}

describe("onnxruntime's telemetry", () => {
  it.each([
    ['loadModel', 'loadModel'],
    ['loadModelInWorker', 'loadModelInWorker'],
  ])('is off once %s has run: nothing written to ~/.cache or the temporary directory', (_, load) => {
    const r = inProcess(`
      const model = await runtime.${load}(modelDir, { log: () => {} });
      await model.generate('Hi', { maxNewTokens: 3 });
      await model.dispose();`);
    expect(r.state).toEqual({
      disabled: true,
      setBy: 'implicit-it',
      variable: 'ORT_DISABLE_TELEMETRY',
      value: '1',
    });
    expect(r.env).toEqual(['1', '1']);
    expect(r.wrote).toEqual({ cache: false, tmp: [] });
  });

  // no session is created in these: a process that keeps telemetry on would report to Microsoft
  it('is left as the environment says, under either name, which is copied to the other', () => {
    expect(inProcess('', { ORT_DISABLE_TELEMETRY: '0' })).toMatchObject({
      state: { disabled: false, setBy: 'environment', variable: 'ORT_DISABLE_TELEMETRY', value: '0' },
      env: ['0', '0'],
    });
    expect(inProcess('', { ORT_TELEMETRY_DISABLED: ' Yes ' })).toMatchObject({
      state: { disabled: true, setBy: 'environment', variable: 'ORT_TELEMETRY_DISABLED', value: ' Yes ' },
      env: [' Yes ', ' Yes '],
    });
    // both set: each onnxruntime version reads its own; the state is the one this version reads
    expect(inProcess('', { ORT_DISABLE_TELEMETRY: 'off', ORT_TELEMETRY_DISABLED: '1' })).toMatchObject({
      state: { disabled: false, variable: 'ORT_DISABLE_TELEMETRY', value: 'off' },
      env: ['off', '1'],
    });
  });
});
