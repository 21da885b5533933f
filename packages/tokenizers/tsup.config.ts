import { defineConfig } from 'tsup';

// Two entry points: src/index.ts (Node) and src/browser.ts (the `browser` export condition: the same
// API less file reading). One declaration file serves both: their exports have the same types.
export default defineConfig({
  entry: ['src/index.ts', 'src/browser.ts'],
  format: ['esm', 'cjs'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'es2022',
});
