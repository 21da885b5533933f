import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.js';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Requires `Authorization: Bearer <key>`. The comparison is constant-time: both sides are hashed to
 * 32 bytes first, so neither the key's content nor its length leaks through timing.
 *
 * @example
 * app.use('/v1/*', bearerAuth('sk-local-123'));
 */
export function bearerAuth(key: string): MiddlewareHandler {
  const expected = digest(key);
  return async (c, next) => {
    const header = c.req.header('Authorization') ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (!match || !timingSafeEqual(digest(match[1]!), expected)) {
      throw new ApiError(
        401,
        match
          ? 'Incorrect API key provided.'
          : 'Missing API key: send "Authorization: Bearer <key>" (the key the server was started with).',
        { code: 'invalid_api_key', headers: { 'WWW-Authenticate': 'Bearer' } },
      );
    }
    await next();
  };
}
