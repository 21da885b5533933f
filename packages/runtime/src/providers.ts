import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';

/** Execution providers the runtime knows, in priority order for `auto`. */
export type ExecutionProvider = 'cuda' | 'cpu';
export const PROVIDER_PRIORITY: readonly ExecutionProvider[] = ['cuda', 'cpu'];

/** Why each provider can or cannot run here. */
export interface ProviderStatus {
  name: ExecutionProvider;
  available: boolean;
  reason: string;
}

function ortBinDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const main = require.resolve('onnxruntime-node');
    return join(dirname(main), '..', 'bin', `napi-v6`, process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/**
 * Which execution providers can run on this machine, and why not (like onnxruntime's backend
 * registry: each candidate with the reason it was skipped).
 */
export function providerStatus(): ProviderStatus[] {
  const backends = ort.listSupportedBackends?.() ?? [{ name: 'cpu', bundled: true }];
  const bin = ortBinDir();
  return PROVIDER_PRIORITY.map((name) => {
    if (name === 'cpu') return { name, available: true, reason: 'bundled with onnxruntime-node' };
    const listed = backends.some((b) => b.name === 'cuda');
    if (!listed)
      return {
        name,
        available: false,
        reason: `onnxruntime-node ${ort.env.versions.node} has no CUDA backend on ${process.platform}-${process.arch}`,
      };
    const lib = bin && join(bin, 'libonnxruntime_providers_cuda.so');
    if (!lib || !existsSync(lib)) {
      return {
        name,
        available: false,
        reason:
          'CUDA binaries not installed (reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 and run its install script: see the README)',
      };
    }
    const visible = existsSync('/dev/nvidiactl') || existsSync('/proc/driver/nvidia/version');
    if (!visible)
      return { name, available: false, reason: 'CUDA binaries present but no NVIDIA GPU/driver visible' };
    return { name, available: true, reason: `CUDA binaries at ${lib}` };
  });
}

/** The providers to try for a request: `auto` = every available one by priority. */
export function chooseProviders(requested: ExecutionProvider | 'auto'): {
  order: ExecutionProvider[];
  skipped: ProviderStatus[];
} {
  const status = providerStatus();
  if (requested !== 'auto') return { order: [requested], skipped: [] };
  return {
    order: status.filter((s) => s.available).map((s) => s.name),
    skipped: status.filter((s) => !s.available),
  };
}
