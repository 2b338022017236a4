/* The built-in single-precision GEMM, GotoBLAS/BLIS style, so that OpenBLAS is optional.
 *
 *   for jc (NC columns of B/C)          B panel of KC x NC is packed once and shared by all threads
 *     for pc (KC of the inner dimension)
 *       pack B[pc:pc+kc, jc:jc+nc]      in nr-wide slivers, k-major: the micro-kernel streams it
 *       for ic (mc rows of A/C)         split across threads; each packs its own A block
 *         pack A[ic:ic+mc, pc:pc+kc]    in mr-tall slivers, k-major
 *         for jr, ir: micro-kernel      mr x nr of C in registers over the whole kc
 *
 * Two micro-kernels, chosen at run time by what the CPU has (compiled with target attributes, so no
 * -march flag is needed for them):
 *   AVX-512F, mr x nr = 12 x 32: 24 zmm accumulators + 2 for the B row + 1 broadcast = 27 of 32
 *     registers; per k step 2 loads and 12 broadcasts feed 24 FMAs (FMA-bound, not load-bound).
 *   AVX2+FMA, mr x nr = 6 x 16: the same shape of the argument for 16 ymm registers (12 + 2 + 1).
 * Without either (or off x86) the portable loop in gemm.c runs.
 * Why these block sizes (x86-64 with 48 KiB L1d, 2 MiB L2 per core, large shared L3; measured on
 * the shapes in bench/run.ts, see docs/engine.md):
 *   KC = 320, and K is cut into equal blocks of at most KC (K = 524 gives 2 x 262, not 320 + 204):
 *     one B sliver (kc x nr floats, 40 KiB at 12 x 32) stays in L1 while the A slivers stream from
 *     L2 past it; every k block reads and writes all of C once, so fewer, longer blocks won over
 *     KC = 256 on the K = 524 and K = 8000 products, and equal blocks avoid a short last block that
 *     pays a full C pass for a few k.
 *   MC = 240 (evened out per call so that the threads get the same number of equal row blocks):
 *     the A block, 240 x 320 floats = 300 KiB, stays in L2.
 *   NC = 4096: the B panel (320 x 4096 floats = 5 MiB) lives in L2/L3 and is shared by the threads.
 * Edge tiles (M, N not multiples of mr, nr) are packed with zeros and the micro-kernel writes only
 * the valid part, so any M, N, K, lda, ldb, ldc work. alpha/beta follow BLAS: C = alpha op(A) op(B)
 * + beta C; beta == 0 writes C without reading it (NaN in C does not survive); K == 0 or alpha == 0
 * only scales C by beta. */
#include "kernels.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KC 320
#define MC 240 /* a multiple of both mr */
#define NC 4096 /* a multiple of both nr */
/* below this many multiply-adds (~20 us of work) a product runs on the calling thread: waking a
 * sleeping worker can cost about as much on a loaded machine */
#define SERIAL_MACS (1 << 20)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EV_X86 1
#endif

int ev_gemm_builtin_isa(void) {
#ifdef EV_X86
  static int isa = -1;
  if (isa < 0) {
    __builtin_cpu_init();
    isa = __builtin_cpu_supports("avx512f") ? EV_ISA_AVX512
          : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? EV_ISA_AVX2 : EV_ISA_NONE;
  }
  return isa;
#else
  return EV_ISA_NONE;
#endif
}

#ifdef EV_X86

/* Per-thread packing buffers, kept between calls: a fresh allocation per call costs page faults
 * comparable to a small product. Thread-local rather than per part index, because a GEMM may run
 * inside another parallel loop (attention), where the pool falls back to serial on each caller. */
typedef struct {
  float* a;
  size_t a_n;
  float* b;
  size_t b_n;
} Bufs;
static pthread_key_t bufs_key;
static pthread_once_t bufs_once = PTHREAD_ONCE_INIT;
static void bufs_free(void* p) {
  Bufs* s = (Bufs*)p;
  free(s->a);
  free(s->b);
  free(s);
}
static void bufs_init(void) { pthread_key_create(&bufs_key, bufs_free); }

