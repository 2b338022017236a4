/* Dropout masks from xoshiro128** (the stream of src/core/random.ts Rng.uniform(), one draw per
 * element: element i is kept when draw i / 2^32 >= p), and the LoRA kernels that use them.
 *
 * - ev_dropout_mask: a float mask (keep or 0) and x * mask (the `dropout` op).
 * - ev_dropout_bits: the same draws as a bit mask (bit i % 32 of word i / 32), 32x smaller than the
 *   float mask, and optionally x * mask. LoRA keeps only the bits for its backward.
 * - ev_dropout_apply: x * mask from the bits again (the backward's dropped-out input).
 * - ev_lora_dx: dx += (gu A) * mask, the LoRA path of the input gradient, in row blocks that stay in cache.
 *
 * The generator is serial, but linear over GF(2) on its 128-bit state, so n steps are one 128 x 128
 * bit matrix T^n: a stream can be cut into pieces whose start states are jumped to, and each piece
 * drawn on its own, giving exactly the serial stream. The bit masks use that twice: threads take
 * contiguous pieces, and inside a thread 16 (AVX-512) or 8 (AVX2) SIMD lanes each draw a contiguous
 * sub-piece in step, about 10x the serial generator's rate. */
#include "kernels.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EV_X86 1
#endif

static inline uint32_t ev_rotl32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

/* ---- jump-ahead: T^(2^i) for i < XO_POW as nibble tables (the state's 32 nibbles x 16 values -> the
 * XOR of the matching columns), so that one T^(2^i) v is 32 lookups (8 KiB per power, in L1) */
#define XO_POW 48
static uint32_t xo_tab[XO_POW][32][16][4];
static pthread_once_t xo_once = PTHREAD_ONCE_INIT;

static void xo_step(uint32_t s[4]) {
  const uint32_t t = s[1] << 9;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = ev_rotl32(s[3], 11);
}
/* s = T^(2^i) s */
static void xo_apply(int i, uint32_t s[4]) {
  uint32_t r0 = 0, r1 = 0, r2 = 0, r3 = 0;
  for (int q = 0; q < 32; q++) {
    const uint32_t* e = xo_tab[i][q][(s[q >> 3] >> ((q & 7) * 4)) & 15u];
    r0 ^= e[0], r1 ^= e[1], r2 ^= e[2], r3 ^= e[3];
  }
  s[0] = r0, s[1] = r1, s[2] = r2, s[3] = r3;
}
/* the nibble table of power i from its 128 columns */
static void xo_fill(int i, uint32_t col[128][4]) {
  for (int q = 0; q < 32; q++)
    for (int v = 0; v < 16; v++)
      for (int w = 0; w < 4; w++) {
        uint32_t r = 0;
        for (int b = 0; b < 4; b++)
          if ((v >> b) & 1) r ^= col[4 * q + b][w];
        xo_tab[i][q][v][w] = r;
      }
}
static void xo_init(void) {
  uint32_t col[128][4];
  for (int b = 0; b < 128; b++) { /* columns of T: T e_b */
    memset(col[b], 0, sizeof col[b]);
    col[b][b >> 5] = 1u << (b & 31);
    xo_step(col[b]);
  }
  xo_fill(0, col);
  for (int i = 1; i < XO_POW; i++) { /* T^(2^i) e_b = T^(2^(i-1)) (T^(2^(i-1)) e_b) */
    for (int b = 0; b < 128; b++) xo_apply(i - 1, col[b]);
    xo_fill(i, col);
  }
}
static void xo_jump(uint32_t s[4], int64_t n) {
  pthread_once(&xo_once, xo_init);
  for (int i = 0; i < XO_POW && n > 0; i++, n >>= 1)
    if (n & 1) xo_apply(i, s);
}

/* (double)draw >= p * 2^32  <=>  draw >= ceil(p * 2^32) for an integer draw: compared in integers
 * (branch-free; GCC makes a ternary a branch, 5% mispredicted). 2^32: nothing is kept. */
static uint64_t keep_threshold(double p) {
  const double thr = ceil(p * 4294967296.0);
  return thr <= 0.0 ? 0 : thr >= 4294967296.0 ? (uint64_t)1 << 32 : (uint64_t)thr;
}

