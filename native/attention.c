/* Fused scaled-dot-product attention over the [B, T, H*Dh] layout (see src/core/ops/attention.ts).
 * One N-API call handles every (batch, head): per head, scores and products are strided sgemm calls
 * straight on the projection layout (no transposes), with the masked softmax in between.
 * Probabilities P [B, Hq, T, S] are written for the backward.
 * (A register-blocked C version of the products was tried: slower than OpenBLAS at T = S = 64.) */
#include "kernels.h"
#include <stdlib.h>
#include <string.h>

/* Query rows are processed in blocks of EV_QB: with the causal mask a block only needs the keys up to
 * its last row's position (about 40% fewer flops at T = S = 175), and in the forward keys after the
 * last unmasked one of a row (right padding) are skipped too. Scores outside a row's visible range are
 * never read: the masked softmax zeros them. */
#define EV_QB 32

static int block_lim(int t1, int T, int S, int causal, int jmax) {
  int lim = causal ? t1 + S - T : S; /* keys visible to row t1 - 1 */
  if (lim > jmax) lim = jmax;
  return lim < 0 ? 0 : (lim > S ? S : lim);
}

/* The training kernels split the batch rows over the loop threads: every (b, h) problem is small
 * (products of 32 query rows, below the GEMM's own threading threshold), and one batch row's gradients
 * gq/gk/gv touch only that row's slices, so the accumulation order within a row (heads, then query
 * blocks) is the serial one and results do not depend on the thread count. */
typedef struct {
  const float *q, *k, *v, *P, *gout;
  float *out, *Pw, *dP, *gq, *gk, *gv;
  int B, T, S, Hq, Hkv, Dh, causal;
  float scale;
  const uint8_t* keyMask;
} AttnCtx;

static void attn_fwd_range(void* p, int64_t b0, int64_t b1, int part) {
  (void)part;
  const AttnCtx* c = (const AttnCtx*)p;
  const int T = c->T, S = c->S, Hq = c->Hq, Dh = c->Dh, causal = c->causal;
  const int Wq = Hq * Dh, Wk = c->Hkv * Dh, G = Hq / c->Hkv;
  const int64_t TS = (int64_t)T * S;
  for (int64_t b = b0; b < b1; b++) {
    int jmax = S;
    if (c->keyMask) {
      const uint8_t* km = c->keyMask + b * S;
      while (jmax > 0 && !km[jmax - 1]) jmax--;
    }
    for (int h = 0; h < Hq; h++) {
      const int kh = h / G;
      const float* qb = c->q + b * T * Wq + (int64_t)h * Dh;
      const float* kb = c->k + b * S * Wk + (int64_t)kh * Dh;
      float* pb = c->Pw + (b * Hq + h) * TS;
      for (int t0 = 0; t0 < T; t0 += EV_QB) {
        const int t1 = t0 + EV_QB < T ? t0 + EV_QB : T;
        const int lim = block_lim(t1, T, S, causal, jmax);
        if (lim > 0) ev_gemm(0, 1, t1 - t0, lim, Dh, 1.0f, qb + (int64_t)t0 * Wq, Wq, kb, Wk, 0.0f, pb + (int64_t)t0 * S, S);
      }
    }
    ev_attention_softmax(c->Pw + b * Hq * TS, 1, Hq, T, S, c->scale, causal, c->keyMask ? c->keyMask + b * S : NULL);
    for (int h = 0; h < Hq; h++) {
      const int kh = h / G;
      const float* vb = c->v + b * S * Wk + (int64_t)kh * Dh;
      const float* pb = c->Pw + (b * Hq + h) * TS;
      float* ob = c->out + b * T * Wq + (int64_t)h * Dh;
      for (int t0 = 0; t0 < T; t0 += EV_QB) {
        const int t1 = t0 + EV_QB < T ? t0 + EV_QB : T;
        const int lim = block_lim(t1, T, S, causal, jmax);
        if (lim > 0) ev_gemm(0, 0, t1 - t0, Dh, lim, 1.0f, pb + (int64_t)t0 * S, S, vb, Wk, 0.0f, ob + (int64_t)t0 * Wq, Wq);
        else for (int t = t0; t < t1; t++) memset(ob + (int64_t)t * Wq, 0, sizeof(float) * Dh);
      }
    }
  }
}

void ev_attention_forward(const float* q, const float* k, const float* v, float* out, float* P, int B, int T, int S,
                          int Hq, int Hkv, int Dh, float scale, int causal, const uint8_t* keyMask) {
  AttnCtx c = {.q = q, .k = k, .v = v, .out = out, .Pw = P, .B = B, .T = T, .S = S, .Hq = Hq, .Hkv = Hkv, .Dh = Dh,
               .causal = causal, .scale = scale, .keyMask = keyMask};
  ev_parallel_for(B, 1, attn_fwd_range, &c);
}

