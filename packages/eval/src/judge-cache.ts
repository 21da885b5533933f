import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './json-file.js';

/**
 * A disk cache of judge responses, one small JSON file per key (`dir/ab/abcdef....json`), each
 * written atomically: a killed run leaves only whole entries, and a rerun reads them back for free.
 *
 * @example
 * const cache = new JudgeCache('.cache/judge');
 * await cache.set(key, { request, response });
 * cache.get(key)?.response;
 */
export class JudgeCache {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  private file(key: string): string {
    return join(this.dir, key.slice(0, 2), `${key}.json`);
  }

  /** The stored entry, or undefined (a missing or unreadable entry is a miss). */
  get(key: string): { response: unknown } | undefined {
    const file = this.file(key);
    if (!existsSync(file)) return undefined;
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as { response: unknown };
    } catch {
      return undefined;
    }
  }

  async set(key: string, entry: Record<string, unknown> & { response: unknown }): Promise<void> {
    await writeFileAtomic(this.file(key), JSON.stringify({ key, ...entry }));
  }
}
