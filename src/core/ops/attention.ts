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
  const G = Hq / Hkv;
  const causal = opts.causal ?? true;
  const scale = opts.scale ?? 1 / Math.sqrt(Dh);
  const keyMask = opts.keyMask ?? null;
  if (keyMask && keyMask.length !== B * S) throw new Error('attention: keyMask must have B*S entries');
  const K = getKernels();
  const TS = T * S;
  const P = new Float32Array(B * Hq * TS);
  const out = new Float32Array(q.size);
  const Q = q.data, Kd = k.data, V = v.data;
  // For each (b, kv head) the G query heads sharing it form one strided batch.
  for (let b = 0; b < B; b++) {
    for (let kh = 0; kh < Hkv; kh++) {
      const h0 = kh * G;
      K.gemm(false, true, T, S, Dh, 1, Q, b * T * Wq + h0 * Dh, Wq, Dh, Kd, b * S * Wk + kh * Dh, Wk, 0, 0, P, (b * Hq + h0) * TS, S, TS, G);
    }
  }
  K.attentionSoftmax(P, B, Hq, T, S, scale, causal, keyMask);
  for (let b = 0; b < B; b++) {
    for (let kh = 0; kh < Hkv; kh++) {
      const h0 = kh * G;
      K.gemm(false, false, T, Dh, S, 1, P, (b * Hq + h0) * TS, S, TS, V, b * S * Wk + kh * Dh, Wk, 0, 0, out, b * T * Wq + h0 * Dh, Wq, Dh, G);
    }
  }
  const res = new Tensor(out, q.shape);
  if (!needsGrad(q, k, v)) return res;
  return record(res, 'attention', [q, k, v], (g) => {
    const K2 = getKernels();
    const dP = new Float32Array(P.length);
    const gq = q.requiresGrad ? gradBuffer(q) : null;
    const gk = k.requiresGrad ? gradBuffer(k) : null;
    const gv = v.requiresGrad ? gradBuffer(v) : null;
    for (let b = 0; b < B; b++) {
      for (let kh = 0; kh < Hkv; kh++) {
        const h0 = kh * G;
        const pOff = (b * Hq + h0) * TS, qOff = b * T * Wq + h0 * Dh, kOff = b * S * Wk + kh * Dh;
        // dP = dO V^T
        K2.gemm(false, true, T, S, Dh, 1, g, qOff, Wq, Dh, V, kOff, Wk, 0, 0, dP, pOff, S, TS, G);
        // dV += P^T dO (the G heads accumulate into one kv head)
        if (gv) K2.gemm(true, false, S, Dh, T, 1, P, pOff, S, TS, g, qOff, Wq, Dh, 1, gv, kOff, Wk, 0, G);
      }
    }
    K2.attentionSoftmaxBackward(P, dP, B * Hq * T, S, scale);
    for (let b = 0; b < B; b++) {
      for (let kh = 0; kh < Hkv; kh++) {
        const h0 = kh * G;
        const pOff = (b * Hq + h0) * TS, qOff = b * T * Wq + h0 * Dh, kOff = b * S * Wk + kh * Dh;
        // dQ += dS K ; dK += dS^T Q
        if (gq) K2.gemm(false, false, T, Dh, S, 1, dP, pOff, S, TS, Kd, kOff, Wk, 0, 1, gq, qOff, Wq, Dh, G);
        if (gk) K2.gemm(true, false, S, Dh, T, 1, dP, pOff, S, TS, Q, qOff, Wq, Dh, 1, gk, kOff, Wk, 0, G);
      }
    }
  });
}
