import { spawn } from 'node:child_process';
import { commandWord } from './errors.js';

/**
 * Python modules a training job needs, and the pip names to install them.
 *
 * @example
 * Object.keys(TRAINING_MODULES); // ['torch', 'transformers', 'accelerate']
 */
export const TRAINING_MODULES = {
  torch: 'torch',
  transformers: 'transformers',
  accelerate: 'accelerate',
} as const;

/**
 * What {@link probePython} found.
 *
 * @example
 * const probe: PythonProbe = await probePython(defaultPython(), ['torch', 'peft']);
 * if (!probe.found) console.error(`${probe.python} cannot be started`);
 * else console.log(probe.versions.torch ?? probe.install);
 */
export interface PythonProbe {
  python: string;
  /** False when the interpreter could not be started. */
  found: boolean;
  /** Module -> version for those importable. */
  versions: Record<string, string>;
  /** Modules from `modules` that are missing. */
  missing: string[];
  /** One command that installs exactly the missing modules. */
  install: string;
}

/**
 * The interpreter jobs run with: `IMPLICIT_IT_PYTHON`, else `python3` (on Windows `python`: the
 * python.org installer and conda put `python.exe` on the PATH, and `python3` there is at best the
 * Microsoft Store's stand-in, which only offers to install Python).
 *
 * @example
 * process.env.IMPLICIT_IT_PYTHON = '/opt/venv/bin/python';
 * defaultPython(); // '/opt/venv/bin/python'
 */
export function defaultPython(platform: NodeJS.Platform = process.platform): string {
  return process.env.IMPLICIT_IT_PYTHON ?? (platform === 'win32' ? 'python' : 'python3');
}

/**
 * Checks which of `modules` a Python interpreter can import (without importing them: it asks
 * importlib for their metadata, so it is fast even for torch).
 *
 * @example
 * const p = await probePython();
 * if (p.missing.length) console.log(`install: ${p.install}`);
 */
export async function probePython(
  python: string = defaultPython(),
  modules: string[] = Object.keys(TRAINING_MODULES),
): Promise<PythonProbe> {
  const code = `import json, importlib.util, importlib.metadata as m
out = {}
for name in ${JSON.stringify(modules)}:
    if importlib.util.find_spec(name) is None: continue
    try: out[name] = m.version(name)
    except Exception: out[name] = "unknown"
print(json.dumps(out))`;
  const result = await new Promise<{ ok: boolean; stdout: string }>((res) => {
    let stdout = '';
    const child = spawn(python, ['-c', code], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.on('error', () => res({ ok: false, stdout: '' }));
    child.on('close', (c) => res({ ok: c === 0, stdout }));
  });
  let versions: Record<string, string> = {};
  if (result.ok) {
    try {
      versions = JSON.parse(result.stdout) as Record<string, string>;
    } catch {
      versions = {};
    }
  }
  const missing = modules.filter((m) => !(m in versions));
  const pipNames = missing.map((m) => (TRAINING_MODULES as Record<string, string>)[m] ?? m);
  return {
    python,
    found: result.ok,
    versions,
    missing,
    install: result.ok
      ? `${commandWord(python)} -m pip install ${pipNames.join(' ')}`
      : `install Python 3.9+ then: pip install ${pipNames.join(' ')}`,
  };
}
