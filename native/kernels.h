/* evorec native kernels: plain C over float buffers (no N-API here). */
#ifndef EVOREC_KERNELS_H
#define EVOREC_KERNELS_H
#include <stdint.h>

void ev_gemm(int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
             const float* B, int ldb, float beta, float* C, int ldc);
/* name of the GEMM ev_gemm runs now: "builtin-avx512", "builtin-avx2", "builtin-c", "openblas" or "cblas" */
const char* ev_blas_name(void);
/* GEMM threads (the built-in's part count and OpenBLAS's threads) */
int ev_get_threads(void);
void ev_set_threads(int n);
/* choose the GEMM: "builtin" (the best micro-kernel here), one of the names above, or "blas";
 * 0 when not available here */
int ev_gemm_select(const char* name);
/* comma-separated names of the GEMMs compiled in and usable on this CPU */
const char* ev_gemm_available(void);
/* the CPU kernels OpenBLAS chose at load (e.g. "Haswell", "SkylakeX", "Prescott"); "" without OpenBLAS */
const char* ev_blas_core(void);
/* the built-in GEMM (gemm-builtin.c) with the AVX-512 or AVX2/FMA micro-kernel (isa, lowered to what
 * the CPU has), or the portable C loop for EV_ISA_NONE */
enum { EV_ISA_NONE = 0, EV_ISA_AVX2 = 1, EV_ISA_AVX512 = 2 };
void ev_gemm_builtin(int isa, int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
                     const float* B, int ldb, float beta, float* C, int ldc, int threads);
int ev_gemm_builtin_isa(void); /* the best micro-kernel this CPU runs */
/* the micro-kernel ev_gemm runs now (EV_ISA_NONE when it runs the portable loop or a BLAS) */
int ev_gemm_isa_now(void);
/* Packed operands, for a caller that reuses one (the fused LM head packs W once per call). isa is
 * EV_ISA_AVX512 or EV_ISA_AVX2 (what ev_gemm_isa_now gave); the tile is mr x nr (12 x 32 or 6 x 16).
 * pack_bt: rows [0, n) of a stored n x kc B (used transposed) into ceil(n / nr) k-major slivers
 * (bp[(s * kc + k) * nr + j], zero columns past n); pack_a: rows [0, m) of a stored m x kc A into
 * ceil(m / mr) slivers (ap[(i * kc + k) * mr + r]); packed_tile: C[0:m, 0:n] = alpha ap bp + beta C
 * over those slivers (B sliver by B sliver, all A slivers under each). */
int ev_gemm_tile_mr(int isa);
int ev_gemm_tile_nr(int isa);
void ev_gemm_pack_bt(int isa, const float* B, int64_t ldb, int n, int kc, float* bp);
void ev_gemm_pack_a(int isa, const float* A, int64_t lda, int m, int kc, float* ap);
void ev_gemm_packed_tile(int isa, int kc, const float* ap, int m, const float* bp, int n, float alpha, float beta,
                         float* C, int64_t ldc);
void ev_gemm_portable(int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc);

void ev_axpy(int64_t n, float a, const float* x, float* y);
double ev_sum_squares(const float* x, int64_t n);
void ev_softmax(const float* x, float* out, int64_t rows, int cols);
void ev_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int cols);
void ev_log_softmax(const float* x, float* out, int64_t rows, int cols);
void ev_log_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int cols);
/* returns summed loss; sets *bad to the first out-of-range target row or -1 */
double ev_cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int V, int ignore,
                        float* lse, int64_t* bad);
void ev_cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, int64_t rows,
                               int V, int ignore, float scale, float* glogits);
void ev_rms_norm(const float* x, const float* w, float* out, float* rstd, int64_t rows, int dim, float eps);
void ev_rms_norm_backward(const float* x, const float* w, const float* rstd, const float* gy, float* gx,
                          float* gw, int64_t rows, int dim);
void ev_layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                   int64_t rows, int dim, float eps);
void ev_layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd,
                            const float* gy, float* gx, float* gw, float* gb, int64_t rows, int dim);
