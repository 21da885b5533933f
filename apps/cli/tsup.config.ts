import { defineConfig } from 'tsup';

// An executable, not a library: one ESM file with the shebang (kept from src/cli.ts), no types. Its
// version is read from package.json when it runs (program.ts), not defined here: `changeset version`
// bumps it after the build.
export default defineConfig({
  entry: ['src/cli.ts'],
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'node20',
  tsconfig: 'tsconfig.build.json',
});