static float* grow(float** p, size_t* have, size_t want) {
  if (*have >= want) return *p;
  free(*p);
  void* q = NULL;
  if (posix_memalign(&q, 64, want * sizeof(float)) != 0) q = NULL;
  *p = (float*)q;
  *have = q ? want : 0;
  return *p;
}
static Bufs* my_bufs(void) {
  pthread_once(&bufs_once, bufs_init);
  Bufs* s = (Bufs*)pthread_getspecific(bufs_key);
  if (!s) {
    s = (Bufs*)calloc(1, sizeof(Bufs));
    if (s) pthread_setspecific(bufs_key, s);
  }
  return s;
}

/* 8 x 8 transpose in registers: r[k] becomes (row 0 [k], ..., row 7 [k]). */
__attribute__((target("avx2"))) static inline void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    s[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}

/* A full sliver of MR stored rows (6 or 12 rows of A; 16 or 32 rows of a transposed B) into
 * ap[k * MR + i], 8 k at a time through a register transpose. Packing A element by element cost
 * about a quarter of the product when N is small (N = 96: each packed float of A serves only 96
 * multiply-adds). */
__attribute__((target("avx2"))) static void pack_rows(const float* A, int64_t lda, int kc, float* ap, int MR) {
  int k = 0;
  for (; k + 8 <= kc; k += 8) {
    for (int g = 0; g < MR; g += 8) {
      int rows = MR - g < 8 ? MR - g : 8; /* 8, or 4 (rows 8-11 of 12), or 6 */
      __m256 r[8];
      for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_loadu_ps(A + (int64_t)(g + i) * lda + k) : _mm256_setzero_ps();
      transpose8(r);
      for (int q = 0; q < 8; q++) {
        float* d = ap + (int64_t)(k + q) * MR + g;
        if (rows == 8) _mm256_storeu_ps(d, r[q]);
        else {
          _mm_storeu_ps(d, _mm256_castps256_ps128(r[q]));
          if (rows == 6) _mm_storel_pi((__m64*)(d + 4), _mm256_extractf128_ps(r[q], 1));
        }
      }
    }
  }
  for (; k < kc; k++)
    for (int i = 0; i < MR; i++) ap[(int64_t)k * MR + i] = A[(int64_t)i * lda + k];
}

/* A stored m x kc (m <= MR) into one sliver: ap[k * MR + i], zero rows past m. */
static void pack_a(const float* A, int64_t lda, int m, int kc, float* ap, int MR) {
  if (m == MR) { /* the micro-kernels need AVX2, so pack_rows can run */
    pack_rows(A, lda, kc, ap, MR);
    return;
  }
  for (int i = 0; i < MR; i++) {
    const float* s = A + (int64_t)i * lda;
    if (i < m)
      for (int k = 0; k < kc; k++) ap[k * MR + i] = s[k];
    else
      for (int k = 0; k < kc; k++) ap[k * MR + i] = 0.0f;
  }
}

/* A stored kc x mc (op(A) = A^T) into mc / MR slivers at once (MR = 12 or 6): each stored row is
 * read once, in full; sliver by sliver it would be read in MR-float pieces at a large stride, which
 * the cache and TLB handle badly when lda is a large power of two times a few. */
__attribute__((target("avx2"))) static void pack_a_trans_block(const float* A, int64_t lda, int mc, int kc, float* ap,
                                                               int MR) {
  int full = mc / MR * MR;
  for (int k = 0; k < kc; k++) {
    const float* s = A + (int64_t)k * lda;
    float* d = ap + (int64_t)k * MR;
    if (MR == 12)
      for (int ir = 0; ir < full; ir += 12, d += (int64_t)12 * kc) {
        _mm256_storeu_ps(d, _mm256_loadu_ps(s + ir));
        _mm_storeu_ps(d + 8, _mm_loadu_ps(s + ir + 8));
      }
    else
      for (int ir = 0; ir < full; ir += 6, d += (int64_t)6 * kc) {
        _mm_storeu_ps(d, _mm_loadu_ps(s + ir));
        _mm_storel_pi((__m64*)(d + 4), _mm_loadl_pi(_mm_setzero_ps(), (const __m64*)(s + ir + 4)));
      }
    if (full < mc) {
      int i = 0;
      for (; i < mc - full; i++) d[i] = s[full + i];
      for (; i < MR; i++) d[i] = 0.0f;
    }
  }
}