static inline uint32_t xo_next(uint32_t* s0, uint32_t* s1, uint32_t* s2, uint32_t* s3) {
  const uint32_t result = ev_rotl32(*s1 * 5u, 7) * 9u;
  const uint32_t t = *s1 << 9;
  *s2 ^= *s0;
  *s3 ^= *s1;
  *s1 ^= *s2;
  *s0 ^= *s3;
  *s2 ^= t;
  *s3 = ev_rotl32(*s3, 11);
  return result;
}

/* ---- float masks (the `dropout` op) */

/* mask[0:n) from state st (advanced past the n draws) */
static void dropout_serial(uint32_t* st, const float* x, float* xa, float* mask, int64_t n, uint64_t thr_u, uint32_t kb) {
  uint32_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3];
  uint32_t* mb = (uint32_t*)mask;
  for (int64_t i = 0; i < n; i++) {
    const uint32_t result = xo_next(&s0, &s1, &s2, &s3);
    mb[i] = kb & (0u - (uint32_t)((uint64_t)result >= thr_u));
  }
  st[0] = s0; st[1] = s1; st[2] = s2; st[3] = s3;
  if (xa)
    for (int64_t i = 0; i < n; i++) xa[i] = x[i] * mask[i];
}

typedef struct {
  uint32_t st[4];
  const float* x;
  float *xa, *mask;
  int64_t n;
  int parts;
  uint64_t thr_u;
  uint32_t kb;
  uint32_t end[4];
} DropCtx;
/* chunks [a, b) of `parts` equal pieces of the stream (all of them when the pool runs it serially) */
static void dropout_part(void* p, int64_t a, int64_t b, int part) {
  (void)part;
  DropCtx* c = (DropCtx*)p;
  const int64_t i0 = c->n * a / c->parts, i1 = c->n * b / c->parts;
  uint32_t s[4] = {c->st[0], c->st[1], c->st[2], c->st[3]};
  xo_jump(s, i0);
  dropout_serial(s, c->x ? c->x + i0 : NULL, c->xa ? c->xa + i0 : NULL, c->mask + i0, i1 - i0, c->thr_u, c->kb);
  if (b == c->parts) memcpy(c->end, s, sizeof s);
}

void ev_dropout_mask(uint32_t* st, const float* x, float* xa, float* mask, int64_t n, double p, float keep) {
  const uint64_t thr_u = keep_threshold(p);
  uint32_t kb;
  memcpy(&kb, &keep, sizeof kb);
  int parts = ev_loop_threads();
  if (n < (1 << 16) || parts < 2) {
    dropout_serial(st, x, xa, mask, n, thr_u, kb);
    return;
  }
  /* the stream split at n * part / parts: each part jumps its start state there */
  DropCtx c = {.st = {st[0], st[1], st[2], st[3]}, .x = x, .xa = xa, .mask = mask, .n = n, .parts = parts, .thr_u = thr_u, .kb = kb};
  ev_parallel_parts(parts, parts, dropout_part, &c);
  memcpy(st, c.end, sizeof c.end);
}

/* ---- bit masks */

/* bits of draws [0, n) into words bits[0 : ceil(n / 32)) (the last one partly), state advanced */
static void bits_serial(uint32_t s[4], uint32_t* bits, int64_t n, uint64_t thr_u) {
  uint32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
  for (int64_t w = 0; w * 32 < n; w++) {
    const int m = n - w * 32 < 32 ? (int)(n - w * 32) : 32;
    uint32_t word = 0;
    for (int b = 0; b < m; b++) word |= (uint32_t)((uint64_t)xo_next(&s0, &s1, &s2, &s3) >= thr_u) << b;
    bits[w] = word;
  }
  s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3;
}

/* Lane j of `lanes` starts at draw j * L of the piece (L a multiple of 32, so that each lane fills
 * whole words): its state is lane j-1's jumped by L. The last lane ends where the piece's tail
 * begins, so its final state continues the stream. */
static void lane_states(const uint32_t s[4], int lanes, int64_t L, uint32_t (*ls)[16]) {
  uint32_t t[4] = {s[0], s[1], s[2], s[3]};
  for (int j = 0; j < lanes; j++) {
    if (j > 0) xo_jump(t, L);
    for (int w = 0; w < 4; w++) ls[w][j] = t[w];
  }
}

