import { existsSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, randomTensor } from '@implicit-it/modelkit';
import { TINY_MODEL_FORMAT } from '@implicit-it/modelkit/test';
import { loadModel, type Model } from '../src/index.js';

const loaded = new Map<number, Promise<Model>>();

/**
 * A tiny modelkit model whose weights are modelkit's seeded ones times 10 (std 0.2 instead of 0.02):
 * its greedy outputs are diverse (no immediate loops), so equality tests compare real sequences.
 * Written once into the temp dir and reused.
 */
export async function diverseModelDir(seed = 1): Promise<string> {
  const dir = join(tmpdir(), `implicit-it-runtime-tiny-x10-s${seed}-g${TINY_MODEL_FORMAT}`);
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

/** The diverse tiny model, loaded once per test file (quiet). */
export function tinyModel(seed = 1): Promise<Model> {
  let m = loaded.get(seed);
  if (!m) {
    m = diverseModelDir(seed).then((dir) => loadModel(dir, { log: () => {} }));
    loaded.set(seed, m);
  }
  return m;
}

export const PROMPTS = [
  'Give me a recipe for tiramisu.',
  'Write a poem about the sea.',
  'What is 2 + 2?',
  'List three colors and explain why you like each of them in one sentence.',
];
