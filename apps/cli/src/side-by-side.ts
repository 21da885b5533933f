import type { Style } from './output.js';

const isControl = (ch: string) => {
  const code = ch.codePointAt(0)!;
  return code < 0x20 || code === 0x7f;
};

/** Splits text into lines of at most `width` characters (code points), breaking at spaces when it can. */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const paragraph of text.replace(/\t/g, '  ').split('\n')) {
    // control characters (a random model emits them) would move the terminal's cursor: show them as U+FFFD
    let rest = [...paragraph].map((ch) => (isControl(ch) ? '\ufffd' : ch));
    if (rest.length === 0) out.push('');
    while (rest.length > 0) {
      if (rest.length <= width) {
        out.push(rest.join(''));
        break;
      }
      let cut = rest.lastIndexOf(' ', width);
      if (cut <= 0) cut = width;
      out.push(rest.slice(0, cut).join(''));
      rest = rest.slice(cut === width ? cut : cut + 1);
    }
  }
  return out;
}

/**
 * Columns of text side by side, each wrapped to its share of `width`, with a title and footer.
 *
 * @example
 * sideBySide([{ title: 'base', text: 'a' }, { title: 'rules', text: 'b' }], 80, (_, s) => s);
 */
export function sideBySide(
  columns: { title: string; text: string; footer?: string }[],
  width: number,
  paint: (style: Style, text: string) => string,
): string {
  const gap = ' │ ';
  const w = Math.max(10, Math.floor((width - gap.length * (columns.length - 1)) / columns.length));
  const cells = columns.map((c) => wrap(c.text, w));
  const rows = Math.max(...cells.map((c) => c.length));
  const pad = (s: string) => s + ' '.repeat(Math.max(0, w - [...s].length));
  const line = (parts: string[]) => `${parts.join(gap).trimEnd()}\n`;
  let out = line(columns.map((c) => paint('bold', pad(c.title.slice(0, w)))));
  out += line(columns.map(() => '─'.repeat(w)));
  for (let r = 0; r < rows; r++) out += line(cells.map((c) => pad(c[r] ?? '')));
  if (columns.some((c) => c.footer)) {
    out += line(columns.map(() => '─'.repeat(w)));
    out += line(columns.map((c) => paint('dim', pad((c.footer ?? '').slice(0, w)))));
  }
  return out;
}
