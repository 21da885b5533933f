import { describe, expect, it } from 'vitest';
import { pythonStrip } from '../src/index.js';

// [hex(c) for c in range(0x110000) if chr(c).isspace()], CPython 3.11
const PYTHON_SPACE = [
  0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
];

describe('pythonStrip', () => {
  it("strips exactly the characters for which Python's str.isspace() is true, at either end", () => {
    const stripped: number[] = [];
    const otherwise: number[] = []; // neither stripped nor kept whole
    for (let c = 0; c <= 0x10ffff; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue; // lone surrogates are no characters
      const ch = String.fromCodePoint(c);
      const text = `${ch}${ch}a${ch}`;
      const out = pythonStrip(text);
      if (out === 'a') stripped.push(c);
      else if (out !== text) otherwise.push(c);
    }
    expect(stripped).toEqual(PYTHON_SPACE);
    expect(otherwise).toEqual([]);
  });

  it('differs from String.prototype.trim where Python does', () => {
    expect(pythonStrip('\u00a0\x1c hi \u3000\x85')).toBe('hi');
    expect('\u00a0\x1c hi \u3000\x85'.trim()).toBe('\x1c hi \u3000\x85');
    expect(pythonStrip('\ufeffhi\ufeff')).toBe('\ufeffhi\ufeff');
    expect(pythonStrip('   ')).toBe('');
    expect(pythonStrip(' a b ')).toBe('a b');
  });
});
