/* Fused scaled-dot-product attention over the [B, T, H*Dh] layout (see src/core/ops/attention.ts).
 * One N-API call handles every (batch, head): per head, scores and products are strided sgemm calls
 * straight on the projection layout (no transposes), with the masked softmax in between.
 * Probabilities P [B, Hq, T, S] are written for the backward.
 * (A register-blocked C version of the products was tried: slower than OpenBLAS at T = S = 64.) */
#include "kernels.h"

void ev_attention_forward(const float* q, const float* k, const float* v, float* out, float* P, int B, int T, int S,
                          int Hq, int Hkv, int Dh, float scale, int causal, const uint8_t* keyMask) {
  const int Wq = Hq * Dh, Wk = Hkv * Dh, G = Hq / Hkv;
  const int64_t TS = (int64_t)T * S;
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < Hq; h++) {
      const int kh = h / G;
      const float* qb = q + (int64_t)b * T * Wq + (int64_t)h * Dh;
      const float* kb = k + (int64_t)b * S * Wk + (int64_t)kh * Dh;
      float* pb = P + ((int64_t)b * Hq + h) * TS;
      ev_gemm(0, 1, T, S, Dh, 1.0f, qb, Wq, kb, Wk, 0.0f, pb, S);
    }
  }
  ev_attention_softmax(P, B, Hq, T, S, scale, causal, keyMask);
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < Hq; h++) {
      const int kh = h / G;
      const float* vb = v + (int64_t)b * S * Wk + (int64_t)kh * Dh;
      const float* pb = P + ((int64_t)b * Hq + h) * TS;
      ev_gemm(0, 0, T, Dh, S, 1.0f, pb, S, vb, Wk, 0.0f, out + (int64_t)b * T * Wq + (int64_t)h * Dh, Wq);
    }
  }
}

/* Gradients, accumulated into gq/gk/gv when non-null. dP is scratch of P's size (overwritten). */
void ev_attention_backward(const float* q, const float* k, const float* v, const float* P, const float* gout,
                           float* dP, float* gq, float* gk, float* gv, int B, int T, int S, int Hq, int Hkv, int Dh,
                           float scale, int causal) {
  (void)causal; /* P is already zero outside the causal/padding mask */
  const int Wq = Hq * Dh, Wk = Hkv * Dh, G = Hq / Hkv;
  const int64_t TS = (int64_t)T * S;
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < Hq; h++) {
      const int kh = h / G;
      const int64_t qo = (int64_t)b * T * Wq + (int64_t)h * Dh, ko = (int64_t)b * S * Wk + (int64_t)kh * Dh;
      const int64_t po = ((int64_t)b * Hq + h) * TS;
      ev_gemm(0, 1, T, S, Dh, 1.0f, gout + qo, Wq, v + ko, Wk, 0.0f, dP + po, S);      /* dP = dO V^T */
      if (gv) ev_gemm(1, 0, S, Dh, T, 1.0f, P + po, S, gout + qo, Wq, 1.0f, gv + ko, Wk); /* dV += P^T dO */
    }
  }
  ev_attention_softmax_backward(P, dP, (int64_t)B * Hq * T, S, scale);
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < Hq; h++) {
      const int kh = h / G;
      const int64_t qo = (int64_t)b * T * Wq + (int64_t)h * Dh, ko = (int64_t)b * S * Wk + (int64_t)kh * Dh;
      const int64_t po = ((int64_t)b * Hq + h) * TS;
      if (gq) ev_gemm(0, 0, T, Dh, S, 1.0f, dP + po, S, k + ko, Wk, 1.0f, gq + qo, Wq); /* dQ += dS K */
      if (gk) ev_gemm(1, 0, S, Dh, T, 1.0f, dP + po, S, q + qo, Wq, 1.0f, gk + ko, Wk); /* dK += dS^T Q */
    }
  }
}
