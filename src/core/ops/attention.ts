/**
 * Fused scaled-dot-product attention with causal and key-padding masks and grouped-query heads.
 *
 * Layout: q [B, T, Hq*Dh], k and v [B, S, Hkv*Dh] — exactly what linear projections produce, so no
 * transposes are needed ([B, T, H, Dh] is accepted too: same memory). Output has q's shape.
 * Query head h reads kv head floor(h / (Hq / Hkv)). With causal masking and S > T (KV cache),
 * query t sits at absolute position t + S - T. Probabilities [B, Hq, T, S] are kept for backward;
 * without gradients (noGrad or constant inputs) the inference kernel runs instead and keeps nothing.
 *
 * Shared prefix (KV-cache scoring): with `prefix`, row b attends to [prefix row prefix.rows[b] ; k[b]]:
 * prefix.k/v are [Bp, S0, Hkv*Dh] constants read in place by row index (never repeated per row), S0 =
 * prefix.length, and keyMask covers all S0 + S keys. With gradients the prefix rows are gathered and
 * concatenated (the prefix gets no gradient; k and v do).
 */
import { Tensor } from '../tensor.js';
import { floats } from '../arena.js';
import { record, needsGrad, gradBuffer } from '../autograd.js';
import { getKernels } from '../kernels/index.js';
import { concat, reshape } from './shape.js';

export interface AttentionOptions {
  /** Query heads (required for 3-D inputs). */
  numHeads?: number;
  /** Key/value heads (default numHeads); must divide numHeads. */
  numKvHeads?: number;
  /** Causal mask (default true). */
  causal?: boolean;
  /** Key padding mask [B, S]: nonzero = attend, 0 = padding. Rows with no visible key output 0. */
  keyMask?: Uint8Array | null;
  /** Score scale (default 1/sqrt(Dh)). */
  scale?: number;
  /**
   * Query mask [B, T]: rows with 0 output zeros and get no gradient (the inference kernel skips them;
   * for padded query positions whose output is discarded).
   */
  queryMask?: Uint8Array | null;
  /** Keys/values [Bp, length, Hkv*Dh] read before k/v, row rows[b] for batch row b (constants). */
  prefix?: AttentionPrefix | null;
}

export interface AttentionPrefix {
  k: Float32Array;
  v: Float32Array;
  /** [B]: the prefix row of each batch row. */
  rows: Int32Array;
  /** Prefix positions S0. */
  length: number;
}

export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const B = q.shape[0], T = q.shape[1], S = k.shape[1];
  let Hq: number, Hkv: number;
  if (q.ndim === 4) {
    Hq = q.shape[2];
    Hkv = k.shape[2];
  } else {
    if (!opts.numHeads) throw new Error('attention: numHeads is required for [B, T, H*Dh] inputs');
    Hq = opts.numHeads;
    Hkv = opts.numKvHeads ?? Hq;
  }
  const Wq = q.size / (B * T), Wk = k.size / (B * S);
  const Dh = Wq / Hq;
  if (!Number.isInteger(Dh) || Wk !== Hkv * Dh) throw new Error(`attention: shapes q [${q.shape}] k [${k.shape}] do not fit ${Hq}/${Hkv} heads`);
  if (v.size !== k.size || k.shape[0] !== B) throw new Error('attention: k and v must have the same shape and batch as q');
  if (Hq % Hkv !== 0) throw new Error('attention: numKvHeads must divide numHeads');
  const causal = opts.causal ?? true;
  const scale = opts.scale ?? 1 / Math.sqrt(Dh);
  const keyMask = opts.keyMask ?? null;
  const pre = opts.prefix && opts.prefix.length > 0 ? opts.prefix : null;
  const S0 = pre ? pre.length : 0;
  if (keyMask && keyMask.length !== B * (S0 + S)) throw new Error(`attention: keyMask must have B*S = ${B * (S0 + S)} entries`);
  const queryMask = opts.queryMask ?? null;
  if (queryMask && queryMask.length !== B * T) throw new Error('attention: queryMask must have B*T entries');
  if (pre) {
    if (pre.rows.length !== B) throw new Error(`attention: prefix.rows has ${pre.rows.length} entries for batch ${B}`);
    const Bp = pre.k.length / (S0 * Wk);
    if (!Number.isInteger(Bp) || pre.v.length !== pre.k.length) throw new Error(`attention: prefix arrays do not fit length ${S0} x width ${Wk}`);
    for (let b = 0; b < B; b++) if (pre.rows[b] < 0 || pre.rows[b] >= Bp) throw new Error(`attention: prefix row ${pre.rows[b]} out of range [0, ${Bp})`);
  }
  if (!needsGrad(q, k, v)) {
    const out = floats(q.size);
    getKernels().attentionInfer(q.data, k.data, v.data, out, B, T, S, Hq, Hkv, Dh, scale, causal, keyMask,
      pre ? pre.k : null, pre ? pre.v : null, pre ? pre.rows : null, S0, queryMask);
    return new Tensor(out, q.shape);
  }
  if (pre) {
    // Gradients needed: materialise [prefix rows ; k] (the prefix part is a constant).
    const gather = (src: Float32Array): Tensor => {
      const d = floats(B * S0 * Wk);
      for (let b = 0; b < B; b++) d.set(src.subarray(pre.rows[b] * S0 * Wk, (pre.rows[b] + 1) * S0 * Wk), b * S0 * Wk);
      return new Tensor(d, [B, S0, Wk]);
    };
    const k3 = k.ndim === 3 ? k : reshape(k, [B, S, Wk]);
    const v3 = v.ndim === 3 ? v : reshape(v, [B, S, Wk]);
    const kAll = concat([gather(pre.k), k3], 1), vAll = concat([gather(pre.v), v3], 1);
    const q3 = q.ndim === 3 ? q : reshape(q, [B, T, Hq * Dh]);
    const res = attention(q3, kAll, vAll, { numHeads: Hq, numKvHeads: Hkv, causal, keyMask, scale, queryMask });
    return q.ndim === 3 ? res : reshape(res, q.shape);
  }
  const P = floats(B * Hq * T * S, false); // overwritten by the kernel (zeros outside the mask)
  const out = floats(q.size, false); // every row written (zeros where no key is visible)
  getKernels().attentionForward(q.data, k.data, v.data, out, P, B, T, S, Hq, Hkv, Dh, scale, causal, keyMask);
  const Wo = Hq * Dh;
  if (queryMask) for (let r = 0; r < B * T; r++) if (!queryMask[r]) out.fill(0, r * Wo, (r + 1) * Wo);
  const res = new Tensor(out, q.shape);
  return record(res, 'attention', [q, k, v], (g0) => {
    let g = g0;
    if (queryMask) {
      g = g0.slice();
      for (let r = 0; r < B * T; r++) if (!queryMask[r]) g.fill(0, r * Wo, (r + 1) * Wo);
    }
    const dP = floats(P.length, false); // scratch, overwritten by the kernel
    const gq = q.requiresGrad ? gradBuffer(q) : null;
    const gk = k.requiresGrad ? gradBuffer(k) : null;
    const gv = v.requiresGrad ? gradBuffer(v) : null;
    getKernels().attentionBackward(q.data, k.data, v.data, P, g, dP, gq, gk, gv, B, T, S, Hq, Hkv, Dh, scale, causal);
  });
}
