/**
 * Pure TypeScript kernels: the fallback used when the native addon is not built (or EVOREC_KERNELS=ts).
 * Same contracts as the native ones; reductions accumulate in double precision (JS numbers).
 */
import type { Kernels } from './interface.js';
import { keepMaskFromState } from '../random.js';


const KC = 256; // k-block
const NC = 512; // j-block (columns of packed B)
let packB = new Float32Array(KC * NC);
let packA = new Float32Array(KC * 4);

/**
 * One M x N x K product: C = alpha op(A) op(B) + beta C. Blocked over k and j; B is packed into
 * 8-column strips and A into 4-row panels so that a 4 x 8 tile accumulates in 32 local variables.
 */
function gemm1(
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: Float32Array, oa: number, lda: number, B: Float32Array, ob: number, ldb: number,
  beta: number, C: Float32Array, oc: number, ldc: number,
): void {
  for (let i = 0; i < M; i++) {
    const r = oc + i * ldc;
    if (beta === 0) C.fill(0, r, r + N);
    else if (beta !== 1) for (let j = 0; j < N; j++) C[r + j] *= beta;
  }
  if (alpha === 0 || K === 0 || M === 0 || N === 0) return;
  if (packB.length < KC * NC) packB = new Float32Array(KC * NC);
  for (let j0 = 0; j0 < N; j0 += NC) {
    const nb = Math.min(NC, N - j0);
    const nFull = nb & ~7;
    for (let k0 = 0; k0 < K; k0 += KC) {
      const kb = Math.min(KC, K - k0);
      // Pack op(B)[k0:k0+kb, j0:j0+nFull] as strips of 8 columns: Bp[s][k][0..8].
      const Bp = packB;
      for (let s = 0; s < nFull; s += 8) {
        const base = s * kb;
        for (let k = 0; k < kb; k++) {
          const d = base + k * 8;
          if (transB) {
            let src = ob + (j0 + s) * ldb + k0 + k;
            for (let c = 0; c < 8; c++, src += ldb) Bp[d + c] = B[src];
          } else {
            const src = ob + (k0 + k) * ldb + j0 + s;
            for (let c = 0; c < 8; c++) Bp[d + c] = B[src + c];
          }
        }
      }
      let i = 0;
      for (; i + 4 <= M; i += 4) {
        // Pack op(A)[i:i+4, k0:k0+kb] as Ap[k][0..4], scaled by alpha.
        const Ap = packA;
        for (let k = 0; k < kb; k++) {
          for (let r = 0; r < 4; r++) {
            Ap[k * 4 + r] = alpha * (transA ? A[oa + (k0 + k) * lda + i + r] : A[oa + (i + r) * lda + k0 + k]);
          }
        }
        for (let s = 0; s < nFull; s += 8) {
          let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c04 = 0, c05 = 0, c06 = 0, c07 = 0;
          let c10 = 0, c11 = 0, c12 = 0, c13 = 0, c14 = 0, c15 = 0, c16 = 0, c17 = 0;
          let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c24 = 0, c25 = 0, c26 = 0, c27 = 0;
          let c30 = 0, c31 = 0, c32 = 0, c33 = 0, c34 = 0, c35 = 0, c36 = 0, c37 = 0;
          let bp = s * kb;
          for (let k = 0, ap = 0; k < kb; k++, ap += 4, bp += 8) {
            const a0 = Ap[ap], a1 = Ap[ap + 1], a2 = Ap[ap + 2], a3 = Ap[ap + 3];
            const b0 = Bp[bp], b1 = Bp[bp + 1], b2 = Bp[bp + 2], b3 = Bp[bp + 3];
            const b4 = Bp[bp + 4], b5 = Bp[bp + 5], b6 = Bp[bp + 6], b7 = Bp[bp + 7];
            c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3; c04 += a0 * b4; c05 += a0 * b5; c06 += a0 * b6; c07 += a0 * b7;
            c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3; c14 += a1 * b4; c15 += a1 * b5; c16 += a1 * b6; c17 += a1 * b7;
            c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3; c24 += a2 * b4; c25 += a2 * b5; c26 += a2 * b6; c27 += a2 * b7;
            c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3; c34 += a3 * b4; c35 += a3 * b5; c36 += a3 * b6; c37 += a3 * b7;
          }
          let o = oc + i * ldc + j0 + s;
          C[o] += c00; C[o + 1] += c01; C[o + 2] += c02; C[o + 3] += c03; C[o + 4] += c04; C[o + 5] += c05; C[o + 6] += c06; C[o + 7] += c07;
          o += ldc;
          C[o] += c10; C[o + 1] += c11; C[o + 2] += c12; C[o + 3] += c13; C[o + 4] += c14; C[o + 5] += c15; C[o + 6] += c16; C[o + 7] += c17;
          o += ldc;
          C[o] += c20; C[o + 1] += c21; C[o + 2] += c22; C[o + 3] += c23; C[o + 4] += c24; C[o + 5] += c25; C[o + 6] += c26; C[o + 7] += c27;
          o += ldc;
          C[o] += c30; C[o + 1] += c31; C[o + 2] += c32; C[o + 3] += c33; C[o + 4] += c34; C[o + 5] += c35; C[o + 6] += c36; C[o + 7] += c37;
        }
      }
      // Edges: remaining rows (all packed columns) and remaining columns (all rows), plain loops.
      for (; i < M; i++) {
        for (let s = 0; s < nFull; s += 8) {
          for (let c = 0; c < 8; c++) {
            let acc = 0;
            for (let k = 0; k < kb; k++) {
              const a = transA ? A[oa + (k0 + k) * lda + i] : A[oa + i * lda + k0 + k];
              acc += a * Bp[s * kb + k * 8 + c];
            }
            C[oc + i * ldc + j0 + s + c] += alpha * acc;
          }
        }
      }
      for (let j = j0 + nFull; j < j0 + nb; j++) {
        for (let r = 0; r < M; r++) {
          let acc = 0;
          for (let k = k0; k < k0 + kb; k++) {
            const a = transA ? A[oa + k * lda + r] : A[oa + r * lda + k];
            const bv = transB ? B[ob + j * ldb + k] : B[ob + k * ldb + j];
            acc += a * bv;
          }
          C[oc + r * ldc + j] += alpha * acc;
        }
      }
    }
  }
}

