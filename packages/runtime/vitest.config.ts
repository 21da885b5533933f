import { defineConfig } from 'vitest/config';

// ONNX sessions use the machine's cores: run test files one at a time
export default defineConfig({
  test: { include: ['test/**/*.test.ts'], fileParallelism: false, testTimeout: 60_000 },
});
