import { defineConfig } from 'vitest/config';

// ONNX sessions and model writes slow down a lot on a shared, loaded machine: allow 30 s per test.
export default defineConfig({
  test: { include: ['test/**/*.test.ts', 'src/**/*.test.ts'], testTimeout: 30_000 },
});
