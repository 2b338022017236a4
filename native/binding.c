/* N-API entry points: unpack JS arguments (typed arrays are used in place, never copied)
 * and call the kernels in kernels.c / gemm.c. */
#include <node_api.h>
#include <stdio.h>
#include "kernels.h"

#define MAXARGS 24

typedef struct {
  napi_env env;
  napi_value argv[MAXARGS];
  size_t argc;
  int failed;
} Args;

static int get_args(napi_env env, napi_callback_info info, Args* a, size_t want) {
  a->env = env;
  a->argc = MAXARGS;
  a->failed = 0;
  napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL);
  if (a->argc < want) {
    napi_throw_type_error(env, NULL, "evorec native: too few arguments");
    return 0;
  }
  return 1;
}

static void* typed(Args* a, size_t i, napi_typedarray_type want) {
  napi_valuetype vt;
  napi_typeof(a->env, a->argv[i], &vt);
  if (vt == napi_null || vt == napi_undefined) return NULL;
  napi_typedarray_type t;
  size_t len;
  void* data = NULL;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(a->env, a->argv[i], &t, &len, &data, &ab, &off) != napi_ok || t != want) {
    if (!a->failed) napi_throw_type_error(a->env, NULL, "evorec native: wrong typed array argument");
    a->failed = 1;
    return NULL;
  }
  return data;
}
static float* F(Args* a, size_t i) { return (float*)typed(a, i, napi_float32_array); }
static int32_t* I32(Args* a, size_t i) { return (int32_t*)typed(a, i, napi_int32_array); }
static uint32_t* U32(Args* a, size_t i) { return (uint32_t*)typed(a, i, napi_uint32_array); }
static uint8_t* U8(Args* a, size_t i) { return (uint8_t*)typed(a, i, napi_uint8_array); }
static double D(Args* a, size_t i) {
  double v = 0;
  napi_get_value_double(a->env, a->argv[i], &v);
  return v;
}
static int64_t L(Args* a, size_t i) { return (int64_t)D(a, i); }
static int B(Args* a, size_t i) {
  bool v = false;
  napi_get_value_bool(a->env, a->argv[i], &v);
  return v ? 1 : 0;
}
static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

#define FN(name) static napi_value name(napi_env env, napi_callback_info info)
#define ARGS(n) Args a; if (!get_args(env, info, &a, n)) return NULL;

