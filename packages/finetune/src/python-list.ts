/**
 * Parses a Python list of string literals, as pandas wrote the recipes' `Ingredients` column
 * (`"['2 lbs potatoes', \"chef's knife\"]"`), without evaluating anything. The paper used Python's
 * `eval`; this accepts only `[`, `]`, commas, whitespace and single- or double-quoted strings with
 * Python's escapes, and throws a `SyntaxError` naming the offset otherwise.
 *
 * @example
 * parsePythonStringList("['1 egg', \"baker's yeast\", 'a\\\\b']"); // ['1 egg', "baker's yeast", 'a\\b']
 */
export function parsePythonStringList(text: string): string[] {
  let i = 0;
  const out: string[] = [];
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at offset ${i} of ${JSON.stringify(text.slice(0, 60))}`);
  };
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  skipSpace();
  if (text[i] !== '[') fail('expected "["');
  i++;
  skipSpace();
  if (text[i] === ']') {
    i++;
  } else {
    for (;;) {
      skipSpace();
      out.push(readString());
      skipSpace();
      if (text[i] === ',') {
        i++;
        skipSpace();
        if (text[i] === ']') {
          i++;
          break;
        }
        continue;
      }
      if (text[i] === ']') {
        i++;
        break;
      }
      fail('expected "," or "]"');
    }
  }
  skipSpace();
  if (i !== text.length) fail('unexpected text after "]"');
  return out;

  function readString(): string {
    const quote = text[i];
    if (quote !== "'" && quote !== '"') return fail('expected a quoted string');
    i++;
    let s = '';
    while (i < text.length && text[i] !== quote) {
      const c = text[i]!;
      if (c === '\n') fail('newline inside a string literal');
      if (c !== '\\') {
        s += c;
        i++;
        continue;
      }
      const e = text[i + 1];
      i += 2;
      switch (e) {
        case 'n':
          s += '\n';
          break;
        case 't':
          s += '\t';
          break;
        case 'r':
          s += '\r';
          break;
        case '\\':
        case "'":
        case '"':
          s += e;
          break;
        case '\n':
          break; // line continuation
        case 'x':
          s += hex(2);
          break;
        case 'u':
          s += hex(4);
          break;
        case 'U':
          s += hex(8);
          break;
        default:
          // Python keeps unknown escapes verbatim, backslash included.
          s += `\\${e ?? ''}`;
      }
    }
    if (text[i] !== quote) fail('unterminated string literal');
    i++;
    return s;
  }

  function hex(n: number): string {
    const digits = text.slice(i, i + n);
    if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(digits)) fail(`bad \\x/\\u escape "${digits}"`);
    i += n;
    return String.fromCodePoint(Number.parseInt(digits, 16));
  }
}
