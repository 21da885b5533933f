// Python's str.strip() with no argument removes the characters for which str.isspace() is true.
// JavaScript's String.prototype.trim() differs: it also strips U+FEFF and keeps U+001C..U+001F and
// U+0085. open-instruct strips with Python, so we do exactly what Python does.
const PY_SPACE =
  '\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';

/**
 * Python's `str.strip()`: removes leading and trailing characters for which `str.isspace()` is true.
 *
 * @example
 * pythonStrip('\u00a0 hi \x1c'); // 'hi'
 * pythonStrip('\ufeffhi');       // '\ufeffhi' (Python keeps the BOM; String.trim would not)
 */
export function pythonStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PY_SPACE.includes(text[start]!)) start++;
  while (end > start && PY_SPACE.includes(text[end - 1]!)) end--;
  return text.slice(start, end);
}
