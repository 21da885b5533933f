import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defaultPython, probePython } from '@implicit-it/finetune';
import {
  defaultHubCacheDir,
  disableOnnxTelemetry,
  onnxruntime,
  type ProviderStatus,
  providerStatus,
} from '@implicit-it/runtime';
import type { Command } from 'commander';
import { cacheRoot, DEFAULT_HUB_ID, randomModelDir, standInOutdated } from '../default-model.js';
import { EXIT, inCliTerms, painter, printJson } from '../output.js';
import { sharedDir } from '../shared-dir.js';

/** One check: `ok`, `warn` (works, with less), or `fail` (something will not work). */
export interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

function nodeCheck(): Check {
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  const ok = major > 20 || (major === 20 && minor >= 10);
  return {
    name: 'Node.js',
    status: ok ? 'ok' : 'fail',
    detail: `v${process.versions.node}`,
    ...(ok ? {} : { fix: 'install Node 20.10 or newer (https://nodejs.org, or nvm install 20)' }),
  };
}

/** What to do about a provider that cannot run. */
export function providerFix(p: ProviderStatus): string {
  if (p.name === 'cpu') return 'reinstall onnxruntime-node (pnpm install --force)';
  // CUDA 12 beside another CUDA (13 on current images), without touching the system's
  if (p.reason.includes('libraries it loads are not found'))
    return `optional (CPU works): pip install ${CUDA12_WHEELS.join(' ')} holds them; put each one's lib directory (site-packages/nvidia/*/lib) on LD_LIBRARY_PATH`;
  // the runtime names the installer where it can download one (Linux x64)
  if (p.reason.includes('implicit-it install-cuda'))
    return 'optional (CPU works): with an NVIDIA GPU and CUDA 12, run `implicit-it install-cuda`';
  return 'optional (CPU works)';
}

/** PyPI wheels of NVIDIA's CUDA 12 libraries that onnxruntime's CUDA provider loads. */
const CUDA12_WHEELS = [
  'nvidia-cuda-runtime-cu12',
  'nvidia-cublas-cu12',
  'nvidia-cufft-cu12',
  'nvidia-curand-cu12',
  'nvidia-cudnn-cu12',
];

function ortCheck(): Check[] {
  let statuses: ReturnType<typeof providerStatus>;
  try {
    // loads onnxruntime-node: its message names the platforms it has binaries for
    statuses = providerStatus();
  } catch (error) {
    return [{ name: 'onnxruntime-node', status: 'fail', detail: (error as Error).message }];
  }
  const versions = onnxruntime().env.versions as Record<string, string>;
  const checks: Check[] = [
    { name: 'onnxruntime-node', status: 'ok', detail: `v${versions.node ?? versions.common}` },
  ];
  for (const p of statuses) {
    checks.push({
      name: `execution provider ${p.name}`,
      status: p.available ? 'ok' : p.name === 'cpu' ? 'fail' : 'warn',
      detail: inCliTerms(p.reason),
      ...(p.available ? {} : { fix: providerFix(p) }),
    });
  }
  return checks;
}

/** onnxruntime's telemetry: off unless the environment turned it on (`disableOnnxTelemetry`). */
export function telemetryCheck(): Check {
  const t = disableOnnxTelemetry();
  if (t.disabled) {
    return {
      name: 'onnxruntime telemetry',
      status: 'ok',
      detail:
        t.setBy === 'implicit-it'
          ? `off (implicit-it sets ${t.variable}=1 before the first session; ${t.variable}=0 keeps it on)`
          : `off (${t.variable}=${t.value})`,
    };
  }
  return {
    name: 'onnxruntime telemetry',
    status: 'warn',
    detail: `on (${t.variable}=${t.value}): onnxruntime sends usage events to Microsoft and keeps a device id in ~/.cache/Microsoft`,
    fix: `unset ${t.variable} (implicit-it then turns it off), or set it to 1`,
  };
}

