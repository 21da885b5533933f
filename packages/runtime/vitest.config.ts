import { defineConfig } from 'vitest/config';

// ONNX sessions use the machine's cores: run test files one at a time. The run's temporary files go
// to a directory of its own, removed at the end (testkit's temp-dir).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['@implicit-it/testkit/temp-dir'],
    fileParallelism: false,
    testTimeout: 60_000,
  },
});
