/* Fused memory-bound kernels. Loops are written so that GCC/Clang vectorise them
 * (-O3, -fopenmp-simd for the reductions); exp uses a Cephes-style polynomial (about 1 ulp). */
#include "kernels.h"
#include <math.h>
#include <string.h>

/* exp(x): Cephes-style range reduction and degree-5 polynomial, about 1 ulp; exactly 0 below -87.5
 * (so -inf masks give 0). AVX2+FMA version for 8 lanes when available, scalar otherwise. */
static inline float ev_expf(float x) {
  if (!(x >= -87.5f)) return 0.0f;
  if (x > 88.5f) x = 88.5f;
  float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int32_t e = ((int32_t)n + 127) << 23;
  float s;
  memcpy(&s, &e, sizeof(s));
  return y * s;
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define EV_AVX2 1
static inline __m256 ev_exp8(__m256 x) {
  __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.5f), _CMP_NGE_UQ); /* x < -87.5 or NaN-free -inf */
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.5f)), _mm256_set1_ps(88.5f));
  __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(under, y);
}
static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
#endif

/* sum_j exp(x[j] - shift) */
static inline float exp_sum(const float* x, int n, float shift) {
  int j = 0;
  float s = 0;
#ifdef EV_AVX2
  __m256 acc = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
  for (; j + 16 <= n; j += 16) {
    acc = _mm256_add_ps(acc, ev_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), sh)));
    acc2 = _mm256_add_ps(acc2, ev_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), sh)));
  }
  s = hsum8(_mm256_add_ps(acc, acc2));
#endif
  for (; j < n; j++) s += ev_expf(x[j] - shift);
  return s;
}

/* out[j] = mul * exp(x[j] - shift); returns sum_j exp(x[j] - shift). out may alias x. */
static inline float exp_store(const float* x, float* out, int n, float shift, float mul) {
  int j = 0;
  float s = 0;
#ifdef EV_AVX2
  __m256 acc = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift), mu = _mm256_set1_ps(mul);
  for (; j + 8 <= n; j += 8) {
    __m256 e = ev_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), sh));
    acc = _mm256_add_ps(acc, e);
    _mm256_storeu_ps(out + j, _mm256_mul_ps(e, mu));
  }
  s = hsum8(acc);
#endif
  for (; j < n; j++) {
    float e = ev_expf(x[j] - shift);
    s += e;
    out[j] = mul * e;
  }
  return s;
}

/* sigmoid of 8 lanes */
#ifdef EV_AVX2
static inline __m256 ev_sigmoid8(__m256 g) {
  __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, ev_exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}
#endif

static inline float row_max(const float* x, int n) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

void ev_axpy(int64_t n, float a, const float* x, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

double ev_sum_squares(const float* x, int64_t n) {
  double total = 0;
  const int64_t BLK = 4096;
  for (int64_t i0 = 0; i0 < n; i0 += BLK) {
    int64_t i1 = i0 + BLK < n ? i0 + BLK : n;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = i0; i < i1; i++) s += x[i] * x[i];
    total += s;
  }
  return total;
}

void ev_softmax(const float* x, float* out, int64_t rows, int cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    float m = row_max(xr, cols);
    float s = exp_store(xr, o, cols, m, 1.0f);
    float inv = 1.0f / s;
#pragma omp simd
    for (int j = 0; j < cols; j++) o[j] *= inv;
  }
}

void ev_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float* yr = y + r * cols;
    const float* g = gy + r * cols;
    float* o = gx + r * cols;
    float d = 0;
#pragma omp simd reduction(+ : d)
    for (int j = 0; j < cols; j++) d += g[j] * yr[j];
#pragma omp simd
    for (int j = 0; j < cols; j++) o[j] = yr[j] * (g[j] - d);
  }
}

static inline float row_lse(const float* xr, int cols) {
  float m = row_max(xr, cols);
  return m + logf(exp_sum(xr, cols, m));
}

void ev_log_softmax(const float* x, float* out, int64_t rows, int cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    float lse = row_lse(xr, cols);
#pragma omp simd
    for (int j = 0; j < cols; j++) o[j] = xr[j] - lse;
  }
}