/* B (kc x n, n <= NR) into one sliver: bp[k * NR + j], zero columns past n. */
static void pack_b(int transB, const float* B, int64_t ldb, int n, int kc, float* bp, int NR) {
  if (!transB) {
    for (int k = 0; k < kc; k++, bp += NR) {
      const float* s = B + (int64_t)k * ldb;
      if (n == NR) memcpy(bp, s, (size_t)NR * sizeof(float));
      else {
        int j = 0;
        for (; j < n; j++) bp[j] = s[j];
        for (; j < NR; j++) bp[j] = 0.0f;
      }
    }
  } else if (n == NR) {
    pack_rows(B, ldb, kc, bp, NR); /* B is stored n x kc */
  } else {
    for (int j = 0; j < NR; j++) {
      const float* s = B + (int64_t)j * ldb;
      if (j < n)
        for (int k = 0; k < kc; k++) bp[k * NR + j] = s[k];
      else
        for (int k = 0; k < kc; k++) bp[k * NR + j] = 0.0f;
    }
  }
}

/* C[0:m, 0:n] = alpha * acc + beta * C, from a full MR x NR tile in registers. */
__attribute__((target("avx2,fma"))) static void kernel_6x16(int kc, const float* a, const float* b, float* c,
                                                             int64_t ldc, float alpha, float beta, int m, int n) {
  enum { MR = 6, NR = 16 };
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int i = 0; i < m; i++) _mm_prefetch((const char*)(c + (int64_t)i * ldc), _MM_HINT_T0); /* as in kernel_12x32 */
  for (int k = 0; k < kc; k++, a += MR, b += NR) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), x;
    x = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (m == MR && n == NR) {
    for (int i = 0; i < MR; i++) {
      float* ci = c + (int64_t)i * ldc;
      for (int h = 0; h < 2; h++) {
        __m256 r = _mm256_mul_ps(va, acc[i][h]);
        if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8 * h), r);
        _mm256_storeu_ps(ci + 8 * h, r);
      }
    }
    return;
  }
  float t[MR * NR] __attribute__((aligned(32)));
  for (int i = 0; i < MR; i++) {
    _mm256_store_ps(t + i * NR, acc[i][0]);
    _mm256_store_ps(t + i * NR + 8, acc[i][1]);
  }
  for (int i = 0; i < m; i++) {
    float* ci = c + (int64_t)i * ldc;
    for (int j = 0; j < n; j++) ci[j] = beta == 0.0f ? alpha * t[i * NR + j] : alpha * t[i * NR + j] + beta * ci[j];
  }
}

/* The same for AVX-512F at 12 x 32; edge tiles use masked loads and stores instead of a copy. */
__attribute__((target("avx512f"))) static void kernel_12x32(int kc, const float* a, const float* b, float* c,
                                                            int64_t ldc, float alpha, float beta, int m, int n) {
  enum { MR = 12, NR = 32 };
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  /* the C tile is read (beta != 0) or written after kc steps: fetch it now, so that neither the
   * loads nor the stores' ownership requests stall then (10-15% on x E^T, whose C rows are 32 KB apart) */
  for (int i = 0; i < m; i++) {
    _mm_prefetch((const char*)(c + (int64_t)i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + (int64_t)i * ldc + 16), _MM_HINT_T0);
  }
  if (n <= 16) /* a half-empty edge sliver (N = 48 in attention's products): the second half is zeros */
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
      __m512 b0 = _mm512_load_ps(b);
#pragma GCC unroll 12
      for (int i = 0; i < MR; i++) acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc[i][0]);
    }
  else
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
      __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
      for (int i = 0; i < MR; i++) {
        __m512 x = _mm512_set1_ps(a[i]);
        acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
      }
    }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  __mmask16 mk[2];
  for (int h = 0; h < 2; h++) {
    int cols = n - 16 * h;
    mk[h] = cols >= 16 ? (__mmask16)0xFFFF : cols <= 0 ? (__mmask16)0 : (__mmask16)((1u << cols) - 1);
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) {
    if (i >= m) break;
    float* ci = c + (int64_t)i * ldc;
    for (int h = 0; h < 2; h++) {
      __m512 r = _mm512_mul_ps(va, acc[i][h]);
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk[h], ci + 16 * h), r);
      _mm512_mask_storeu_ps(ci + 16 * h, mk[h], r);
    }
  }
}

