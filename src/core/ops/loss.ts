/** Losses: fused log-softmax cross-entropy with an ignore index. */
import { Tensor } from '../tensor.js';
import { record, addGrad } from '../autograd.js';
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
