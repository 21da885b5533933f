import { defineConfig } from 'vitest/config';

// The tests run the built bin as child processes that load ONNX models: one file at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // one private IMPLICIT_IT_CACHE for the run (helpers.ts injects it): no test touches ~/.cache; the
    // run's temporary files, the bin's included, go to a directory of its own (testkit's global-setup)
    globalSetup: ['@implicit-it/testkit/global-setup', 'test/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