void ev_log_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float* yr = y + r * cols;
    const float* g = gy + r * cols;
    float* o = gx + r * cols;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < cols; j++) s += g[j];
    exp_store(yr, o, cols, 0.0f, -s);
#pragma omp simd
    for (int j = 0; j < cols; j++) o[j] += g[j];
  }
}

typedef struct {
  const float* logits; const int32_t* targets; int V; int ignore; float* lse; float* glogits; float scale;
  double partial[16]; int64_t bad[16];
} XentCtx;

static void xent_fwd_range(void* p, int64_t r0, int64_t r1, int part) {
  XentCtx* c = (XentCtx*)p;
  double total = 0;
  int64_t bad = -1;
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = c->logits + r * c->V;
    float l = row_lse(xr, c->V);
    c->lse[r] = l;
    int t = c->targets[r];
    if (t == c->ignore) continue;
    if (t < 0 || t >= c->V) {
      if (bad < 0) bad = r;
      continue;
    }
    total += (double)l - (double)xr[t];
  }
  c->partial[part] = total;
  c->bad[part] = bad;
}

/* rows per thread part: at least ~1M logits so a split pays for the wake-up */
static int64_t rows_per_part(int V) { int64_t m = (1 << 20) / (V > 0 ? V : 1); return m < 1 ? 1 : m; }

double ev_cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int V, int ignore,
                        float* lse, int64_t* bad) {
  XentCtx c = {logits, targets, V, ignore, lse, NULL, 0.0f, {0}, {0}};
  for (int i = 0; i < 16; i++) c.bad[i] = -1;
  ev_parallel_for(rows, rows_per_part(V), xent_fwd_range, &c);
  double total = 0;
  *bad = -1;
  for (int i = 0; i < 16; i++) {
    total += c.partial[i];
    if (c.bad[i] >= 0 && *bad < 0) *bad = c.bad[i];
  }
  return total;
}

static void xent_bwd_range(void* p, int64_t r0, int64_t r1, int part) {
  (void)part;
  XentCtx* c = (XentCtx*)p;
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = c->logits + r * c->V;
    float* g = c->glogits + r * c->V;
    int t = c->targets[r];
    if (t == c->ignore) {
      memset(g, 0, sizeof(float) * c->V);
      continue;
    }
    exp_store(xr, g, c->V, c->lse[r], c->scale);
    g[t] -= c->scale;
  }
}

void ev_cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, int64_t rows,
                               int V, int ignore, float scale, float* glogits) {
  XentCtx c = {logits, targets, V, ignore, (float*)lse, glogits, scale, {0}, {0}};
  ev_parallel_for(rows, rows_per_part(V), xent_bwd_range, &c);
}

void ev_rms_norm(const float* x, const float* w, float* out, float* rstd, int64_t rows, int dim, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int j = 0; j < dim; j++) ss += xr[j] * xr[j];
    float rs = 1.0f / sqrtf(ss / dim + eps);
    rstd[r] = rs;
#pragma omp simd
    for (int j = 0; j < dim; j++) o[j] = xr[j] * rs * w[j];
  }
}

void ev_rms_norm_backward(const float* x, const float* w, const float* rstd, const float* gy, float* gx,
                          float* gw, int64_t rows, int dim) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * dim;
    const float* g = gy + r * dim;
    float rs = rstd[r];
    if (gw) {
#pragma omp simd
      for (int j = 0; j < dim; j++) gw[j] += g[j] * xr[j] * rs;
    }
    if (gx) {
      float d = 0;
#pragma omp simd reduction(+ : d)
      for (int j = 0; j < dim; j++) d += g[j] * w[j] * xr[j];
      float c = d * rs * rs * rs / dim;
      float* o = gx + r * dim;
#pragma omp simd
      for (int j = 0; j < dim; j++) o[j] = g[j] * w[j] * rs - xr[j] * c;
    }
  }
}

void ev_layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                   int64_t rows, int dim, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < dim; j++) s += xr[j];
    float mu = s / dim;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int j = 0; j < dim; j++) ss += (xr[j] - mu) * (xr[j] - mu);
    float rs = 1.0f / sqrtf(ss / dim + eps);
    mean[r] = mu;
    rstd[r] = rs;
