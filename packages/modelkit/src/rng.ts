/** FNV-1a over the UTF-16 code units of `s`: a stable 32-bit key for a tensor name. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A counter-based generator of uniform 32-bit values: output i is a SplitMix32-style hash of
 * (key, i). Deterministic across runs and machines; independent streams per key.
 */
export class CounterRng {
  private counter = 0;
  constructor(private readonly key: number) {}

  /** The next uniform 32-bit unsigned integer. */
  nextUint32(): number {
    let z = (this.key + Math.imul(this.counter++, 0x9e3779b9)) | 0;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    z ^= z >>> 15;
    z = Math.imul(z ^ (z >>> 13), 0x5bd1e995) ^ this.key;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Fills `out` with normal(mean, std) samples (Marsaglia's polar method: exact, no sin/cos). */
  fillNormal(out: Float32Array, std: number, mean = 0): Float32Array {
    const n = out.length;
    for (let i = 0; i < n; i += 2) {
      let x: number;
      let y: number;
      let s: number;
      do {
        x = (this.nextUint32() + 0.5) / 2147483648 - 1;
        y = (this.nextUint32() + 0.5) / 2147483648 - 1;
        s = x * x + y * y;
      } while (s >= 1);
      const f = Math.sqrt((-2 * Math.log(s)) / s) * std;
      out[i] = mean + x * f;
      if (i + 1 < n) out[i + 1] = mean + y * f;
    }
    return out;
  }
}

/**
 * The generator for one tensor of a seeded model: the key mixes the seed with the tensor's name, so a
 * tensor's values do not depend on which other tensors exist or the order they are drawn in.
 */
export function tensorRng(seed: number, name: string): CounterRng {
  return new CounterRng((hashString(name) ^ Math.imul(seed | 0, 0x85ebca6b)) >>> 0);
}
