/**
 * Fused scaled-dot-product attention with causal and key-padding masks and grouped-query heads.
 *
 * Layout: q [B, T, Hq*Dh], k and v [B, S, Hkv*Dh] — exactly what linear projections produce, so no
 * transposes are needed ([B, T, H, Dh] is accepted too: same memory). Output has q's shape.
 * Query head h reads kv head floor(h / (Hq / Hkv)). With causal masking and S > T (KV cache),
 * query t sits at absolute position t + S - T. Probabilities [B, Hq, T, S] are kept for backward.
 */
import { Tensor } from '../tensor.js';
import { record, needsGrad, gradBuffer } from '../autograd.js';
import { getKernels } from '../kernels/index.js';

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
  if (keyMask && keyMask.length !== B * S) throw new Error('attention: keyMask must have B*S entries');
  const P = new Float32Array(B * Hq * T * S);
  const out = new Float32Array(q.size);
  getKernels().attentionForward(q.data, k.data, v.data, out, P, B, T, S, Hq, Hkv, Dh, scale, causal, keyMask);
  const res = new Tensor(out, q.shape);
  if (!needsGrad(q, k, v)) return res;
  return record(res, 'attention', [q, k, v], (g) => {
    const dP = new Float32Array(P.length);
    const gq = q.requiresGrad ? gradBuffer(q) : null;
    const gk = k.requiresGrad ? gradBuffer(k) : null;
    const gv = v.requiresGrad ? gradBuffer(v) : null;
    getKernels().attentionBackward(q.data, k.data, v.data, P, g, dP, gq, gk, gv, B, T, S, Hq, Hkv, Dh, scale, causal);
  });
}
