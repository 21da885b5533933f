import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** A port nothing listens on now, for the README's examples, which name one. */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });

describe('README', () => {
  it('runs the first example and prints what its comment says', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const code = /```js\n([\s\S]*?)```/.exec(readme)![1]!;
    const file = join(root, `.readme-example-${process.pid}.mjs`);
    writeFileSync(file, code);
    try {
      const out = execFileSync(process.execPath, [file], { cwd: root, encoding: 'utf8', timeout: 60_000 });
      expect(out.trim()).toBe('200 chat.completion true');
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('runs the server example and the openai client example against it, as written but for the model and port', async () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const serverBlock = blocks.find((b) => b.includes('loadModelInWorker('))!;
    const clientBlock = blocks.find((b) => b.includes("from 'openai'"))!;
    expect(serverBlock).toContain("loadModelInWorker('./SmolLM2-135M')");
    expect(serverBlock).toContain('port: 8080');
    expect(clientBlock).toContain("baseURL: 'http://127.0.0.1:8080/v1'");
    const { dir } = await createTinyModel();
    const port = await freePort();
    const code =
      serverBlock.replace("'./SmolLM2-135M'", JSON.stringify(dir)).replaceAll('8080', String(port)) +
      clientBlock.replaceAll('8080', String(port)) +
      '\nprocess.stdout.write("\\n");\nconsole.log(JSON.stringify(await server.close({ grace: 10_000 })));\nawait model.dispose();\n';
    const file = join(root, `.readme-server-${process.pid}.mjs`);
    writeFileSync(file, code);
    try {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          process.execPath,
          [file],
          { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, API_KEY: 'sk-...' } },
          (error, stdout, stderr) =>
            error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
        ),
      );
      const lines = out.trimEnd().split('\n');
      // console.log(server.url), the streamed reply (random weights: any text, not none), close()'s answer
      expect(lines[0]).toBe(`http://127.0.0.1:${port}`);
      expect(lines.slice(1, -1).join('\n').length).toBeGreaterThan(0);
      expect(JSON.parse(lines.at(-1)!)).toEqual({ running: 0, queued: 0 });
    } finally {
      rmSync(file, { force: true });
    }
  }, 150_000);
});
