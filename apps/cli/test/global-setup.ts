import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    cacheDir: string;
  }
}

/** One private cache dir for the whole run (no test touches ~/.cache), removed at the end. */
export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'implicit-it-cli-cache-'));
  project.provide('cacheDir', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
