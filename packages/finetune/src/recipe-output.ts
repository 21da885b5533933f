import type { ChatExample } from './messages.js';
import type { RowIssue } from './row-issue.js';

/**
 * What a dataset recipe makes of its raw files.
 *
 * @example
 * const built: RecipeOutput = await getDatasetRecipe('gsm').build('../shared/data');
 * built.examples.length; // 1000
 * built.rawCount; // 7473
 * built.expected; // 1000
 */
export interface RecipeOutput {
  examples: ChatExample[];
  /** Rows skipped on purpose or unparseable, with their lines. */
  issues: RowIssue[];
  /** Raw records read (before the recipe's cut, e.g. all 7,473 GSM8K rows). */
  rawCount: number;
  /** How many examples the recipe is meant to produce (the paper's count); the build reports any shortfall. */
  expected: number;
}
