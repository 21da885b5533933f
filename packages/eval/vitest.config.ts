import { defineConfig } from 'vitest/config';

// The run's temporary files go to a directory of its own, removed at the end (testkit's global-setup).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    globalSetup: ['@implicit-it/testkit/global-setup'],
  },
});
