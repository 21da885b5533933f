import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRules, rulesLabel } from '../src/flags.js';
import { run, tinyModelDir } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'cli-rules-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec = { eos: { maxBonus: 5 }, uniform: {} };

// Notepad and Windows PowerShell 5 (`Out-File -Encoding utf8`, `Set-Content -Encoding UTF8`) begin a
// UTF-8 file with a byte order mark, which is no part of the JSON
describe('--rules @file.json saved with a UTF-8 BOM', () => {
  const bom = join(dir, 'bom.json');
  writeFileSync(bom, `\uFEFF${JSON.stringify(spec)}\r\n`);

  it('reads as the same rule set, named by its file', () => {
    const parsed = parseRules(`@${bom}`);
    expect(parsed).toEqual(spec);
    expect(rulesLabel(parsed)).toBe(`@${bom}`);
  });

  it('is still refused when what follows the BOM is not JSON', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '\uFEFF{"eos": ');
    expect(() => parseRules(`@${bad}`)).toThrow(`--rules: ${bad} is not valid JSON (`);
    // only one leading BOM is skipped: a second is a character JSON does not allow
    const twice = join(dir, 'twice.json');
    writeFileSync(twice, `\uFEFF\uFEFF${JSON.stringify(spec)}`);
    expect(() => parseRules(`@${twice}`)).toThrow(`--rules: ${twice} is not valid JSON (`);
  });

  it('steers rules trace as the same file without the BOM does', async () => {
    const file = join(dir, 'rules.json');
    const trace = () =>
      tinyModelDir().then((model) =>
        run([
          'rules',
          'trace',
          '--tokenizer',
          model,
          '--rules',
          `@${file}`,
          '--instruction',
          'Hi',
          '--response',
          'Hello',
        ]),
      );
    writeFileSync(file, JSON.stringify(spec));
    const without = await trace();
    writeFileSync(file, `\uFEFF${JSON.stringify(spec)}`);
    const withBom = await trace();
    expect(without.code).toBe(0);
    expect(withBom).toEqual(without);
  });
});
