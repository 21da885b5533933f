#!/usr/bin/env node
// Runs every workspace package's `bench` script one after another (benchmarks must not share the
// machine), passes their output through, and ends with one summary table.
//
// Convention: a bench script prints, besides its own report, one line per headline figure:
//   BENCH {"name":"rules: apply+append vs argmax","value":0.8,"unit":"%","target":"<= 5 %","ok":true}
// and exits 1 when one of them is short of its target (`ok: false`), after printing the others.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const only = process.argv.slice(2);
const dirs = ['packages', 'apps'].flatMap((top) =>
  existsSync(join(root, top)) ? readdirSync(join(root, top)).map((d) => join(root, top, d)) : [],
);
const rows = [];
let failed = 0;
for (const dir of dirs) {
  const pkgFile = join(dir, 'package.json');
  if (!existsSync(pkgFile)) continue;
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
  if (!pkg.scripts?.bench) continue;
  if (only.length && !only.some((o) => pkg.name.includes(o))) continue;
  console.log(`\n=== ${pkg.name}: ${pkg.scripts.bench}`);
  const run = spawnSync('pnpm', ['run', '--silent', 'bench'], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.stdout.write(run.stdout ?? '');
  const figures = [];
  for (const line of (run.stdout ?? '').split('\n')) {
    if (!line.startsWith('BENCH ')) continue;
    const r = JSON.parse(line.slice(6));
    figures.push({
      pkg: pkg.name,
      name: r.name,
      value: `${r.value}${r.unit ? ` ${r.unit}` : ''}`,
      target: r.target ?? '',
      ok: r.ok,
    });
  }
  // a bench script exits 1 when one of its figures misses its target; a non-zero exit without such a
  // figure (a crash, a killed run) is a failed bench
  if (run.status !== 0 && !(run.status === 1 && figures.some((r) => r.ok === false))) {
    failed++;
    rows.push({
      pkg: pkg.name,
      name: '(bench failed)',
      value: `exit ${run.status ?? run.signal}`,
      target: '',
      ok: false,
    });
  }
  rows.push(...figures);
}
const cols = ['pkg', 'name', 'value', 'target', 'ok'];
const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
const line = (r) => cols.map((c, i) => String(r[c] ?? '').padEnd(width[i])).join('  ');
console.log(`\n=== summary\n${line(Object.fromEntries(cols.map((c) => [c, c])))}`);
for (const r of rows) console.log(line({ ...r, ok: r.ok === undefined ? '' : r.ok ? 'yes' : 'NO' }));
// a figure short of its target fails the run as a failed bench does
const missed = rows.filter((r) => r.ok === false && r.name !== '(bench failed)').length;
if (missed > 0) console.log(`\n${missed} figure(s) short of their targets`);
process.exit(failed || missed ? 1 : 0);
