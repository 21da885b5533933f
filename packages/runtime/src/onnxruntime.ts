import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { ModelLoadError } from './errors.js';

let loaded: typeof Ort | undefined;

/**
 * The platforms (`darwin-arm64`, `linux-x64`, ...) an onnxruntime-node package at `packageDir` has a
 * binary for, from its `bin/napi-v6/PLATFORM/ARCH` directories.
 */
export function ortPlatforms(packageDir: string): string[] {
  const bin = join(packageDir, 'bin', 'napi-v6');
  if (!existsSync(bin)) return [];
  return readdirSync(bin).flatMap((platform) =>
    readdirSync(join(bin, platform)).map((arch) => `${platform}-${arch}`),
  );
}

/**
 * onnxruntime-node, loaded when a model first needs it rather than when the runtime is imported: on a
 * platform it ships no binary for (an Intel Mac: onnxruntime-node 1.30 has darwin-arm64 only), the
 * rest of the package, and the CLI's commands that run no model, still work, and loading a model says
 * which platforms are supported instead of Node's "Cannot find module ...onnxruntime_binding.node".
 * Where it has no binary for this platform: a `ModelLoadError` (`runtime.unsupported_platform`).
 *
 * @example
 * const { InferenceSession, env } = onnxruntime(); // the module the runtime runs models with
 * const session = await InferenceSession.create(onnxFile, { executionProviders: ['cpu'] });
 * console.log(`onnxruntime-node ${env.versions.node}: inputs ${session.inputNames.join(', ')}`);
 */
export function onnxruntime(): typeof Ort {
  loaded ??= loadOnnxruntime(createRequire(import.meta.url));
  return loaded;
}

/**
 * onnxruntime-node as `require` resolves it, or, where that package has no binary for this platform,
 * a `ModelLoadError` (`runtime.unsupported_platform`) naming the platforms it has (`onnxruntime`'s
 * loader, apart for its tests).
 */
export function loadOnnxruntime(require: NodeJS.Require): typeof Ort {
  try {
    return require('onnxruntime-node') as typeof Ort;
  } catch (cause) {
    const error = cause as NodeJS.ErrnoException;
    if (error.code !== 'MODULE_NOT_FOUND' || !error.message.includes('onnxruntime_binding.node')) throw cause;
    const dir = dirname(require.resolve('onnxruntime-node/package.json'));
    const version = (require('onnxruntime-node/package.json') as { version: string }).version;
    throw new ModelLoadError(
      'runtime.unsupported_platform',
      `onnxruntime-node ${version} ships no binary for ${process.platform}-${process.arch} (it has ${ortPlatforms(dir).join(', ')}): models cannot run here: use a machine of one of those platforms, or build onnxruntime-node for this one from source (https://onnxruntime.ai/docs/build/inferencing.html)`,
      { cause },
    );
  }
}