typedef void (*kernel_fn)(int kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta,
                          int m, int n);

typedef struct {
  int transA, transB, M, N, K;
  float alpha, beta;
  const float* A;
  const float* B;
  float* C;
  int64_t lda, ldb, ldc;
  /* current panel */
  int jc, nc, pc, kc;
  float beta_now; /* beta on the first k block, 1 after */
  float* bp;
  /* work split: tasks = n_ic row blocks (of mc rows) x n_jp column parts (of slivers) */
  int mc, n_ic, n_jp;
  int64_t tasks, next_task; /* tasks are claimed one at a time (atomic next_task) */
  /* micro-kernel and its tile */
  kernel_fn kern;
  int MR, NR;
} Job;

static void pack_b_range(void* ctx, int64_t s0, int64_t s1, int part) {
  (void)part;
  Job* g = (Job*)ctx;
  const int NR = g->NR;
  for (int64_t s = s0; s < s1; s++) {
    int j = (int)s * NR;
    int n = g->nc - j < NR ? g->nc - j : NR;
    const float* src = g->transB ? g->B + (int64_t)(g->jc + j) * g->ldb + g->pc : g->B + (int64_t)g->pc * g->ldb + g->jc + j;
    pack_b(g->transB, src, g->ldb, n, g->kc, g->bp + (int64_t)s * NR * g->kc, NR);
  }
}

/* Each thread claims tasks in order until none are left, rather than taking a fixed share: on a
 * shared machine one thread may be descheduled for a while, and the others then take its blocks. */
static void compute_tasks(void* ctx, int64_t b_unused, int64_t e_unused, int part) {
  (void)part, (void)b_unused, (void)e_unused;
  Job* g = (Job*)ctx;
  const int MR = g->MR, NR = g->NR;
  Bufs* bufs = my_bufs();
  int mc_pad = (g->mc + MR - 1) / MR * MR;
  float* ap = bufs ? grow(&bufs->a, &bufs->a_n, (size_t)mc_pad * g->kc) : NULL;
  int slivers = (g->nc + NR - 1) / NR;
  int packed_ic = -1;
  for (;;) {
    int64_t t = __atomic_fetch_add(&g->next_task, 1, __ATOMIC_RELAXED);
    if (t >= g->tasks) break;
    int ic_idx = (int)(t / g->n_jp), jp = (int)(t % g->n_jp);
    int ic = ic_idx * g->mc;
    if (ic >= g->M) continue;
    int mc = g->M - ic < g->mc ? g->M - ic : g->mc;
    int s0 = (int)((int64_t)slivers * jp / g->n_jp), s1 = (int)((int64_t)slivers * (jp + 1) / g->n_jp);
    if (!ap) { /* out of memory for the A block: the same sub-product with the unpacked loop */
      int j0 = s0 * NR, j1 = s1 * NR < g->nc ? s1 * NR : g->nc;
      if (j1 > j0)
        ev_gemm_portable(g->transA, g->transB, mc, j1 - j0, g->kc, g->alpha,
                         g->transA ? g->A + (int64_t)g->pc * g->lda + ic : g->A + (int64_t)ic * g->lda + g->pc, (int)g->lda,
                         g->transB ? g->B + (int64_t)(g->jc + j0) * g->ldb + g->pc : g->B + (int64_t)g->pc * g->ldb + g->jc + j0,
                         (int)g->ldb, g->beta_now, g->C + (int64_t)ic * g->ldc + g->jc + j0, (int)g->ldc);
      continue;
    }
    if (ic_idx != packed_ic) { /* consecutive tasks of one row block share its packed A */
      if (g->transA) pack_a_trans_block(g->A + (int64_t)g->pc * g->lda + ic, g->lda, mc, g->kc, ap, MR);
      else
        for (int ir = 0; ir < mc; ir += MR) {
          int m = mc - ir < MR ? mc - ir : MR;
          pack_a(g->A + (int64_t)(ic + ir) * g->lda + g->pc, g->lda, m, g->kc, ap + (int64_t)ir * g->kc, MR);
        }
      packed_ic = ic_idx;
    }
    for (int s = s0; s < s1; s++) {
      int jr = s * NR;
      int n = g->nc - jr < NR ? g->nc - jr : NR;
      const float* bs = g->bp + (int64_t)s * NR * g->kc;
      for (int ir = 0; ir < mc; ir += MR) {
        int m = mc - ir < MR ? mc - ir : MR;
        g->kern(g->kc, ap + (int64_t)ir * g->kc, bs, g->C + (int64_t)(ic + ir) * g->ldc + g->jc + jr, g->ldc, g->alpha,
                    g->beta_now, m, n);
      }
    }
  }
}

