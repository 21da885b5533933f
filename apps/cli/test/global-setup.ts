import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One private cache dir for the whole run (no test touches ~/.cache), removed at the end. */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'implicit-it-cli-cache-'));
  process.env.IMPLICIT_IT_CLI_TEST_CACHE = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
