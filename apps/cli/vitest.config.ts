import { defineConfig } from 'vitest/config';

// The tests run the built bin as child processes that load ONNX models: one file at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