/* ---- Skinny products: N <= 32 (LoRA's x A^T, g B and g^T u at rank 16), and M <= 16 through the
 * transpose (LoRA's dA = gu^T x). The packed path serves them badly: a 12 x 32 tile is half empty
 * at N = 16, and packing A (every row of x) costs as much as the product when each packed float
 * serves only 16 multiply-adds (measured 2-6 GFLOP/s on 3872 x 16 x 192). Here op(B) (K x N, small)
 * is packed once into 16- or 32-wide rows and A is read in place: 12 rows at a time, one broadcast
 * per row and k, 12 or 24 zmm accumulators over the whole K (no k blocking: C is touched once). */
typedef struct {
  int transA, M, N, K, NP, transC;
  float alpha, beta;
  const float* A;
  int64_t lda;
  const float* bp; /* K x NP, zero columns past N */
  float* C;
  int64_t ldc;
} Skinny;

/* C rows [i0, i0 + m) (m <= 12) from acc (12 x NP floats): alpha * acc + beta * C, or with transC
 * the tile lands transposed: C[j * ldc + i] (the M <= 32 case computes C^T). */
static void skinny_store(const Skinny* g, int i0, int m, const float* acc) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < g->N; j++) {
      float* c = g->transC ? g->C + (int64_t)j * g->ldc + i0 + i : g->C + (int64_t)(i0 + i) * g->ldc + j;
      float v = g->alpha * acc[i * g->NP + j];
      *c = g->beta == 0.0f ? v : v + g->beta * *c;
    }
}

/* rows [i0, i0 + m) over k in [k0, k1): the accumulators start from zero at k0 = 0, else from carry
 * (12 x NP floats), and go back to carry unless k1 = K, where the tile is stored (the same chain of
 * multiply-adds per output whatever the k pieces) */
