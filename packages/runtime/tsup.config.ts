import { rm } from 'node:fs/promises';
import { defineConfig } from 'tsup';

export default defineConfig({
  // model-worker: the thread of loadModelInWorker, started from its file beside index.js
  entry: ['src/index.ts', 'src/model-worker.ts'],
  format: ['esm', 'cjs'],
  // model-worker is no import of anyone's: its declarations would be an empty `export {}`
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'es2022',
  tsconfig: 'tsconfig.build.json',
  // import.meta.url in the CommonJS build (used to locate onnxruntime's CUDA libraries)
  shims: true,
  // Both builds start the worker thread from the ESM dist/model-worker.js (worker-model.ts), so the
  // CommonJS copy tsup writes too (a third of the package) is never loaded.
  async onSuccess() {
    await Promise.all(
      ['model-worker.cjs', 'model-worker.cjs.map'].map((f) => rm(`dist/${f}`, { force: true })),
    );
  },
});