function cudaCheck(): Check {
  const driver =
    existsSync('/proc/driver/nvidia/version') || existsSync('/dev/nvidiactl') || existsSync('/dev/dxg');
  let gpus = '';
  try {
    gpus = execFileSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {}
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  if (gpus) {
    return {
      name: 'CUDA',
      status: 'ok',
      detail: `${gpus.split('\n').join('; ')}${visible !== undefined ? ` (CUDA_VISIBLE_DEVICES=${visible})` : ''}`,
    };
  }
  return {
    name: 'CUDA',
    status: 'warn',
    detail: driver
      ? 'an NVIDIA driver is present but nvidia-smi lists no GPU'
      : 'no NVIDIA GPU or driver visible',
    fix: 'optional: models run on the CPU; for a GPU install the NVIDIA driver and CUDA 12',
  };
}

function sharedCheck(): Check {
  const dir = sharedDir();
  const wanted = ['llama2', 'gpt2', 'smollm', 'olmo'].map((t) =>
    join('fixtures', 'tokenizers', t, 'tokenizer.json'),
  );
  if (!dir) {
    return {
      name: 'shared fixtures',
      status: 'warn',
      detail: 'no ../shared beside the repository (tokenizer fixtures and datasets)',
      fix: 'needed by the repository tests and for real SmolLM2 ids in the offline default model: put it at ../shared or set IMPLICIT_IT_SHARED_DIR',
    };
  }
  const missing = wanted.filter((f) => !existsSync(join(dir, f)));
  const data = existsSync(join(dir, 'data'));
  return missing.length === 0 && data
    ? { name: 'shared fixtures', status: 'ok', detail: `${dir} (4 tokenizers, data/)` }
    : {
        name: 'shared fixtures',
        status: 'warn',
        detail: `${dir} lacks ${[...missing, ...(data ? [] : ['data/'])].join(', ')}`,
        fix: 'restore the shared material (see shared/README.md)',
      };
}

function cacheCheck(): Check[] {
  const root = cacheRoot();
  const checks: Check[] = [];
  try {
    mkdirSync(root, { recursive: true });
    accessSync(root, constants.W_OK);
    checks.push({ name: 'model cache', status: 'ok', detail: `${root} (writable)` });
  } catch (error) {
    checks.push({
      name: 'model cache',
      status: 'fail',
      detail: `${root}: ${(error as Error).message}`,
      fix: 'set IMPLICIT_IT_CACHE to a writable directory',
    });
  }
  const hub = join(defaultHubCacheDir(), DEFAULT_HUB_ID);
  const random = randomModelDir();
  const outdated = standInOutdated(random);
  checks.push(
    existsSync(join(hub, 'config.json'))
      ? { name: 'default model', status: 'ok', detail: `${DEFAULT_HUB_ID} cached in ${hub}` }
      : existsSync(random)
        ? {
            name: 'default model',
            status: 'warn',
            detail: `only the random-weights stand-in (${random}) is cached${outdated ? `; ${outdated}: the next run without --model writes it again with that tokenizer` : ''}`,
            fix: `run once with a network to fetch ${DEFAULT_HUB_ID}, or pass --model DIR`,
          }
        : {
            name: 'default model',
            status: 'ok',
            detail: `not cached yet: fetched on first use (${DEFAULT_HUB_ID}), or created offline`,
          },
  );
  return checks;
}

/**
 * The Python `finetune run` trains with (`IMPLICIT_IT_PYTHON`, else python3): whether it has torch,
 * transformers and accelerate. A warning, not a failure: nothing else needs Python.
 */
async function pythonCheck(): Promise<Check> {
  const probe = await probePython(defaultPython());
  const name = 'python (finetune run)';
  const fix = (what: string) =>
    `optional, for finetune run: ${probe.install}; or point IMPLICIT_IT_PYTHON (or finetune run --python) at an interpreter that has ${what}`;
  if (!probe.found) {
    return {
      name,
      status: 'warn',
      detail: `${probe.python} could not be started (not found, or not an executable)`,
      fix: fix('torch, transformers and accelerate'),
    };
  }
  const has = Object.entries(probe.versions)
    .map(([module, version]) => `${module} ${version}`)
    .join(', ');
  return probe.missing.length === 0
    ? { name, status: 'ok', detail: `${probe.python} (${has})` }
    : {
        name,
        status: 'warn',
        detail: `${probe.python} lacks ${probe.missing.join(', ')}${has ? ` (has ${has})` : ''}`,
        fix: fix('them'),
      };
}

/** Every check, in order. */
export async function runChecks(): Promise<Check[]> {
  return [
    nodeCheck(),
    ...ortCheck(),
    telemetryCheck(),
    cudaCheck(),
    sharedCheck(),
    ...cacheCheck(),
    await pythonCheck(),
  ];
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description(
      'check Node, onnxruntime-node (its execution providers, its telemetry), CUDA, the shared fixtures, the cache, the Python that finetune run trains with',
    )
    .option('--json', 'print the checks as JSON')
    .addHelpText(
      'after',
      `
Exit code 0 when nothing fails (warnings are fine), 1 otherwise.

Examples:
  $ implicit-it doctor
  $ implicit-it doctor --json | jq '.checks[] | select(.status != "ok")'`,
    )
    .action(async (flags: { json?: boolean }) => {
      const checks = await runChecks();
      const failed = checks.some((c) => c.status === 'fail');
      if (flags.json) printJson({ ok: !failed, checks });
      else {
        const p = painter();
        const mark = { ok: p('green', 'ok  '), warn: p('yellow', 'warn'), fail: p('red', 'FAIL') };
        const width = Math.max(...checks.map((c) => c.name.length));
        let out = '';
        for (const c of checks) {
          out += `${mark[c.status]}  ${c.name.padEnd(width)}  ${c.detail}\n`;
          if (c.fix) out += `      ${' '.repeat(width)}  ${p('dim', `-> ${c.fix}`)}\n`;
        }
        process.stdout.write(out);
      }
      if (failed) process.exitCode = EXIT.failure;
    });
}
