import { defineConfig } from 'vitest/config';

// Fixture tokenizers take ~0.4 s each to load: the timeouts leave room for that on a busy 2-core machine.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
