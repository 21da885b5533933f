import { posix, win32 } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTokenizer, TokenizerLoadError } from '../src/index.js';
import { joinPath } from '../src/join-path.js';

// Error messages name files as `path.join(source, name)` named them on POSIX before the package stopped
// importing node:path (which a browser bundle cannot resolve): the same bytes, for any directory; a
// directory written with backslashes (a Windows path) as `path.win32.join` names them.
describe('joinPath', () => {
  it.each([
    ['models/x', 'models/x/tokenizer.json'],
    ['./models/x', 'models/x/tokenizer.json'],
    ['models/x/', 'models/x/tokenizer.json'],
    ['/abs//models/./x/', '/abs/models/x/tokenizer.json'],
    ['a/../b', 'b/tokenizer.json'],
    ['../../up', '../../up/tokenizer.json'],
    ['/..', '/tokenizer.json'],
    ['a/..', 'tokenizer.json'],
    ['', 'tokenizer.json'],
    ['.', 'tokenizer.json'],
    ['/', '/tokenizer.json'],
    ['inline', 'inline/tokenizer.json'],
    ['C:/models/x', 'C:/models/x/tokenizer.json'],
  ])('joins %j as path.posix.join does: %j', (source, want) => {
    expect(joinPath(source, 'tokenizer.json')).toBe(want);
    expect(posix.join(source, 'tokenizer.json')).toBe(want);
  });

  it.each([
    ['C:\\models\\x', 'C:\\models\\x\\tokenizer.json'],
    ['C:\\models\\x\\', 'C:\\models\\x\\tokenizer.json'],
    ['C:\\models/x', 'C:\\models\\x\\tokenizer.json'],
    ['c:\\models\\..\\..\\x', 'c:\\x\\tokenizer.json'],
    ['C:models\\x', 'C:models\\x\\tokenizer.json'],
    ['..\\..\\models\\.\\x', '..\\..\\models\\x\\tokenizer.json'],
    ['.\\models\\x', 'models\\x\\tokenizer.json'],
    ['models\\x\\..', 'models\\tokenizer.json'],
    ['\\models\\\\x', '\\models\\x\\tokenizer.json'],
    ['\\..\\x', '\\x\\tokenizer.json'],
    ['\\\\server\\share\\models\\x', '\\\\server\\share\\models\\x\\tokenizer.json'],
    ['\\\\server\\share\\..\\x', '\\\\server\\share\\x\\tokenizer.json'],
    ['//server/share\\x', '\\\\server\\share\\x\\tokenizer.json'],
    ['\\\\?\\C:\\models\\x', '\\\\?\\C:\\models\\x\\tokenizer.json'],
    ['C:\\Program Files\\m', 'C:\\Program Files\\m\\tokenizer.json'],
    ['C://models\\x', 'C:\\models\\x\\tokenizer.json'],
  ])('joins %j, a Windows path, as path.win32.join does: %j', (source, want) => {
    expect(joinPath(source, 'tokenizer.json')).toBe(want);
    expect(win32.join(source, 'tokenizer.json')).toBe(want);
  });

  it('equals path.posix.join on 5,000 random paths of ., .., /, names and spaces', () => {
    const parts = ['.', '..', '/', '//', 'a', 'b c', '...', '.x', 'x.'];
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const differ: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const n = Math.floor(random() * 7);
      const source = Array.from({ length: n }, () => parts[Math.floor(random() * parts.length)]).join('');
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) continue;
      for (const name of ['tokenizer.json', 'chat_template.jinja']) {
        if (joinPath(source, name) !== posix.join(source, name)) differ.push(`${source} + ${name}`);
      }
    }
    expect(differ).toEqual([]);
  });

  it('equals path.win32.join on 5,000 random Windows paths: drives, UNC shares, \\ and / mixed', () => {
    const roots = ['', '', 'C:', 'c:\\', 'D:/', '\\', '\\\\srv\\share', '//srv/share/', '\\\\srv\\share\\'];
    const parts = ['.', '..', '\\', '\\\\', '/', 'a', 'b c', '...', '.x', 'x.'];
    let seed = 11;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(from: T[]) => from[Math.floor(random() * from.length)]!;
    const differ: string[] = [];
    let compared = 0;
    while (compared < 5000) {
      const n = 1 + Math.floor(random() * 6);
      const source = pick(roots) + Array.from({ length: n }, () => pick(parts)).join('');
      // backslashes make it a Windows path; a UNC server without a share (\\.) is no directory
      if (!source.includes('\\') || /^[\\/]{2}[^\\/]+[\\/]*$/.test(source)) continue;
      compared++;
      for (const name of ['tokenizer.json', 'chat_template.jinja']) {
        if (joinPath(source, name) !== win32.join(source, name)) differ.push(`${source} + ${name}`);
      }
    }
    expect(differ).toEqual([]);
  });

  it('keeps the // of a URL and puts one / before the name', () => {
    expect(joinPath('https://example.com/models/x/', 'tokenizer.json')).toBe(
      'https://example.com/models/x/tokenizer.json',
    );
    expect(joinPath('http://127.0.0.1:8080/m', 'generation_config.json')).toBe(
      'http://127.0.0.1:8080/m/generation_config.json',
    );
  });

  it("names the file in createTokenizer's errors, from a directory and from a URL", () => {
    const errorOf = (source: string) => {
      try {
        createTokenizer({ source, tokenizerJson: { model: { type: 'Nope' } } });
      } catch (error) {
        expect(error).toBeInstanceOf(TokenizerLoadError);
        return (error as TokenizerLoadError).file;
      }
      throw new Error('createTokenizer accepted a model of type Nope');
    };
    expect(errorOf('./models/x')).toBe('models/x/tokenizer.json');
    expect(errorOf('C:\\models\\x')).toBe('C:\\models\\x\\tokenizer.json');
    expect(errorOf('https://example.com/models/x/')).toBe('https://example.com/models/x/tokenizer.json');
  });
});