#pragma omp simd
    for (int j = 0; j < dim; j++) o[j] = (xr[j] - mu) * rs * w[j] + b[j];
  }
}

void ev_layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd,
                            const float* gy, float* gx, float* gw, float* gb, int64_t rows, int dim) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * dim;
    const float* g = gy + r * dim;
    float mu = mean[r], rs = rstd[r];
    if (gw) {
#pragma omp simd
      for (int j = 0; j < dim; j++) gw[j] += g[j] * (xr[j] - mu) * rs;
    }
    if (gb) {
#pragma omp simd
      for (int j = 0; j < dim; j++) gb[j] += g[j];
    }
    if (gx) {
      float s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (int j = 0; j < dim; j++) {
        float gh = g[j] * w[j];
        s1 += gh;
        s2 += gh * (xr[j] - mu) * rs;
      }
      s1 /= dim;
      s2 /= dim;
      float* o = gx + r * dim;
#pragma omp simd
      for (int j = 0; j < dim; j++) o[j] = rs * (g[j] * w[j] - s1 - (xr[j] - mu) * rs * s2);
    }
  }
}

void ev_rope(const float* x, float* out, const float* cosT, const float* sinT, const int32_t* pos,
             int64_t rows, int heads, int headDim, float sign) {
  int half = headDim / 2;
  int64_t width = (int64_t)heads * headDim;
  for (int64_t r = 0; r < rows; r++) {
    const float* c = cosT + (int64_t)pos[r] * half;
    const float* s = sinT + (int64_t)pos[r] * half;
    for (int h = 0; h < heads; h++) {
      const float* xr = x + r * width + (int64_t)h * headDim;
      float* o = out + r * width + (int64_t)h * headDim;
#pragma omp simd
      for (int i = 0; i < half; i++) {
        float x1 = xr[i], x2 = xr[i + half], si = sign * s[i];
        o[i] = x1 * c[i] - x2 * si;
        o[i + half] = x2 * c[i] + x1 * si;
      }
    }
  }
}

void ev_masked_softmax_row(float* row, int lim, int S, const uint8_t* km, float scale) {
  if (km) {
    for (int j = 0; j < lim; j++) row[j] = km[j] ? row[j] * scale : -INFINITY;
  } else {
#pragma omp simd
    for (int j = 0; j < lim; j++) row[j] *= scale;
  }
  if (lim < S) memset(row + lim, 0, sizeof(float) * (S - lim));
  float m = row_max(row, lim);
  if (m == -INFINITY) {
    memset(row, 0, sizeof(float) * lim);
    return;
  }
  float inv = 1.0f / exp_store(row, row, lim, m, 1.0f);
#pragma omp simd
  for (int j = 0; j < lim; j++) row[j] *= inv;
}

void ev_attention_softmax(float* s, int B, int H, int T, int S, float scale, int causal, const uint8_t* keyMask) {
  for (int b = 0; b < B; b++) {
    const uint8_t* km = keyMask ? keyMask + (int64_t)b * S : NULL;
    for (int h = 0; h < H; h++) {
      for (int t = 0; t < T; t++) {
        float* row = s + (((int64_t)b * H + h) * T + t) * S;
        int lim = causal ? t + S - T + 1 : S;
        lim = lim < 0 ? 0 : (lim > S ? S : lim);
        ev_masked_softmax_row(row, lim, S, km, scale);
      }
    }
  }
}

void ev_attention_softmax_backward(const float* p, float* dp, int64_t rows, int S, float scale) {
  for (int64_t r = 0; r < rows; r++) {
    const float* pr = p + r * S;
    float* d = dp + r * S;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < S; j++) dot += d[j] * pr[j];
#pragma omp simd
    for (int j = 0; j < S; j++) d[j] = scale * pr[j] * (d[j] - dot);
  }
}

static void swiglu_serial(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
#ifdef EV_AVX2
  for (; i + 8 <= n; i += 8) {
    __m256 g = _mm256_loadu_ps(gate + i);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(g, ev_sigmoid8(g)), _mm256_loadu_ps(up + i)));
  }
#endif
  for (; i < n; i++) {
    float g = gate[i];
    out[i] = g / (1.0f + ev_expf(-g)) * up[i];
  }
}

