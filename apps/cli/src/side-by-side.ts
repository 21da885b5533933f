import type { Style } from './output.js';

const isControl = (ch: string) => {
  const code = ch.codePointAt(0)!;
  return code < 0x20 || code === 0x7f;
};

/** A piece of text and how to paint it (`null`: plain). */
export interface Span {
  text: string;
  style: Style | null;
}

type Cell = { ch: string; style: Style | null };

/**
 * Splits styled text into lines of at most `width` characters (code points), breaking at spaces when
 * it can; each character keeps its span's style.
 */
function wrapCells(spans: readonly Span[], width: number): Cell[][] {
  const out: Cell[][] = [];
  let paragraph: Cell[] = [];
  const flush = () => {
    let rest = paragraph;
    if (rest.length === 0) out.push([]);
    while (rest.length > 0) {
      if (rest.length <= width) {
        out.push(rest);
        break;
      }
      let cut = -1;
      for (let k = Math.min(width, rest.length - 1); k > 0; k--) {
        if (rest[k]!.ch === ' ') {
          cut = k;
          break;
        }
      }
      if (cut <= 0) cut = width;
      out.push(rest.slice(0, cut));
      rest = rest.slice(cut === width ? cut : cut + 1);
    }
    paragraph = [];
  };
  for (const { text, style } of spans) {
    for (const ch of text) {
      if (ch === '\n') flush();
      else if (ch === '\t') paragraph.push({ ch: ' ', style }, { ch: ' ', style });
      // control characters (a random model emits them) would move the terminal's cursor: show them as U+FFFD
      else paragraph.push({ ch: isControl(ch) ? '\ufffd' : ch, style });
    }
  }
  flush();
  return out;
}

/** Rows empty in every column, in a run at least this long, print as one row that counts them. */
export const BLANK_RUN = 4;

/**
 * Columns of text side by side, each wrapped to its share of `width`, with a title and footer. A
 * column's `spans` (its text in styled pieces, joining to `text`) paint it, as `generate --trace`
 * paints one answer. A run of `BLANK_RUN` or more rows empty in every column (a base model's answer
 * of newlines, beside a short one) prints as one dim line, `⋮ N empty lines`.
 *
 * @example
 * sideBySide([{ title: 'base', text: 'a' }, { title: 'rules', text: 'b' }], 80, (_, s) => s);
 */
export function sideBySide(
  columns: { title: string; text: string; spans?: readonly Span[]; footer?: string }[],
  width: number,
  paint: (style: Style, text: string) => string,
): string {
  const gap = ' │ ';
  const w = Math.max(10, Math.floor((width - gap.length * (columns.length - 1)) / columns.length));
  const cells = columns.map((c) => wrapCells(c.spans ?? [{ text: c.text, style: null }], w));
  const rows = Math.max(...cells.map((c) => c.length));
  const pad = (s: string) => s + ' '.repeat(Math.max(0, w - [...s].length));
  const render = (line: readonly Cell[]) => {
    let out = '';
    for (let i = 0; i < line.length; ) {
      const style = line[i]!.style;
      let j = i;
      while (j < line.length && line[j]!.style === style) j++;
      const run = line
        .slice(i, j)
        .map((c) => c.ch)
        .join('');
      out += style ? paint(style, run) : run;
      i = j;
    }
    return out + ' '.repeat(Math.max(0, w - line.length));
  };
  const line = (parts: string[]) => `${parts.join(gap).trimEnd()}\n`;
  let out = line(columns.map((c) => paint('bold', pad(c.title.slice(0, w)))));
  out += line(columns.map(() => '─'.repeat(w)));
  const blank = (r: number) => cells.every((c) => (c[r] ?? []).length === 0);
  for (let r = 0; r < rows; ) {
    let end = r;
    while (end < rows && blank(end)) end++;
    if (end - r >= BLANK_RUN) {
      out += line([paint('dim', `⋮ ${end - r} empty lines`)]);
      r = end;
    } else {
      out += line(cells.map((c) => render(c[r] ?? [])));
      r++;
    }
  }
  if (columns.some((c) => c.footer)) {
    out += line(columns.map(() => '─'.repeat(w)));
    out += line(columns.map((c) => paint('dim', pad((c.footer ?? '').slice(0, w)))));
  }
  return out;
}
