/** Losses: fused log-softmax cross-entropy with an ignore index. */
import { Tensor } from '../tensor.js';
import { record, addGrad, gradBuffer } from '../autograd.js';
import { getKernels } from '../kernels/index.js';

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (default -100, as PyTorch and Hugging Face). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (default) or 'sum'. */
  reduction?: 'mean' | 'sum';
}

/**
 * Cross-entropy of logits [..., V] against integer targets (one per row), fused with log-softmax.
 * Mean over the non-ignored rows; 0 (with zero gradient) when every row is ignored.
 */
export function crossEntropy(logits: Tensor, targets: Int32Array | readonly number[], opts: CrossEntropyOptions = {}): Tensor {
  const V = logits.dim(-1);
  const rows = logits.size / V;
  const tg = targets instanceof Int32Array ? targets : Int32Array.from(targets);
  if (tg.length !== rows) throw new Error(`crossEntropy: ${tg.length} targets for ${rows} rows`);
  const ignore = opts.ignoreIndex ?? -100;
  let count = 0;
  for (let i = 0; i < rows; i++) if (tg[i] !== ignore) count++;
  const lse = new Float32Array(rows);
  const total = getKernels().crossEntropy(logits.data, tg, rows, V, ignore, lse);
  const denom = opts.reduction === 'sum' ? 1 : Math.max(count, 1);
  const out = new Tensor(new Float32Array([total / denom]), []);
  return record(out, 'crossEntropy', [logits], (g) => {
    const s = g[0] / denom;
    addGrad(logits, (gl) => getKernels().crossEntropyBackward(logits.data, tg, lse, rows, V, ignore, s, gl));
  });
}

/** Large scratch buffers reused across steps (avoids page-faulting a fresh logits buffer every step). */
const pool: Float32Array[] = [];
function acquire(n: number): Float32Array {
  const i = pool.findIndex((b) => b.length >= n);
  if (i >= 0) return pool.splice(i, 1)[0].subarray(0, n);
  return new Float32Array(n);
}
function release(b: Float32Array): void {
  if (pool.length < 4) pool.push(new Float32Array(b.buffer));
}

/**
 * crossEntropy(linear(x, W, bias), targets) fused for LM heads: x [..., D], W [V, D]. The logits live
 * in a pooled scratch buffer that the backward overwrites in place with dlogits, so no logits
 * tensor is materialised for the caller and no second V-wide buffer is allocated.
 */
export function linearCrossEntropy(x: Tensor, W: Tensor, targets: Int32Array | readonly number[], opts: CrossEntropyOptions & { bias?: Tensor | null } = {}): Tensor {
  const [V, D] = W.shape;
  if (x.dim(-1) !== D) throw new Error(`linearCrossEntropy: input [${x.shape}] does not match weight [${W.shape}]`);
  const rows = x.size / D;
  const tg = targets instanceof Int32Array ? targets : Int32Array.from(targets);
  if (tg.length !== rows) throw new Error(`linearCrossEntropy: ${tg.length} targets for ${rows} rows`);
  const bias = opts.bias ?? null;
  const ignore = opts.ignoreIndex ?? -100;
  let count = 0;
  for (let i = 0; i < rows; i++) if (tg[i] !== ignore) count++;
  const k = getKernels();
  const logits = acquire(rows * V);
  let beta = 0;
  if (bias) {
    for (let r = 0; r < rows; r++) logits.set(bias.data, r * V);
    beta = 1;
  }
  k.gemm(false, true, rows, V, D, 1, x.data, 0, D, 0, W.data, 0, D, 0, beta, logits, 0, V, 0, 1);
  const lse = new Float32Array(rows);
  let total: number;
  try {
    total = k.crossEntropy(logits, tg, rows, V, ignore, lse);
  } catch (e) {
    release(logits);
    throw e;
  }
  const denom = opts.reduction === 'sum' ? 1 : Math.max(count, 1);
  const out = new Tensor(new Float32Array([total / denom]), []);
  const inputs = bias ? [x, W, bias] : [x, W];
  let done = false;
  const rec = record(out, 'linearCrossEntropy', inputs, (g) => {
    if (done) throw new Error('linearCrossEntropy: a second backward through the same graph is not supported');
    done = true;
    const k2 = getKernels();
    const dl = logits; // overwritten in place with dlogits
    k2.crossEntropyBackward(logits, tg, lse, rows, V, ignore, g[0] / denom, dl);
    if (x.requiresGrad) k2.gemm(false, false, rows, D, V, 1, dl, 0, V, 0, W.data, 0, D, 0, 1, gradBuffer(x), 0, D, 0, 1);
    if (W.requiresGrad) k2.gemm(true, false, V, D, rows, 1, dl, 0, V, 0, x.data, 0, D, 0, 1, gradBuffer(W), 0, D, 0, 1);
    if (bias && bias.requiresGrad) {
      const gb = gradBuffer(bias);
      for (let r = 0; r < rows; r++) for (let j = 0; j < V; j++) gb[j] += dl[r * V + j];
    }
    release(logits);
  });
  if (!rec.node) release(logits);
  return rec;
}
