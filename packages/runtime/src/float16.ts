const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half (as its uint16 bits) to a float. */
export function halfToFloat(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) {
    if (mant === 0) {
      u32[0] = sign;
      return f32[0]!;
    }
    // subnormal
    const v = mant * 2 ** -24;
    return sign ? -v : v;
  }
  if (exp === 0x1f) {
    u32[0] = sign | 0x7f800000 | (mant << 13);
    return f32[0]!;
  }
  u32[0] = sign | ((exp + 112) << 23) | (mant << 13);
  return f32[0]!;
}

/** Converts `n` halves starting at `offset` into `out`. */
export function halvesToFloats(src: Uint16Array, offset: number, out: Float32Array): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = halfToFloat(src[offset + i]!);
  return out;
}
