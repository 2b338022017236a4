/** Float conversions between F32 and the 16-bit formats used in checkpoints (F16, BF16). */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

let F16_TABLE: Float32Array | null = null;

function halfToFloatSlow(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24; // zero / subnormal
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** F16 bits -> F32 value lookup table (65536 entries, built on first use). */
function f16Table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) F16_TABLE[h] = halfToFloatSlow(h);
  }
  return F16_TABLE;
}

/** Convert IEEE half-precision bit patterns to F32. */
export function f16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const t = f16Table();
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]];
  return dst;
}

/** Convert bfloat16 bit patterns to F32 (exact: bf16 is the top half of an f32). */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  // Int32 view: `x << 16` is a (possibly negative) int32, stored without conversion.
  const out = new Int32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return dst;
}

/** F32 value -> F16 bits, round to nearest even; overflow gives +-Inf, NaN stays NaN. */
export function floatToHalfBits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // Inf / NaN (quiet)
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // subnormal half (or zero)
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e; // 14..24
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (rem > mid || (rem === mid && half & 1) ? half + 1 : half);
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // rounding may carry into the exponent, which is still correct (up to Inf)
  return sign | (rem > 0x1000 || (rem === 0x1000 && half & 1) ? half + 1 : half);
}

/** F32 value -> BF16 bits, round to nearest even; NaN stays (quiet) NaN. */
export function floatToBf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f32ToF16(src: ArrayLike<number>, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = floatToHalfBits(src[i]);
  return dst;
}

export function f32ToBf16(src: ArrayLike<number>, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (src instanceof Float32Array) {
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < src.length; i++) {
      const x = bits[i];
      dst[i] =
        (x & 0x7f800000) === 0x7f800000 && x & 0x7fffff
          ? ((x >>> 16) | 0x40) & 0xffff
          : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
    }
    return dst;
  }
  for (let i = 0; i < src.length; i++) dst[i] = floatToBf16Bits(src[i]);
  return dst;
}
