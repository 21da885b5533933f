import { mkdirSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { onnxruntime, ortPlatforms } from '../src/onnxruntime.js';

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
});
