/** Matrix products: matmul with transpose flags and batching, and linear (HF weight layout). */
import { Tensor, shapeSize } from '../tensor.js';
import { floats, releaseFloats } from '../arena.js';
import { record, needsGrad, gradBuffer } from '../autograd.js';
import { getKernels } from '../kernels/index.js';
import { Rng } from '../random.js';

export interface MatmulOptions {
  /** Use A^T: a's last two dims are [K, M]. */
  transA?: boolean;
  /** Use B^T: b's last two dims are [N, K]. */
  transB?: boolean;
}

/**
 * op(a) @ op(b). a: [...batch, M, K] (or [..., K, M] with transA); b: [...batch, K, N]
 * (or [..., N, K] with transB). b may be 2-D and is then shared by every batch entry; a may be
 * 2-D and shared likewise. Otherwise the batch dims must be equal. Output [...batch, M, N].
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const tA = !!opts.transA, tB = !!opts.transB;
  if (a.ndim < 2 || b.ndim < 2) throw new Error('matmul: operands need at least 2 dims');
  const aR = a.dim(-2), aC = a.dim(-1), bR = b.dim(-2), bC = b.dim(-1);
  const M = tA ? aC : aR, K = tA ? aR : aC;
  const Kb = tB ? bC : bR, N = tB ? bR : bC;
  if (K !== Kb) throw new Error(`matmul: inner dims differ: [${a.shape}]${tA ? '^T' : ''} @ [${b.shape}]${tB ? '^T' : ''}`);
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  const nA = shapeSize(aBatch), nB = shapeSize(bBatch);
  let batchShape: readonly number[];
  if (bBatch.length === 0) batchShape = aBatch;
  else if (aBatch.length === 0) batchShape = bBatch;
  else {
    if (aBatch.length !== bBatch.length || aBatch.some((d, i) => d !== bBatch[i])) throw new Error(`matmul: batch dims differ: [${a.shape}] @ [${b.shape}]`);
    batchShape = aBatch;
  }
  const batch = Math.max(nA, nB);
  const sA = aBatch.length === 0 ? 0 : M * K, sB = bBatch.length === 0 ? 0 : K * N, sC = M * N;
  const lda = aC, ldb = bC;
  const out = floats(batch * M * N, false);
  const k = getKernels();
  // Fold the batch into M when b is shared and a is not transposed: one large product.
  const fold = sB === 0 && !tA && batch > 1;
  if (fold) k.gemm(false, tB, batch * M, N, K, 1, a.data, 0, lda, 0, b.data, 0, ldb, 0, 0, out, 0, N, 0, 1);
  else k.gemm(tA, tB, M, N, K, 1, a.data, 0, lda, sA, b.data, 0, ldb, sB, 0, out, 0, N, sC, batch);
  const res = new Tensor(out, [...batchShape, M, N]);
  if (!needsGrad(a, b)) return res;
  return record(res, 'matmul', [a, b], (g) => {
    const k2 = getKernels();
    if (a.requiresGrad) {
      const ga = gradBuffer(a);
      if (fold) k2.gemm(false, !tB, batch * M, K, N, 1, g, 0, N, 0, b.data, 0, ldb, 0, 1, ga, 0, lda, 0, 1);
      else if (!tA) k2.gemm(false, !tB, M, K, N, 1, g, 0, N, sC, b.data, 0, ldb, sB, 1, ga, 0, lda, sA, batch);
      else k2.gemm(tB, true, K, M, N, 1, b.data, 0, ldb, sB, g, 0, N, sC, 1, ga, 0, lda, sA, batch);
    }
    if (b.requiresGrad) {
      const gb = gradBuffer(b);
      if (fold) {
        if (!tB) k2.gemm(true, false, K, N, batch * M, 1, a.data, 0, lda, 0, g, 0, N, 0, 1, gb, 0, ldb, 0, 1);
        else k2.gemm(true, false, N, K, batch * M, 1, g, 0, N, 0, a.data, 0, lda, 0, 1, gb, 0, ldb, 0, 1);
      } else if (!tB) k2.gemm(!tA, false, K, N, M, 1, a.data, 0, lda, sA, g, 0, N, sC, 1, gb, 0, ldb, sB, batch);
      else k2.gemm(true, tA, N, K, M, 1, g, 0, N, sC, a.data, 0, lda, sA, 1, gb, 0, ldb, sB, batch);
    }
  });
}

/**
 * y = x W^T + bias with Hugging Face / PyTorch weight layout: x [..., in], W [out, in], bias [out].
 */