static void attn_bwd_range(void* p, int64_t b0, int64_t b1, int part) {
  (void)part;
  const AttnCtx* c = (const AttnCtx*)p;
  const int T = c->T, S = c->S, Hq = c->Hq, Dh = c->Dh, causal = c->causal;
  const int Wq = Hq * Dh, Wk = c->Hkv * Dh, G = Hq / c->Hkv;
  const int64_t TS = (int64_t)T * S;
  const float *q = c->q, *k = c->k, *v = c->v, *P = c->P, *gout = c->gout;
  float *dP = c->dP, *gq = c->gq, *gk = c->gk, *gv = c->gv;
  for (int64_t b = b0; b < b1; b++) {
    for (int h = 0; h < Hq; h++) {
      const int kh = h / G;
      const int64_t qo = b * T * Wq + (int64_t)h * Dh, ko = b * S * Wk + (int64_t)kh * Dh;
      const int64_t po = (b * Hq + h) * TS;
      for (int t0 = 0; t0 < T; t0 += EV_QB) {
        const int t1 = t0 + EV_QB < T ? t0 + EV_QB : T, n = t1 - t0;
        const int lim = block_lim(t1, T, S, causal, S);
        float* dpb = dP + po + (int64_t)t0 * S;
        if (lim < S) for (int t = 0; t < n; t++) memset(dpb + (int64_t)t * S + lim, 0, sizeof(float) * (S - lim));
        if (lim == 0) continue;
        ev_gemm(0, 1, n, lim, Dh, 1.0f, gout + qo + (int64_t)t0 * Wq, Wq, v + ko, Wk, 0.0f, dpb, S); /* dP = dO V^T */
        if (gv) ev_gemm(1, 0, lim, Dh, n, 1.0f, P + po + (int64_t)t0 * S, S, gout + qo + (int64_t)t0 * Wq, Wq, 1.0f, gv + ko, Wk); /* dV += P^T dO */
      }
    }
    ev_attention_softmax_backward(P + b * Hq * TS, dP + b * Hq * TS, (int64_t)Hq * T, S, c->scale);
    for (int h = 0; h < Hq; h++) {
      const int kh = h / G;
      const int64_t qo = b * T * Wq + (int64_t)h * Dh, ko = b * S * Wk + (int64_t)kh * Dh;
      const int64_t po = (b * Hq + h) * TS;
      for (int t0 = 0; t0 < T; t0 += EV_QB) {
        const int t1 = t0 + EV_QB < T ? t0 + EV_QB : T, n = t1 - t0;
        const int lim = block_lim(t1, T, S, causal, S);
        if (lim == 0) continue;
        const float* dsb = dP + po + (int64_t)t0 * S;
        if (gq) ev_gemm(0, 0, n, Dh, lim, 1.0f, dsb, S, k + ko, Wk, 1.0f, gq + qo + (int64_t)t0 * Wq, Wq); /* dQ += dS K */
        if (gk) ev_gemm(1, 0, lim, Dh, n, 1.0f, dsb, S, q + qo + (int64_t)t0 * Wq, Wq, 1.0f, gk + ko, Wk); /* dK += dS^T Q */
      }
    }
  }
}

/* Gradients, accumulated into gq/gk/gv when non-null. dP is scratch of P's size (overwritten). */
void ev_attention_backward(const float* q, const float* k, const float* v, const float* P, const float* gout,
                           float* dP, float* gq, float* gk, float* gv, int B, int T, int S, int Hq, int Hkv, int Dh,
                           float scale, int causal) {
  /* P is already zero outside the causal/padding mask */
  AttnCtx c = {.q = q, .k = k, .v = v, .P = P, .gout = gout, .dP = dP, .gq = gq, .gk = gk, .gv = gv, .B = B, .T = T,
               .S = S, .Hq = Hq, .Hkv = Hkv, .Dh = Dh, .causal = causal, .scale = scale};
  ev_parallel_for(B, 1, attn_bwd_range, &c);
}

/* Inference attention (no probabilities kept, no gradient) over keys [prefix ; own]: row b's prefix is
 * row rowMap[b] of kPre/vPre [Bp, S0, Hkv*Dh] (S0 may be 0, kPre/vPre/rowMap then unused), followed by
 * k/v [B, S1, Hkv*Dh]. S = S0 + S1; keyMask [B, S]; causal: query t sits at position t + S - T.
 * queryMask [B, T] (optional): rows with 0 are skipped and output zeros.
 * Consecutive rows that share a prefix row are processed together: their (unmasked) queries and the G
 * query heads of one kv head are gathered into one [M, Dh] block, so the prefix part of the scores and
 * of the output is one large sgemm per kv head instead of B*Hq small ones; the own part is one product
 * per row. Leading keys that are masked for every row of a run (left padding) are not computed.
 * Scratch is bounded (runs are split at about 4M score floats). */
