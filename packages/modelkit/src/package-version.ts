import { readFileSync } from 'node:fs';

let cached: string | undefined;

/**
 * The `version` in @implicit-it/modelkit's package.json, written as the `producer_version` of the
 * ONNX files it makes (so a file says which release wrote it). Read, not baked into the build:
 * `changeset version` rewrites package.json after the build. The bundles (`dist/*.js`) sit one folder
 * below package.json, this source file (under vitest) two: the nearer package.json named
 * `@implicit-it/modelkit` is the one. Internal (not exported): 'unknown' where neither is found.
 */
export function modelkitVersion(): string {
  if (cached !== undefined) return cached;
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === '@implicit-it/modelkit' && typeof pkg.version === 'string') {
        cached = pkg.version;
        return cached;
      }
    } catch {
      // not there (or not JSON): the next folder up
    }
  }
  // a bundler that moved this code away from its package.json: the file still says who made it
  cached = 'unknown';
  return cached;
}
