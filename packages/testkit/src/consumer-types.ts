import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Type-checks `source`, a consumer's .ts file that imports the package by its name, against the
 * package's BUILT declarations, with the strictest common settings (`strict`,
 * `exactOptionalPropertyTypes`, `noUncheckedIndexedAccess`, nodenext resolution). The file is written
 * in a temporary folder under `pkgDir/test` (so that the package's own name resolves to its `dist`)
 * and removed after. Returns tsc's output: `''` when the file compiles.
 *
 * @example
 * expect(typecheckConsumer(pkg, "import { x } from '@implicit-it/rules'; x({ a: undefined });")).toBe('');
 */
export function typecheckConsumer(pkgDir: string, source: string): string {
  const dir = mkdtempSync(join(pkgDir, 'test', '.consumer-'));
  try {
    const file = join(dir, 'consumer.ts');
    writeFileSync(file, source);
    const tsc = join(pkgDir, 'node_modules', '.bin', 'tsc');
    const flags = [
      '--noEmit',
      '--strict',
      '--noUncheckedIndexedAccess',
      '--exactOptionalPropertyTypes',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--types',
      'node',
      '--skipLibCheck',
      file,
    ];
    try {
      execFileSync(tsc, flags, { cwd: pkgDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return '';
    } catch (error) {
      const { stdout, stderr } = error as { stdout?: string; stderr?: string };
      return `${stdout ?? ''}${stderr ?? ''}` || String(error);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
