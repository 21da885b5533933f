/** A chat role, as open-instruct's `messages` format names them. */
export type Role = 'system' | 'user' | 'assistant';

/** One chat message. */
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