static void swiglu_backward_serial(const float* gate, const float* up, const float* gy, float* ggate, float* gup, int64_t n) {
  int64_t i = 0;
#ifdef EV_AVX2
  __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    __m256 g = _mm256_loadu_ps(gate + i), dy = _mm256_loadu_ps(gy + i);
    __m256 sg = ev_sigmoid8(g);
    if (gup) _mm256_storeu_ps(gup + i, _mm256_fmadd_ps(dy, _mm256_mul_ps(g, sg), _mm256_loadu_ps(gup + i)));
    if (ggate) {
      __m256 d = _mm256_mul_ps(sg, _mm256_fmadd_ps(g, _mm256_sub_ps(one, sg), one));
      _mm256_storeu_ps(ggate + i, _mm256_fmadd_ps(_mm256_mul_ps(dy, _mm256_loadu_ps(up + i)), d, _mm256_loadu_ps(ggate + i)));
    }
  }
#endif
  int64_t i0 = i;
  if (gup) {
    for (i = i0; i < n; i++) {
      float g = gate[i];
      gup[i] += gy[i] * g / (1.0f + ev_expf(-g));
    }
  }
  if (ggate) {
    for (i = i0; i < n; i++) {
      float g = gate[i];
      float sg = 1.0f / (1.0f + ev_expf(-g));
      ggate[i] += gy[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
    }
  }
}

/* SwiGLU is memory-bound (5-7 streams of n floats): elementwise, so split over the loop threads
 * without changing any result */
typedef struct {
  const float *gate, *up, *gy;
  float *out, *ggate, *gup;
} SwigluCtx;
static void swiglu_range(void* p, int64_t a, int64_t b, int part) {
  (void)part;
  const SwigluCtx* c = (const SwigluCtx*)p;
  swiglu_serial(c->gate + a, c->up + a, c->out + a, b - a);
}
static void swiglu_backward_range(void* p, int64_t a, int64_t b, int part) {
  (void)part;
  const SwigluCtx* c = (const SwigluCtx*)p;
  swiglu_backward_serial(c->gate + a, c->up + a, c->gy + a, c->ggate ? c->ggate + a : NULL, c->gup ? c->gup + a : NULL, b - a);
}
void ev_swiglu(const float* gate, const float* up, float* out, int64_t n) {
  SwigluCtx c = {gate, up, NULL, out, NULL, NULL};
  ev_parallel_for(n, 1 << 17, swiglu_range, &c);
}
void ev_swiglu_backward(const float* gate, const float* up, const float* gy, float* ggate, float* gup, int64_t n) {
  SwigluCtx c = {gate, up, gy, NULL, ggate, gup};
  ev_parallel_for(n, 1 << 17, swiglu_backward_range, &c);
}

void ev_embedding_backward(const int32_t* ids, const float* gy, float* gW, int64_t n, int dim) {
  for (int64_t i = 0; i < n; i++) {
    int id = ids[i];
    if (id < 0) continue;
    const float* src = gy + i * dim;
    float* dst = gW + (int64_t)id * dim;
#pragma omp simd
    for (int j = 0; j < dim; j++) dst[j] += src[j];
  }
}

typedef struct {
  float* p; const float* g; float* m; float* v; float decay, step, isbc2, beta1, beta2, eps;
} AdamCtx;

static void adamw_range(void* ctx, int64_t i0, int64_t i1, int part) {
  (void)part;
  AdamCtx* c = (AdamCtx*)ctx;
  float* p = c->p; const float* g = c->g; float* m = c->m; float* v = c->v;
  const float decay = c->decay, step = c->step, isbc2 = c->isbc2, beta1 = c->beta1, beta2 = c->beta2, eps = c->eps;
  const float ob1 = 1.0f - beta1, ob2 = 1.0f - beta2;
#pragma omp simd
  for (int64_t i = i0; i < i1; i++) {
    float gi = g[i];
    float mi = beta1 * m[i] + ob1 * gi;
    float vi = beta2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (sqrtf(vi) * isbc2 + eps);
  }
}

void ev_adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
              float eps, float wd, float bc1, float bc2) {
  AdamCtx c = {p, g, m, v, 1.0f - lr * wd, lr / bc1, 1.0f / sqrtf(bc2), beta1, beta2, eps};
  ev_parallel_for(n, 1 << 19, adamw_range, &c);
}

