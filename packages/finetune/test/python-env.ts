import { probePython } from '../src/index.js';

/** The interpreter the Python tests use: IMPLICIT_IT_PYTHON, else python3. */
export const PYTHON = process.env.IMPLICIT_IT_PYTHON ?? 'python3';

/** Modules missing from PYTHON (all of them when it does not start). */
export async function missingModules(modules: string[]): Promise<string[]> {
  const p = await probePython(PYTHON, modules);
  return p.found ? p.missing : modules;
}
