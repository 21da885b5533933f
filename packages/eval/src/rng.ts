import { createHash } from 'node:crypto';

/**
 * A seeded pseudo-random generator (xoshiro128**), reproducible across platforms.
 *
 * @example
 * const rng: Rng = createRng('bootstrap:0');
 * const heads = rng.next() < 0.5;
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

/**
 * A seeded generator; the same seed gives the same sequence everywhere.
 *
 * @example
 * const rng = createRng('ranking:0');
 * rng.int(6); // 0..5
 */
export function createRng(seed: number | string): Rng {
  const h = createHash('sha256').update(String(seed)).digest();
  const s = new Uint32Array([h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12)]);
  if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
  const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;
  const nextU32 = () => {
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  };
  const next = () => nextU32() / 2 ** 32;
  return { next, int: (n) => Math.floor(next() * n) };
}

/**
 * Python's `random.Random`: the generator the paper's scripts seed with `random.seed(0)`.
 *
 * @example
 * const py: PythonRandom = pythonRandom(0);
 * py.getrandbits(8); // 216, as `random.seed(0); random.getrandbits(8)`
 */
export interface PythonRandom {
  /** `random.getrandbits(k)`, for k in [1, 32]. */
  getrandbits(k: number): number;
  /** `random.randint(a, b)`: uniform integer in [a, b], drawn as CPython draws it. */
  randint(a: number, b: number): number;
}

/**
 * CPython's Mersenne Twister seeded as `random.seed(seed)` seeds it for an integer, so that
 * `randint` gives the very numbers the paper's scripts drew (CPython 3.2 and later).
 *
 * @example
 * const py = pythonRandom(0);
 * py.randint(0, 999); // 864, as `random.seed(0); random.randint(0, 999)`
 */
export function pythonRandom(seed: number): PythonRandom {
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`pythonRandom: the seed must be a safe integer, got ${String(seed)}`);
  }
  const N = 624;
  const M = 397;
  const mt = new Uint32Array(N);
  let mti = N + 1;
  const initGenrand = (s: number) => {
    mt[0] = s >>> 0;
    for (mti = 1; mti < N; mti++) {
      const prev = mt[mti - 1]! ^ (mt[mti - 1]! >>> 30);
      mt[mti] = (Math.imul(1812433253, prev) + mti) >>> 0;
    }
  };
  // random.seed(int): init_by_array over the 32-bit words of |seed|, least significant first
  let rest = Math.abs(seed);
  const key: number[] = [];
  do {
    key.push(rest % 2 ** 32);
    rest = Math.floor(rest / 2 ** 32);
  } while (rest > 0);
  initGenrand(19650218);
  let i = 1;
  let j = 0;
  for (let k = Math.max(N, key.length); k > 0; k--) {
    const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
    mt[i] = ((mt[i]! ^ Math.imul(prev, 1664525)) + key[j]! + j) >>> 0;
    i++;
    j++;
    if (i >= N) {
      mt[0] = mt[N - 1]!;
      i = 1;
    }
    if (j >= key.length) j = 0;
  }
  for (let k = N - 1; k > 0; k--) {
    const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
    mt[i] = ((mt[i]! ^ Math.imul(prev, 1566083941)) - i) >>> 0;
    i++;
    if (i >= N) {
      mt[0] = mt[N - 1]!;
      i = 1;
    }
  }
  mt[0] = 0x80000000;
  const genrandUint32 = () => {
    if (mti >= N) {
      for (let kk = 0; kk < N; kk++) {
        const y = (mt[kk]! & 0x80000000) | (mt[(kk + 1) % N]! & 0x7fffffff);
        mt[kk] = mt[(kk + M) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      mti = 0;
    }
    let y = mt[mti++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
  const getrandbits = (k: number) => {
    if (!Number.isInteger(k) || k < 1 || k > 32) {
      throw new RangeError(`pythonRandom: getrandbits takes 1 to 32 bits here, got ${k}`);
    }
    return genrandUint32() >>> (32 - k);
  };
  return {
    getrandbits,
    randint(a, b) {
      const n = b - a + 1;
      // (b - a + 1 of 2^32 or more would take CPython's getrandbits of more than 32 bits)
      if (!Number.isInteger(a) || !Number.isInteger(b) || n < 1 || n >= 2 ** 32) {
        throw new RangeError(
          `pythonRandom: randint takes integers a <= b less than 2^32 - 1 apart, got ${a}, ${b}`,
        );
      }
      // Random._randbelow_with_getrandbits: k = n.bit_length(); redraw while r >= n
      const k = 32 - Math.clz32(n);
      let r = getrandbits(k);
      while (r >= n) r = getrandbits(k);
      return a + r;
    },
  };
}
