import { idVocabulary } from '../src/index.js';

/** rules-spec.md: the Llama-2 ids of the Tulu prompt for "Give me a recipe for tiramisu." (S = 7, P = 26). */
export const TIRAMISU = [
  1, 529, 29989, 1792, 29989, 29958, 13, 29954, 573, 592, 263, 9522, 412, 363, 19493, 314, 28311, 29889, 13,
  29966, 29989, 465, 22137, 29989, 29958, 13,
];
export const S = 7;
export const P = 26;

/** Llama-2: 32000 ids, EOS `</s>` = 2. */
export const llama2 = idVocabulary({ size: 32000, eosIds: [2] });

/** The uniform table of rules-spec.md, by Llama-2 id (hewitt2024 = reference code). */
export const UNIFORM_LLAMA2: Record<number, number> = {
  29966: -4,
  529: -4,
  29989: -4,
  306: -5,
  29902: -5,
  1334: -3,
  5618: -5,
  881: -6,
  334: 1,
  448: 1,
  1678: 1,
  396: 1,
  444: 1,
  13: 1,
  29991: 1,
};

export const toRecord = (m: Map<number, number>) => Object.fromEntries([...m].map(([k, v]) => [k, v]));
