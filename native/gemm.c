/* Matrix product dispatch: the built-in GEMM (gemm-builtin.c: packed AVX-512 or AVX2/FMA kernel,
 * or the portable loop below), or CBLAS sgemm when the addon was built with a BLAS (EVOREC_HAVE_CBLAS).
 * The choice is made at run time (ev_gemm_select; EVOREC_GEMM in the TypeScript loader); the default
 * is measured in docs/engine.md. */
#include "kernels.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef EVOREC_HAVE_CBLAS
#include <cblas.h>
#ifdef EVOREC_OPENBLAS
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);
extern char* openblas_get_corename(void);
#endif
#endif

enum { USE_AVX512, USE_AVX2, USE_PORTABLE, USE_BLAS };
static int use = -1; /* decided on first use */
static int threads = 0;  /* 0 = not yet decided: one per online CPU */

static int best_builtin(void) {
  int isa = ev_gemm_builtin_isa();
  return isa == EV_ISA_AVX512 ? USE_AVX512 : isa == EV_ISA_AVX2 ? USE_AVX2 : USE_PORTABLE;
}

static int default_backend(void) {
  /* the built-in packed GEMM was measured against OpenBLAS in docs/engine.md (why it is the default) */
  if (best_builtin() != USE_PORTABLE) return best_builtin();
#ifdef EVOREC_HAVE_CBLAS
  return USE_BLAS;
#else
  return USE_PORTABLE;
#endif
}

int ev_get_threads(void) {
  if (threads == 0) {
#ifdef EVOREC_OPENBLAS /* OpenBLAS's own default (OPENBLAS_NUM_THREADS, else the CPUs) */
    long n = openblas_get_num_threads();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    threads = n < 1 ? 1 : (n > 16 ? 16 : (int)n);
  }
  return threads;
}

void ev_set_threads(int n) {
  threads = n < 1 ? 1 : (n > 16 ? 16 : n);
#ifdef EVOREC_OPENBLAS
  openblas_set_num_threads(threads);
#endif
}

int ev_gemm_select(const char* name) {
  int want;
  if (!strcmp(name, "builtin")) want = best_builtin();
  else if (!strcmp(name, "builtin-avx512")) want = USE_AVX512;
  else if (!strcmp(name, "builtin-avx2")) want = USE_AVX2;
  else if (!strcmp(name, "builtin-c") || !strcmp(name, "c")) want = USE_PORTABLE;
  else if (!strcmp(name, "blas") || !strcmp(name, "openblas") || !strcmp(name, "cblas")) want = USE_BLAS;
  else return 0;
  if (want == USE_AVX512 && ev_gemm_builtin_isa() < EV_ISA_AVX512) return 0;
  if (want == USE_AVX2 && ev_gemm_builtin_isa() < EV_ISA_AVX2) return 0;
#ifndef EVOREC_HAVE_CBLAS
  if (want == USE_BLAS) return 0;
#endif
  use = want;
  return 1;
}

static int backend(void) {
  if (use < 0) use = default_backend();
  return use;
}

static const char* blas_name(void) {
#ifdef EVOREC_OPENBLAS
  return "openblas";
#else
  return "cblas";
#endif
}

const char* ev_blas_name(void) {
  switch (backend()) {
    case USE_AVX512: return "builtin-avx512";
    case USE_AVX2: return "builtin-avx2";
    case USE_PORTABLE: return "builtin-c";
    default: return blas_name();
  }
}

const char* ev_blas_core(void) {
#ifdef EVOREC_OPENBLAS
  return openblas_get_corename();
#else
  return "";
#endif
}

const char* ev_gemm_available(void) {
  static char list[64];
  if (!list[0]) {
    if (ev_gemm_builtin_isa() >= EV_ISA_AVX512) strcat(list, "builtin-avx512,");
    if (ev_gemm_builtin_isa() >= EV_ISA_AVX2) strcat(list, "builtin-avx2,");
    strcat(list, "builtin-c");
#ifdef EVOREC_HAVE_CBLAS
    strcat(list, ",");
    strcat(list, blas_name());
#endif
  }
  return list;
}

