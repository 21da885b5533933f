import { existsSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, randomTensor } from '@implicit-it/modelkit';
import { loadModel, type Model } from '@implicit-it/runtime';

/**
 * A tiny modelkit model (preset `tiny`, Tulu chat template) whose seeded weights are scaled by 10, so
 * that its greedy answers vary from token to token and the rules visibly shift some of them. Written
 * once into the temp dir and reused.
 */
export async function tinyModelDir(seed = 1): Promise<string> {
  const dir = join(tmpdir(), `implicit-it-api-tiny-x10-s${seed}-v1`);
  if (!existsSync(join(dir, 'onnx', 'model.onnx'))) {
    const tmp = `${dir}.tmp-${process.pid}`;
    await createModel({
      preset: 'tiny',
      out: tmp,
      weights: (spec) => {
        const t = randomTensor(spec, seed);
        if (spec.kind !== 'norm') for (let i = 0; i < t.length; i++) t[i]! *= 10;
        return t;
      },
    });
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return dir;
}

let shared: Promise<Model> | undefined;

/** The tiny model, loaded once per test file (quiet). */
export function tinyModel(): Promise<Model> {
  shared ??= tinyModelDir().then((dir) => loadModel(dir, { log: () => {} }));
  return shared;
}

/** Parses a server-sent-events body into its `data:` payloads. */
export function parseSse(text: string): string[] {
  return text
    .split('\n\n')
    .map((e) => e.trim())
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6));
}

export const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
