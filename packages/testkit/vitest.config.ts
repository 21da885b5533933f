import { defineConfig } from 'vitest/config';

// The run's temporary files go to a directory of its own, removed at the end (this package's global-setup).
export default defineConfig({ test: { globalSetup: ['./src/global-setup.ts'] } });
