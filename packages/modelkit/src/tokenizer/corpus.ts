/**
 * The built-in training text of the tiny tokenizer: plain English about following instructions, and
 * chat turns in the Tulu format (`<|user|>` / `<|assistant|>` as ordinary text), so common words and
 * the chat markers get their own merges.
 *
 * @example
 * const bpe = trainByteLevelBpe(BUILTIN_CORPUS, { merges: 100 });
 */
export const BUILTIN_CORPUS = [
  'Instruction following without instruction tuning.',
  'A base language model continues text. An instruction tuned model answers the request in the message.',
  'The paper shows that training on responses alone, without the instructions, still yields a model that follows instructions.',
  'Training on a single task, such as poetry or code, also yields general instruction following.',
  'A simple rule-based adapter changes the distribution of the next token at decoding time:',
  'it slowly raises the probability of the end of sequence token, it changes the probability of a few common tokens,',
  'and it penalizes tokens that were already used in the response. The base model then follows instructions.',
  'The model reads the prompt, then writes the answer one token at a time, and stops at the end of the answer.',
  'Tokens are pieces of words. Common words are single tokens; rare words are split into several pieces.',
  'The quick brown fox jumps over the lazy dog. The five boxing wizards jump quickly. 0123456789.',
  'Write a short poem about the sea. Explain why the sky is blue. Give three tips for staying healthy.',
  'What is the capital of France? The capital of France is Paris.',
  'How do I sort a list in Python? Use the sorted function or the sort method of the list.',
  'I think the answer is yes, because the model learned to respond to the question in the message.',
  'It is a good idea to keep the answer short and clear, and to end it when the question is answered.',
].join('\n');

const TURNS: [string, string][] = [
  ['Write a short poem about the sea.', 'The sea is wide, the sea is blue, it sings to me and sings to you.'],
  ['Explain why the sky is blue.', 'Sunlight is scattered by the air, and blue light is scattered the most.'],
  ['Give three tips for staying healthy.', 'Eat well, sleep well, and walk every day.'],
  ['What is the capital of France?', 'The capital of France is Paris.'],
  [
    'How do I sort a list in Python?',
    'Use sorted(items) to get a new list, or items.sort() to sort in place.',
  ],
  ['Translate hello into Spanish.', 'Hola.'],
  [
    'Summarize the paper in one sentence.',
    'Models follow instructions even when they were not trained on instructions.',
  ],
  ['Is the answer yes or no?', 'I think the answer is yes.'],
];

/** The corpus plus each chat turn rendered in the Tulu format. */
export function builtinTrainingText(): string {
  const chats = TURNS.map(([u, a]) => `<|user|>\n${u}\n<|assistant|>\n${a}</s>\n`);
  return `${BUILTIN_CORPUS}\n${chats.join('')}${chats.join('')}`;
}