int ev_gemm_isa_now(void) {
  switch (backend()) {
    case USE_AVX512: return EV_ISA_AVX512;
    case USE_AVX2: return EV_ISA_AVX2;
    default: return EV_ISA_NONE;
  }
}

void ev_gemm(int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
             const float* B, int ldb, float beta, float* C, int ldc) {
  switch (backend()) {
    case USE_AVX512:
    case USE_AVX2:
      ev_gemm_builtin(use == USE_AVX512 ? EV_ISA_AVX512 : EV_ISA_AVX2, transA, transB, M, N, K, alpha, A, lda, B, ldb,
                      beta, C, ldc, ev_get_threads());
      return;
    case USE_PORTABLE:
      ev_gemm_portable(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
    default:
#ifdef EVOREC_HAVE_CBLAS
      cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
                  alpha, A, lda, B, ldb, beta, C, ldc);
#endif
      return;
  }
}

/* The portable path (no AVX2, or not x86): the blocked loop the addon used before the built-in
 * GEMM; row-broadcast FMAs over contiguous B rows that the compiler vectorises. */
void ev_gemm_portable(int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++) {
    float* c = C + (int64_t)i * ldc;
    if (beta == 0.0f) memset(c, 0, sizeof(float) * N);
    else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
  }
  if (alpha == 0.0f || K == 0) return;
  const float* Bm = B;
  int bld = ldb;
  float* packed = NULL;
  if (transB) {
    packed = (float*)malloc(sizeof(float) * (size_t)K * N);
    for (int j = 0; j < N; j++)
      for (int k = 0; k < K; k++) packed[(int64_t)k * N + j] = B[(int64_t)j * ldb + k];
    Bm = packed;
    bld = N;
  }
  const int KB = 256, NB = 1024;
  for (int j0 = 0; j0 < N; j0 += NB) {
    int j1 = j0 + NB < N ? j0 + NB : N;
    for (int k0 = 0; k0 < K; k0 += KB) {
      int k1 = k0 + KB < K ? k0 + KB : K;
      int i = 0;
      for (; i + 4 <= M; i += 4) {
        float* c0 = C + (int64_t)i * ldc;
        float* c1 = c0 + ldc;
        float* c2 = c1 + ldc;
        float* c3 = c2 + ldc;
        for (int k = k0; k < k1; k++) {
          float a0, a1, a2, a3;
          if (transA) {
            const float* p = A + (int64_t)k * lda + i;
            a0 = p[0]; a1 = p[1]; a2 = p[2]; a3 = p[3];
          } else {
            const float* p = A + (int64_t)i * lda + k;
            a0 = p[0]; a1 = p[lda]; a2 = p[2 * (int64_t)lda]; a3 = p[3 * (int64_t)lda];
          }
          a0 *= alpha; a1 *= alpha; a2 *= alpha; a3 *= alpha;
          const float* b = Bm + (int64_t)k * bld;
#pragma omp simd
          for (int j = j0; j < j1; j++) {
            float bj = b[j];
            c0[j] += a0 * bj;
            c1[j] += a1 * bj;
            c2[j] += a2 * bj;
            c3[j] += a3 * bj;
          }
        }
      }
      for (; i < M; i++) {
        float* c0 = C + (int64_t)i * ldc;
        for (int k = k0; k < k1; k++) {
          float a0 = alpha * (transA ? A[(int64_t)k * lda + i] : A[(int64_t)i * lda + k]);
          const float* b = Bm + (int64_t)k * bld;
#pragma omp simd
          for (int j = j0; j < j1; j++) c0[j] += a0 * b[j];
        }
      }
    }
  }
  free(packed);
}
