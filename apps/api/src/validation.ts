import type { $ZodError, $ZodIssue } from 'zod/v4/core';
import { ApiError } from './errors.js';
import { fieldPath } from './schemas.js';

/** Parameters OpenAI has and this server does not, with why. */
const UNSUPPORTED: Record<string, string> = {
  tools: 'tool calls are not supported by this server',
  tool_choice: 'tool calls are not supported by this server',
  functions: 'function calls are not supported by this server',
  function_call: 'function calls are not supported by this server',
  audio: 'audio output is not supported',
  modalities: 'only text is supported',
  prediction: 'predicted outputs are not supported',
  reasoning_effort: 'this model does not reason in a separate channel',
  web_search_options: 'web search is not supported',
};

function describe(issue: $ZodIssue): { param: string | null; message: string } {
  const at = fieldPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const param = at ? `${at}.${key}` : key;
    return { param, message: `${param}: ${UNSUPPORTED[key] ?? 'unknown parameter'}` };
  }
  if (!at) {
    return { param: null, message: `the request body must be a JSON object (${issue.message})` };
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