/* ---- Fused LM head + log-softmax at target tokens (scoring): out[r] = log softmax(x_r W^T + b)[t_r],
 * without a rows x V logits array. Rows go in blocks of LP_RB, the vocabulary in tiles of LP_VT: a
 * tile of logits (LP_RB x LP_VT floats, 640 KiB) is computed into a per-thread buffer that stays in
 * L2, folded into a running max and sum of exponentials per row (rescaled when the max grows), and the
 * target's logit is picked up in its tile. Threads claim row blocks.
 * With the built-in GEMM, W is packed once per call (all threads pack a share of its slivers) and each
 * row block of x once, and the tiles are the micro-kernel over those packed operands (through ev_gemm
 * per tile, every row block re-packed all of W and every tile its row block); otherwise (portable
 * loop, BLAS) each tile is one ev_gemm. Each row's tile maximum is taken 16 lanes at a time: the
 * scalar max loop, which GCC does not vectorise, and the re-packing together made the kernel 1.4-1.6x
 * the bare product at 800 x 8000 x 192 on one thread; now it is within a few percent of it. */
#include <stdlib.h>
#define LP_RB 320
#define LP_VT 512
#define LP_KC 320
typedef struct {
  const float* x;
  const float* W;
  const float* bias;
  const int32_t* t;
  float* out;
  int64_t rows;
  int V, D, ignore;
  int64_t blocks, next;
  int oom;
  /* the packed path (isa != EV_ISA_NONE): W in k blocks of kc_step, each block Vpad columns */
  int isa, MR, NR, kc_step, Vpad;
  float* wp;
} LpCtx;

static void lp_pack_w(void* p, int64_t s0, int64_t s1, int part) {
  (void)part;
  LpCtx* c = (LpCtx*)p;
  for (int64_t s = s0; s < s1; s++) {
    int j = (int)s * c->NR, n = c->V - j < c->NR ? c->V - j : c->NR;
    for (int pc = 0; pc < c->D; pc += c->kc_step) {
      int kc = c->D - pc < c->kc_step ? c->D - pc : c->kc_step;
      ev_gemm_pack_bt(c->isa, c->W + (int64_t)j * c->D + pc, c->D, n, kc, c->wp + (int64_t)pc * c->Vpad + (int64_t)j * kc);
    }
  }
}

