import { describe, expect, it } from 'vitest';
import { BLANK_RUN, sideBySide } from '../src/side-by-side.js';

const plain = (_style: string, text: string) => text;

describe('sideBySide', () => {
  it('wraps each column to its share of the width, with titles and footers', () => {
    const out = sideBySide(
      [
        { title: 'base', text: 'one two three', footer: '3 tokens' },
        { title: 'rules', text: 'four', footer: '1 token' },
      ],
      23,
      plain,
    );
    expect(out).toBe(
      [
        'base       │ rules',
        '────────── │ ──────────',
        'one two    │ four',
        'three      │',
        '────────── │ ──────────',
        '3 tokens   │ 1 token',
        '',
      ].join('\n'),
    );
  });

  it('prints a run of rows empty in every column as one row that counts them', () => {
    const newlines = '\n'.repeat(240);
    const out = sideBySide(
      [
        { title: 'base', text: `a${newlines}b` },
        { title: 'rules', text: 'x\n\ny' },
      ],
      23,
      plain,
    );
    // rows 2 and 3 are empty only in the base column (the rules column has "" then "y"): kept
    expect(out).toBe(
      [
        'base       │ rules',
        '────────── │ ──────────',
        'a          │ x',
        '           │',
        '           │ y',
        '⋮ 237 empty lines',
        'b          │',
        '',
      ].join('\n'),
    );
    // a run one row shorter is printed as it is; BLANK_RUN rows are counted
    const rows = (empty: number) =>
      sideBySide([{ title: 'a', text: `a${'\n'.repeat(empty + 1)}b` }], 20, plain)
        .split('\n')
        .slice(2, -1);
    expect(rows(BLANK_RUN - 1)).toEqual(['a', ...Array(BLANK_RUN - 1).fill(''), 'b']);
    expect(rows(BLANK_RUN)).toEqual(['a', `⋮ ${BLANK_RUN} empty lines`, 'b']);
  });
});
