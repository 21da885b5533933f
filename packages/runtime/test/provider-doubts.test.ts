// A provider tried though its status doubted it (the CUDA provider named explicitly while the libraries
// it loads are not found): onnxruntime's error ("Failed to load shared library") carries that status.
// The doubt is planted on the CPU provider, the one every machine can run, and a graph it cannot load.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { loadModel, ModelLoadError } from '../src/index.js';
import { diverseModelDir } from './helpers.js';

const DOUBT = 'the libraries it loads are not found: libexample.so.12';

vi.mock('../src/providers.js', async (importActual) => {
  const actual = await importActual<typeof import('../src/providers.js')>();
  return {
    ...actual,
    chooseProviders: () => ({
      order: ['cpu'],
      skipped: [],
      doubts: [{ name: 'cpu', available: false, reason: DOUBT }],
    }),
  };
});

const work = mkdtempSync(join(tmpdir(), 'runtime-doubts-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

it("a provider tried in doubt fails with onnxruntime's error and, after it, the doubt", async () => {
  const dir = join(work, 'model');
  cpSync(await diverseModelDir(), dir, { recursive: true });
  writeFileSync(join(dir, 'onnx', 'model.onnx'), 'not a model');
  const err = await loadModel(dir, { log: () => {} }).catch((e) => e);
  expect(err).toBeInstanceOf(ModelLoadError);
  expect(err.message).toMatch(
    new RegExp(
      `^${join(dir, 'onnx', 'model.onnx')}: no execution provider could load the model: cpu: Failed to load model because protobuf parsing failed\\. \\(${DOUBT}\\)`,
    ),
  );
});