#ifdef EV_X86
/* 16 lanes; returns the draws done (16 L), s advanced past them */
__attribute__((target("avx512f"))) static int64_t bits_avx512(uint32_t s[4], uint32_t* bits, int64_t n, uint32_t thr) {
  const int64_t L = (n / 16) & ~(int64_t)31;
  if (L == 0) return 0;
  uint32_t ls[4][16];
  lane_states(s, 16, L, ls);
  __m512i s0 = _mm512_loadu_si512(ls[0]), s1 = _mm512_loadu_si512(ls[1]), s2 = _mm512_loadu_si512(ls[2]),
          s3 = _mm512_loadu_si512(ls[3]);
  const __m512i thv = _mm512_set1_epi32((int)thr);
  const int64_t wl = L / 32; /* words per lane */
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32((int)wl));
  for (int64_t w = 0; w < wl; w++) {
    __m512i acc = _mm512_setzero_si512(), bit = _mm512_set1_epi32(1);
    for (int b = 0; b < 32; b++) {
      /* result = rotl(s1 * 5, 7) * 9, with the multiplies as shifts and adds */
      __m512i m5 = _mm512_add_epi32(s1, _mm512_slli_epi32(s1, 2));
      __m512i r = _mm512_rol_epi32(m5, 7);
      r = _mm512_add_epi32(r, _mm512_slli_epi32(r, 3));
      const __m512i t = _mm512_slli_epi32(s1, 9);
      s2 = _mm512_xor_si512(s2, s0);
      s3 = _mm512_xor_si512(s3, s1);
      s1 = _mm512_xor_si512(s1, s2);
      s0 = _mm512_xor_si512(s0, s3);
      s2 = _mm512_xor_si512(s2, t);
      s3 = _mm512_rol_epi32(s3, 11);
      acc = _mm512_mask_or_epi32(acc, _mm512_cmpge_epu32_mask(r, thv), acc, bit);
      bit = _mm512_slli_epi32(bit, 1);
    }
    _mm512_i32scatter_epi32(bits + w, idx, acc, 4); /* lane j's word w */
  }
  _mm512_storeu_si512(ls[0], s0), _mm512_storeu_si512(ls[1], s1), _mm512_storeu_si512(ls[2], s2), _mm512_storeu_si512(ls[3], s3);
  for (int w = 0; w < 4; w++) s[w] = ls[w][15];
  return 16 * L;
}

/* 8 lanes */
__attribute__((target("avx2"))) static int64_t bits_avx2(uint32_t s[4], uint32_t* bits, int64_t n, uint32_t thr) {
  const int64_t L = (n / 8) & ~(int64_t)31;
  if (L == 0) return 0;
  uint32_t ls[4][16];
  lane_states(s, 8, L, ls);
  __m256i s0 = _mm256_loadu_si256((const __m256i*)ls[0]), s1 = _mm256_loadu_si256((const __m256i*)ls[1]),
          s2 = _mm256_loadu_si256((const __m256i*)ls[2]), s3 = _mm256_loadu_si256((const __m256i*)ls[3]);
  const __m256i thv = _mm256_set1_epi32((int)thr);
  const int64_t wl = L / 32;
  uint32_t out[8];
  for (int64_t w = 0; w < wl; w++) {
    __m256i acc = _mm256_setzero_si256(), bit = _mm256_set1_epi32(1);
    for (int b = 0; b < 32; b++) {
      __m256i m5 = _mm256_add_epi32(s1, _mm256_slli_epi32(s1, 2));
      __m256i r = _mm256_or_si256(_mm256_slli_epi32(m5, 7), _mm256_srli_epi32(m5, 25));
      r = _mm256_add_epi32(r, _mm256_slli_epi32(r, 3));
      const __m256i t = _mm256_slli_epi32(s1, 9);
      s2 = _mm256_xor_si256(s2, s0);
      s3 = _mm256_xor_si256(s3, s1);
      s1 = _mm256_xor_si256(s1, s2);
      s0 = _mm256_xor_si256(s0, s3);
      s2 = _mm256_xor_si256(s2, t);
      s3 = _mm256_or_si256(_mm256_slli_epi32(s3, 11), _mm256_srli_epi32(s3, 21));
      /* unsigned r >= thr  <=>  max(r, thr) == r */
      const __m256i ge = _mm256_cmpeq_epi32(_mm256_max_epu32(r, thv), r);
      acc = _mm256_or_si256(acc, _mm256_and_si256(ge, bit));
      bit = _mm256_slli_epi32(bit, 1);
    }
    _mm256_storeu_si256((__m256i*)out, acc);
    for (int j = 0; j < 8; j++) bits[w + j * wl] = out[j];
  }
  _mm256_storeu_si256((__m256i*)ls[0], s0), _mm256_storeu_si256((__m256i*)ls[1], s1);
  _mm256_storeu_si256((__m256i*)ls[2], s2), _mm256_storeu_si256((__m256i*)ls[3], s3);
  for (int w = 0; w < 4; w++) s[w] = ls[w][7];
  return 8 * L;
}