export function linear(x: Tensor, W: Tensor, bias?: Tensor | null): Tensor {
  if (W.ndim !== 2) throw new Error('linear: weight must be [out, in]');
  const [O, I] = W.shape;
  if (x.dim(-1) !== I) throw new Error(`linear: input [${x.shape}] does not match weight [${W.shape}]`);
  if (bias && bias.size !== O) throw new Error('linear: bias size must equal out features');
  const rows = x.size / I;
  const out = floats(rows * O, false);
  let beta = 0;
  if (bias) {
    for (let r = 0; r < rows; r++) out.set(bias.data, r * O);
    beta = 1;
  }
  const k = getKernels();
  k.gemm(false, true, rows, O, I, 1, x.data, 0, I, 0, W.data, 0, I, 0, beta, out, 0, O, 0, 1);
  const res = new Tensor(out, [...x.shape.slice(0, -1), O]);
  const inputs = bias ? [x, W, bias] : [x, W];
  if (!needsGrad(...inputs)) return res;
  return record(res, 'linear', inputs, (g) => {
    const k2 = getKernels();
    if (x.requiresGrad) k2.gemm(false, false, rows, I, O, 1, g, 0, O, 0, W.data, 0, I, 0, 1, gradBuffer(x), 0, I, 0, 1);
    if (W.requiresGrad) k2.gemm(true, false, O, I, rows, 1, g, 0, O, 0, x.data, 0, I, 0, 1, gradBuffer(W), 0, I, 0, 1);
    if (bias && bias.requiresGrad) {
      const gb = gradBuffer(bias);
      for (let r = 0; r < rows; r++) {
        const o = r * O;
        for (let j = 0; j < O; j++) gb[j] += g[o + j];
      }
    }
  });
}

export interface LoraOptions {
  /** Multiplier of the adapter path (PEFT: lora_alpha / r). */
  scale: number;
  bias?: Tensor | null;
  /** Dropout on the adapter input (PEFT lora_dropout); needs `rng` for reproducibility. */
  dropout?: number;
  rng?: { uniform(): number };
  /** When false, dropout is off. Default true. */
  training?: boolean;
}

/**
 * LoRA linear, fused: y = x W^T + bias + scale * (drop(x) A^T) B^T with W [out, in] (usually frozen),
 * A [r, in] (PEFT lora_A) and B [out, r] (PEFT lora_B). No elementwise passes over y: the adapter
 * product accumulates into the base output, and the backward accumulates dx from both paths.
 */
