/* Matrix product: CBLAS sgemm when built with a BLAS (EVOREC_HAVE_CBLAS), else a blocked C loop. */
#include "kernels.h"
#include <stdlib.h>
#include <string.h>

#ifdef EVOREC_HAVE_CBLAS
#include <cblas.h>
#ifdef EVOREC_OPENBLAS
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);
#endif

void ev_gemm(int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
             const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}
#ifdef EVOREC_OPENBLAS
const char* ev_blas_name(void) { return "openblas"; }
int ev_get_threads(void) { return openblas_get_num_threads(); }
void ev_set_threads(int n) { openblas_set_num_threads(n); }
#else
const char* ev_blas_name(void) { return "cblas"; }
int ev_get_threads(void) { return 1; }
void ev_set_threads(int n) { (void)n; }
#endif

#else /* builtin blocked loop */

const char* ev_blas_name(void) { return "builtin-c"; }
int ev_get_threads(void) { return 1; }
void ev_set_threads(int n) { (void)n; }

void ev_gemm(int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
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
#endif
