/**
 * The kernel interface: the compute primitives that the ops are built from. Two implementations:
 * `ts` (pure TypeScript, always available) and `native` (N-API addon: the built-in AVX2 GEMM or CBLAS
 * sgemm, plus fused C loops).
 * All buffers are row-major Float32Arrays used in place (no copies); offsets are in elements.
 * Kernels either overwrite their output or accumulate into it, as documented per method.
 */
export interface Kernels {
  readonly implementation: 'native' | 'ts';
  /** GEMM behind gemm: 'builtin-avx2', 'builtin-c', 'openblas', 'cblas' or 'typescript'. */
  readonly blas: string;
  /** GEMMs that can be selected here (native: from the list above; ts: ['typescript']). */
  gemmBackends(): string[];
  /**
   * Select the GEMM: 'builtin' (AVX2 when the CPU has it, else portable C), 'builtin-avx2',
   * 'builtin-c' or 'blas'. Throws when it is not available here; a no-op for 'typescript'.
   */
  setGemm(name: string): void;
  /** The CPU kernels OpenBLAS chose when it loaded (e.g. 'Haswell', 'SkylakeX'); '' without OpenBLAS. */
  blasCore(): string;
  /** Threads used by gemm. */
  threads(): number;
  setThreads(n: number): void;

  /**
   * Strided batched C = alpha * op(A) op(B) + beta * C for `batch` problems, op(X) = X or X^T.
   * op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides of the stored matrices;
   * strideA/B/C are element distances between consecutive problems (0 broadcasts a matrix).
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, offA: number, lda: number, strideA: number,
    B: Float32Array, offB: number, ldb: number, strideB: number,
    beta: number, C: Float32Array, offC: number, ldc: number, strideC: number,
    batch: number,
  ): void;

  /** y += a * x (first n elements). */
  axpy(n: number, a: number, x: Float32Array, y: Float32Array): void;
  /** Sum of squares in double precision. */
  sumSquares(x: Float32Array): number;

