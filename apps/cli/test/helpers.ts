import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { inject } from 'vitest';
import './global-setup.js';

/** The built bin (turbo builds before testing). */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');

/** A private cache dir, so that no test touches ~/.cache or the network. */
export const CACHE = inject('cacheDir');
if (!CACHE) throw new Error('no cacheDir: vitest.config.ts must list test/global-setup.ts in globalSetup');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a child process (no colour, offline, private cache unless `env` says otherwise). */
export function run(
  args: string[],
  options: { env?: Record<string, string | undefined>; input?: string; timeout?: number; cwd?: string } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      NO_COLOR: '1',
      FORCE_COLOR: undefined,
      HF_HUB_OFFLINE: '1',
      IMPLICIT_IT_CACHE: CACHE,
      // no progress lines off a terminal: stderr is compared exactly (the lines are tested on their own)
      IMPLICIT_IT_PROGRESS_SECONDS: '0',
      ...options.env,
    };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    const child = spawn(process.execPath, [CLI, ...args], {
      env: env as NodeJS.ProcessEnv,
      cwd: options.cwd,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/**
 * A tiny modelkit model whose seeded weights are scaled by 10, so that its greedy answers vary from
 * token to token (see createTinyModel's initScale). Written once into modelkit's cache and reused.
 */
export async function tinyModelDir(): Promise<string> {
  return (await createTinyModel({ seed: 1, initScale: 10 })).dir;
}

/** Starts `implicit-it serve ...` on a free loopback port; resolves once it prints its URL. */
export function startServe(args: string[], env: Record<string, string> = {}, timeout = 60_000) {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', '127.0.0.1', ...args], {
    env: { ...process.env, NO_COLOR: '1', HF_HUB_OFFLINE: '1', IMPLICIT_IT_PROGRESS_SECONDS: '0', ...env },
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${stderr}`)), timeout);
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /listening on (?:\S+ \(every interface\): )?(http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('close', () => reject(new Error(`serve exited:\n${stderr}`)));
  });
  return { child, url, exited, stderr: () => stderr };
}

/** Stops a server started by {@link startServe} with Ctrl-C; resolves to its exit code. */
export async function stop(child: ChildProcess, exited: Promise<number | null>) {
  child.kill('SIGINT');
  return exited;
}

/** Resolves once `check()` holds (polled every 5 ms); throws after `ms`. */
export async function waitFor(check: () => boolean, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}
