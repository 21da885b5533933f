#!/usr/bin/env node
// `pnpm bench` of this package: the decoding bench, the prefix-cache bench, then the scoring bench, each in its own
// process (they must not share the machine). All run even when one misses a target or fails;
// the exit status is the first non-zero one (1 for a figure short of its target).
import { spawnSync } from 'node:child_process';

let status = 0;
for (const script of ['decode.bench.mjs', 'prefix.bench.mjs', 'score.bench.mjs']) {
  const run = spawnSync(process.execPath, [new URL(script, import.meta.url).pathname], { stdio: 'inherit' });
  if (status === 0 && run.status !== 0) status = run.status ?? 1;
}
process.exit(status);
