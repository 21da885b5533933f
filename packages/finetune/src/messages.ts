/**
 * A chat role, as open-instruct's `messages` format names them.
 *
 * @example
 * const role: Role = 'system';
 * const messages: ChatMessage[] = [{ role, content: 'Answer briefly.' }, { role: 'user', content: 'Why is the sky blue?' }];
 */
export type Role = 'system' | 'user' | 'assistant';

/**
 * One chat message.
 *
 * @example
 * const answer: ChatMessage = { role: 'assistant', content: 'Paris.' };
 * concatMessages([{ role: 'user', content: 'Capital of France?' }, answer], '</s>');
 * // '<|user|>\nCapital of France?\n<|assistant|>\nParis.</s>\n'
 */
export interface ChatMessage {
  role: Role;
  content: string;
}

/**
 * One training example in the open-instruct `messages` format, one per JSONL line.
 *
 * @example
 * const ex: ChatExample = { dataset: 'gsm8k', id: 'gsm8k_0', messages: [
 *   { role: 'user', content: 'What is 2+2?' }, { role: 'assistant', content: '4' }] };
 */
export interface ChatExample {
  dataset: string;
  id: string;
  messages: ChatMessage[];
}