/* xa[i] = x[i] * (bit i ? keep : 0) for i in [0, n), bits word-aligned at 0 */
__attribute__((target("avx512f"))) static int64_t apply_avx512(const uint32_t* bits, const float* x, float* xa, int64_t n, float keep) {
  const __m512 kv = _mm512_set1_ps(keep);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __mmask16 k = (__mmask16)(bits[i >> 5] >> (i & 16));
    _mm512_storeu_ps(xa + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), _mm512_maskz_mov_ps(k, kv)));
  }
  return i;
}
#endif

static int bits_isa(void) {
#ifdef EV_X86
  static int isa = -1;
  if (isa < 0) {
    __builtin_cpu_init();
    isa = __builtin_cpu_supports("avx512f") ? EV_ISA_AVX512 : __builtin_cpu_supports("avx2") ? EV_ISA_AVX2 : EV_ISA_NONE;
  }
  return isa;
#else
  return EV_ISA_NONE;
#endif
}

static void apply_range(const uint32_t* bits, const float* x, float* xa, int64_t n, float keep, int isa) {
  int64_t i = 0;
#ifdef EV_X86
  if (isa == EV_ISA_AVX512) i = apply_avx512(bits, x, xa, n, keep);
#endif
  (void)isa;
  for (; i < n; i++) xa[i] = x[i] * (((bits[i >> 5] >> (i & 31)) & 1u) ? keep : 0.0f);
}

typedef struct {
  uint32_t st[4];
  const float* x;
  float* xa;
  uint32_t* bits;
  int64_t n;
  int parts, isa;
  uint64_t thr_u;
  float keep;
  uint32_t end[4];
} BitsCtx;

/* pieces start at multiples of 32 draws, so that no two threads write one word */
static int64_t piece_start(const BitsCtx* c, int64_t part) {
  return part >= c->parts ? c->n : (c->n * part / c->parts) & ~(int64_t)31;
}

static void bits_part(void* p, int64_t a, int64_t b, int part) {
  (void)part;
  BitsCtx* c = (BitsCtx*)p;
  const int64_t i0 = piece_start(c, a), i1 = piece_start(c, b);
  uint32_t s[4] = {c->st[0], c->st[1], c->st[2], c->st[3]};
  xo_jump(s, i0);
  uint32_t* w = c->bits + (i0 >> 5);
  int64_t done = 0;
  if (c->thr_u > 0xffffffffu) { /* nothing kept: zero words, the state jumped past the piece */
    memset(w, 0, sizeof(uint32_t) * (size_t)((i1 - i0 + 31) >> 5));
    xo_jump(s, i1 - i0);
    done = i1 - i0;
  }
#ifdef EV_X86
  else if (c->isa == EV_ISA_AVX512) done = bits_avx512(s, w, i1 - i0, (uint32_t)c->thr_u);
  else if (c->isa == EV_ISA_AVX2) done = bits_avx2(s, w, i1 - i0, (uint32_t)c->thr_u);
#endif
  if (done < i1 - i0) bits_serial(s, w + (done >> 5), i1 - i0 - done, c->thr_u);
  if (c->xa) apply_range(w, c->x + i0, c->xa + i0, i1 - i0, c->keep, c->isa);
  if (b == c->parts) memcpy(c->end, s, sizeof s);
}