__attribute__((target("avx512f"))) static void skinny_block(const Skinny* g, int i0, int m, int k0, int k1, float* carry) {
  enum { MR = 12 };
  __m512 acc[MR][2];
  const int two = g->NP == 32;
  if (k0 == 0) {
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  } else
    for (int i = 0; i < MR; i++) {
      acc[i][0] = _mm512_load_ps(carry + i * g->NP);
      acc[i][1] = two ? _mm512_load_ps(carry + i * g->NP + 16) : _mm512_setzero_ps();
    }
  const float* bp = g->bp + (int64_t)k0 * g->NP;
  const int K = k1;
  if (m == MR && !g->transA) {
    const float* a[MR];
    for (int i = 0; i < MR; i++) a[i] = g->A + (int64_t)(i0 + i) * g->lda;
    if (two)
      for (int k = k0; k < K; k++, bp += 32) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
          __m512 x = _mm512_set1_ps(a[i][k]);
          acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
        }
      }
    else
      for (int k = k0; k < K; k++, bp += 16) {
        __m512 b0 = _mm512_load_ps(bp);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[i][k]), b0, acc[i][0]);
      }
  } else if (m == MR) { /* op(A) = A^T: the 12 values of one k are contiguous */
    const float* a = g->A + i0 + (int64_t)k0 * g->lda;
    if (two)
      for (int k = k0; k < K; k++, bp += 32, a += g->lda) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
          __m512 x = _mm512_set1_ps(a[i]);
          acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
        }
      }
    else
      for (int k = k0; k < K; k++, bp += 16, a += g->lda) {
        __m512 b0 = _mm512_load_ps(bp);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc[i][0]);
      }
  } else { /* the last, partial row block */
    for (int k = k0; k < K; k++, bp += g->NP) {
      __m512 b0 = _mm512_load_ps(bp), b1 = two ? _mm512_load_ps(bp + 16) : _mm512_setzero_ps();
      for (int i = 0; i < m; i++) {
        __m512 x = _mm512_set1_ps(g->transA ? g->A[(int64_t)k * g->lda + i0 + i] : g->A[(int64_t)(i0 + i) * g->lda + k]);
        acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
      }
    }
  }
  if (k1 < g->K) {
    for (int i = 0; i < MR; i++) {
      _mm512_store_ps(carry + i * g->NP, acc[i][0]);
      if (two) _mm512_store_ps(carry + i * g->NP + 16, acc[i][1]);
    }
    return;
  }
  float t[MR * 32] __attribute__((aligned(64)));
  if (!g->transC && m == MR && g->N == g->NP) { /* full tile, straight to C */
    const __m512 va = _mm512_set1_ps(g->alpha), vb = _mm512_set1_ps(g->beta);
    for (int i = 0; i < MR; i++) {
      float* ci = g->C + (int64_t)(i0 + i) * g->ldc;
      for (int h = 0; h <= two; h++) {
        __m512 r = _mm512_mul_ps(va, acc[i][h]);
        if (g->beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16 * h), r);
        _mm512_storeu_ps(ci + 16 * h, r);
      }
    }
    return;
  }
  for (int i = 0; i < MR; i++) {
    _mm512_store_ps(t + i * g->NP, acc[i][0]);
    if (two) _mm512_store_ps(t + i * g->NP + 16, acc[i][1]);
  }
  skinny_store(g, i0, m, t);
}

/* With op(A) = A^T each k reads 12 floats of a row of A per block, so for a wide A (LoRA's g^T u with
 * g [rows, 512]) every block streams all of A's rows and a cache line serves two blocks: taking k in
 * pieces of SK_KC for all blocks keeps that piece of A in L2. The accumulators wait in the thread's
 * packing buffer between pieces (same sums). */
#define SK_KC 256
static void skinny_range(void* ctx, int64_t b0, int64_t b1, int part) {
  (void)part;
  const Skinny* g = (const Skinny*)ctx;
  float* carry = NULL;
  if (g->transA && g->K > SK_KC && b1 - b0 > 1) {
    Bufs* bufs = my_bufs();
    carry = bufs ? grow(&bufs->a, &bufs->a_n, (size_t)(b1 - b0) * 12 * g->NP) : NULL;
  }
  if (!carry) {
    for (int64_t b = b0; b < b1; b++) {
      int i0 = (int)b * 12;
      skinny_block(g, i0, g->M - i0 < 12 ? g->M - i0 : 12, 0, g->K, NULL);
    }
    return;
  }
  for (int k0 = 0; k0 < g->K; k0 += SK_KC) {
    const int k1 = g->K - k0 < SK_KC ? g->K : k0 + SK_KC;
    for (int64_t b = b0; b < b1; b++) {
      int i0 = (int)b * 12;
      skinny_block(g, i0, g->M - i0 < 12 ? g->M - i0 : 12, k0, k1, carry + (b - b0) * 12 * g->NP);
    }
  }
}

/* C (M x N, N <= 32) = alpha op(A) op(B) + beta C; with transC, C is stored N x M (C^T). 0 when the
 * packing buffer could not be allocated. */