typedef struct {
  const float *q, *kPre, *vPre, *k, *v;
  const int32_t* rowMap;
  float* out;
  int S0, S1, B, T, Hq, Hkv, Dh, causal, maxRun;
  float scale;
  const uint8_t *keyMask, *queryMask;
  const int* runs; /* [b0, b1) pairs */
} InferCtx;

/* Runs [r0, r1) of rows, each with its own scratch (a part of the loop threads). Within a run the
 * products and their order are the serial ones, so the result does not depend on the thread count. */
static void infer_runs(void* p, int64_t r0, int64_t r1, int part) {
  (void)part;
  const InferCtx* c = (const InferCtx*)p;
  const float *q = c->q, *kPre = c->kPre, *vPre = c->vPre, *k = c->k, *v = c->v;
  const int32_t* rowMap = c->rowMap;
  float* out = c->out;
  const int S0 = c->S0, S1 = c->S1, T = c->T, Hq = c->Hq, Hkv = c->Hkv, Dh = c->Dh, causal = c->causal, maxRun = c->maxRun;
  const float scale = c->scale;
  const uint8_t *keyMask = c->keyMask, *queryMask = c->queryMask;
  const int Wq = Hq * Dh, Wk = Hkv * Dh, G = Hq / Hkv, S = S0 + S1, GT = G * T;
  int64_t perRow = (int64_t)GT * (S > 0 ? S : 1);
  float* sc = (float*)malloc(sizeof(float) * (size_t)(perRow * maxRun));
  float* qg = (float*)malloc(sizeof(float) * (size_t)GT * Dh * maxRun);
  float* og = (float*)malloc(sizeof(float) * (size_t)GT * Dh * maxRun);
  int* rt = (int*)malloc(sizeof(int) * (size_t)T * maxRun);      /* query position of each gathered (b, t) */
  int* rstart = (int*)malloc(sizeof(int) * (size_t)(maxRun + 1)); /* first gathered row of each b (in units of T-rows) */
  if (!sc || !qg || !og || !rt || !rstart) { free(sc); free(qg); free(og); free(rt); free(rstart); return; }
  for (int64_t run = r0; run < r1; run++) {
    const int b0 = c->runs[2 * run], b1 = c->runs[2 * run + 1];
    /* queries kept per row */
    int nq = 0;
    for (int b = b0; b < b1; b++) {
      rstart[b - b0] = nq;
      for (int t = 0; t < T; t++)
        if (!queryMask || queryMask[(int64_t)b * T + t]) rt[nq++] = t;
    }
    rstart[b1 - b0] = nq;
    if (nq == 0) continue;
    /* leading keys masked for every row of the run */
    int j0 = 0;
    if (keyMask) {
      j0 = S;
      for (int b = b0; b < b1 && j0 > 0; b++) {
        const uint8_t* km = keyMask + (int64_t)b * S;
        int j = 0;
        while (j < j0 && !km[j]) j++;
        if (j < j0) j0 = j;
      }
    }
    const int Sw = S - j0;              /* score columns computed: keys j0 .. S-1 */
    const int p0 = j0 < S0 ? j0 : S0;   /* first prefix key computed */
    const int np = S0 - p0;             /* prefix keys computed */
    const int o0 = j0 > S0 ? j0 - S0 : 0; /* first own key computed */
    const int no = S1 - o0;
    const int M = G * nq;
    for (int kh = 0; kh < Hkv; kh++) {
      /* gathered row order: b, g, kept t */
      for (int b = b0; b < b1; b++) {
        const int n = rstart[b - b0 + 1] - rstart[b - b0];
        for (int g = 0; g < G; g++)
          for (int i = 0; i < n; i++) {
            const int t = rt[rstart[b - b0] + i];
            memcpy(qg + ((int64_t)G * rstart[b - b0] + (int64_t)g * n + i) * Dh, q + ((int64_t)b * T + t) * Wq + (int64_t)(kh * G + g) * Dh,
                   sizeof(float) * Dh);
          }
      }
      if (Sw > 0) {
        if (np > 0) {
          const float* kp = kPre + ((int64_t)rowMap[b0] * S0 + p0) * Wk + (int64_t)kh * Dh;
          ev_gemm(0, 1, M, np, Dh, 1.0f, qg, Dh, kp, Wk, 0.0f, sc, Sw);
        }
        if (no > 0)
          for (int b = b0; b < b1; b++) {
            const int n = rstart[b - b0 + 1] - rstart[b - b0];
            if (n == 0) continue;
            const int64_t r0 = (int64_t)G * rstart[b - b0];
            ev_gemm(0, 1, G * n, no, Dh, 1.0f, qg + r0 * Dh, Dh, k + ((int64_t)b * S1 + o0) * Wk + (int64_t)kh * Dh, Wk, 0.0f,
                    sc + r0 * Sw + np, Sw);
          }
        for (int b = b0; b < b1; b++) {
          const int n = rstart[b - b0 + 1] - rstart[b - b0];
          const uint8_t* km = keyMask ? keyMask + (int64_t)b * S + j0 : NULL;
          for (int g = 0; g < G; g++)
            for (int i = 0; i < n; i++) {
              const int t = rt[rstart[b - b0] + i];
              float* row = sc + ((int64_t)G * rstart[b - b0] + (int64_t)g * n + i) * Sw;
              int lim = causal ? t + S - T + 1 : S;
              lim = (lim > S ? S : lim) - j0;
              lim = lim < 0 ? 0 : lim;
              ev_masked_softmax_row(row, lim, Sw, km, scale);
            }
        }
        if (np > 0) {
          const float* vp = vPre + ((int64_t)rowMap[b0] * S0 + p0) * Wk + (int64_t)kh * Dh;
          ev_gemm(0, 0, M, Dh, np, 1.0f, sc, Sw, vp, Wk, 0.0f, og, Dh);
        }
        if (no > 0)
          for (int b = b0; b < b1; b++) {
            const int n = rstart[b - b0 + 1] - rstart[b - b0];
            if (n == 0) continue;
            const int64_t r0 = (int64_t)G * rstart[b - b0];
            ev_gemm(0, 0, G * n, Dh, no, 1.0f, sc + r0 * Sw + np, Sw, v + ((int64_t)b * S1 + o0) * Wk + (int64_t)kh * Dh, Wk,
                    np > 0 ? 1.0f : 0.0f, og + r0 * Dh, Dh);
          }
      } else memset(og, 0, sizeof(float) * (size_t)M * Dh);
      for (int b = b0; b < b1; b++) {
        const int n = rstart[b - b0 + 1] - rstart[b - b0];
        for (int g = 0; g < G; g++)
          for (int i = 0; i < n; i++) {
            const int t = rt[rstart[b - b0] + i];
            memcpy(out + ((int64_t)b * T + t) * Wq + (int64_t)(kh * G + g) * Dh, og + ((int64_t)G * rstart[b - b0] + (int64_t)g * n + i) * Dh,
                   sizeof(float) * Dh);
          }
      }
    }
  }
  free(sc);
  free(qg);
  free(og);
  free(rt);
  free(rstart);
}

