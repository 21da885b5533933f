/**
 * One game of a PGN file: its header lines verbatim (e.g. `[WhiteElo "3318"]`), its movetext (its
 * lines trimmed and joined by newlines, which end `;` comments), and the 1-based line of its first header.
 *
 * @example
 * import { readFileSync } from 'node:fs';
 * const games: PgnGame[] = splitPgnGames(readFileSync('../shared/data/chess/games.pgn', 'utf8'));
 * const whiteElo = games[0]!.headers.find((h) => h.startsWith('[WhiteElo '));
 */
export interface PgnGame {
  line: number;
  headers: string[];
  movetext: string;
}

/**
 * Splits PGN text into games. A game is a block of `[Tag "value"]` lines followed by movetext
 * lines; a new header block after movetext starts the next game.
 *
 * @example
 * splitPgnGames('[White "a"]\n[Black "b"]\n\n1. e4 e5 ; a comment\n2. Nf3 1-0\n')[0].movetext; // '1. e4 e5 ; a comment\n2. Nf3 1-0'
 */
export function splitPgnGames(text: string): PgnGame[] {
  const games: PgnGame[] = [];
  let cur: PgnGame | undefined;
  let moves: string[] = [];
  const flush = () => {
    // newlines, not spaces: a `;` comment runs to its line's end, not to the game's
    if (cur) games.push({ ...cur, movetext: moves.join('\n').trim() });
    cur = undefined;
    moves = [];
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.startsWith('[')) {
      if (!cur || moves.length > 0) {
        flush();
        cur = { line: i + 1, headers: [], movetext: '' };
      }
      cur.headers.push(line);
    } else if (line.trim() !== '') {
      if (!cur) cur = { line: i + 1, headers: [], movetext: '' };
      moves.push(line.trim());
    }
  }
  flush();
  return games;
}

/**
 * Movetext without `{...}` comments (lichess' `[%eval]` and `[%clk]` annotations live there), `;`
 * comments (to their line's end), `$n` glyphs and the `12...` move numbers lichess repeats after a comment, whitespace
 * collapsed: `1. d4 { [%clk 0:01:00] } 1... d5 2. Nc3` becomes `1. d4 d5 2. Nc3`, the plain
 * form of the paper's chess data (patrickfrank1/chess-pgn-games).
 *
 * @example
 * cleanMovetext('1. d4 { [%eval 0.3] [%clk 0:01:00] } 1... d5 { [%clk 0:01:00] } 1-0'); // '1. d4 d5 1-0'
 */
export function cleanMovetext(movetext: string): string {
  return movetext
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/;[^\n]*/g, ' ')
    .replace(/\$\d+/g, ' ')
    .replace(/(^|\s)\d+\.\.\./g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * The verbatim header line of a tag, or undefined: `headerLine(['[WhiteElo "3318"]'], 'WhiteElo')` is
 * `'[WhiteElo "3318"]'`.
 */
export function headerLine(headers: string[], tag: string): string | undefined {
  return headers.find((h) => h.startsWith(`[${tag} `));
}