/* one row's tile of logits folded into its running max, sum and target logit */
static inline float max_of(const float* x, int n) {
  float m = x[0];
  int j = 0;
#ifdef EV_AVX2
  if (n >= 16) {
    __m256 a = _mm256_loadu_ps(x), b = _mm256_loadu_ps(x + 8);
    for (j = 16; j + 16 <= n; j += 16) {
      a = _mm256_max_ps(a, _mm256_loadu_ps(x + j));
      b = _mm256_max_ps(b, _mm256_loadu_ps(x + j + 8));
    }
    a = _mm256_max_ps(a, b);
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    m = _mm_cvtss_f32(s);
  }
#endif
  for (; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

static inline void lp_fold(const float* row, int nv, int v0, int t, float* mx, float* sm, float* tg) {
  float m = max_of(row, nv);
  if (m > *mx) {
    *sm = *sm == 0.0f ? 0.0f : *sm * ev_expf(*mx - m);
    *mx = m;
  }
  *sm += exp_sum(row, nv, *mx);
  if (t >= v0 && t < v0 + nv) *tg = row[t - v0];
}

static void lp_range(void* p, int64_t b_unused, int64_t e_unused, int part) {
  (void)b_unused, (void)e_unused, (void)part;
  LpCtx* c = (LpCtx*)p;
  float* tile = NULL;
  float* ap = NULL;
  const int mpad = c->isa ? (LP_RB + c->MR - 1) / c->MR * c->MR : 0;
  if (posix_memalign((void**)&tile, 64, sizeof(float) * LP_RB * LP_VT) != 0 ||
      (c->isa && posix_memalign((void**)&ap, 64, sizeof(float) * (size_t)mpad * c->D) != 0)) {
    free(tile);
    c->oom = 1;
    return;
  }
  float mx[LP_RB], sm[LP_RB], tg[LP_RB];
  for (;;) {
    int64_t b = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
    if (b >= c->blocks) break;
    int64_t r0 = b * LP_RB;
    int n = c->rows - r0 < LP_RB ? (int)(c->rows - r0) : LP_RB;
    for (int i = 0; i < n; i++) mx[i] = -INFINITY, sm[i] = 0.0f, tg[i] = 0.0f;
    if (c->isa)
      for (int pc = 0; pc < c->D; pc += c->kc_step) {
        int kc = c->D - pc < c->kc_step ? c->D - pc : c->kc_step;
        ev_gemm_pack_a(c->isa, c->x + r0 * c->D + pc, c->D, n, kc, ap + (int64_t)pc * mpad);
      }
    for (int v0 = 0; v0 < c->V; v0 += LP_VT) {
      int nv = c->V - v0 < LP_VT ? c->V - v0 : LP_VT;
      float beta = 0.0f;
      if (c->bias) {
        for (int i = 0; i < n; i++) memcpy(tile + (int64_t)i * nv, c->bias + v0, sizeof(float) * nv);
        beta = 1.0f;
      }
      if (c->isa)
        for (int pc = 0; pc < c->D; pc += c->kc_step) {
          int kc = c->D - pc < c->kc_step ? c->D - pc : c->kc_step;
          ev_gemm_packed_tile(c->isa, kc, ap + (int64_t)pc * mpad, n, c->wp + (int64_t)pc * c->Vpad + (int64_t)v0 * kc, nv,
                              1.0f, pc == 0 ? beta : 1.0f, tile, nv);
        }
      else
        ev_gemm(0, 1, n, nv, c->D, 1.0f, c->x + r0 * c->D, c->D, c->W + (int64_t)v0 * c->D, c->D, beta, tile, nv);
      for (int i = 0; i < n; i++) lp_fold(tile + (int64_t)i * nv, nv, v0, c->t[r0 + i], &mx[i], &sm[i], &tg[i]);
    }
    for (int i = 0; i < n; i++) c->out[r0 + i] = c->t[r0 + i] == c->ignore ? 0.0f : tg[i] - (mx[i] + logf(sm[i]));
  }
  free(ap);
  free(tile);
}

/* 0 on success, -1 when a target is out of range (out untouched), -2 without memory */
int ev_linear_log_probs(const float* x, const float* W, const float* bias, const int32_t* t, float* out, int64_t rows,
                        int V, int D, int ignore) {
  for (int64_t r = 0; r < rows; r++)
    if (t[r] != ignore && (t[r] < 0 || t[r] >= V)) return -1;
  if (rows <= 0) return 0;
  LpCtx c = {x, W, bias, t, out, rows, V, D, ignore, (rows + LP_RB - 1) / LP_RB, 0, 0, EV_ISA_NONE, 0, 0, 0, 0, NULL};
  int parts = ev_get_threads();
  if (parts > c.blocks) parts = (int)c.blocks;
  if ((int64_t)rows * V * D < (1 << 22)) parts = 1;
  c.isa = D > 0 ? ev_gemm_isa_now() : EV_ISA_NONE;
  if (c.isa) {
    c.MR = ev_gemm_tile_mr(c.isa), c.NR = ev_gemm_tile_nr(c.isa);
    int n_pc = (D + LP_KC - 1) / LP_KC;
    c.kc_step = (D + n_pc - 1) / n_pc;
    c.Vpad = (V + c.NR - 1) / c.NR * c.NR;
    if (posix_memalign((void**)&c.wp, 64, sizeof(float) * (size_t)c.Vpad * D) != 0) c.wp = NULL, c.isa = EV_ISA_NONE;
  }
  if (c.isa) {
    int64_t slivers = c.Vpad / c.NR;
    int pp = ev_get_threads();
    if (pp > 1 && (int64_t)V * D >= (1 << 18)) ev_parallel_parts(slivers, pp, lp_pack_w, &c);
    else lp_pack_w(&c, 0, slivers, 0);
  }
  if (parts > 1) ev_parallel_parts(parts, parts, lp_range, &c);
  else lp_range(&c, 0, 1, 0);
  free(c.wp);
  return c.oom ? -2 : 0;
}
