import type { DecoderConfig } from './config.js';

/**
 * Rotary tables as Hugging Face's llama computes them in float32: `inv_freq[j] = 1 / theta^(2j/d)`,
 * angle = position * inv_freq, each half repeated: `[maxPositionEmbeddings, headDim]` row-major.
 *
 * @example
 * const { cos, sin } = ropeTables(PRESETS.tiny); // cos.length === 512 * 16
 */
export function ropeTables(config: DecoderConfig): { cos: Float32Array; sin: Float32Array } {
  const d = config.headDim;
  const half = d / 2;
  const n = config.maxPositionEmbeddings;
  const invFreq = new Float32Array(half);
  for (let j = 0; j < half; j++) invFreq[j] = 1 / config.ropeTheta ** ((2 * j) / d);
  const cos = new Float32Array(n * d);
  const sin = new Float32Array(n * d);
  for (let p = 0; p < n; p++) {
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(p * invFreq[j]!);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * d + j] = c;
      cos[p * d + j + half] = c;
      sin[p * d + j] = s;
      sin[p * d + j + half] = s;
    }
  }
  return { cos, sin };
}
