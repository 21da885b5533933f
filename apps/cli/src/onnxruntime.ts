import { createRequire } from 'node:module';
import type * as Ort from 'onnxruntime-node';

/**
 * onnxruntime-node, loaded by the commands that use it directly (`doctor`, `model inspect`) when
 * they run rather than when the CLI starts: where it ships no binary (an Intel Mac), `--help` and the
 * commands that run no model still work, and those that do fail with @implicit-it/runtime's message
 * naming the supported platforms (`doctor` reports it).
 */
export function onnxruntime(): typeof Ort {
  return createRequire(import.meta.url)('onnxruntime-node') as typeof Ort;
}