/* gemm(transA, transB, M, N, K, alpha, A, offA, lda, strideA, B, offB, ldb, strideB, beta, C, offC, ldc, strideC, batch) */
FN(js_gemm) {
  ARGS(20);
  int tA = B(&a, 0), tB = B(&a, 1);
  int M = (int)L(&a, 2), N = (int)L(&a, 3), K = (int)L(&a, 4);
  float alpha = (float)D(&a, 5);
  float* A = F(&a, 6);
  int64_t oA = L(&a, 7), lda = L(&a, 8), sA = L(&a, 9);
  float* Bm = F(&a, 10);
  int64_t oB = L(&a, 11), ldb = L(&a, 12), sB = L(&a, 13);
  float beta = (float)D(&a, 14);
  float* C = F(&a, 15);
  int64_t oC = L(&a, 16), ldc = L(&a, 17), sC = L(&a, 18);
  int64_t batch = L(&a, 19);
  if (a.failed || !A || !Bm || !C) return NULL;
  if (M <= 0 || N <= 0) return NULL;
  if (K <= 0) { /* C = beta * C */
    for (int64_t b = 0; b < batch; b++)
      for (int i = 0; i < M; i++) {
        float* c = C + oC + b * sC + (int64_t)i * ldc;
        for (int j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
      }
    return NULL;
  }
  for (int64_t b = 0; b < batch; b++)
    ev_gemm(tA, tB, M, N, K, alpha, A + oA + b * sA, (int)lda, Bm + oB + b * sB, (int)ldb, beta, C + oC + b * sC, (int)ldc);
  return NULL;
}

FN(js_axpy) { ARGS(4); float* x = F(&a, 2); float* y = F(&a, 3); if (a.failed) return NULL; ev_axpy(L(&a, 0), (float)D(&a, 1), x, y); return NULL; }

FN(js_sum_squares) {
  ARGS(1);
  napi_typedarray_type t; size_t len; void* data; napi_value ab; size_t off;
  napi_get_typedarray_info(env, a.argv[0], &t, &len, &data, &ab, &off);
  return num(env, ev_sum_squares((const float*)data, (int64_t)len));
}

FN(js_softmax) { ARGS(4); float* x = F(&a, 0); float* o = F(&a, 1); if (a.failed) return NULL; ev_softmax(x, o, L(&a, 2), (int)L(&a, 3)); return NULL; }
FN(js_softmax_backward) { ARGS(5); float* y = F(&a, 0); float* gy = F(&a, 1); float* gx = F(&a, 2); if (a.failed) return NULL; ev_softmax_backward(y, gy, gx, L(&a, 3), (int)L(&a, 4)); return NULL; }
FN(js_log_softmax) { ARGS(4); float* x = F(&a, 0); float* o = F(&a, 1); if (a.failed) return NULL; ev_log_softmax(x, o, L(&a, 2), (int)L(&a, 3)); return NULL; }
FN(js_log_softmax_backward) { ARGS(5); float* y = F(&a, 0); float* gy = F(&a, 1); float* gx = F(&a, 2); if (a.failed) return NULL; ev_log_softmax_backward(y, gy, gx, L(&a, 3), (int)L(&a, 4)); return NULL; }

/* crossEntropy(logits, targets, rows, V, ignoreIndex, lse) -> summed loss */
FN(js_cross_entropy) {
  ARGS(6);
  float* x = F(&a, 0); int32_t* t = I32(&a, 1); float* lse = F(&a, 5);
  if (a.failed) return NULL;
  int64_t bad;
  double loss = ev_cross_entropy(x, t, L(&a, 2), (int)L(&a, 3), (int)L(&a, 4), lse, &bad);
  if (bad >= 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "crossEntropy: target %d out of range [0, %d)", t[bad], (int)L(&a, 3));
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  return num(env, loss);
}
FN(js_cross_entropy_backward) {
  ARGS(8);
  float* x = F(&a, 0); int32_t* t = I32(&a, 1); float* lse = F(&a, 2); float* g = F(&a, 7);
  if (a.failed) return NULL;
  ev_cross_entropy_backward(x, t, lse, L(&a, 3), (int)L(&a, 4), (int)L(&a, 5), (float)D(&a, 6), g);
  return NULL;
}

FN(js_rms_norm) {
  ARGS(7);
  float* x = F(&a, 0); float* w = F(&a, 1); float* o = F(&a, 2); float* r = F(&a, 3);
  if (a.failed) return NULL;
  ev_rms_norm(x, w, o, r, L(&a, 4), (int)L(&a, 5), (float)D(&a, 6));
  return NULL;
}
FN(js_rms_norm_backward) {
  ARGS(8);
  float* x = F(&a, 0); float* w = F(&a, 1); float* r = F(&a, 2); float* gy = F(&a, 3); float* gx = F(&a, 4); float* gw = F(&a, 5);
  if (a.failed) return NULL;
  ev_rms_norm_backward(x, w, r, gy, gx, gw, L(&a, 6), (int)L(&a, 7));
  return NULL;
}
FN(js_layer_norm) {
  ARGS(9);
  float* x = F(&a, 0); float* w = F(&a, 1); float* b = F(&a, 2); float* o = F(&a, 3); float* mu = F(&a, 4); float* r = F(&a, 5);
  if (a.failed) return NULL;
  ev_layer_norm(x, w, b, o, mu, r, L(&a, 6), (int)L(&a, 7), (float)D(&a, 8));
  return NULL;
}
FN(js_layer_norm_backward) {
  ARGS(10);
  float* x = F(&a, 0); float* w = F(&a, 1); float* mu = F(&a, 2); float* r = F(&a, 3); float* gy = F(&a, 4);
  float* gx = F(&a, 5); float* gw = F(&a, 6); float* gb = F(&a, 7);
  if (a.failed) return NULL;
  ev_layer_norm_backward(x, w, mu, r, gy, gx, gw, gb, L(&a, 8), (int)L(&a, 9));
  return NULL;
}
FN(js_rope) {
  ARGS(9);
  float* x = F(&a, 0); float* o = F(&a, 1); float* c = F(&a, 2); float* s = F(&a, 3); int32_t* p = I32(&a, 4);
  if (a.failed) return NULL;
  ev_rope(x, o, c, s, p, L(&a, 5), (int)L(&a, 6), (int)L(&a, 7), (float)D(&a, 8));
  return NULL;
}
FN(js_attention_softmax) {
  ARGS(8);
  float* s = F(&a, 0); uint8_t* km = U8(&a, 7);
  if (a.failed) return NULL;
  ev_attention_softmax(s, (int)L(&a, 1), (int)L(&a, 2), (int)L(&a, 3), (int)L(&a, 4), (float)D(&a, 5), B(&a, 6), km);
  return NULL;
}
FN(js_attention_softmax_backward) {
  ARGS(5);
  float* p = F(&a, 0); float* dp = F(&a, 1);
  if (a.failed) return NULL;
  ev_attention_softmax_backward(p, dp, L(&a, 2), (int)L(&a, 3), (float)D(&a, 4));
  return NULL;
}
/* attentionForward(q, k, v, out, P, B, T, S, Hq, Hkv, Dh, scale, causal, keyMask) */
FN(js_attention_forward) {
  ARGS(14);
  float* q = F(&a, 0); float* k = F(&a, 1); float* v = F(&a, 2); float* o = F(&a, 3); float* P = F(&a, 4);
  uint8_t* km = U8(&a, 13);
  if (a.failed) return NULL;
  ev_attention_forward(q, k, v, o, P, (int)L(&a, 5), (int)L(&a, 6), (int)L(&a, 7), (int)L(&a, 8), (int)L(&a, 9),
                       (int)L(&a, 10), (float)D(&a, 11), B(&a, 12), km);
  return NULL;
}
/* attentionBackward(q, k, v, P, gOut, dP, gq, gk, gv, B, T, S, Hq, Hkv, Dh, scale, causal) */
FN(js_attention_backward) {
  ARGS(17);
  float* q = F(&a, 0); float* k = F(&a, 1); float* v = F(&a, 2); float* P = F(&a, 3); float* go = F(&a, 4);
  float* dP = F(&a, 5); float* gq = F(&a, 6); float* gk = F(&a, 7); float* gv = F(&a, 8);
  if (a.failed) return NULL;
  ev_attention_backward(q, k, v, P, go, dP, gq, gk, gv, (int)L(&a, 9), (int)L(&a, 10), (int)L(&a, 11), (int)L(&a, 12),
                        (int)L(&a, 13), (int)L(&a, 14), (float)D(&a, 15), B(&a, 16));
  return NULL;
}
/* attentionInfer(q, k, v, out, B, T, S1, Hq, Hkv, Dh, scale, causal, keyMask, kPre, vPre, rowMap, S0, queryMask) */
FN(js_attention_infer) {
  ARGS(18);
  float* q = F(&a, 0); float* k = F(&a, 1); float* v = F(&a, 2); float* o = F(&a, 3);
  uint8_t* km = U8(&a, 12); uint8_t* qm = U8(&a, 17); float* kp = F(&a, 13); float* vp = F(&a, 14); int32_t* rm = I32(&a, 15);
  if (a.failed) return NULL;
  int S0 = (int)L(&a, 16);
  if (S0 > 0 && (!kp || !vp || !rm)) { napi_throw_type_error(env, NULL, "evorec native: attentionInfer prefix arrays missing"); return NULL; }
  ev_attention_infer(q, kp, vp, rm, S0, k, v, (int)L(&a, 6), o, (int)L(&a, 4), (int)L(&a, 5), (int)L(&a, 7), (int)L(&a, 8),
                     (int)L(&a, 9), (float)D(&a, 10), B(&a, 11), km, qm);
  return NULL;
}
/* dropoutMask(state, x, xa, mask, n, p, keep) */
FN(js_dropout_mask) {
  ARGS(7);
  uint32_t* st = U32(&a, 0); float* x = F(&a, 1); float* xa = F(&a, 2); float* m = F(&a, 3);
  if (a.failed) return NULL;
  if (!st || !m || (xa && !x)) { napi_throw_type_error(env, NULL, "evorec native: dropoutMask arguments"); return NULL; }
  ev_dropout_mask(st, x, xa, m, L(&a, 4), D(&a, 5), (float)D(&a, 6));
  return NULL;
}
/* dropoutBits(state, x, xa, bits, n, p, keep[, isa]) */
FN(js_dropout_bits) {
  ARGS(7);
  uint32_t* st = U32(&a, 0); float* x = F(&a, 1); float* xa = F(&a, 2); uint32_t* bits = U32(&a, 3);
  if (a.failed) return NULL;
  if (!st || !bits || (xa && !x)) { napi_throw_type_error(env, NULL, "evorec native: dropoutBits arguments"); return NULL; }
  ev_dropout_bits(st, x, xa, bits, L(&a, 4), D(&a, 5), (float)D(&a, 6), a.argc > 7 ? (int)L(&a, 7) : -1);
  return NULL;
}
/* dropoutApply(bits, x, xa, n, keep) */
FN(js_dropout_apply) {
  ARGS(5);
  uint32_t* bits = U32(&a, 0); float* x = F(&a, 1); float* xa = F(&a, 2);
  if (a.failed) return NULL;
  if (!bits || !x || !xa) { napi_throw_type_error(env, NULL, "evorec native: dropoutApply arguments"); return NULL; }
  ev_dropout_apply(bits, x, xa, L(&a, 3), (float)D(&a, 4));
  return NULL;
}
/* loraDx(gu, A, bits, keep, gx, rows, I, R) */
FN(js_lora_dx) {
  ARGS(8);
  float* gu = F(&a, 0); float* A = F(&a, 1); uint32_t* bits = U32(&a, 2); float* gx = F(&a, 4);
  if (a.failed) return NULL;
  if (!gu || !A || !bits || !gx) { napi_throw_type_error(env, NULL, "evorec native: loraDx arguments"); return NULL; }
  if (ev_lora_dx(gu, A, bits, (float)D(&a, 3), gx, L(&a, 5), (int)L(&a, 6), (int)L(&a, 7)) != 0) napi_throw_error(env, NULL, "evorec native: loraDx out of memory");
  return NULL;
}
/* loraDropU(x, bits, keep, A, u, rows, I, R) */
FN(js_lora_drop_u) {
  ARGS(8);
  float* x = F(&a, 0); uint32_t* bits = U32(&a, 1); float* A = F(&a, 3); float* u = F(&a, 4);
  if (a.failed) return NULL;
  if (!x || !bits || !A || !u) { napi_throw_type_error(env, NULL, "evorec native: loraDropU arguments"); return NULL; }
  if (ev_lora_drop_u(x, bits, (float)D(&a, 2), A, u, L(&a, 5), (int)L(&a, 6), (int)L(&a, 7)) != 0) napi_throw_error(env, NULL, "evorec native: loraDropU out of memory");
  return NULL;
}
/* loraDropGradA(gu, x, bits, keep, gA, rows, I, R) */
FN(js_lora_drop_ga) {
  ARGS(8);
  float* gu = F(&a, 0); float* x = F(&a, 1); uint32_t* bits = U32(&a, 2); float* gA = F(&a, 4);
  if (a.failed) return NULL;
  if (!gu || !x || !bits || !gA) { napi_throw_type_error(env, NULL, "evorec native: loraDropGradA arguments"); return NULL; }
  if (ev_lora_drop_ga(gu, x, bits, (float)D(&a, 3), gA, L(&a, 5), (int)L(&a, 6), (int)L(&a, 7)) != 0) napi_throw_error(env, NULL, "evorec native: loraDropGradA out of memory");
  return NULL;
}
/* linearLogProbs(x, W, bias, targets, out, rows, V, D, ignore) */
FN(js_linear_log_probs) {
  ARGS(9);
  float* x = F(&a, 0); float* W = F(&a, 1); float* b = F(&a, 2); int32_t* t = I32(&a, 3); float* o = F(&a, 4);
  if (a.failed) return NULL;
  if (!x || !W || !t || !o) { napi_throw_type_error(env, NULL, "evorec native: linearLogProbs arguments"); return NULL; }
  int r = ev_linear_log_probs(x, W, b, t, o, L(&a, 5), (int)L(&a, 6), (int)L(&a, 7), (int)L(&a, 8));
  if (r == -1) napi_throw_range_error(env, NULL, "linearLogProbs: target out of range");
  if (r == -2) napi_throw_error(env, NULL, "linearLogProbs: out of memory");
  return NULL;
}
FN(js_swiglu) { ARGS(4); float* g = F(&a, 0); float* u = F(&a, 1); float* o = F(&a, 2); if (a.failed) return NULL; ev_swiglu(g, u, o, L(&a, 3)); return NULL; }
FN(js_swiglu_backward) {
  ARGS(6);
  float* g = F(&a, 0); float* u = F(&a, 1); float* gy = F(&a, 2); float* gg = F(&a, 3); float* gu = F(&a, 4);
  if (a.failed) return NULL;
  ev_swiglu_backward(g, u, gy, gg, gu, L(&a, 5));
  return NULL;
}
FN(js_embedding_backward) {
  ARGS(5);
  int32_t* ids = I32(&a, 0); float* gy = F(&a, 1); float* gw = F(&a, 2);
  if (a.failed) return NULL;
  ev_embedding_backward(ids, gy, gw, L(&a, 3), (int)L(&a, 4));
  return NULL;
}
FN(js_adamw) {
  ARGS(12);
  float* p = F(&a, 0); float* g = F(&a, 1); float* m = F(&a, 2); float* v = F(&a, 3);
  if (a.failed) return NULL;
  ev_adamw(p, g, m, v, L(&a, 4), (float)D(&a, 5), (float)D(&a, 6), (float)D(&a, 7), (float)D(&a, 8), (float)D(&a, 9),
           (float)D(&a, 10), (float)D(&a, 11));
  return NULL;
}
FN(js_get_threads) { (void)info; return num(env, ev_get_threads()); }
FN(js_set_threads) { ARGS(1); ev_set_threads((int)L(&a, 0)); ev_set_loop_threads((int)L(&a, 0)); return NULL; }
FN(js_set_loop_threads) { ARGS(1); ev_set_loop_threads((int)L(&a, 0)); return NULL; }
FN(js_get_loop_threads) { (void)info; return num(env, ev_loop_threads()); }
FN(js_blas_name) {
  (void)info;
  napi_value r;
  napi_create_string_utf8(env, ev_blas_name(), NAPI_AUTO_LENGTH, &r);
  return r;
}

FN(js_gemm_select) {
  ARGS(1);
  char name[32];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, a.argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "evorec native: gemmSelect takes a string");
    return NULL;
  }
  napi_value r;
  napi_get_boolean(env, ev_gemm_select(name), &r);
  return r;
}
FN(js_gemm_available) {
  (void)info;
  napi_value r;
  napi_create_string_utf8(env, ev_gemm_available(), NAPI_AUTO_LENGTH, &r);
  return r;
}
FN(js_blas_core) {
  (void)info;
  napi_value r;
  napi_create_string_utf8(env, ev_blas_core(), NAPI_AUTO_LENGTH, &r);
  return r;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
#define P(n, f) {n, NULL, f, NULL, NULL, NULL, napi_default, NULL}
      P("gemm", js_gemm), P("axpy", js_axpy), P("sumSquares", js_sum_squares), P("softmax", js_softmax),
      P("softmaxBackward", js_softmax_backward), P("logSoftmax", js_log_softmax),
      P("logSoftmaxBackward", js_log_softmax_backward), P("crossEntropy", js_cross_entropy),
      P("crossEntropyBackward", js_cross_entropy_backward), P("rmsNorm", js_rms_norm),
      P("rmsNormBackward", js_rms_norm_backward), P("layerNorm", js_layer_norm),
      P("layerNormBackward", js_layer_norm_backward), P("rope", js_rope),
      P("attentionSoftmax", js_attention_softmax),
      P("attentionForward", js_attention_forward), P("attentionBackward", js_attention_backward), P("attentionInfer", js_attention_infer), P("dropoutMask", js_dropout_mask), P("dropoutBits", js_dropout_bits), P("dropoutApply", js_dropout_apply), P("loraDx", js_lora_dx), P("loraDropU", js_lora_drop_u), P("loraDropGradA", js_lora_drop_ga), P("attentionSoftmaxBackward", js_attention_softmax_backward),
      P("swiglu", js_swiglu), P("linearLogProbs", js_linear_log_probs), P("swigluBackward", js_swiglu_backward), P("embeddingBackward", js_embedding_backward),
      P("adamw", js_adamw), P("getThreads", js_get_threads), P("setThreads", js_set_threads),
      P("blasName", js_blas_name), P("setLoopThreads", js_set_loop_threads), P("getLoopThreads", js_get_loop_threads),
      P("gemmSelect", js_gemm_select), P("gemmAvailable", js_gemm_available), P("blasCore", js_blas_core),
#undef P
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