void ev_attention_infer(const float* q, const float* kPre, const float* vPre, const int32_t* rowMap, int S0,
                        const float* k, const float* v, int S1, float* out, int B, int T, int Hq, int Hkv, int Dh,
                        float scale, int causal, const uint8_t* keyMask, const uint8_t* queryMask) {
  const int Wq = Hq * Dh, G = Hq / Hkv, S = S0 + S1, GT = G * T;
  if (B <= 0 || T <= 0) return;
  if (queryMask) /* skipped rows output zeros */
    for (int64_t r = 0; r < (int64_t)B * T; r++)
      if (!queryMask[r]) memset(out + r * Wq, 0, sizeof(float) * Wq);
  int64_t perRow = (int64_t)GT * (S > 0 ? S : 1);
  int maxRun = (int)(((int64_t)1 << 22) / perRow);
  if (maxRun < 1) maxRun = 1;
  if (maxRun > B) maxRun = B;
  /* runs of consecutive rows that share a prefix row (at most maxRun), then split over the threads */
  int* runs = (int*)malloc(sizeof(int) * 2 * (size_t)B);
  if (!runs) return;
  int nruns = 0;
  for (int b0 = 0; b0 < B;) {
    int b1 = b0 + 1;
    if (S0 > 0) while (b1 < B && b1 - b0 < maxRun && rowMap[b1] == rowMap[b0]) b1++;
    runs[2 * nruns] = b0;
    runs[2 * nruns + 1] = b1;
    nruns++;
    b0 = b1;
  }
  InferCtx c = {.q = q, .kPre = kPre, .vPre = vPre, .k = k, .v = v, .rowMap = rowMap, .out = out, .S0 = S0, .S1 = S1,
                .B = B, .T = T, .Hq = Hq, .Hkv = Hkv, .Dh = Dh, .causal = causal, .maxRun = maxRun, .scale = scale,
                .keyMask = keyMask, .queryMask = queryMask, .runs = runs};
  ev_parallel_for(nruns, 1, infer_runs, &c);
  free(runs);
}
