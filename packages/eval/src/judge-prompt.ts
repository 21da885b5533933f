import { sha256 } from './hash.js';

/**
 * A chat message of an OpenAI-compatible request.
 *
 * @example
 * const messages: ChatMessage[] = [{ role: 'user', content: 'Which answer is better?' }];
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/**
 * The two identifiers the judge answers with; `m` labels the answer shown first.
 *
 * @example
 * const answer = response.choices[0]?.message?.content?.trim();
 * const readable = JUDGE_LABELS.some((label) => label === answer);
 */
export const JUDGE_LABELS = ['m', 'M'] as const;

const SYSTEM = [
  'You compare the answers that two AI assistants gave to the same request and pick the one a careful',
  'human reader would prefer. Your choice feeds a ranking of assistants, so judge only the quality of',
  'the answers.',
].join(' ');

/**
 * The judge prompt: our own wording, with the structure of alpaca_eval's weighted GPT-4-turbo
 * classifier prompt (a system message; the instruction; two outputs labelled `m` and `M`; a request
 * for a one-token answer). Like that prompt, it says nothing of the answers' length or order: an
 * instruction about length would move the judge away from the preferences AlpacaEval measures.
 * Texts are embedded as JSON strings, so no output can break the layout.
 *
 * @example
 * const messages = judgeMessages('Name a prime.', '7', 'Nine.'); // '7' is labelled m, 'Nine.' M
 */
export function judgeMessages(instruction: string, first: string, second: string): ChatMessage[] {
  const answers = [
    `  {"assistant": "m", "answer": ${JSON.stringify(first)}}`,
    `  {"assistant": "M", "answer": ${JSON.stringify(second)}}`,
  ].join(',\n');
  const user = [
    'Below is a request that was sent to two assistants, followed by the answer of each. The assistants are identified as "m" and "M".',
    '',
    '## Request',
    '',
    `{"request": ${JSON.stringify(instruction)}}`,
    '',
    '## Answers',
    '',
    `[\n${answers}\n]`,
    '',
    '## What to do',
    '',
    'Decide which answer is better overall: more helpful, correct, relevant to the request and clearly written.',
    'Reply with the identifier of the better assistant and nothing else: the single character m or the single',
    'character M, without quotes, spaces, punctuation or explanation.',
    '',
    '## Better assistant',
  ].join('\n');
  return [
    { role: 'system', content: SYSTEM },
    { role: 'user', content: user },
  ];
}

/**
 * Whether the judge sees the model's output first (labelled `m`): a fair coin seeded by the
 * instruction and `seed`, so the order is random across instructions but the same on every rerun.
 *
 * @example
 * isSwitched('Name a prime.'); // false, on every run (another instruction may give true)
 */
export function isSwitched(instruction: string, seed: number | string = 0): boolean {
  return Number.parseInt(sha256(`order:${seed}:${instruction}`).slice(0, 2), 16) % 2 === 1;
}
