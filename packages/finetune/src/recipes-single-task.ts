import { join } from 'node:path';
import type { ChatExample } from './messages.js';
import { cleanMovetext, headerLine, splitPgnGames } from './pgn.js';
import { parsePythonStringList } from './python-list.js';
import { parseCsvRecords, parseJsonlLines, readRawText } from './raw-files.js';
import type { RecipeOutput } from './recipe-output.js';
import type { RowIssue } from './row-issue.js';

function pair(dataset: string, id: string, user: string, assistant: string): ChatExample {
  return {
    dataset,
    id,
    messages: [
      { role: 'user', content: user },
      { role: 'assistant', content: assistant },
    ],
  };
}

function stringFields(value: unknown, fields: string[]): Record<string, string> | string {
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  for (const f of fields) if (typeof v[f] !== 'string') return `field "${f}" is not a string`;
  return v as Record<string, string>;
}

/**
 * GSM8K: the first 1,000 rows of the train file; user = question, assistant = answer. As in the
 * paper's make_gsm.py the cut counts source rows, so a malformed row among the first 1,000 is
 * reported and leaves the count at 999 rather than pulling in row 1,001. Ids `gsm8k_{row}`.
 */
export async function buildGsm(dataDir: string): Promise<RecipeOutput> {
  const file = 'gsm8k/train.jsonl';
  const lines = parseJsonlLines(await readRawText(join(dataDir, file)));
  const examples: ChatExample[] = [];
  const issues: RowIssue[] = [];
  for (const [i, l] of lines.slice(0, 1000).entries()) {
    const row = 'error' in l ? l.error : stringFields(l.value, ['question', 'answer']);
    if (typeof row === 'string') issues.push({ kind: 'malformed', file, line: l.line, reason: row });
    else examples.push(pair('gsm8k', `gsm8k_${i}`, row.question!, row.answer!));
  }
  return { examples, issues, rawCount: lines.length, expected: 1000 };
}

/**
 * MBPP: Hugging Face's "full" train split, i.e. task_id 601..974 (374 rows) in task_id order;
 * user = text, assistant = code, both as they are: the code keeps its Windows line ends (`\r\n`), as
 * make_mbpp.py wrote them from Hugging Face's loader (the paper trained on them). Ids
 * `mbpp_{index in split}` as make_mbpp.py numbers them.
 */
export async function buildMbpp(dataDir: string): Promise<RecipeOutput> {
  const file = 'mbpp/mbpp.jsonl';
  const lines = parseJsonlLines(await readRawText(join(dataDir, file)));
  const rows: { taskId: number; text: string; code: string }[] = [];
  const issues: RowIssue[] = [];
  for (const l of lines) {
    const row = 'error' in l ? l.error : stringFields(l.value, ['text', 'code']);
    const taskId = 'error' in l ? undefined : (l.value as Record<string, unknown>).task_id;
    if (typeof row === 'string' || typeof taskId !== 'number') {
      issues.push({
        kind: 'malformed',
        file,
        line: l.line,
        reason: typeof row === 'string' ? row : 'field "task_id" is not a number',
      });
      continue;
    }
    if (taskId >= 601 && taskId <= 974) rows.push({ taskId, text: row.text!, code: row.code! });
  }
  rows.sort((a, b) => a.taskId - b.taskId);
  const examples = rows.map((r, i) => pair('mbpp', `mbpp_${i}`, r.text, r.code));
  return { examples, issues, rawCount: lines.length, expected: 374 };
}

/**
 * Poetry: user = "Write a poem called " + poem name, assistant = content; rows without a name are
 * skipped (573 rows, 571 examples). Ids `merve_poetry_{row}` keep the row index, gaps included,
 * as make_poetry.py does.
 */
