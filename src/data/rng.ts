/**
 * Small deterministic random streams for data preparation. Every sampled set is drawn from a stream keyed
 * by (seed, purpose, ids...), so a user's candidates do not depend on the order users are processed in.
 */

/** FNV-1a over a string, 32 bits. */
export function hashString(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** FNV-1a over 32-bit numbers (each mixed in whole), for fingerprints and digests of number streams. */
export class Fnv1a {
  private h = 0x811c9dc5;
  mix(x: number): void {
    this.h = Math.imul(this.h ^ x, 0x01000193);
  }
  /** The hash so far, as an unsigned 32-bit integer. */
  get value(): number {
    return this.h >>> 0;
  }
}

/** sfc32, a fast generator with a 128-bit state; returns floats in [0, 1). */
export function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** A random stream keyed by a seed and any list of parts. */
export function keyedRandom(seed: number, ...parts: Array<string | number>): () => number {
  const key = `${seed}|${parts.join('|')}`;
  const h1 = hashString(key);
  const h2 = hashString(key, h1 ^ 0x9e3779b9);
  const h3 = hashString(key, h2 ^ 0x85ebca6b);
  const next = sfc32(h1, h2, h3, 0xdeadbeef ^ seed);
  for (let i = 0; i < 12; i++) next(); // let the state mix
  return next;
}

/** Index drawn from a cumulative weight table (cum[i] = w0 + ... + wi) for a uniform r in [0, 1). */
export function drawCumulative(cum: Float64Array, r: number): number {
  const x = r * cum[cum.length - 1];
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
