/* Fused memory-bound kernels. Loops are written so that GCC/Clang vectorise them
 * (-O3, -fopenmp-simd for the reductions); exp uses a Cephes-style polynomial (about 1 ulp). */
#include "kernels.h"
#include <math.h>
#include <string.h>

static inline float ev_expf(float x) {
  x = x < -87.5f ? -87.5f : (x > 88.5f ? 88.5f : x);
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
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < cols; j++) {
      float e = ev_expf(xr[j] - m);
      o[j] = e;
      s += e;
    }
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
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int j = 0; j < cols; j++) s += ev_expf(xr[j] - m);
  return m + logf(s);
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
#pragma omp simd
    for (int j = 0; j < cols; j++) o[j] = g[j] - ev_expf(yr[j]) * s;
  }
}

double ev_cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int V, int ignore,
                        float* lse, int64_t* bad) {
  double total = 0;
  *bad = -1;
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = logits + r * V;
    float l = row_lse(xr, V);
    lse[r] = l;
    int t = targets[r];
    if (t == ignore) continue;
    if (t < 0 || t >= V) {
      if (*bad < 0) *bad = r;
      continue;
    }
    total += (double)l - (double)xr[t];
  }
  return total;
}

void ev_cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, int64_t rows,
                               int V, int ignore, float scale, float* glogits) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = logits + r * V;
    float* g = glogits + r * V;
    int t = targets[r];
    if (t == ignore) {
      memset(g, 0, sizeof(float) * V);
      continue;
    }
    float l = lse[r];
#pragma omp simd
    for (int j = 0; j < V; j++) g[j] = scale * ev_expf(xr[j] - l);
    g[t] -= scale;
  }
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

void ev_attention_softmax(float* s, int B, int H, int T, int S, float scale, int causal, const uint8_t* keyMask) {
  for (int b = 0; b < B; b++) {
    const uint8_t* km = keyMask ? keyMask + (int64_t)b * S : NULL;
    for (int h = 0; h < H; h++) {
      for (int t = 0; t < T; t++) {
        float* row = s + (((int64_t)b * H + h) * T + t) * S;
        int lim = causal ? (t + S - T + 1 < S ? t + S - T + 1 : S) : S;
        if (lim < 0) lim = 0;
        if (km) {
          for (int j = 0; j < lim; j++) row[j] = km[j] ? row[j] * scale : -INFINITY;
        } else {
#pragma omp simd
          for (int j = 0; j < lim; j++) row[j] *= scale;
        }
        float m = row_max(row, lim);
        if (m == -INFINITY) {
          memset(row, 0, sizeof(float) * S);
          continue;
        }
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < lim; j++) {
          float e = row[j] == -INFINITY ? 0.0f : ev_expf(row[j] - m);
          row[j] = e;
          sum += e;
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < lim; j++) row[j] *= inv;
        if (lim < S) memset(row + lim, 0, sizeof(float) * (S - lim));
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

void ev_swiglu(const float* gate, const float* up, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    float g = gate[i];
    out[i] = g / (1.0f + ev_expf(-g)) * up[i];
  }
}

void ev_swiglu_backward(const float* gate, const float* up, const float* gy, float* ggate, float* gup, int64_t n) {
  if (gup) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
      float g = gate[i];
      gup[i] += gy[i] * g / (1.0f + ev_expf(-g));
    }
  }
  if (ggate) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
      float g = gate[i];
      float sg = 1.0f / (1.0f + ev_expf(-g));
      ggate[i] += gy[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
    }
  }
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

void ev_adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
              float eps, float wd, float bc1, float bc2) {
  float decay = 1.0f - lr * wd;
  float step = lr / bc1;
  float isbc2 = 1.0f / sqrtf(bc2);
  float ob1 = 1.0f - beta1, ob2 = 1.0f - beta2;
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = beta1 * m[i] + ob1 * gi;
    float vi = beta2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (sqrtf(vi) * isbc2 + eps);
  }
}
