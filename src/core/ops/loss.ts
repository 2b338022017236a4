/** Losses: fused log-softmax cross-entropy with an ignore index. */
import { Tensor } from '../tensor.js';
import { floats } from '../arena.js';
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
  const lse = floats(rows);
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
 * Log-probability of each row's target under softmax(x W^T + bias), for scoring with an LM head: x
 * [..., D], W [V, D], one target per row -> Float32Array [rows] (0 where the target is ignoreIndex).
 * No gradient and no logits tensor (the `linearLogProbs` kernel: natively, vocabulary tiles kept in
 * cache with a running log-sum-exp per row; the TypeScript kernel goes through a scratch buffer of
 * 2^20 logits), so scoring 2,500 answer tokens against an 8,000-token vocabulary neither allocates two
 * 80 MB arrays nor reads them back, as logSoftmax(linear(x, W)) does.
 */
export function linearLogProbs(
  x: Tensor, W: Tensor, targets: Int32Array | readonly number[],
  /** `maxBufferFloats` is accepted for compatibility and unused: the kernel needs no logits buffer. */
  opts: { bias?: Tensor | null; ignoreIndex?: number; maxBufferFloats?: number } = {},
): Float32Array {
  const [V, D] = W.shape;
  if (x.dim(-1) !== D) throw new Error(`linearLogProbs: input [${x.shape}] does not match weight [${W.shape}]`);
  const rows = x.size / D;
  const tg = targets instanceof Int32Array ? targets : Int32Array.from(targets);
  if (tg.length !== rows) throw new Error(`linearLogProbs: ${tg.length} targets for ${rows} rows`);
  const ignore = opts.ignoreIndex ?? -100;
  for (let i = 0; i < rows; i++) if (tg[i] !== ignore && (tg[i] < 0 || tg[i] >= V)) throw new Error(`linearLogProbs: target ${tg[i]} out of range [0, ${V})`);
  const out = new Float32Array(rows);
  if (rows === 0) return out;
  getKernels().linearLogProbs(x.data, W.data, opts.bias ? opts.bias.data : null, tg, out, rows, V, D, ignore);
  return out;
}

/**
 * crossEntropy(linear(x, W, bias), targets) fused for LM heads: x [..., D], W [V, D]. The logits live
 * in a pooled scratch buffer that the backward overwrites in place with dlogits, so no logits
 * tensor is materialised for the caller and no second V-wide buffer is allocated. When rows * V
 * exceeds `maxBufferFloats` (default 2^25, i.e. 128 MB) the rows are processed in chunks and the
 * backward recomputes each chunk's logits (one extra forward product, bounded memory: a
 * 151k-token vocabulary at 1024 tokens would otherwise need 620 MB).
 */
export function linearCrossEntropy(
  x: Tensor, W: Tensor, targets: Int32Array | readonly number[],
  opts: CrossEntropyOptions & { bias?: Tensor | null; maxBufferFloats?: number } = {},
): Tensor {
  const [V, D] = W.shape;
  if (x.dim(-1) !== D) throw new Error(`linearCrossEntropy: input [${x.shape}] does not match weight [${W.shape}]`);
  const rows = x.size / D;
  const tg = targets instanceof Int32Array ? targets : Int32Array.from(targets);
  if (tg.length !== rows) throw new Error(`linearCrossEntropy: ${tg.length} targets for ${rows} rows`);
  const bias = opts.bias ?? null;
  const ignore = opts.ignoreIndex ?? -100;
  let count = 0;
  for (let i = 0; i < rows; i++) if (tg[i] !== ignore) count++;
  const chunk = Math.max(1, Math.min(rows, Math.floor((opts.maxBufferFloats ?? 1 << 25) / V)));
  const single = chunk >= rows;
  // logits of rows [r0, r0 + n) into buf
  const logitsOf = (buf: Float32Array, r0: number, n: number): void => {
    let beta = 0;
    if (bias) {
      for (let r = 0; r < n; r++) buf.set(bias.data, r * V);
      beta = 1;
    }
    getKernels().gemm(false, true, n, V, D, 1, x.data, r0 * D, D, 0, W.data, 0, D, 0, beta, buf, 0, V, 0, 1);
  };
  const lse = floats(rows);
  const buf = acquire(chunk * V);
  let total = 0;
  try {
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const n = Math.min(chunk, rows - r0);
      logitsOf(buf, r0, n);
      total += getKernels().crossEntropy(buf, tg.subarray(r0, r0 + n), n, V, ignore, lse.subarray(r0, r0 + n));
    }
  } catch (e) {
    release(buf);
    throw e;
  }
  if (!single) release(buf);
  const denom = opts.reduction === 'sum' ? 1 : Math.max(count, 1);
  const out = new Tensor(new Float32Array([total / denom]), []);
  const inputs = bias ? [x, W, bias] : [x, W];
  let done = false;
  const rec = record(out, 'linearCrossEntropy', inputs, (g) => {
    if (single && done) throw new Error('linearCrossEntropy: a second backward through the same graph is not supported');
    done = true;
    const k2 = getKernels();
    const dl = single ? buf : acquire(chunk * V);
    const gx = x.requiresGrad ? gradBuffer(x) : null;
    const gw = W.requiresGrad ? gradBuffer(W) : null;
    const gb = bias && bias.requiresGrad ? gradBuffer(bias) : null;
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const n = Math.min(chunk, rows - r0);
      if (!single) logitsOf(dl, r0, n);
      // in place: logits -> dlogits
      k2.crossEntropyBackward(dl, tg.subarray(r0, r0 + n), lse.subarray(r0, r0 + n), n, V, ignore, g[0] / denom, dl);
      if (gx) k2.gemm(false, false, n, D, V, 1, dl, 0, V, 0, W.data, 0, D, 0, 1, gx, r0 * D, D, 0, 1);
      if (gw) k2.gemm(true, false, V, D, n, 1, dl, 0, V, 0, x.data, r0 * D, D, 0, 1, gw, 0, D, 0, 1);
      if (gb) for (let r = 0; r < n; r++) for (let j = 0; j < V; j++) gb[j] += dl[r * V + j];
    }
    release(dl);
  });
  if (single && !rec.node) release(buf);
  return rec;
}
