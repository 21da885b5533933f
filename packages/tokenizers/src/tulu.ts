import { pythonStrip } from '@implicit-it/rules';
import { PromptError } from './errors.js';

/**
 * One chat message. Tulu supports the roles `system`, `user` and `assistant`.
 *
 * @example
 * const history: ChatMessage[] = [
 *   { role: 'user', content: 'Name a city.' },
 *   { role: 'assistant', content: 'Paris.' },
 *   { role: 'user', content: 'Another one.' },
 * ];
 * const prompt = tok.buildPrompt({ format: 'tulu', messages: history }); // scope: 'Another one.'
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

/**
 * The Tulu chat format the paper prompts with (open-instruct's `create_prompt_with_tulu_chat_format`),
 * split where the last user message's content starts (with no user message, the last message's: see
 * `scopeMessageIndex`): `before + content + after` is the prompt text (without BOS). Each turn is `<|system|>\n{c}\n`, `<|user|>\n{c}\n` or `<|assistant|>\n{c.strip()}{eos}\n` (Python's `str.strip`);
 * the prompt ends with `<|assistant|>\n`.
 *
 * @example
 * tuluParts([{ role: 'user', content: 'Hi' }], '</s>'); // { before: '<|user|>\n', content: 'Hi', after: '\n<|assistant|>\n' }
 */
export function tuluParts(
  messages: readonly ChatMessage[],
  eosToken: string | undefined,
): { before: string; content: string; after: string } {
  const { segments, scope } = tuluSegments(messages, eosToken);
  const join = (parts: readonly TuluSegment[]) => parts.map((p) => p.text).join('');
  return {
    before: join(segments.slice(0, scope)),
    content: segments[scope]!.text,
    after: join(segments.slice(scope + 1)),
  };
}

/** A piece of a Tulu prompt: template text, or a message's content (`content: true`). @internal */
export interface TuluSegment {
  text: string;
  content: boolean;
}

/**
 * The Tulu prompt of `tuluParts` as template and content segments, and `scope`, the index of the
 * content segment of the message where the rules' scope starts (`scopeMessageIndex`). @internal
 */
export function tuluSegments(
  messages: readonly ChatMessage[],
  eosToken: string | undefined,
): { segments: TuluSegment[]; scope: number } {
  const last = scopeMessageIndex(messages);
  const segments: TuluSegment[] = [];
  const template = (text: string) => {
    const prev = segments[segments.length - 1];
    if (prev !== undefined && !prev.content) prev.text += text;
    else segments.push({ text, content: false });
  };
  let scope = -1;
  messages.forEach((m, i) => {
    switch (m.role) {
      case 'system':
      case 'user':
        template(`<|${m.role}|>\n`);
        if (i === last) scope = segments.length;
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
        if (i === last) scope = segments.length;
        segments.push({ text: pythonStrip(m.content), content: true });
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
  return { segments, scope };
}

/**
 * Index of the message where the rules' scope starts: S (`Prompt.scopeStart`) is the first token of
 * its content. rules-spec.md ("Positions") defines S as the first token of the last user message, the
 * instruction the response answers. A conversation with no user message (a system prompt alone, or
 * system + assistant turns; OpenAI's chat API accepts them) has no such message: then the scope starts
 * at the last message, whatever its role, so that it still holds the text the response follows and
 * not the whole conversation. Throws `PromptError` only for an empty or malformed list.
 *
 * @internal
 */
export function scopeMessageIndex(messages: readonly ChatMessage[]): number {
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
  return messages.length - 1; // no user message: the last message
}