static int gemm_skinny(int transA, int transB, int M, int N, int K, float alpha, const float* A, int64_t lda,
                       const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int transC, int threads) {
  Skinny g = {.transA = transA, .M = M, .N = N, .K = K, .NP = N <= 16 ? 16 : 32, .transC = transC,
              .alpha = alpha, .beta = beta, .A = A, .lda = lda, .C = C, .ldc = ldc};
  Bufs* bufs = my_bufs();
  float* bp = bufs ? grow(&bufs->b, &bufs->b_n, (size_t)K * g.NP) : NULL;
  if (!bp) return 0;
  for (int k = 0; k < K; k++) {
    float* d = bp + (int64_t)k * g.NP;
    int j = 0;
    if (transB)
      for (; j < N; j++) d[j] = B[(int64_t)j * ldb + k];
    else
      for (; j < N; j++) d[j] = B[(int64_t)k * ldb + j];
    for (; j < g.NP; j++) d[j] = 0.0f;
  }
  g.bp = bp;
  int64_t blocks = (M + 11) / 12;
  if ((int64_t)M * N * K < SERIAL_MACS || threads < 2 || blocks < 2) skinny_range(&g, 0, blocks, 0);
  else ev_parallel_parts(blocks, threads, skinny_range, &g);
  return 1;
}

/* 0 when a packing buffer could not be allocated (the caller then uses the portable loop) */
static int gemm_packed(int isa, int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
                       const float* B, int ldb, float beta, float* C, int ldc, int threads) {
  Job g = {.transA = transA, .transB = transB, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
           .A = A, .B = B, .C = C, .lda = lda, .ldb = ldb, .ldc = ldc};
  if (isa == EV_ISA_AVX512) g.kern = kernel_12x32, g.MR = 12, g.NR = 32;
  else g.kern = kernel_6x16, g.MR = 6, g.NR = 16;
  const int MR = g.MR, NR = g.NR;
  if ((int64_t)M * N * K < SERIAL_MACS) threads = 1;
  if (threads < 1) threads = 1;
  /* Split rows when there are enough for every thread, else columns (e.g. a few rows times a
   * vocabulary). Row blocks are evened out so that the threads get the same number of equal blocks;
   * a column split takes a few parts per thread, for the claiming to balance. */
  if (threads == 1 || M >= threads * 4 * MR) {
    int n_ic = (M + MC - 1) / MC;
    n_ic = (n_ic + threads - 1) / threads * threads;
    g.mc = ((M + n_ic - 1) / n_ic + MR - 1) / MR * MR;
    g.n_ic = (M + g.mc - 1) / g.mc;
    g.n_jp = 1;
  } else {
    g.mc = M;
    g.n_ic = 1;
    g.n_jp = 4 * threads;
  }
  Bufs* bufs = my_bufs();
  /* equal k blocks of at most KC: a short last block would pay a full C tile load/store for a few k */
  int n_pc = (K + KC - 1) / KC, kc_step = (K + n_pc - 1) / n_pc;
  int nc_max = N < NC ? N : NC, kc_max = kc_step;
  size_t b_need = (size_t)((nc_max + NR - 1) / NR * NR) * kc_max;
  g.bp = bufs ? grow(&bufs->b, &bufs->b_n, b_need) : NULL;
  if (!g.bp) return 0;
  for (g.jc = 0; g.jc < N; g.jc += NC) {
    g.nc = N - g.jc < NC ? N - g.jc : NC;
    int slivers = (g.nc + NR - 1) / NR;
    for (g.pc = 0; g.pc < K; g.pc += kc_step) {
      g.kc = K - g.pc < kc_step ? K - g.pc : kc_step;
      g.beta_now = g.pc == 0 ? beta : 1.0f;
      /* a panel of up to 128K floats (the layers' weights: 192 x 512 is 96K) is packed on this thread
       * in about the time a fork-join takes to wake a sleeping worker */
      if (threads > 1 && (int64_t)slivers * NR * g.kc > (1 << 17)) ev_parallel_parts(slivers, threads, pack_b_range, &g);
      else pack_b_range(&g, 0, slivers, 0);
      g.tasks = (int64_t)g.n_ic * g.n_jp;
      g.next_task = 0;
      if (threads > 1) ev_parallel_parts(threads, threads, compute_tasks, &g);
      else compute_tasks(&g, 0, 0, 0);
    }
  }
  return 1;
}

