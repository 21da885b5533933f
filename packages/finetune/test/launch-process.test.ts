import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultPython, launchScript } from '../src/index.js';
import { launchCommand, launchPython, stopProcessTree } from '../src/launch-process.js';

describe('launchCommand', () => {
  it('runs launch.sh with bash in a process group of its own on Linux and macOS', () => {
    for (const platform of ['linux', 'darwin'] as const)
      expect(launchCommand('/jobs/res', '/venv/bin/python', ['--resume'], {}, platform)).toEqual({
        command: 'bash',
        args: ['/jobs/res/launch.sh', '--resume'],
        detached: true,
      });
  });

  it("runs launch.sh's command itself on Windows, with its defaults", () => {
    expect(launchCommand('C:\\jobs\\res', 'python', ['--max-steps', '5'], {}, 'win32')).toEqual({
      command: 'python',
      args: [
        '-m',
        'accelerate.commands.launch',
        '--config_file',
        'accelerate.yaml',
        '--machine_rank',
        '0',
        '--main_process_ip',
        '127.0.0.1',
        '--main_process_port',
        '29500',
        'train.py',
        '--job',
        'job.json',
        '--max-steps',
        '5',
      ],
      detached: false,
    });
  });

  it('takes MACHINE_RANK, MAIN_PROCESS_IP and MAIN_PROCESS_PORT from the environment on Windows (empty: the default)', () => {
    const env = { MACHINE_RANK: '1', MAIN_PROCESS_IP: '10.0.0.2', MAIN_PROCESS_PORT: '' };
    expect(launchCommand('C:\\jobs\\res', 'python', [], env, 'win32').args.slice(4, 10)).toEqual([
      '--machine_rank',
      '1',
      '--main_process_ip',
      '10.0.0.2',
      '--main_process_port',
      '29500',
    ]);
  });
});

describe('launchCommand on Windows and launch.sh agree', () => {
  // the Windows command repeats launch.sh's: run the script with bash and an interpreter that prints
  // its arguments, and each must be the other's, defaults and environment both
  const viaScript = (env: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), 'launch-'));
    try {
      writeFileSync(
        join(dir, 'launch.sh'),
        launchScript({ gpusPerNode: 1, nodes: 2, zero3: false, bf16: true }),
      );
      const python = join(dir, 'print-args');
      writeFileSync(python, '#!/bin/sh\nfor a in "$@"; do printf \'%s\\n\' "$a"; done\n');
      chmodSync(python, 0o755);
      const out = execFileSync('bash', [join(dir, 'launch.sh'), '--max-steps', '5'], {
        env: { PATH: process.env.PATH ?? '', PYTHON: python, ...env },
        encoding: 'utf8',
      });
      return out.trimEnd().split('\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it.each([[{}], [{ MACHINE_RANK: '1', MAIN_PROCESS_IP: '10.0.0.2', MAIN_PROCESS_PORT: '' }]])(
    'with the environment %j',
    (env) => {
      expect(launchCommand('C:\\jobs\\res', 'python', ['--max-steps', '5'], env, 'win32').args).toEqual(
        viaScript(env),
      );
    },
  );
});

describe('launchPython', () => {
  it('makes a path absolute and leaves a bare name to the PATH', () => {
    expect(launchPython('venv/bin/python', '/home/me', 'linux')).toBe('/home/me/venv/bin/python');
    expect(launchPython('./python', '/home/me', 'darwin')).toBe('/home/me/python');
    expect(launchPython('/usr/bin/python3', '/home/me', 'linux')).toBe('/usr/bin/python3');
    expect(launchPython('python3', '/home/me', 'linux')).toBe('python3');
  });

  it("reads Windows' separators on Windows", () => {
    expect(launchPython('venv\\Scripts\\python.exe', 'C:\\Users\\me', 'win32')).toBe(
      'C:\\Users\\me\\venv\\Scripts\\python.exe',
    );
    expect(launchPython('venv/Scripts/python.exe', 'C:\\Users\\me', 'win32')).toBe(
      'C:\\Users\\me\\venv\\Scripts\\python.exe',
    );
    expect(launchPython('python', 'C:\\Users\\me', 'win32')).toBe('python');
  });
});

describe('defaultPython', () => {
  it('is python3, python on Windows, unless IMPLICIT_IT_PYTHON says', () => {
    const saved = process.env.IMPLICIT_IT_PYTHON;
    delete process.env.IMPLICIT_IT_PYTHON;
    try {
      expect(defaultPython('linux')).toBe('python3');
      expect(defaultPython('darwin')).toBe('python3');
      expect(defaultPython('win32')).toBe('python');
      process.env.IMPLICIT_IT_PYTHON = 'C:\\Python312\\python.exe';
      expect(defaultPython('win32')).toBe('C:\\Python312\\python.exe');
    } finally {
      if (saved === undefined) delete process.env.IMPLICIT_IT_PYTHON;
      else process.env.IMPLICIT_IT_PYTHON = saved;
    }
  });
});

describe('stopProcessTree', () => {
  it("signals the launch's whole process group", async () => {
    const child = spawn('sh', ['-c', 'sleep 300 & wait'], { detached: true, stdio: 'ignore' });
    const closed = new Promise<NodeJS.Signals | null>((res) =>
      child.on('close', (_code, signal) => res(signal)),
    );
    stopProcessTree(child.pid!, 'SIGTERM');
    expect(await closed).toBe('SIGTERM');
  });

  it('is no error for a group that is gone', async () => {
    const child = spawn('true', [], { detached: true, stdio: 'ignore' });
    await new Promise((res) => child.on('close', res));
    expect(() => stopProcessTree(child.pid!, 'SIGKILL')).not.toThrow();
  });
});
