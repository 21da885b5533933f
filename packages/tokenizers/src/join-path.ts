/**
 * The path of file `name` of the tokenizer files from `source`, as error messages name it, without
 * `node:path` (which a browser bundle cannot resolve): a local directory joins as Node's
 * `path.posix.join(source, name)` does (`./models/x` → `models/x/tokenizer.json`: `.` and `..`
 * segments resolved, repeated slashes collapsed), or, when it is written with backslashes (a Windows
 * path: `C:\models\x`, `..\models\x`), as `path.win32.join` does (`C:\models\x\tokenizer.json`, every
 * `/` a `\` too); a URL (`https://host/models/x/`) keeps its `//` and gets one `/` before the name.
 */
export function joinPath(source: string, name: string): string {
  // a URL's scheme has two letters or more: `C://models` is a drive
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(source)) return `${source.replace(/\/+$/, '')}/${name}`;
  if (source.includes('\\')) return normalizeWin32(`${source}\\${name}`);
  return normalize(source === '' ? name : `${source}/${name}`);
}

/**
 * Node's `path.win32.normalize` of a path that ends in a name: its root (a UNC share
 * `\\server\share\`, a drive `C:` with or without `\`, or `\`) kept, `.` and `..` segments resolved,
 * `/` and repeated separators made one `\`.
 */
function normalizeWin32(path: string): string {
  const root = /^(?:[\\/]{2}([^\\/]+)[\\/]+([^\\/]+)(?:[\\/]|$)|([a-z]:)?([\\/])?)/i.exec(path)!;
  const unc = root[1] !== undefined;
  const absolute = unc || root[4] !== undefined;
  const prefix = unc ? `\\\\${root[1]}\\${root[2]}\\` : `${root[3] ?? ''}${root[4] ? '\\' : ''}`;
  const kept: string[] = [];
  for (const segment of path.slice(root[0].length).split(/[\\/]+/)) {
    if (segment === '' || segment === '.') continue;
    if (segment !== '..') kept.push(segment);
    else if (kept.length > 0 && kept.at(-1) !== '..') kept.pop();
    else if (!absolute) kept.push('..');
  }
  return kept.length === 0 ? prefix || '.' : prefix + kept.join('\\');
}

/** Node's `path.posix.normalize` of a non-empty path. */
function normalize(path: string): string {
  const absolute = path.startsWith('/');
  const trailing = path.endsWith('/');
  const kept: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment !== '..') kept.push(segment);
    else if (kept.length > 0 && kept.at(-1) !== '..') kept.pop();
    else if (!absolute) kept.push('..');
  }
  let out = kept.join('/');
  if (out === '') return absolute ? '/' : trailing ? './' : '.';
  if (trailing) out += '/';
  return absolute ? `/${out}` : out;
}
