/**
 * A [rows, cols] float matrix (PyTorch's [out, in] layout of a Linear weight) in blockwise symmetric
 * 4-bit form, as onnxruntime's `MatMulNBits` (com.microsoft, bits 4, no zero points) reads it: each
 * row is cut into blocks of `blockSize` columns (the last one padded with zeros), each block has one
 * float scale, and value i of a block is `(q_i - 8) * scale`.
 *
 * @example
 * const q: Q4Matrix = quantizeQ4(new Float32Array(64).fill(0.5), 2, 32);
 * Array.from(q.scales); // [-0.0625, -0.0625]: 0.5 / -8, stored as q = 0
 */
export interface Q4Matrix {
  rows: number;
  cols: number;
  blockSize: number;
  /** [rows, blocks, blockSize / 2] bytes: two values a byte, the even-indexed one in the low nibble. */
  data: Uint8Array;
  /** [rows * blocks] */
  scales: Float32Array;
}

/**
 * Block sizes `MatMulNBits` accepts: a power of two, at least 16.
 *
 * @example
 * await createModel({ preset: 'tiny', dtypes: ['q4'], q4BlockSize: Q4_BLOCK_SIZES[2], out }); // blocks of 64
 */
export const Q4_BLOCK_SIZES = [16, 32, 64, 128, 256] as const;

/**
 * Quantizes a [rows, cols] row-major matrix to 4 bits per value, blockwise along each row, the way
 * onnxruntime's own quantizer (`MatMulNBitsQuantizer`, symmetric) does: the scale of a block is its
 * value of largest magnitude (the negative one of a tie) divided by -8 (so that value is exactly
 * representable, as q = 0), and each value becomes `floor(v / scale + 8.5)` clamped to [0, 15].
 * Throws a RangeError naming the position of a NaN or infinite value.
 *
 * @example
 * const q = quantizeQ4(weight, 1536, 576); // weight: the [1536, 576] gate_proj of a SmolLM2 layer
 * q.data.length; // 442368: 1536 rows of 18 blocks of 32 values, 16 bytes each
 */
export function quantizeQ4(weight: Float32Array, rows: number, cols: number, blockSize = 32): Q4Matrix {
  if (!(Q4_BLOCK_SIZES as readonly number[]).includes(blockSize)) {
    throw new RangeError(`q4 block size must be one of ${Q4_BLOCK_SIZES.join(', ')}, got ${blockSize}`);
  }
  if (weight.length !== rows * cols) {
    throw new RangeError(`expected ${rows} x ${cols} = ${rows * cols} values, got ${weight.length}`);
  }
  const blocks = Math.ceil(cols / blockSize);
  const half = blockSize / 2;
  const data = new Uint8Array(rows * blocks * half);
  const scales = new Float32Array(rows * blocks);
  // float32 arithmetic, as onnxruntime's quantizer: v * (1 / scale) rounded to float32, + 8.5, floored
  const block = new Float32Array(blockSize); // the block's values, zero-padded
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let b = 0; b < blocks; b++) {
      const start = row + b * blockSize;
      const n = Math.min(blockSize, cols - b * blockSize);
      block.set(weight.subarray(start, start + n));
      if (n < blockSize) block.fill(0, n);
      let amax = 0;
      let max = 0;
      for (let i = 0; i < n; i++) {
        const v = block[i]!;
        if (!Number.isFinite(v))
          throw new RangeError(
            `value ${v} at row ${r}, column ${b * blockSize + i}: a 4-bit block cannot hold it`,
          );
        const a = v < 0 ? -v : v;
        // of two values of the same magnitude, the negative one (as onnxruntime's quantizer picks it)
        if (a > amax || (a === amax && v < max)) {
          amax = a;
          max = v;
        }
      }
      const scale = Math.fround(max / -8);
      scales[r * blocks + b] = scale;
      const inv = scale === 0 ? 0 : Math.fround(1 / scale);
      let out = (r * blocks + b) * half;
      for (let i = 0; i < blockSize; i += 2) {
        const lo = Math.min(15, Math.max(0, Math.floor(Math.fround(block[i]! * inv) + 8.5)));
        const hi = Math.min(15, Math.max(0, Math.floor(Math.fround(block[i + 1]! * inv) + 8.5)));
        data[out++] = lo | (hi << 4);
      }
    }
  }
  return { rows, cols, blockSize, data, scales };
}