function rowMax(x: Float32Array, o: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) if (x[o + j] > m) m = x[o + j];
  return m;
}

function gemmBatched(
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: Float32Array, offA: number, lda: number, strideA: number, B: Float32Array, offB: number, ldb: number, strideB: number,
  beta: number, C: Float32Array, offC: number, ldc: number, strideC: number, batch: number,
): void {
  for (let b = 0; b < batch; b++) {
    gemm1(transA, transB, M, N, K, alpha, A, offA + b * strideA, lda, B, offB + b * strideB, ldb, beta, C, offC + b * strideC, ldc);
  }
}

export const tsKernels: Kernels = {
  implementation: 'ts',
  blas: 'typescript',
  gemmBackends: () => ['typescript'],
  blasCore: () => '',
  setGemm: (name: string) => {
    if (name !== 'typescript') throw new Error(`gemm ${JSON.stringify(name)}: the TypeScript kernels have only their own`);
  },
  threads: () => 1,
  setThreads: () => {},

  gemm: gemmBatched,

  axpy(n, a, x, y) {
    for (let i = 0; i < n; i++) y[i] += a * x[i];
  },

  sumSquares(x) {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i] * x[i];
    return s;
  },

  softmax(x, out, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const m = rowMax(x, o, cols);
      let s = 0;
      for (let j = 0; j < cols; j++) {
        const e = Math.exp(x[o + j] - m);
        out[o + j] = e;
        s += e;
      }
      const inv = 1 / s;
      for (let j = 0; j < cols; j++) out[o + j] *= inv;
    }
  },

  softmaxBackward(y, gy, gx, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let d = 0;
      for (let j = 0; j < cols; j++) d += gy[o + j] * y[o + j];
      for (let j = 0; j < cols; j++) gx[o + j] = y[o + j] * (gy[o + j] - d);
    }
  },

  logSoftmax(x, out, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const m = rowMax(x, o, cols);
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(x[o + j] - m);
      const lse = m + Math.log(s);
      for (let j = 0; j < cols; j++) out[o + j] = x[o + j] - lse;
    }
  },

  logSoftmaxBackward(y, gy, gx, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let s = 0;
      for (let j = 0; j < cols; j++) s += gy[o + j];
      for (let j = 0; j < cols; j++) gx[o + j] = gy[o + j] - Math.exp(y[o + j]) * s;
    }
  },

  crossEntropy(logits, targets, rows, V, ignoreIndex, lse) {
    let total = 0;
    for (let r = 0; r < rows; r++) {
      const o = r * V;
      const m = rowMax(logits, o, V);
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(logits[o + j] - m);
      const l = m + Math.log(s);
      lse[r] = l;
      const t = targets[r];
      if (t === ignoreIndex) continue;
      if (t < 0 || t >= V) throw new Error(`crossEntropy: target ${t} out of range [0, ${V})`);
      total += l - logits[o + t];
    }
    return total;
  },

  crossEntropyBackward(logits, targets, lse, rows, V, ignoreIndex, scale, glogits) {
    for (let r = 0; r < rows; r++) {
      const o = r * V;
      const t = targets[r];
      if (t === ignoreIndex) {
        glogits.fill(0, o, o + V);
        continue;
      }
      const l = lse[r];
      for (let j = 0; j < V; j++) glogits[o + j] = scale * Math.exp(logits[o + j] - l);
      glogits[o + t] -= scale;
    }
  },

  rmsNorm(x, w, out, rstd, rows, dim, eps) {
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
      const rs = 1 / Math.sqrt(ss / dim + eps);
      rstd[r] = rs;
      for (let j = 0; j < dim; j++) out[o + j] = x[o + j] * rs * w[j];
    }
  },

  rmsNormBackward(x, w, rstd, gy, gx, gw, rows, dim) {
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      const rs = rstd[r];
      if (gw) for (let j = 0; j < dim; j++) gw[j] += gy[o + j] * x[o + j] * rs;
      if (gx) {
        let d = 0;
        for (let j = 0; j < dim; j++) d += gy[o + j] * w[j] * x[o + j];
        const c = (d * rs * rs * rs) / dim;
        for (let j = 0; j < dim; j++) gx[o + j] = gy[o + j] * w[j] * rs - x[o + j] * c;
      }
    }
  },

  layerNorm(x, w, b, out, mean, rstd, rows, dim, eps) {
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let s = 0;
      for (let j = 0; j < dim; j++) s += x[o + j];
      const mu = s / dim;
      let ss = 0;
      for (let j = 0; j < dim; j++) {
        const d = x[o + j] - mu;
        ss += d * d;
      }
      const rs = 1 / Math.sqrt(ss / dim + eps);
      mean[r] = mu;
      rstd[r] = rs;
      for (let j = 0; j < dim; j++) out[o + j] = (x[o + j] - mu) * rs * w[j] + b[j];
    }
  },

  layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, dim) {
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      const mu = mean[r];
      const rs = rstd[r];
      if (gw || gb) {
        for (let j = 0; j < dim; j++) {
          if (gw) gw[j] += gy[o + j] * (x[o + j] - mu) * rs;
          if (gb) gb[j] += gy[o + j];
        }
      }
      if (gx) {
        let s1 = 0;
        let s2 = 0;
        for (let j = 0; j < dim; j++) {
          const gh = gy[o + j] * w[j];
          s1 += gh;
          s2 += gh * (x[o + j] - mu) * rs;
        }
        s1 /= dim;
        s2 /= dim;
        for (let j = 0; j < dim; j++) {
          const xh = (x[o + j] - mu) * rs;
          gx[o + j] = rs * (gy[o + j] * w[j] - s1 - xh * s2);
        }
      }
    }
  },

  rope(x, out, cos, sin, pos, rows, heads, headDim, sign) {
    const half = headDim >> 1;
    const width = heads * headDim;
    for (let r = 0; r < rows; r++) {
      const tb = pos[r] * half;
      for (let h = 0; h < heads; h++) {
        const o = r * width + h * headDim;
        for (let i = 0; i < half; i++) {
          const c = cos[tb + i];
          const s = sign * sin[tb + i];
          const x1 = x[o + i];
          const x2 = x[o + i + half];
          out[o + i] = x1 * c - x2 * s;
          out[o + i + half] = x2 * c + x1 * s;
        }
      }
    }
  },

  attentionSoftmax(s, B, H, T, S, scale, causal, keyMask) {
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          const o = ((b * H + h) * T + t) * S;
          const lim = causal ? Math.min(S, t + S - T + 1) : S;
          let m = -Infinity;
          for (let j = 0; j < lim; j++) {
            if (keyMask && keyMask[b * S + j] === 0) continue;
            const v = s[o + j] * scale;
            if (v > m) m = v;
          }
          if (m === -Infinity) {
            s.fill(0, o, o + S);
            continue;
          }
          let sum = 0;
          for (let j = 0; j < S; j++) {
            if (j >= lim || (keyMask && keyMask[b * S + j] === 0)) {
              s[o + j] = 0;
              continue;
            }
            const e = Math.exp(s[o + j] * scale - m);
            s[o + j] = e;
            sum += e;
          }
          const inv = 1 / sum;
          for (let j = 0; j < lim; j++) s[o + j] *= inv;
        }
      }
    }
  },

  attentionSoftmaxBackward(p, dp, rows, S, scale) {
    for (let r = 0; r < rows; r++) {
      const o = r * S;
      let d = 0;
      for (let j = 0; j < S; j++) d += dp[o + j] * p[o + j];
      for (let j = 0; j < S; j++) dp[o + j] = scale * p[o + j] * (dp[o + j] - d);
    }
  },

  attentionForward(q, k, v, out, P, B, T, S, Hq, Hkv, Dh, scale, causal, keyMask) {
    // Per (batch, kv head), the G query heads that share it form one strided batch of products.
    const Wq = Hq * Dh, Wk = Hkv * Dh, G = Hq / Hkv, TS = T * S;
    for (let b = 0; b < B; b++) {
      for (let kh = 0; kh < Hkv; kh++) {
        const h0 = kh * G;
        gemmBatched(false, true, T, S, Dh, 1, q, b * T * Wq + h0 * Dh, Wq, Dh, k, b * S * Wk + kh * Dh, Wk, 0, 0, P, (b * Hq + h0) * TS, S, TS, G);
      }
    }
    tsKernels.attentionSoftmax(P, B, Hq, T, S, scale, causal, keyMask);
    for (let b = 0; b < B; b++) {
      for (let kh = 0; kh < Hkv; kh++) {
        const h0 = kh * G;
        gemmBatched(false, false, T, Dh, S, 1, P, (b * Hq + h0) * TS, S, TS, v, b * S * Wk + kh * Dh, Wk, 0, 0, out, b * T * Wq + h0 * Dh, Wq, Dh, G);
      }
    }
  },

  attentionInfer(q, k, v, out, B, T, S1, Hq, Hkv, Dh, scale, causal, keyMask, kPre, vPre, rowMap, S0, queryMask) {
    // Per (row, kv head): scores [G, T, S0 + S1] against the row's prefix then its own keys.
    const Wq = Hq * Dh, Wk = Hkv * Dh, G = Hq / Hkv, S = S0 + S1, TS = T * S;
    if (S0 > 0 && (!kPre || !vPre || !rowMap)) throw new Error('attentionInfer: prefix arrays missing');
    const sc = new Float32Array(G * TS);
    for (let b = 0; b < B; b++) {
      const km = keyMask ? keyMask.subarray(b * S, (b + 1) * S) : null;
      const pOff = S0 > 0 ? rowMap![b] * S0 * Wk : 0;
      for (let kh = 0; kh < Hkv; kh++) {
        const qOff = b * T * Wq + kh * G * Dh;
        if (S0 > 0) gemmBatched(false, true, T, S0, Dh, 1, q, qOff, Wq, Dh, kPre!, pOff + kh * Dh, Wk, 0, 0, sc, 0, S, TS, G);
        if (S1 > 0) gemmBatched(false, true, T, S1, Dh, 1, q, qOff, Wq, Dh, k, b * S1 * Wk + kh * Dh, Wk, 0, 0, sc, S0, S, TS, G);
        tsKernels.attentionSoftmax(sc, 1, G, T, S, scale, causal, km);
        if (S0 > 0) gemmBatched(false, false, T, Dh, S0, 1, sc, 0, S, TS, vPre!, pOff + kh * Dh, Wk, 0, 0, out, qOff, Wq, Dh, G);
        if (S1 > 0) gemmBatched(false, false, T, Dh, S1, 1, sc, S0, S, TS, v, b * S1 * Wk + kh * Dh, Wk, 0, S0 > 0 ? 1 : 0, out, qOff, Wq, Dh, G);
        if (S === 0) for (let t = 0; t < T; t++) out.fill(0, qOff + t * Wq, qOff + t * Wq + G * Dh);
      }
    }
    if (queryMask) for (let r = 0; r < B * T; r++) if (!queryMask[r]) out.fill(0, r * Wq, (r + 1) * Wq);
  },

  attentionBackward(q, k, v, P, g, dP, gq, gk, gv, B, T, S, Hq, Hkv, Dh, scale) {
    const Wq = Hq * Dh, Wk = Hkv * Dh, G = Hq / Hkv, TS = T * S;
    for (let b = 0; b < B; b++) {
      for (let kh = 0; kh < Hkv; kh++) {
        const h0 = kh * G;
        const pOff = (b * Hq + h0) * TS, qOff = b * T * Wq + h0 * Dh, kOff = b * S * Wk + kh * Dh;
        // dP = dO V^T ; dV += P^T dO (the G heads accumulate into one kv head)
        gemmBatched(false, true, T, S, Dh, 1, g, qOff, Wq, Dh, v, kOff, Wk, 0, 0, dP, pOff, S, TS, G);
        if (gv) gemmBatched(true, false, S, Dh, T, 1, P, pOff, S, TS, g, qOff, Wq, Dh, 1, gv, kOff, Wk, 0, G);
      }
    }
    tsKernels.attentionSoftmaxBackward(P, dP, B * Hq * T, S, scale);
    for (let b = 0; b < B; b++) {
      for (let kh = 0; kh < Hkv; kh++) {
        const h0 = kh * G;
        const pOff = (b * Hq + h0) * TS, qOff = b * T * Wq + h0 * Dh, kOff = b * S * Wk + kh * Dh;
        // dQ += dS K ; dK += dS^T Q
        if (gq) gemmBatched(false, false, T, Dh, S, 1, dP, pOff, S, TS, k, kOff, Wk, 0, 1, gq, qOff, Wq, Dh, G);
        if (gk) gemmBatched(true, false, S, Dh, T, 1, dP, pOff, S, TS, q, qOff, Wq, Dh, 1, gk, kOff, Wk, 0, G);
      }
    }
  },

  dropoutMask(state, x, xa, mask, n, p, keep) {
    keepMaskFromState(state, mask, n, p, keep);
    if (xa) for (let i = 0; i < n; i++) xa[i] = x![i] * mask[i];
  },

  dropoutBits(state, x, xa, bits, n, p, keep) {
    // the float mask in pieces of 2^16 draws, packed into words
    const piece = new Float32Array(Math.min(n, 1 << 16));
    for (let i0 = 0; i0 < n; i0 += piece.length) {
      const m = Math.min(piece.length, n - i0);
      keepMaskFromState(state, piece, m, p, keep);
      for (let i = 0; i < m; i += 32) {
        let w = 0;
        for (let b = 0; b < 32 && i + b < m; b++) if (piece[i + b] !== 0) w |= 1 << b;
        bits[(i0 + i) >>> 5] = w >>> 0;
      }
      if (xa) for (let i = 0; i < m; i++) xa[i0 + i] = x![i0 + i] * piece[i];
    }
  },

  dropoutApply(bits, x, xa, n, keep) {
    const kf = Math.fround(keep); // the float mask's value
    for (let i = 0; i < n; i++) xa[i] = x[i] * ((bits[i >>> 5] >>> (i & 31)) & 1 ? kf : 0);
  },

  loraDropU(x, bits, keep, A, u, rows, I, R) {
    const xa = new Float32Array(rows * I);
    this.dropoutApply(bits, x, xa, rows * I, keep);
    this.gemm(false, true, rows, R, I, 1, xa, 0, I, 0, A, 0, I, 0, 0, u, 0, R, 0, 1);
  },

  loraDropGradA(gu, x, bits, keep, gA, rows, I, R) {
    const xa = new Float32Array(rows * I);
    this.dropoutApply(bits, x, xa, rows * I, keep);
    this.gemm(true, false, R, I, rows, 1, gu, 0, R, 0, xa, 0, I, 0, 1, gA, 0, I, 0, 1);
  },

  loraDx(gu, A, bits, keep, gx, rows, I, R) {
    const t = new Float32Array(rows * I);
    this.gemm(false, false, rows, I, R, 1, gu, 0, R, 0, A, 0, I, 0, 0, t, 0, I, 0, 1);
    const kf = Math.fround(keep);
    for (let i = 0; i < t.length; i++) gx[i] += t[i] * ((bits[i >>> 5] >>> (i & 31)) & 1 ? kf : 0);
  },

  linearLogProbs(x, W, bias, targets, out, rows, V, D, ignoreIndex) {
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (t !== ignoreIndex && (t < 0 || t >= V)) throw new RangeError(`linearLogProbs: target ${t} out of range [0, ${V})`);
    }
    // row chunks of at most 2^20 logits through one scratch buffer
    const chunk = Math.max(1, Math.min(rows, Math.floor((1 << 20) / V)));
    const buf = new Float32Array(chunk * V);
    const lse = new Float32Array(chunk);
    const all = new Int32Array(chunk); // every row's lse (target 0 is never the ignore index here)
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const n = Math.min(chunk, rows - r0);
      let beta = 0;
      if (bias) {
        for (let r = 0; r < n; r++) buf.set(bias, r * V);
        beta = 1;
      }
      this.gemm(false, true, n, V, D, 1, x, r0 * D, D, 0, W, 0, D, 0, beta, buf, 0, V, 0, 1);
      this.crossEntropy(buf, all.subarray(0, n), n, V, -1, lse.subarray(0, n));
      for (let r = 0; r < n; r++) {
        const t = targets[r0 + r];
        out[r0 + r] = t === ignoreIndex ? 0 : buf[r * V + t] - lse[r];
      }
    }
  },

  swiglu(gate, up, out, n) {
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      out[i] = (g / (1 + Math.exp(-g))) * up[i];
    }
  },

  swigluBackward(gate, up, gy, ggate, gup, n) {
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      const sg = 1 / (1 + Math.exp(-g));
      const silu = g * sg;
      if (gup) gup[i] += gy[i] * silu;
      if (ggate) ggate[i] += gy[i] * up[i] * sg * (1 + g * (1 - sg));
    }
  },

  embeddingBackward(ids, gy, gW, n, dim) {
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      if (id < 0) continue;
      const src = i * dim;
      const dst = id * dim;
      for (let j = 0; j < dim; j++) gW[dst + j] += gy[src + j];
    }
  },

  adamw(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2) {
    const decay = 1 - lr * weightDecay;
    const stepSize = lr / bc1;
    const sbc2 = Math.sqrt(bc2);
    for (let i = 0; i < n; i++) {
      const gi = g[i];
      const mi = beta1 * m[i] + (1 - beta1) * gi;
      const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / sbc2 + eps);
    }
  },
};
