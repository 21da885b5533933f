import { defineConfig } from 'vitest/config';

// ONNX sessions use the machine's cores: run test files one at a time. The run's temporary files go
// to a directory of its own, removed at the end (testkit's global-setup).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['@implicit-it/testkit/global-setup'],
    fileParallelism: false,
    testTimeout: 60_000,
  },
});
