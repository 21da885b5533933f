/**
 * The path of file `name` of the tokenizer files from `source`, as error messages name it, without
 * `node:path` (which a browser bundle cannot resolve): a local directory joins as Node's
 * `path.posix.join(source, name)` does (`./models/x` → `models/x/tokenizer.json`: `.` and `..`
 * segments resolved, repeated slashes collapsed), and a URL (`https://host/models/x/`) keeps its
 * `//` and gets one `/` before the name.
 */
export function joinPath(source: string, name: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) return `${source.replace(/\/+$/, '')}/${name}`;
  return normalize(source === '' ? name : `${source}/${name}`);
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