  /** Row softmax over the last dim (overwrite out; may alias x). */
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** gx = y * (gy - sum(gy * y)) per row (overwrite). */
  softmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, cols: number): void;
  /** Row log-softmax (overwrite). */
  logSoftmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** gx = gy - softmax(x) * sum(gy) per row, where y = logSoftmax(x) (overwrite). */
  logSoftmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, cols: number): void;

  /**
   * Cross-entropy forward: lse[r] = logsumexp(logits[r]); returns the summed loss over rows whose
   * target != ignoreIndex. Targets must be in [0, V) otherwise.
   */
  crossEntropy(logits: Float32Array, targets: Int32Array, rows: number, V: number, ignoreIndex: number, lse: Float32Array): number;
  /**
   * dlogits = scale * (softmax(logits) - onehot(target)) for non-ignored rows, 0 for ignored rows
   * (overwrite; `glogits` may alias `logits`).
   */
  crossEntropyBackward(logits: Float32Array, targets: Int32Array, lse: Float32Array, rows: number, V: number, ignoreIndex: number, scale: number, glogits: Float32Array): void;

  /** out = x * rstd * w; rstd[r] saved (overwrite). */
  rmsNorm(x: Float32Array, w: Float32Array, out: Float32Array, rstd: Float32Array, rows: number, dim: number, eps: number): void;
  /** gx overwritten (if given); gw accumulated (if given). */
  rmsNormBackward(x: Float32Array, w: Float32Array, rstd: Float32Array, gy: Float32Array, gx: Float32Array | null, gw: Float32Array | null, rows: number, dim: number): void;
  /** out = (x - mean) * rstd * w + b; mean/rstd saved (overwrite). */
  layerNorm(x: Float32Array, w: Float32Array, b: Float32Array, out: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, dim: number, eps: number): void;
  /** gx overwritten (if given); gw, gb accumulated (if given). */
  layerNormBackward(x: Float32Array, w: Float32Array, mean: Float32Array, rstd: Float32Array, gy: Float32Array, gx: Float32Array | null, gw: Float32Array | null, gb: Float32Array | null, rows: number, dim: number): void;

  /**
   * Rotary embedding, HF rotate_half convention, on rows of `heads * headDim` values. Row r uses
   * position pos[r]; cos/sin are tables [maxPos, headDim/2]. sign = -1 applies the inverse rotation
   * (the backward). Overwrites out (may not alias x).
   */
  rope(x: Float32Array, out: Float32Array, cos: Float32Array, sin: Float32Array, pos: Int32Array, rows: number, heads: number, headDim: number, sign: number): void;

  /**
   * Masked softmax of attention scores in place: s is [B, H, T, S]; query t may see key j when
   * (not causal or j <= t + S - T) and (keyMask null or keyMask[b*S + j] != 0). Scores are scaled
   * by `scale` first; masked entries and fully masked rows become 0.
   */
  attentionSoftmax(s: Float32Array, B: number, H: number, T: number, S: number, scale: number, causal: boolean, keyMask: Uint8Array | null): void;
  /** ds = p * (dp - sum(dp * p)) * scale per row, in place over dp. */
  attentionSoftmaxBackward(p: Float32Array, dp: Float32Array, rows: number, S: number, scale: number): void;

  /**
   * Fused attention forward (see ops/attention.ts for the layout): q [B, T, Hq*Dh], k/v [B, S, Hkv*Dh],
   * out like q (overwrite), P [B, Hq, T, S] probabilities (overwrite; kept for the backward).
   */
  attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, P: Float32Array,
    B: number, T: number, S: number, Hq: number, Hkv: number, Dh: number, scale: number, causal: boolean, keyMask: Uint8Array | null): void;
  /**
   * Inference attention (nothing kept for a backward): keys and values are [prefix ; own] per row, where
   * row b's prefix is row rowMap[b] of kPre/vPre [Bp, S0, Hkv*Dh] (shared, never copied; S0 = 0: no
   * prefix, kPre/vPre/rowMap may be null) and the own part is k/v [B, S1, Hkv*Dh]. keyMask [B, S0+S1];
   * causal: query t sits at position t + S0 + S1 - T. queryMask [B, T] (or null): rows with 0 output
   * zeros (and need not be computed). out like q (overwrite).
   */
  attentionInfer(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array,
    B: number, T: number, S1: number, Hq: number, Hkv: number, Dh: number, scale: number, causal: boolean, keyMask: Uint8Array | null,
    kPre: Float32Array | null, vPre: Float32Array | null, rowMap: Int32Array | null, S0: number, queryMask: Uint8Array | null): void;
  /** Fused attention backward; gq/gk/gv accumulated when given; dP is scratch of P's size. */
  attentionBackward(q: Float32Array, k: Float32Array, v: Float32Array, P: Float32Array, gOut: Float32Array, dP: Float32Array,
    gq: Float32Array | null, gk: Float32Array | null, gv: Float32Array | null,
    B: number, T: number, S: number, Hq: number, Hkv: number, Dh: number, scale: number, causal: boolean): void;

  /**
   * Dropout mask from xoshiro128** state [4] (Rng's stream, one uniform per element; state advanced in
   * place): mask[i] = uniform >= p ? keep : 0, and xa[i] = x[i] * mask[i] when xa is given.
   */
  dropoutMask(state: Uint32Array, x: Float32Array | null, xa: Float32Array | null, mask: Float32Array, n: number, p: number, keep: number): void;
  /**
   * The same draws as a bit mask: bit i % 32 of bits[i / 32] is set when element i is kept (bits holds
   * ceil(n / 32) words), and xa[i] = x[i] * (kept ? keep : 0) when xa is given. 32x smaller than the
   * float mask, for an op that keeps the mask for its backward (LoRA).
   */
  dropoutBits(state: Uint32Array, x: Float32Array | null, xa: Float32Array | null, bits: Uint32Array, n: number, p: number, keep: number): void;
  /** xa[i] = x[i] * (bit i of bits ? keep : 0): the dropped-out input again, from the bits. */
  dropoutApply(bits: Uint32Array, x: Float32Array, xa: Float32Array, n: number, keep: number): void;
  /**
   * LoRA's path of the input gradient under dropout: gx [rows, I] += (gu [rows, R] A [R, I]) * mask,
   * mask[i] = bit i ? keep : 0 over rows x I, each sum taken in double and rounded once (as
   * gx[i] += t[i] * mask[i] in JavaScript). No rows x I temporary (native: row blocks in cache).
   */
  loraDx(gu: Float32Array, A: Float32Array, bits: Uint32Array, keep: number, gx: Float32Array, rows: number, I: number, R: number): void;
  /**
   * u [rows, R] = xa A^T for A [R, I], xa = x * mask (bits as in dropoutBits, keep a float32): the
   * same sums as dropoutApply then gemm, without the rows x I xa (native: built tile by tile in cache).
   */
  loraDropU(x: Float32Array, bits: Uint32Array, keep: number, A: Float32Array, u: Float32Array, rows: number, I: number, R: number): void;
  /** gA [R, I] += gu^T xa for gu [rows, R], xa = x * mask: as loraDropU, for the backward. */
  loraDropGradA(gu: Float32Array, x: Float32Array, bits: Uint32Array, keep: number, gA: Float32Array, rows: number, I: number, R: number): void;

  /**
   * LM head and log-softmax at target tokens: out[r] = log softmax(x_r W^T + bias)[targets[r]] for x
   * [rows, D], W [V, D], bias [V] or null (0 where targets[r] == ignoreIndex; other targets must be in
   * [0, V), else a RangeError). No rows x V logits array is materialised (native: vocabulary tiles
   * with a running log-sum-exp per row).
   */
  linearLogProbs(x: Float32Array, W: Float32Array, bias: Float32Array | null, targets: Int32Array, out: Float32Array,
    rows: number, V: number, D: number, ignoreIndex: number): void;

  /** out = silu(gate) * up (overwrite). */
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  /** Gradients of swiglu; ggate/gup accumulated when given. */
  swigluBackward(gate: Float32Array, up: Float32Array, gy: Float32Array, ggate: Float32Array | null, gup: Float32Array | null, n: number): void;

  /** gW[ids[i]] += gy[i] (rows of dim); ids < 0 are skipped. */
  embeddingBackward(ids: Int32Array, gy: Float32Array, gW: Float32Array, n: number, dim: number): void;

  /**
   * One AdamW step in place over n elements (torch.optim.AdamW): m = b1 m + (1-b1) g;
   * v = b2 v + (1-b2) g^2; p = p (1 - lr wd) - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps).
   */
  adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number): void;
}
