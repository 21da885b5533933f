import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelLoadError } from '../src/index.js';
import { loadOnnxruntime, onnxruntime, ortPlatforms } from '../src/onnxruntime.js';

describe('onnxruntime', () => {
  it('lists the platforms an onnxruntime-node package has binaries for', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ort-'));
    for (const p of ['darwin/arm64', 'linux/x64', 'win32/x64'])
      mkdirSync(join(dir, 'bin', 'napi-v6', p), { recursive: true });
    expect(ortPlatforms(dir).sort()).toEqual(['darwin-arm64', 'linux-x64', 'win32-x64']);
    expect(ortPlatforms(join(dir, 'none'))).toEqual([]);
  });

  it('has no darwin-x64 binary in the onnxruntime-node it depends on (an Intel Mac cannot run models; the README says so)', () => {
    const dir = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    expect(ortPlatforms(dir)).not.toContain('darwin-x64');
    expect(ortPlatforms(dir)).toContain(`${process.platform}-${process.arch}`);
  });

  it('loads onnxruntime-node once, on first use', () => {
    expect(onnxruntime()).toBe(onnxruntime());
    expect(typeof onnxruntime().InferenceSession.create).toBe('function');
  });

  it('where the package has no binary for this platform, loading it is a ModelLoadError naming the platforms it has', () => {
    // an onnxruntime-node as 1.30's, whose binaries are for other platforms only
    const dir = mkdtempSync(join(tmpdir(), 'ort-missing-'));
    try {
      const pkg = join(dir, 'node_modules', 'onnxruntime-node');
      mkdirSync(join(pkg, 'bin', 'napi-v6', 'plan9', 'mips'), { recursive: true });
      writeFileSync(
        join(pkg, 'package.json'),
        JSON.stringify({ name: 'onnxruntime-node', version: '9.9.9' }),
      );
      writeFileSync(
        join(pkg, 'index.js'),
        "require('./bin/napi-v6/' + process.platform + '/' + process.arch + '/onnxruntime_binding.node');\n",
      );
      const error = (() => {
        try {
          loadOnnxruntime(createRequire(join(dir, 'app.js')));
        } catch (e) {
          return e;
        }
      })();
      expect(ModelLoadError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({
        code: 'runtime.unsupported_platform',
        message: `onnxruntime-node 9.9.9 ships no binary for ${process.platform}-${process.arch} (it has plan9-mips): models cannot run here: use a machine of one of those platforms, or build onnxruntime-node for this one from source (https://onnxruntime.ai/docs/build/inferencing.html)`,
      });
      // any other failure is onnxruntime's own
      writeFileSync(join(pkg, 'index.js'), "throw new Error('broken');\n");
      expect(() => loadOnnxruntime(createRequire(join(dir, 'app2.js')))).toThrow(/^broken$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
