import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.js';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Requires `Authorization: Bearer <key>`, one of `keys` (several while a key is rotated: the new one
 * given out, the old one still taken). The comparison is constant-time: both sides are hashed to 32
 * bytes first, so neither a key's content nor its length leaks through timing, and every key is
 * compared, so neither does which one matched.
 *
 * @example
 * app.use('/v1/*', bearerAuth(['sk-new-456', 'sk-old-123']));
 */
export function bearerAuth(keys: readonly string[]): MiddlewareHandler {
  const expected = keys.map(digest);
  const accepted = (given: string) => {
    const d = digest(given);
    let ok = false;
    for (const e of expected) ok = timingSafeEqual(d, e) || ok;
    return ok;
  };
  return async (c, next) => {
    const header = (c.req.header('Authorization') ?? '').trim();
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match || !accepted(match[1]!)) {
      // a header of another scheme (a proxy's basic auth passed on) is not a missing one: say which
      // (a word alone may be a key sent without "Bearer ": not echoed)
      const scheme = match ? undefined : /^([!#$%&'*+.^`|~\w-]+)\s+\S/.exec(header)?.[1];
      const fix = 'send "Authorization: Bearer <key>" (the key the server was started with).';
      throw new ApiError(
        401,
        match
          ? 'Incorrect API key provided.'
          : scheme && scheme.toLowerCase() !== 'bearer'
            ? `The Authorization header uses the ${JSON.stringify(scheme.slice(0, 20))} scheme: ${fix}`
            : header !== '' && !/^bearer$/i.test(header)
              ? `The Authorization header is not a bearer token: ${fix}`
              : `Missing API key: ${fix}`,
        { code: 'invalid_api_key', headers: { 'WWW-Authenticate': 'Bearer' } },
      );
    }
    await next();
  };
}
