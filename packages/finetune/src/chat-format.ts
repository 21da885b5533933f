import { pythonStrip } from '@implicit-it/rules';
import { EncodeError } from './errors.js';
import type { ChatMessage } from './messages.js';

/**
 * The assistant tag that follows every non-assistant message in the Tulu format.
 *
 * @example
 * const prompt = `<|user|>\nWrite a haiku about rain.\n${ASSISTANT_TAG}`; // the model's response starts here
 */
export const ASSISTANT_TAG = '<|assistant|>\n';

/**
 * open-instruct's `_concat_messages`: `<|system|>\n`, `<|user|>\n` or `<|assistant|>\n`, then the
 * content stripped (Python's strip), then `eos` after assistant content, then `\n`. Not stripped
 * as a whole: the caller strips the full text, while mask boundaries come from these unstripped
 * prefixes (as open-instruct computes them).
 *
 * @example
 * concatMessages([{ role: 'user', content: ' Hi ' }, { role: 'assistant', content: 'Hello' }], '</s>');
 * // '<|user|>\nHi\n<|assistant|>\nHello</s>\n'
 */
export function concatMessages(messages: ChatMessage[], eosToken: string, exampleId = '?'): string {
  let text = '';
  messages.forEach((m, i) => {
    const content = pythonStrip(m.content);
    if (m.role === 'system') text += `<|system|>\n${content}\n`;
    else if (m.role === 'user') text += `<|user|>\n${content}\n`;
    else if (m.role === 'assistant') text += `<|assistant|>\n${content}${eosToken}\n`;
    else {
      throw new EncodeError(
        exampleId,
        `messages[${i}].role`,
        `invalid role ${JSON.stringify(m.role)}; use system, user or assistant`,
      );
    }
  });
  return text;
}
