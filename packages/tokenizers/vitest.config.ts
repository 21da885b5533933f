import { defineConfig } from 'vitest/config';

// Fixture tokenizers take ~0.4 s each to load: the timeouts leave room for that on a busy 2-core machine.
// The run's temporary files go to a directory of its own, removed at the end (testkit's global-setup).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    globalSetup: ['@implicit-it/testkit/global-setup'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
