import type { $ZodError, $ZodIssue } from 'zod/v4/core';
import { ApiError } from './errors.js';
import { fieldPath, UNSUPPORTED } from './schemas.js';

function describe(issue: $ZodIssue): { param: string | null; message: string } {
  const at = fieldPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const param = at ? `${at}.${key}` : key;
    return { param, message: `${param}: ${UNSUPPORTED[key] ?? 'unknown parameter'}` };
  }
  if (!at) {
    // the only issue at the root: a body that is not an object (zod's wording names its JS type)
    return { param: null, message: 'the request body must be a JSON object' };
  }
  const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message);
  return { param: at, message: `${at}: ${missing ? 'this field is required' : issue.message}` };
}

/** The first zod issue as a 400 naming the field. */
export function zodToApiError(error: $ZodError): ApiError {
  const issue = error.issues[0];
  if (!issue) return new ApiError(400, 'invalid request body', { code: 'invalid_request' });
  const { param, message } = describe(issue);
  return new ApiError(400, message, {
    param,
    code: issue.code === 'unrecognized_keys' ? 'unknown_parameter' : 'invalid_value',
  });
}
