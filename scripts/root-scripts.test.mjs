// `node --test scripts/root-scripts.test.mjs` (the root `pnpm test` runs it, after the build): the root package.json's
// scripts that start the CLI, as a terminal runs them. Ctrl-C sends SIGINT to the whole foreground
// process group: pnpm, the `sh -c` it runs the script with, and node. Without `exec`, sh dies of the
// signal while node is still closing its connections: pnpm printed "ELIFECYCLE Command failed" and
// exited 130 for a server that stopped cleanly, and returned to the prompt before node had finished.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const root = new URL('..', import.meta.url).pathname;

for (const args of [['start'], ['implicit-it', 'serve']]) {
  test(`pnpm ${args.join(' ')}: Ctrl-C stops the server, and pnpm exits 0 once node has`, async () => {
    const { createTinyModel } = await import('../packages/modelkit/dist/test.js');
    const { dir } = await createTinyModel({});
    const cache = mkdtempSync(join(tmpdir(), 'root-start-cache-'));
    try {
      // its own process group, as a terminal's foreground job
      const child = spawn('pnpm', [...args, '--model', dir, '--port', '0', '--offline'], {
        cwd: root,
        detached: true,
        env: { ...process.env, IMPLICIT_IT_CACHE: cache, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d) => {
        output += d;
      });
      child.stderr.on('data', (d) => {
        output += d;
      });
      const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      const deadline = Date.now() + 60_000;
      while (!output.includes('Ctrl-C stops the server.')) {
        assert.ok(Date.now() < deadline, `the server did not start:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      process.kill(-child.pid, 'SIGINT');
      assert.deepEqual(await exited, { code: 0, signal: null }, output);
      assert.match(output, /stopping\.\.\.\n.*stopped/s);
      assert.doesNotMatch(output, /ELIFECYCLE/);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
}
