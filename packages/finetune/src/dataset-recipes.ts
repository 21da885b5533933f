import { FinetuneOptionError } from './errors.js';
import type { RecipeOutput } from './recipe-output.js';
import { buildLima } from './recipes-lima.js';
import { buildChess, buildGsm, buildMbpp, buildPoetry, buildRecipes } from './recipes-single-task.js';

/**
 * The paper's seven training sets.
 *
 * @example
 * for (const recipe of DATASET_RECIPE_NAMES) await buildDataset({ recipe, out: `data/${recipe}.jsonl` });
 */
export const DATASET_RECIPE_NAMES = [
  'lima',
  'lima-response',
  'gsm',
  'mbpp',
  'poetry',
  'recipes',
  'chess',
] as const;

/**
 * A dataset recipe name: `lima` (instruction tuning), `lima-response` (response tuning) or a single task.
 *
 * @example
 * const name: DatasetRecipeName = 'lima-response';
 * DATASET_RECIPES[name].files; // ['lima/lima_data.jsonl']
 */
export type DatasetRecipeName = (typeof DATASET_RECIPE_NAMES)[number];

/**
 * A dataset recipe: the raw files it reads (relative to the data dir) and how it builds examples.
 *
 * @example
 * const recipe: DatasetRecipe = DATASET_RECIPES.poetry;
 * recipe.description; // 'Poems by title (571)'
 * recipe.files; // ['poetry/poems.csv']
 */
export interface DatasetRecipe {
  name: DatasetRecipeName;
  description: string;
  files: string[];
  build(dataDir: string): Promise<RecipeOutput>;
}

/**
 * Every dataset recipe by name.
 *
 * @example
 * DATASET_RECIPES.mbpp.files; // ['mbpp/mbpp.jsonl']
 */
export const DATASET_RECIPES: Readonly<Record<DatasetRecipeName, DatasetRecipe>> = {
  lima: {
    name: 'lima',
    description: 'LIMA instruction-response pairs (instruction tuning, the comparison model)',
    files: ['lima/lima_data.jsonl'],
    build: (d) => buildLima(d, false),
  },
  'lima-response': {
    name: 'lima-response',
    description: 'LIMA responses with every user turn emptied (response tuning)',
    files: ['lima/lima_data.jsonl'],
    build: (d) => buildLima(d, true),
  },
  gsm: { name: 'gsm', description: 'GSM8K math, first 1,000', files: ['gsm8k/train.jsonl'], build: buildGsm },
  mbpp: {
    name: 'mbpp',
    description: 'MBPP Python, task_id 601..974 (374)',
    files: ['mbpp/mbpp.jsonl'],
    build: buildMbpp,
  },
  poetry: {
    name: 'poetry',
    description: 'Poems by title (571)',
    files: ['poetry/poems.csv'],
    build: buildPoetry,
  },
  recipes: {
    name: 'recipes',
    description: 'Recipes by title, first 1,000',
    files: ['recipes/recipes.csv'],
    build: buildRecipes,
  },
  chess: {
    name: 'chess',
    description: 'Chess games from Elo headers, 1,000',
    files: ['chess/games.pgn'],
    build: buildChess,
  },
};

/**
 * Looks a recipe up by name, with an error that lists the valid names.
 *
 * @example
 * getDatasetRecipe('gsm').description; // 'GSM8K math, first 1,000'
 */
export function getDatasetRecipe(name: string): DatasetRecipe {
  if (!(DATASET_RECIPE_NAMES as readonly string[]).includes(name)) {
    throw new FinetuneOptionError(
      'recipe',
      `unknown recipe "${name}"; use one of ${DATASET_RECIPE_NAMES.join(', ')}`,
    );
  }
  return DATASET_RECIPES[name as DatasetRecipeName];
}