void ev_dropout_bits(uint32_t* st, const float* x, float* xa, uint32_t* bits, int64_t n, double p, float keep, int isa) {
  if (n <= 0) return;
  if (isa < 0 || isa > bits_isa()) isa = bits_isa();
  BitsCtx c = {.st = {st[0], st[1], st[2], st[3]}, .x = x, .xa = xa, .bits = bits, .n = n, .isa = isa,
               .thr_u = keep_threshold(p), .keep = keep};
  /* a jump costs about as much as a few thousand SIMD draws: small masks stay on one thread */
  c.parts = n < (1 << 15) ? 1 : ev_loop_threads();
  if (c.parts > 1) ev_parallel_parts(c.parts, c.parts, bits_part, &c);
  else bits_part(&c, 0, 1, 0);
  memcpy(st, c.end, sizeof c.end);
}

typedef struct {
  const uint32_t* bits;
  const float* x;
  float* xa;
  float keep;
  int isa;
} ApplyCtx;
static void apply_part(void* p, int64_t a, int64_t b, int part) {
  (void)part;
  const ApplyCtx* c = (const ApplyCtx*)p;
  /* a and b are in words */
  apply_range(c->bits + a, c->x + 32 * a, c->xa + 32 * a, 32 * (b - a), c->keep, c->isa);
}

void ev_dropout_apply(const uint32_t* bits, const float* x, float* xa, int64_t n, float keep) {
  ApplyCtx c = {bits, x, xa, keep, bits_isa()};
  const int64_t whole = n >> 5;
  ev_parallel_for(whole, 1 << 12, apply_part, &c);
  if (whole * 32 < n) apply_range(bits + whole, x + whole * 32, xa + whole * 32, n - whole * 32, keep, c.isa);
}

/* ---- dx += (gu A) * mask: gu [rows, R], A [R, I], mask bits over [rows, I]. Row blocks of LD_RB
 * through a per-thread tile (up to 2 LD_RB x I floats, in L2) instead of a rows x I temporary. The tile is the
 * same GEMM's product as for the whole matrix (K = R runs in the same order), and the sum is taken
 * in double and rounded once, as the TypeScript loop it replaces did (dx[i] += t[i] * mask[i]). */
#define LD_RB 48

static __thread float* ld_tile;
static __thread size_t ld_cap;

typedef struct {
  const float *gu, *A;
  const uint32_t* bits;
  float keep;
  float* gx;
  int64_t rows, blocks;
  int I, R, isa;
  int oom;
} LoraDxCtx;

#ifdef EV_X86
/* gx[0:n) = (float)(gx + t * m) over 16 elements at a time; e0 a multiple of 16 is the bit index of gx[0] */
__attribute__((target("avx512f"))) static int64_t masked_add_avx512(float* gx, const float* t, const uint32_t* bits, int64_t e0,
                                                                  int64_t n, float keep) {
  const __m512 kv = _mm512_set1_ps(keep);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const int64_t e = e0 + i;
    const __m512 m = _mm512_maskz_mov_ps((__mmask16)(bits[e >> 5] >> (e & 16)), kv);
    const __m512 tv = _mm512_loadu_ps(t + i), g = _mm512_loadu_ps(gx + i);
    /* t * m is exact in double, so one fused multiply-add rounds like the double sum does */
    const __m512d lo = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(tv)), _mm512_cvtps_pd(_mm512_castps512_ps256(m)),
                                       _mm512_cvtps_pd(_mm512_castps512_ps256(g)));
    const __m512d hi = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(tv), 1))),
                                       _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(m), 1))),
                                       _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(g), 1))));
    _mm256_storeu_ps(gx + i, _mm512_cvtpd_ps(lo));
    _mm256_storeu_ps(gx + i + 8, _mm512_cvtpd_ps(hi));
  }
  return i;
}
#endif