/* ---- Packed operands for callers that keep them (kernels.h): the same packing and micro-kernels */
int ev_gemm_tile_mr(int isa) { return isa == EV_ISA_AVX512 ? 12 : isa == EV_ISA_AVX2 ? 6 : 0; }
int ev_gemm_tile_nr(int isa) { return isa == EV_ISA_AVX512 ? 32 : isa == EV_ISA_AVX2 ? 16 : 0; }

void ev_gemm_pack_bt(int isa, const float* B, int64_t ldb, int n, int kc, float* bp) {
  const int NR = ev_gemm_tile_nr(isa);
  for (int j = 0; j < n; j += NR) pack_b(1, B + (int64_t)j * ldb, ldb, n - j < NR ? n - j : NR, kc, bp + (int64_t)j * kc, NR);
}

void ev_gemm_pack_a(int isa, const float* A, int64_t lda, int m, int kc, float* ap) {
  const int MR = ev_gemm_tile_mr(isa);
  for (int i = 0; i < m; i += MR) pack_a(A + (int64_t)i * lda, lda, m - i < MR ? m - i : MR, kc, ap + (int64_t)i * kc, MR);
}

void ev_gemm_packed_tile(int isa, int kc, const float* ap, int m, const float* bp, int n, float alpha, float beta,
                         float* C, int64_t ldc) {
  const int MR = ev_gemm_tile_mr(isa), NR = ev_gemm_tile_nr(isa);
  kernel_fn kern = isa == EV_ISA_AVX512 ? kernel_12x32 : kernel_6x16;
  for (int j = 0; j < n; j += NR) {
    const float* bs = bp + (int64_t)j * kc;
    for (int i = 0; i < m; i += MR)
      kern(kc, ap + (int64_t)i * kc, bs, C + (int64_t)i * ldc + j, ldc, alpha, beta, m - i < MR ? m - i : MR, n - j < NR ? n - j : NR);
  }
}
#else
int ev_gemm_tile_mr(int isa) { (void)isa; return 0; }
int ev_gemm_tile_nr(int isa) { (void)isa; return 0; }
void ev_gemm_pack_bt(int isa, const float* B, int64_t ldb, int n, int kc, float* bp) { (void)isa, (void)B, (void)ldb, (void)n, (void)kc, (void)bp; }
void ev_gemm_pack_a(int isa, const float* A, int64_t lda, int m, int kc, float* ap) { (void)isa, (void)A, (void)lda, (void)m, (void)kc, (void)ap; }
void ev_gemm_packed_tile(int isa, int kc, const float* ap, int m, const float* bp, int n, float alpha, float beta,
                         float* C, int64_t ldc) {
  (void)isa, (void)kc, (void)ap, (void)m, (void)bp, (void)n, (void)alpha, (void)beta, (void)C, (void)ldc;
}
#endif /* EV_X86 */

void ev_gemm_builtin(int isa, int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
                     const float* B, int ldb, float beta, float* C, int ldc, int threads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    for (int i = 0; i < M; i++) {
      float* c = C + (int64_t)i * ldc;
      if (beta == 0.0f) memset(c, 0, sizeof(float) * N);
      else if (beta != 1.0f)
        for (int j = 0; j < N; j++) c[j] *= beta;
    }
    return;
  }
#ifdef EV_X86
  if (isa > ev_gemm_builtin_isa()) isa = ev_gemm_builtin_isa();
  if (isa == EV_ISA_AVX512 && K >= 8) {
    /* skinny: N <= 32 directly; M <= 16 (and N larger) as C^T = op(B)^T op(A)^T */
    if (N <= 32 && gemm_skinny(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 0, threads)) return;
    if (M <= 16 && N > 32 && gemm_skinny(!transB, !transA, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc, 1, threads)) return;
  }
  if (isa != EV_ISA_NONE && gemm_packed(isa, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, threads))
    return;
#endif
  (void)isa, (void)threads;
  ev_gemm_portable(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
