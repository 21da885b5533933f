import { spawnSync } from 'node:child_process';
import { join, posix, win32 } from 'node:path';

/**
 * The process `runJob` starts for a job: the program, its arguments (run in the job directory) and
 * whether it gets a process group of its own.
 */
export interface LaunchCommand {
  command: string;
  args: string[];
  /** A process group of its own (POSIX), which stopping the run signals as a whole. */
  detached: boolean;
}

/**
 * How `runJob` starts a job. On Linux and macOS: `bash launch.sh ARGS` in a process group of its own.
 * On Windows, launch.sh's command itself (`PYTHON -m accelerate.commands.launch ... train.py --job
 * job.json ARGS`, with launch.sh's defaults for MACHINE_RANK, MAIN_PROCESS_IP and MAIN_PROCESS_PORT
 * from `env`): `bash` there is WSL's launcher (which would run the script in Linux, with this
 * machine's interpreter path) or missing, and there are no process groups.
 */
export function launchCommand(
  dir: string,
  python: string,
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  platform: NodeJS.Platform = process.platform,
): LaunchCommand {
  if (platform !== 'win32')
    return { command: 'bash', args: [join(dir, 'launch.sh'), ...args], detached: true };
  // as launch.sh's ${VAR:-default}: an empty variable takes the default too
  const or = (name: string, fallback: string) => env[name] || fallback;
  return {
    command: python,
    args: [
      '-m',
      'accelerate.commands.launch',
      '--config_file',
      'accelerate.yaml',
      '--machine_rank',
      or('MACHINE_RANK', '0'),
      '--main_process_ip',
      or('MAIN_PROCESS_IP', '127.0.0.1'),
      '--main_process_port',
      or('MAIN_PROCESS_PORT', '29500'),
      'train.py',
      '--job',
      'job.json',
      ...args,
    ],
    detached: false,
  };
}

/**
 * Stops a launch and every process it started. POSIX: `signal` to its process group (`-pid`; the
 * launch was started detached). Windows has neither groups nor SIGTERM: `taskkill /T /F` ends the
 * process tree at once, whatever the signal. A group or tree already gone is not an error.
 */
export function stopProcessTree(
  pid: number,
  signal: NodeJS.Signals,
  platform: NodeJS.Platform = process.platform,
): void {
  if (platform === 'win32') {
    spawnSync('taskkill', ['/pid', String(pid), '/T', '/F'], { stdio: 'ignore', windowsHide: true });
    return;
  }
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

/**
 * The interpreter as the launch is to run it: a path (with a separator: `venv/bin/python`, on Windows
 * `venv\Scripts\python.exe` too) made absolute, since the launch runs in the job directory; a bare
 * name (`python3`) is left to the PATH.
 */
export function launchPython(
  python: string,
  cwd: string = process.cwd(),
  platform: NodeJS.Platform = process.platform,
): string {
  const path = platform === 'win32' ? win32 : posix;
  return path.basename(python) === python ? python : path.resolve(cwd, python);
}