/**
 * The float values a {@link Q4Matrix} stands for, [rows, cols] row-major: what `MatMulNBits`
 * multiplies by (exactly, with accuracy level 0; level 4 also rounds the activations to 8 bits).
 *
 * @example
 * const w = dequantizeQ4(quantizeQ4(weight, rows, cols)); // |w - weight| <= scale / 2 per block
 */
export function dequantizeQ4(q: Q4Matrix): Float32Array {
  const { rows, cols, blockSize, data, scales } = q;
  const blocks = Math.ceil(cols / blockSize);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const b = Math.floor(c / blockSize);
      const i = c % blockSize;
      const byte = data[(r * blocks + b) * (blockSize / 2) + (i >> 1)]!;
      const nibble = i & 1 ? byte >> 4 : byte & 15;
      out[r * cols + c] = (nibble - 8) * scales[r * blocks + b]!;
    }
  }
  return out;
}

/**
 * A weight tensor in per-tensor symmetric 8-bit form, as onnxruntime's dynamic quantizer
 * (`quantize_dynamic`, IntegerOps mode, int8 weights: what transformers.js's `q8` files hold) stores
 * it: value i is `data[i] * scale`, the zero point 0.
 *
 * @example
 * const q: Q8Tensor = quantizeQ8(weight);
 * q.data.byteLength * 4 === weight.byteLength; // true: a quarter of the float32 bytes, plus one scale
 */
export interface Q8Tensor {
  /** the values, in the order given */
  data: Int8Array;
  scale: number;
}

/**
 * Quantizes a tensor to 8 bits, one scale for all of it, the way onnxruntime's quantizer does for int8
 * weights: symmetric over [-127, 127] (its range is the largest magnitude, 0 included), the scale that
 * range / 127 as a float32 (1 for an all-zero tensor), and each value `round(v / scale)` (float32
 * division, ties to even, as numpy's `round`). Throws a RangeError naming the index of a NaN or
 * infinite value.
 *
 * @example
 * const q = quantizeQ8(weight); // weight: the [1536, 576] gate_proj of a SmolLM2 layer
 * q.data[0] * q.scale; // within q.scale / 2 of weight[0]
 */
export function quantizeQ8(values: Float32Array): Q8Tensor {
  let amax = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) throw new RangeError(`value ${v} at index ${i}: an 8-bit tensor cannot hold it`);
    const a = v < 0 ? -v : v;
    if (a > amax) amax = a;
  }
  // (rmax - rmin) / (qmax - qmin) in float64, then float32; below float32's smallest normal: 1
  const wide = (2 * amax) / 254;
  const scale = wide < 2 ** -126 ? 1 : Math.fround(wide);
  const data = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const q = roundHalfEven(Math.fround(values[i]! / scale));
    data[i] = Math.min(127, Math.max(-127, q));
  }
  return { data, scale };
}

function roundHalfEven(x: number): number {
  const r = Math.round(x); // ties up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The float values a {@link Q8Tensor} stands for: `data[i] * scale`, in float32.
 *
 * @example
 * const q = quantizeQ8(Float32Array.of(0.5, -1.27, 0));
 * Array.from(dequantizeQ8(q), (v) => Number(v.toFixed(2))); // [0.5, -1.27, 0]
 */
export function dequantizeQ8(q: Q8Tensor): Float32Array {
  const out = new Float32Array(q.data.length);
  for (let i = 0; i < out.length; i++) out[i] = q.data[i]! * q.scale;
  return out;
}

/**
 * The [cols, rows] transpose of a [rows, cols] row-major int8 matrix.
 *
 * @example
 * Array.from(transposeInt8(Int8Array.of(1, 2, 3, 4, 5, 6), 2, 3)); // [1, 4, 2, 5, 3, 6]
 */
export function transposeInt8(data: Int8Array, rows: number, cols: number): Int8Array {
  if (data.length !== rows * cols) {
    throw new RangeError(`expected ${rows} x ${cols} = ${rows * cols} values, got ${data.length}`);
  }
  const out = new Int8Array(data.length);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[row + c]!;
  }
  return out;
}