export async function buildPoetry(dataDir: string): Promise<RecipeOutput> {
  const file = 'poetry/poems.csv';
  const { records } = parseCsvRecords(await readRawText(join(dataDir, file)));
  const examples: ChatExample[] = [];
  const issues: RowIssue[] = [];
  for (const [i, r] of records.slice(0, 1000).entries()) {
    if ('error' in r) {
      issues.push({ kind: 'malformed', file, line: r.line, reason: r.error });
      continue;
    }
    const name = r.row['poem name'];
    const content = r.row.content;
    if (name === undefined || content === undefined) {
      issues.push({ kind: 'malformed', file, line: r.line, reason: 'no "poem name"/"content" column' });
    } else if (name === '') {
      issues.push({
        kind: 'skipped',
        file,
        line: r.line,
        reason: 'empty "poem name" (the paper skips rows without a name)',
      });
    } else {
      examples.push(pair('merve_poetry', `merve_poetry_${i}`, `Write a poem called ${name}`, content));
    }
  }
  return { examples, issues, rawCount: records.length, expected: 571 };
}

/**
 * Recipes: the first 1,000 rows; user = "Recipe for " + Title; assistant = " - " + ingredient +
 * "\n" per ingredient, then "\n\n", then Instructions (make_kfr.py's layout). The Ingredients
 * column is a Python list literal, parsed safely (the paper used eval). Ids `recipes_{row}`.
 */
export async function buildRecipes(dataDir: string): Promise<RecipeOutput> {
  const file = 'recipes/recipes.csv';
  const { records } = parseCsvRecords(await readRawText(join(dataDir, file)));
  const examples: ChatExample[] = [];
  const issues: RowIssue[] = [];
  for (const [i, r] of records.slice(0, 1000).entries()) {
    if ('error' in r) {
      issues.push({ kind: 'malformed', file, line: r.line, reason: r.error });
      continue;
    }
    const { Title: title, Ingredients: ingredients, Instructions: instructions } = r.row;
    if (title === undefined || ingredients === undefined || instructions === undefined) {
      issues.push({
        kind: 'malformed',
        file,
        line: r.line,
        reason: 'missing Title/Ingredients/Instructions column',
      });
      continue;
    }
    let list: string[];
    try {
      list = parsePythonStringList(ingredients);
    } catch (e) {
      issues.push({
        kind: 'malformed',
        file,
        line: r.line,
        reason: `Ingredients is not a Python list of strings: ${(e as Error).message}`,
      });
      continue;
    }
    const body = `${list.map((x) => ` - ${x}\n`).join('')}\n\n${instructions}`;
    examples.push(pair('recipes', `recipes_${i}`, `Recipe for ${title}`, body));
  }
  return { examples, issues, rawCount: records.length, expected: 1000 };
}

/**
 * Chess: games in file order until 1,000 are written (make_pgn.py's loop); user = the WhiteElo
 * header line + "\n" + the BlackElo header line + "\n"; assistant = the movetext without comments
 * and clock annotations, result included. Games without both Elo headers or without moves are
 * reported and skipped. Ids `chess_{game index}`.
 */
export async function buildChess(dataDir: string): Promise<RecipeOutput> {
  const file = 'chess/games.pgn';
  const games = splitPgnGames(await readRawText(join(dataDir, file)));
  const examples: ChatExample[] = [];
  const issues: RowIssue[] = [];
  for (const [i, g] of games.entries()) {
    if (examples.length === 1000) break;
    const white = headerLine(g.headers, 'WhiteElo');
    const black = headerLine(g.headers, 'BlackElo');
    const moves = cleanMovetext(g.movetext);
    if (!white || !black)
      issues.push({ kind: 'malformed', file, line: g.line, reason: 'no [WhiteElo]/[BlackElo] header' });
    else if (!moves.startsWith('1.'))
      issues.push({ kind: 'malformed', file, line: g.line, reason: 'no movetext starting with "1."' });
    else examples.push(pair('chess', `chess_${i}`, `${white}\n${black}\n`, moves));
  }
  return { examples, issues, rawCount: games.length, expected: 1000 };
}
