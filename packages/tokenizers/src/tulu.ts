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
  const last = lastUserIndex(messages);
  const turn = (m: ChatMessage, i: number): string => {
    switch (m.role) {
      case 'system':
        return `<|system|>\n${m.content}\n`;
      case 'user':
        return `<|user|>\n${m.content}\n`;
      case 'assistant':
        if (eosToken === undefined) {
          throw new PromptError(
            'tokenizers.invalid_prompt',
            `messages[${i}]: an assistant turn ends with the EOS token, and this tokenizer has none; ` +
              'pass eosIds to loadTokenizer',
          );
        }
        return `<|assistant|>\n${m.content.trim()}${eosToken}\n`;
      default:
        throw new PromptError(
          'tokenizers.invalid_prompt',
          `messages[${i}].role: the Tulu format supports 'system', 'user' and 'assistant', got ${JSON.stringify(m.role)}`,
        );
    }
  };
  const before = `${messages.slice(0, last).map(turn).join('')}<|user|>\n`;
  const after = `\n${messages
    .slice(last + 1)
    .map((m, i) => turn(m, last + 1 + i))
    .join('')}<|assistant|>\n`;
  return { before, content: messages[last]!.content, after };
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