void ev_rope(const float* x, float* out, const float* cosT, const float* sinT, const int32_t* pos,
             int64_t rows, int heads, int headDim, float sign);
void ev_attention_softmax(float* s, int B, int H, int T, int S, float scale, int causal, const uint8_t* keyMask);
/* softmax of row[0:lim] * scale with key mask; zeros elsewhere and for fully masked rows */
void ev_masked_softmax_row(float* row, int lim, int S, const uint8_t* km, float scale);
void ev_attention_forward(const float* q, const float* k, const float* v, float* out, float* P, int B, int T, int S,
                          int Hq, int Hkv, int Dh, float scale, int causal, const uint8_t* keyMask);
void ev_attention_backward(const float* q, const float* k, const float* v, const float* P, const float* gout,
                           float* dP, float* gq, float* gk, float* gv, int B, int T, int S, int Hq, int Hkv, int Dh,
                           float scale, int causal);
/* inference attention over [prefix rows by rowMap ; own keys], no probabilities kept (attention.c) */
void ev_attention_infer(const float* q, const float* kPre, const float* vPre, const int32_t* rowMap, int S0,
                        const float* k, const float* v, int S1, float* out, int B, int T, int Hq, int Hkv, int Dh,
                        float scale, int causal, const uint8_t* keyMask, const uint8_t* queryMask);
void ev_attention_softmax_backward(const float* p, float* dp, int64_t rows, int S, float scale);
void ev_swiglu(const float* gate, const float* up, float* out, int64_t n);
void ev_swiglu_backward(const float* gate, const float* up, const float* gy, float* ggate, float* gup, int64_t n);
void ev_embedding_backward(const int32_t* ids, const float* gy, float* gW, int64_t n, int dim);
void ev_adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
              float eps, float wd, float bc1, float bc2);
/* out[r] = log softmax(x W^T + bias)[r, t[r]] (0 where t[r] == ignore) without a logits array;
 * -1 when a target is out of range */
int ev_linear_log_probs(const float* x, const float* W, const float* bias, const int32_t* t, float* out, int64_t rows,
                        int V, int D, int ignore);
void ev_dropout_mask(uint32_t* st, const float* x, float* xa, float* mask, int64_t n, double p, float keep);
/* the same draws as bits (bit i % 32 of bits[i / 32] set when kept), xa = x * mask when given; isa -1:
 * the best here (EV_ISA_*: the SIMD lanes to use, for tests) */
void ev_dropout_bits(uint32_t* st, const float* x, float* xa, uint32_t* bits, int64_t n, double p, float keep, int isa);
/* xa[i] = x[i] * (bit i ? keep : 0) */
void ev_dropout_apply(const uint32_t* bits, const float* x, float* xa, int64_t n, float keep);
/* gx [rows, I] += (gu [rows, R] A [R, I]) * mask (bits over rows x I); 0, or -2 without memory */
/* u [rows, R] = (x * mask) A^T, A [R, I], R <= 32; 0, or -2 without memory */
int ev_lora_drop_u(const float* x, const uint32_t* bits, float keep, const float* A, float* u, int64_t rows, int I, int R);
/* gA [R, I] += gu^T (x * mask), gu [rows, R], R <= 16; 0, or -2 without memory */
int ev_lora_drop_ga(const float* gu, const float* x, const uint32_t* bits, float keep, float* gA, int64_t rows, int I, int R);
int ev_lora_dx(const float* gu, const float* A, const uint32_t* bits, float keep, float* gx, int64_t rows, int I, int R);
/* fork-join over [0, n): fn(ctx, begin, end, part) with part < ev_loop_threads() */
typedef void (*ev_range_fn)(void* ctx, int64_t begin, int64_t end, int part);
void ev_parallel_for(int64_t n, int64_t min_per_part, ev_range_fn fn, void* ctx);
/* the same with an explicit part count (capped at the pool size and n); the GEMM's own thread count */
void ev_parallel_parts(int64_t n, int parts, ev_range_fn fn, void* ctx);
int ev_loop_threads(void);
void ev_set_loop_threads(int n);
#endif
