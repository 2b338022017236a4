/**
 * Seeded pseudo-random numbers (xoshiro128**, seeded through splitmix32).
 * Used for parameter initialisation and dropout so that runs are reproducible.
 */
export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  constructor(seed = 0) {
    this.seed(seed);
  }

  seed(seed: number): void {
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    this.spare = null;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0; this.s1 >>>= 0; this.s2 >>>= 0; this.s3 >>>= 0;
    return result;
  }

  /**
   * Dropout mask: mask[i] = uniform() >= p ? keep : 0, consuming the stream exactly as one uniform()
   * per element would (same values), in one tight loop over local state.
   */
  fillKeepMask(mask: Float32Array, p: number, keep: number): Float32Array {
    const state = Int32Array.of(this.s0, this.s1, this.s2, this.s3);
    keepMaskFromState(state, mask, mask.length, p, keep);
    this.s0 = state[0] >>> 0; this.s1 = state[1] >>> 0; this.s2 = state[2] >>> 0; this.s3 = state[3] >>> 0;
    return mask;
  }

  /** The generator state (xoshiro128**, 4 words), e.g. for a kernel that continues the stream. */
  getState(): Uint32Array {
    return Uint32Array.from([this.s0, this.s1, this.s2, this.s3]);
  }

  setState(st: Uint32Array): void {
    this.s0 = st[0] >>> 0; this.s1 = st[1] >>> 0; this.s2 = st[2] >>> 0; this.s3 = st[3] >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  fillNormal(out: Float32Array, std = 1, mean = 0): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let defaultRng = new Rng(0);

/** Reseed the default generator (used by dropout and initialisers when no Rng is passed). */
export function manualSeed(seed: number): void {
  defaultRng = new Rng(seed);
}

export function getDefaultRng(): Rng {
  return defaultRng;
}

/**
 * The xoshiro128** stream as a dropout mask: mask[i] = (next u32 / 2^32 >= p) ? keep : 0 for n elements,
 * advancing `state` (4 words) in place. One uniform() per element, so it continues `Rng` exactly; the
 * TypeScript dropout kernel and `Rng.fillKeepMask` both use it (the native kernel mirrors it in C).
 */
export function keepMaskFromState(state: Int32Array | Uint32Array, mask: Float32Array, n: number, p: number, keep: number): void {
  let s0 = state[0] | 0, s1 = state[1] | 0, s2 = state[2] | 0, s3 = state[3] | 0;
  const thr = p * 4294967296; // u / 2^32 >= p  <=>  u >= p * 2^32 (both exact in double)
  for (let i = 0; i < n; i++) {
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    mask[i] = result >= thr ? keep : 0;
  }
  state[0] = s0; state[1] = s1; state[2] = s2; state[3] = s3;
}
