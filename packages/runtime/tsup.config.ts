import { defineConfig } from 'tsup';

export default defineConfig({
  // model-worker: the thread of loadModelInWorker, started from its file beside index.js
  entry: ['src/index.ts', 'src/model-worker.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  tsconfig: 'tsconfig.build.json',
  // import.meta.url in the CommonJS build (used to locate onnxruntime's CUDA libraries)
  shims: true,
});
