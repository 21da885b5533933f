import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describeShared, describeWithBinary, SHARED_DIR } from '@implicit-it/testkit';
import { expect, it } from 'vitest';

// The README's example, run as a consumer would against the built package: the dataset (with its
// stated summary), the 8-GPU job it plans, and the error step 3 promises when Python lacks the
// training packages. Its Python is python3 without site-packages (`-S`), so that step fails the same
// way on every machine (one with torch and transformers would otherwise start on a 7B hub model).
const pkg = resolve(import.meta.dirname, '..');

describeWithBinary('the README example', 'python3', 'apt-get install python3', () => {
  describeShared(
    'on the shared data',
    ['data/lima/lima_data.jsonl', 'fixtures/tokenizers/llama2/tokenizer.json'],
    () => {
      it('builds the dataset it states, plans the job, and names what Python lacks', () => {
        const code = /```ts\n([\s\S]*?)```/.exec(readFileSync(join(pkg, 'README.md'), 'utf8'))![1]!;
        // run verbatim in a scratch directory beside a link to the shared material: the example's
        // paths are from the repository root, where ../shared is
        const root = mkdtempSync(join(tmpdir(), 'implicit-it-finetune-readme-'));
        const dir = join(root, 'repo');
        mkdirSync(dir);
        symlinkSync(SHARED_DIR, join(root, 'shared'));
        try {
          const file = join(dir, 'example.mjs');
          writeFileSync(
            file,
            code.replace("'@implicit-it/finetune'", JSON.stringify(join(pkg, 'dist/index.js'))),
          );
          const python = join(dir, 'python-without-packages');
          writeFileSync(python, '#!/bin/sh\nexec python3 -S "$@"\n');
          chmodSync(python, 0o755);
          const run = spawnSync(process.execPath, [file], {
            cwd: dir,
            encoding: 'utf8',
            env: { ...process.env, IMPLICIT_IT_PYTHON: python },
          });
          // 1. as the comment states
          const summary = JSON.parse(run.stdout.split('\n')[0]!);
          expect(summary).toMatchObject({ recipe: 'lima-response', count: 978, validationCount: 52 });
          expect(existsSync(join(dir, 'out', 'lima-response.jsonl'))).toBe(true);
          // 2. the job directory, for 8 processes under DeepSpeed ZeRO-3
          const job = join(dir, 'jobs', 'lima-response-ep5-seed1');
          for (const f of ['job.json', 'launch.sh', 'train.py', 'accelerate.yaml', 'ds_zero3.json'])
            expect(existsSync(join(job, f)), f).toBe(true);
          expect(readFileSync(join(job, 'accelerate.yaml'), 'utf8')).toMatch(/num_processes: 8/);
          // 3. the error lists what is missing, and how to install it
          expect(run.status).toBe(1);
          expect(run.stderr).toContain(
            `MissingPythonError: ${python} lacks torch, transformers, accelerate, deepspeed; install with: ${python} -m pip install torch transformers accelerate deepspeed`,
          );
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      }, 120_000);
    },
  );
});

describeShared('the README example of your own data', ['fixtures/tokenizers/smollm/tokenizer.json'], () => {
  it('plans the job from support.jsonl with the source its comment states', () => {
    const readme = readFileSync(join(pkg, 'README.md'), 'utf8');
    const code = /```ts\n(import \{ planJob \}[\s\S]*?)```/.exec(readme)?.[1];
    expect(code, 'the example of data: support.jsonl').toContain("data: 'support.jsonl'");
    const root = mkdtempSync(join(tmpdir(), 'implicit-it-finetune-readme-own-'));
    const dir = join(root, 'repo');
    mkdirSync(dir);
    symlinkSync(SHARED_DIR, join(root, 'shared'));
    try {
      const rows = [
        {
          messages: [
            { role: 'user', content: 'How do I reset it?' },
            { role: 'assistant', content: 'Hold the button.' },
          ],
        },
        {
          messages: [
            { role: 'user', content: 'Hi' },
            { role: 'assistant', content: 'Hello!' },
          ],
        },
      ];
      writeFileSync(join(dir, 'support.jsonl'), rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
      const file = join(dir, 'example.mjs');
      writeFileSync(
        file,
        code!.replace("'@implicit-it/finetune'", JSON.stringify(join(pkg, 'dist/index.js'))),
      );
      const run = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const job = JSON.parse(readFileSync(join(dir, 'jobs', 'support-res', 'job.json'), 'utf8'));
      expect(job.recipe).toBe('support');
      expect(job.source).toMatchObject({ file: join(dir, 'support.jsonl'), removeInstructions: true });
      expect(job.source.sha256).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 120_000);
});
