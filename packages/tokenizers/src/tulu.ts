import { PromptError } from './errors.js';

/** One chat message. Tulu supports the roles `system`, `user` and `assistant`. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

/**
 * The Tulu chat format the paper prompts with (open-instruct's `create_prompt_with_tulu_chat_format`),
 * split where the last user message's content starts: `before + content + after` is the prompt text
 * (without BOS). Each turn is `<|system|>\n{c}\n`, `<|user|>\n{c}\n` or `<|assistant|>\n{c.trim()}{eos}\n`;
 * the prompt ends with `<|assistant|>\n`.
 *
 * @example
 * tuluParts([{ role: 'user', content: 'Hi' }], '</s>');
 * // { before: '<|user|>\n', content: 'Hi', after: '\n<|assistant|>\n' }
 */
export function tuluParts(
  messages: readonly ChatMessage[],
  eosToken: string | undefined,
): { before: string; content: string; after: string } {
  const { segments, lastUser } = tuluSegments(messages, eosToken);
  const join = (parts: readonly TuluSegment[]) => parts.map((p) => p.text).join('');
  return {
    before: join(segments.slice(0, lastUser)),
    content: segments[lastUser]!.text,
    after: join(segments.slice(lastUser + 1)),
  };
}

/** A piece of a Tulu prompt: template text, or a message's content (`content: true`). @internal */
export interface TuluSegment {
  text: string;
  content: boolean;
}

/**
 * The Tulu prompt of `tuluParts` as template and content segments, and the index of the last user
 * message's content segment. @internal
 */
export function tuluSegments(
  messages: readonly ChatMessage[],
  eosToken: string | undefined,
): { segments: TuluSegment[]; lastUser: number } {
  const last = lastUserIndex(messages);
  const segments: TuluSegment[] = [];
  const template = (text: string) => {
    const prev = segments[segments.length - 1];
    if (prev !== undefined && !prev.content) prev.text += text;
    else segments.push({ text, content: false });
  };
  let lastUser = -1;
  messages.forEach((m, i) => {
    switch (m.role) {
      case 'system':
      case 'user':
        template(`<|${m.role}|>\n`);
        if (i === last) lastUser = segments.length;
        segments.push({ text: m.content, content: true });
        template('\n');
        return;
      case 'assistant':
        if (eosToken === undefined) {
          throw new PromptError(
            'tokenizers.invalid_prompt',
            `messages[${i}]: an assistant turn ends with the EOS token, and this tokenizer has none; ` +
              'pass eosIds to loadTokenizer',
          );
        }
        template('<|assistant|>\n');
        segments.push({ text: m.content.trim(), content: true });
        template(`${eosToken}\n`);
        return;
      default:
        throw new PromptError(
          'tokenizers.invalid_prompt',
          `messages[${i}].role: the Tulu format supports 'system', 'user' and 'assistant', got ${JSON.stringify(m.role)}`,
        );
    }
  });
  template('<|assistant|>\n');
  return { segments, lastUser };
}

/** Index of the last `user` message; throws `PromptError` for an empty or malformed list. */
export function lastUserIndex(messages: readonly ChatMessage[]): number {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new PromptError('tokenizers.invalid_prompt', 'messages: give at least one message');
  }
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new PromptError(
        'tokenizers.invalid_prompt',
        `messages[${i}]: a message is { role: string, content: string }, got ${JSON.stringify(m)}`,
      );
    }
  });
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return i;
  throw new PromptError(
    'tokenizers.invalid_prompt',
    'messages: no user message; the rules scope starts at the last user message, so give one',
  );
}
