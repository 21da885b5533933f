import { join } from 'node:path';
import type { ChatExample, ChatMessage } from './messages.js';
import { parseJsonlLines, readRawText } from './raw-files.js';
import type { RecipeOutput } from './recipe-output.js';
import type { RowIssue } from './row-issue.js';

const ROLES = new Set(['system', 'user', 'assistant']);

/**
 * Validates one open-instruct `messages` record; returns the reason it is malformed or the example.
 * `fallback` gives the id of a record without one (LIMA's all have one: without `fallback`, a record
 * must), and the dataset of a record that names none (default `lima`).
 */
export function toChatExample(
  value: unknown,
  fallback?: { id: string; dataset: string },
): ChatExample | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  const id = v.id === undefined && fallback ? fallback.id : v.id;
  if (typeof id !== 'string') return 'field "id" is not a string';
  if (!Array.isArray(v.messages) || v.messages.length === 0)
    return 'field "messages" is not a non-empty array';
  const messages: ChatMessage[] = [];
  for (const [i, m] of (v.messages as unknown[]).entries()) {
    const mm = m as Record<string, unknown> | null;
    if (typeof mm?.role !== 'string' || !ROLES.has(mm.role))
      return `messages[${i}].role is not system/user/assistant`;
    if (typeof mm.content !== 'string') return `messages[${i}].content is not a string`;
    messages.push({ role: mm.role as ChatMessage['role'], content: mm.content });
  }
  return { dataset: typeof v.dataset === 'string' ? v.dataset : (fallback?.dataset ?? 'lima'), id, messages };
}

/**
 * LIMA (1,030 examples: 1,000 single-turn + 30 multi-turn). With `removeInstructions`, every user
 * turn's content becomes '' — the paper's `remove_instructions.py` (response tuning); system and
 * assistant turns are kept as they are.
 */
export async function buildLima(dataDir: string, removeInstructions: boolean): Promise<RecipeOutput> {
  const file = 'lima/lima_data.jsonl';
  const lines = parseJsonlLines(await readRawText(join(dataDir, file)));
  const examples: ChatExample[] = [];
  const issues: RowIssue[] = [];
  for (const l of lines) {
    const ex = 'error' in l ? l.error : toChatExample(l.value);
    if (typeof ex === 'string') {
      issues.push({ kind: 'malformed', file, line: l.line, reason: ex });
      continue;
    }
    if (removeInstructions) {
      ex.messages = ex.messages.map((m) => (m.role === 'user' ? { role: 'user', content: '' } : m));
    }
    examples.push(ex);
  }
  return { examples, issues, rawCount: lines.length, expected: 1030 };
}
