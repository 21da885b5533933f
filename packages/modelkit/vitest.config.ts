import { defineConfig } from 'vitest/config';

// ONNX sessions and model writes slow down a lot on a shared, loaded machine: allow 30 s per test.
// The run's temporary files go to a directory of its own, removed at the end (testkit's global-setup).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    globalSetup: ['@implicit-it/testkit/global-setup'],
    testTimeout: 30_000,
  },
});