export function loraLinear(x: Tensor, W: Tensor, A: Tensor, B: Tensor, opts: LoraOptions): Tensor {
  const [O, I] = W.shape;
  const R = A.shape[0];
  if (x.dim(-1) !== I || A.shape[1] !== I || B.shape[0] !== O || B.shape[1] !== R) {
    throw new Error(`loraLinear: shapes x [${x.shape}] W [${W.shape}] A [${A.shape}] B [${B.shape}] do not fit`);
  }
  const bias = opts.bias ?? null;
  const s = opts.scale;
  const rows = x.size / I;
  const k = getKernels();
  const out = floats(rows * O, false);
  let beta = 0;
  if (bias) {
    for (let r = 0; r < rows; r++) out.set(bias.data, r * O);
    beta = 1;
  }
  const p = opts.dropout ?? 0;
  const dropping = p > 0 && opts.training !== false;
  const inputs = bias ? [x, W, A, B, bias] : [x, W, A, B];
  if (!dropping) {
    // Without dropout the adapter folds into the weight: W' = W + s B A ([O, I], cheap for small r),
    // so forward and dx are single products and no pass over y or dx is spent on the rank-r path.
    const Wm = floats(W.size, false);
    Wm.set(W.data);
    k.gemm(false, false, O, I, R, s, B.data, 0, R, 0, A.data, 0, I, 0, 1, Wm, 0, I, 0, 1);
    k.gemm(false, true, rows, O, I, 1, x.data, 0, I, 0, Wm, 0, I, 0, beta, out, 0, O, 0, 1);
    const res = new Tensor(out, [...x.shape.slice(0, -1), O]);
    if (!needsGrad(...inputs)) return res;
    return record(res, 'loraLinear', inputs, (g) => {
      const k2 = getKernels();
      const gu = floats(rows * R, false); // s * g B
      k2.gemm(false, false, rows, R, O, s, g, 0, O, 0, B.data, 0, R, 0, 0, gu, 0, R, 0, 1);
      if (B.requiresGrad) {
        const u = floats(rows * R, false); // x A^T
        k2.gemm(false, true, rows, R, I, 1, x.data, 0, I, 0, A.data, 0, I, 0, 0, u, 0, R, 0, 1);
        k2.gemm(true, false, O, R, rows, s, g, 0, O, 0, u, 0, R, 0, 1, gradBuffer(B), 0, R, 0, 1);
      }
      if (A.requiresGrad) k2.gemm(true, false, R, I, rows, 1, gu, 0, R, 0, x.data, 0, I, 0, 1, gradBuffer(A), 0, I, 0, 1);
      if (W.requiresGrad) k2.gemm(true, false, O, I, rows, 1, g, 0, O, 0, x.data, 0, I, 0, 1, gradBuffer(W), 0, I, 0, 1);
      if (bias && bias.requiresGrad) {
        const gb = gradBuffer(bias);
        for (let r = 0; r < rows; r++) for (let j = 0; j < O; j++) gb[j] += g[r * O + j];
      }
      if (x.requiresGrad) k2.gemm(false, false, rows, I, O, 1, g, 0, O, 0, Wm, 0, I, 0, 1, gradBuffer(x), 0, I, 0, 1);
    });
  }
  k.gemm(false, true, rows, O, I, 1, x.data, 0, I, 0, W.data, 0, I, 0, beta, out, 0, O, 0, 1);
  // Adapter input under dropout. Only the mask's bits are kept for the backward (1/32 of a float
  // mask); the dropped-out input xa = x * mask is never stored: the kernels that read it build it
  // from x and the bits in cache tiles (loraDropU, loraDropGradA; loraDx applies the mask to dx).
  if (!opts.rng) throw new Error('loraLinear: dropout needs an rng');
  const n = x.size;
  const keep = 1 / (1 - p);
  const bits = new Uint32Array((n + 31) >>> 5);
  const rng = opts.rng;
  if (rng instanceof Rng) {
    const st = rng.getState();
    k.dropoutBits(st, null, null, bits, n, p, keep);
    rng.setState(st);
  } else for (let i = 0; i < n; i++) if (rng.uniform() >= p) bits[i >>> 5] |= 1 << (i & 31);
  const u = floats(rows * R, false);
  // xa A^T and its gradient through the tiles while the rank is small (the GEMM's skinny products,
  // whose sums do not depend on the tiling); otherwise xa in a temporary, as for any product
  const xaProduct = (fused: () => void, plain: (xa: Float32Array) => void): void => {
    if (R <= 16) return fused();
    const xa = floats(n, false);
    getKernels().dropoutApply(bits, x.data, xa, n, keep);
    plain(xa);
    releaseFloats(xa);
  };
  xaProduct(
    () => k.loraDropU(x.data, bits, keep, A.data, u, rows, I, R),
    (xa) => k.gemm(false, true, rows, R, I, 1, xa, 0, I, 0, A.data, 0, I, 0, 0, u, 0, R, 0, 1),
  );
  k.gemm(false, true, rows, O, R, s, u, 0, R, 0, B.data, 0, R, 0, 1, out, 0, O, 0, 1);
  const res = new Tensor(out, [...x.shape.slice(0, -1), O]);
  if (!needsGrad(...inputs)) return res;
  return record(res, 'loraLinear', inputs, (g) => {
    const k2 = getKernels();
    // gu = s * g B  [rows, R]
    const gu = floats(rows * R, false);
    k2.gemm(false, false, rows, R, O, s, g, 0, O, 0, B.data, 0, R, 0, 0, gu, 0, R, 0, 1);
    if (B.requiresGrad) k2.gemm(true, false, O, R, rows, s, g, 0, O, 0, u, 0, R, 0, 1, gradBuffer(B), 0, R, 0, 1);
    if (A.requiresGrad) {
      const gA = gradBuffer(A);
      xaProduct(
        () => k2.loraDropGradA(gu, x.data, bits, keep, gA, rows, I, R),
        (xa) => k2.gemm(true, false, R, I, rows, 1, gu, 0, R, 0, xa, 0, I, 0, 1, gA, 0, I, 0, 1),
      );
    }
    if (W.requiresGrad) k2.gemm(true, false, O, I, rows, 1, g, 0, O, 0, x.data, 0, I, 0, 1, gradBuffer(W), 0, I, 0, 1);
    if (bias && bias.requiresGrad) {
      const gb = gradBuffer(bias);
      for (let r = 0; r < rows; r++) for (let j = 0; j < O; j++) gb[j] += g[r * O + j];
    }
    if (x.requiresGrad) {
      const gx = gradBuffer(x);
      k2.gemm(false, false, rows, I, O, 1, g, 0, O, 0, W.data, 0, I, 0, 1, gx, 0, I, 0, 1);
      k2.loraDx(gu, A.data, bits, keep, gx, rows, I, R);
    }
  });
}
