import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.js';

const MAX_DEPTH = 32;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Checks a parsed body without recursion: no key that could reach an object's prototype, and no
 * nesting deeper than any request needs (`MAX_DEPTH`). Throws a 400 naming the place.
 */
export function checkJsonStructure(body: unknown): void {
  const stack: { value: unknown; depth: number; path: string }[] = [{ value: body, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { value, depth, path } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > MAX_DEPTH) {
      throw new ApiError(400, `${path || 'body'}: the JSON is nested more than ${MAX_DEPTH} levels deep`, {
        param: path || null,
        code: 'invalid_value',
      });
    }
    if (Array.isArray(value)) {
      value.forEach((v, i) => {
        stack.push({ value: v, depth: depth + 1, path: `${path}[${i}]` });
      });
      continue;
    }
    for (const key of Object.keys(value)) {
      const at = path ? `${path}.${key}` : key;
      if (FORBIDDEN_KEYS.has(key)) {
        throw new ApiError(400, `${at}: this key is not allowed`, { param: at, code: 'invalid_value' });
      }
      stack.push({ value: (value as Record<string, unknown>)[key], depth: depth + 1, path: at });
    }
  }
}

/**
 * For POST bodies: refuses a `Content-Encoding` other than `identity` (415: a gzipped body read as
 * JSON would be an unhelpful 400), requires `Content-Type: application/json`, parses the body once
 * (Hono caches it for the validator), and checks its structure. Every failure has an OpenAI-style body.
 */
export function jsonBody(): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const encoding = (c.req.header('Content-Encoding') ?? '').trim().toLowerCase();
    if (encoding !== '' && encoding !== 'identity') {
      throw new ApiError(
        415,
        `Content-Encoding: ${JSON.stringify(encoding)} is not supported; send the JSON body uncompressed`,
        { code: 'unsupported_content_encoding' },
      );
    }
    const type = (c.req.header('Content-Type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (!/^application\/([\w.-]+\+)?json$/.test(type)) {
      throw new ApiError(
        400,
        `Content-Type: expected application/json, got ${JSON.stringify(type || 'none')}`,
        {
          code: 'invalid_content_type',
        },
      );
    }
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (error) {
      if (error instanceof ApiError) throw error;
      throw new ApiError(400, `the request body is not valid JSON (${(error as Error).message})`, {
        code: 'invalid_json',
      });
    }
    checkJsonStructure(body);
    await next();
  };
}