static void lora_dx_range(void* p, int64_t a, int64_t b, int part) {
  (void)part;
  LoraDxCtx* c = (LoraDxCtx*)p;
  const int I = c->I;
  const size_t need = (size_t)(2 * LD_RB) * (size_t)I;
  if (ld_cap < need) {
    free(ld_tile);
    ld_tile = NULL;
    ld_cap = 0;
    if (posix_memalign((void**)&ld_tile, 64, need * sizeof(float)) != 0) {
      ld_tile = NULL;
      c->oom = 1;
      return;
    }
    ld_cap = need;
  }
  for (int64_t blk = a; blk < b; blk++) {
    const int64_t r0 = blk * LD_RB;
    const int nb = blk == c->blocks - 1 ? (int)(c->rows - r0) : LD_RB;
    ev_gemm(0, 0, nb, I, c->R, 1.0f, c->gu + r0 * c->R, c->R, c->A, I, 0.0f, ld_tile, I);
    for (int r = 0; r < nb; r++) {
      float* g = c->gx + (r0 + r) * I;
      const float* t = ld_tile + (int64_t)r * I;
      const int64_t e0 = (r0 + r) * I;
      int64_t j = 0;
#ifdef EV_X86
      if (c->isa == EV_ISA_AVX512 && (e0 & 15) == 0) j = masked_add_avx512(g, t, c->bits, e0, I, c->keep);
#endif
      for (; j < I; j++) {
        const int64_t e = e0 + j;
        const float m = ((c->bits[e >> 5] >> (e & 31)) & 1u) ? c->keep : 0.0f;
        g[j] = (float)((double)g[j] + (double)t[j] * (double)m);
      }
    }
  }
}

/* 0, or -2 without memory for the tile */
int ev_lora_dx(const float* gu, const float* A, const uint32_t* bits, float keep, float* gx, int64_t rows, int I, int R) {
  /* the last block takes the remainder (LD_RB to 2 LD_RB - 1 rows): a block of 16 rows or fewer
   * would go through the GEMM's skinny path, whose sums may round differently */
  const int64_t blocks = rows / LD_RB > 0 ? rows / LD_RB : 1;
  LoraDxCtx c = {gu, A, bits, keep, gx, rows, blocks, I, R, bits_isa(), 0};
  /* tiles run their GEMM on the calling thread (the pool is busy with the blocks) */
  int parts = ev_get_threads();
  if (rows * I * (int64_t)R < (1 << 18)) parts = 1;
  if (parts > 1) ev_parallel_parts(blocks, parts, lora_dx_range, &c);
  else lora_dx_range(&c, 0, blocks, 0);
  return c.oom ? -2 : 0;
}

/* ---- The two LoRA products that read the dropped-out input xa = x * mask, with xa built in cache
 * tiles instead of a rows x I array: the same GEMM calls on tiles of xa, which give the same sums as
 * on the whole matrix (each output is one chain of multiply-adds over K, in order, and K is the
 * same). */

/* the mask of elements e .. e + 15 (bit k = element e + k) from bits over n elements */
static inline uint32_t mask16_at(const uint32_t* bits, int64_t e, int64_t n) {
  const int64_t w = e >> 5;
  uint64_t v = bits[w];
  if ((w + 1) * 32 < n) v |= (uint64_t)bits[w + 1] << 32;
  return (uint32_t)(v >> (e & 31)) & 0xffffu;
}

#ifdef EV_X86
__attribute__((target("avx512f"))) static int64_t apply_at_avx512(const uint32_t* bits, int64_t e0, int64_t nb, const float* x,
                                                                float* xa, int64_t n, float keep) {
  const __m512 kv = _mm512_set1_ps(keep);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(xa + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), _mm512_maskz_mov_ps((__mmask16)mask16_at(bits, e0 + i, nb), kv)));
  return i;
}
#endif
/* xa[0:n) = x[0:n) * mask of elements e0 .. e0 + n (bits over nb elements) */
static void apply_at(const uint32_t* bits, int64_t e0, int64_t nb, const float* x, float* xa, int64_t n, float keep, int isa) {
  int64_t i = 0;
#ifdef EV_X86
  if (isa == EV_ISA_AVX512) i = apply_at_avx512(bits, e0, nb, x, xa, n, keep);
#endif
  (void)isa, (void)nb;
  for (; i < n; i++) {
    const int64_t e = e0 + i;
    xa[i] = x[i] * (((bits[e >> 5] >> (e & 31)) & 1u) ? keep : 0.0f);
  }
}

static __thread float* xt_tile;
static __thread size_t xt_cap;
static float* xt_grow(size_t need) {
  if (xt_cap < need) {
    free(xt_tile);
    xt_cap = 0;
    if (posix_memalign((void**)&xt_tile, 64, need * sizeof(float)) != 0) {
      xt_tile = NULL;
      return NULL;
    }
    xt_cap = need;
  }
  return xt_tile;
}

