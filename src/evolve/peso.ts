/**
 * PESO's proximal term (Yoo et al., ICLR 2026, arXiv 2510.25093: "Proximally rEgularized Single evolving
 * lOra"): one LoRA adapter evolves period by period, and each update is anchored to the adapter's most
 * recent frozen state by a KL divergence between the softmax-normalised matrices:
 *
 *   penalty = weight * sum over LoRA matrices M (each A and B of every trained pair) of
 *             (1 / rows(M)) * sum over rows i of KL( softmax(M_prev[i, :]) || softmax(M[i, :]) )
 *
 * Rows are the last dimension of the PEFT layout (lora_A [r, in], lora_B [out, r]), as
 * `F.kl_div(F.log_softmax(M, -1), F.softmax(M_prev, -1), reduction='batchmean')` computes it; weight 2.0
 * is the public code's default. The reference code was not reachable here: this is the term as the
 * paper's public code is described (docs/evolution.md, "PESO"), and its value is tested against an
 * independent float64 computation and PyTorch's `kl_div`.
 *
 * The previous state's softmax is computed once, before the update trains.
 */
import { add, logSoftmax, mul, noGrad, scale, sub, sum, Tensor } from '../core/index.js';

export const PESO_WEIGHT = 2.0;

interface Anchor {
  param: Tensor;
  /** softmax and log-softmax of the frozen previous matrix, row-wise over the last dimension. */
  p: Tensor;
  logP: Tensor;
  rows: number;
}

export class ProximalTerm {
  private readonly anchors: Anchor[];

  /**
   * Anchors each matrix to its values now (call before training, with the matrices that will train: a
   * LoRA adapter's `parameters(true)`).
   */
  constructor(params: readonly Tensor[], readonly weight = PESO_WEIGHT) {
    this.anchors = params.map((param) => {
      if (param.shape.length !== 2) throw new RangeError(`PESO: expected 2-D LoRA matrices, got shape [${param.shape.join(', ')}]`);
      // The same log-softmax kernel as the live matrix's, on a copy of its values now.
      const logP = noGrad(() => logSoftmax(new Tensor(param.data.slice(), param.shape)));
      return { param, p: new Tensor(Float32Array.from(logP.data, Math.exp), param.shape), logP, rows: param.shape[0] };
    });
  }

  /** weight x the summed batch-mean KLs (a differentiable scalar), or null when nothing is anchored. */
  loss(): Tensor | null {
    if (this.anchors.length === 0 || this.weight === 0) return null;
    let total: Tensor | null = null;
    for (const a of this.anchors) {
      const logQ = logSoftmax(a.param); // over the last dimension
      const kl = scale(sum(mul(a.p, sub(a.logP, logQ))), 1 / a.rows);
      total = total ? add(total, kl) : kl;
    }
    return scale(total!, this.weight);
  }
}