typedef struct {
  const float *x, *gu, *A;
  const uint32_t* bits;
  float keep;
  float *u, *gA;
  int64_t rows, blocks;
  int I, R, isa;
  int oom;
} XaCtx;

#define XU_RB 64 /* rows per tile of the forward product */
#define XG_CB 48 /* columns per tile of dA (the last tile takes the remainder: over 32 columns, as the whole) */

static void xa_u_range(void* p, int64_t a, int64_t b, int part) {
  (void)part;
  XaCtx* c = (XaCtx*)p;
  const int I = c->I;
  float* t = xt_grow((size_t)XU_RB * I);
  if (!t) {
    c->oom = 1;
    return;
  }
  for (int64_t blk = a; blk < b; blk++) {
    const int64_t r0 = blk * XU_RB;
    const int nb = c->rows - r0 < XU_RB ? (int)(c->rows - r0) : XU_RB;
    apply_at(c->bits, r0 * I, c->rows * I, c->x + r0 * I, t, (int64_t)nb * I, c->keep, c->isa);
    ev_gemm(0, 1, nb, c->R, I, 1.0f, t, I, c->A, I, 0.0f, c->u + r0 * c->R, c->R);
  }
}

/* u [rows, R] = (x * mask) A^T for A [R, I] (R <= 32: the GEMM's skinny path, whose rows do not
 * depend on the row blocking); 0, or -2 without memory */
int ev_lora_drop_u(const float* x, const uint32_t* bits, float keep, const float* A, float* u, int64_t rows, int I, int R) {
  XaCtx c = {.x = x, .A = A, .bits = bits, .keep = keep, .u = u, .rows = rows, .blocks = (rows + XU_RB - 1) / XU_RB, .I = I, .R = R, .isa = bits_isa()};
  int parts = ev_get_threads();
  if (rows * I * (int64_t)R < (1 << 18)) parts = 1;
  if (parts > 1) ev_parallel_parts(c.blocks, parts, xa_u_range, &c);
  else xa_u_range(&c, 0, c.blocks, 0);
  return c.oom ? -2 : 0;
}

static void xa_ga_range(void* p, int64_t a, int64_t b, int part) {
  (void)part;
  XaCtx* c = (XaCtx*)p;
  const int I = c->I;
  float* t = xt_grow((size_t)c->rows * (2 * XG_CB));
  if (!t) {
    c->oom = 1;
    return;
  }
  for (int64_t blk = a; blk < b; blk++) {
    const int j0 = (int)blk * XG_CB;
    const int nj = blk == c->blocks - 1 ? I - j0 : XG_CB;
    for (int64_t r = 0; r < c->rows; r++)
      apply_at(c->bits, r * I + j0, c->rows * I, c->x + r * I + j0, t + r * nj, nj, c->keep, c->isa);
    ev_gemm(1, 0, c->R, nj, (int)c->rows, 1.0f, c->gu, c->R, t, nj, 1.0f, c->gA + j0, I);
  }
}

/* gA [R, I] += gu^T (x * mask) for gu [rows, R] (R <= 16: the GEMM's skinny path through the
 * transpose, whose columns do not depend on the column blocking); 0, or -2 without memory */
int ev_lora_drop_ga(const float* gu, const float* x, const uint32_t* bits, float keep, float* gA, int64_t rows, int I, int R) {
  /* column tiles of XG_CB; a remainder joins the last tile (a tile of 32 columns or fewer would take
   * the GEMM's other skinny orientation) */
  const int64_t blocks = I / XG_CB > 0 ? I / XG_CB : 1;
  XaCtx c = {.x = x, .gu = gu, .bits = bits, .keep = keep, .gA = gA, .rows = rows, .blocks = blocks, .I = I, .R = R, .isa = bits_isa()};
  int parts = ev_get_threads();
  if (rows * I * (int64_t)R < (1 << 18)) parts = 1;
  if (parts > 1) ev_parallel_parts(blocks, parts, xa_ga_range, &c);
  else xa_ga_range(&c, 0, blocks, 0);
  return c.oom ? -2 : 0;
}
