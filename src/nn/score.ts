/**
 * Scoring continuations after a shared prefix (the spec's candidate ranking): the prefix goes through
 * the model once, its KV cache is repeated for a chunk of candidates (`KVCache.select`), and each
 * candidate's tokens are scored in one right-padded forward. Returns the summed and the
 * length-normalised log-likelihood of every continuation.
 */
import { noGrad } from '../core/index.js';
import type { Decoder } from './decoder.js';
import { padBatch } from './batch.js';

export interface ContinuationScores {
  /** Sum over the continuation's tokens of log p(token | prefix, earlier tokens). */
  logProb: Float64Array;
  /** Tokens in each continuation. */
  tokens: Int32Array;
  /** logProb / tokens (length-normalised log-likelihood). */
  mean: Float64Array;
}

/** log-softmax(row)[id] in double precision. */
function logProbOf(row: Float32Array, id: number): number {
  let mx = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > mx) mx = row[i];
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - mx);
  return row[id] - mx - Math.log(s);
}

export function scoreContinuations(
  model: Decoder,
  prefix: readonly number[],
  continuations: readonly (readonly number[])[],
  opts: { chunk?: number } = {},
): ContinuationScores {
  if (prefix.length === 0) throw new Error('scoreContinuations: the prefix must have at least one token');
  const n = continuations.length;
  const logProb = new Float64Array(n);
  const tokens = new Int32Array(n);
  const V = model.config.vocabSize;
  const chunk = Math.max(1, opts.chunk ?? 32);
  noGrad(() => {
    const cache = model.newCache(1);
    const first = model.forward([prefix as number[]], { cache, logits: 'last' }).logits!.data;
    for (let c0 = 0; c0 < n; c0 += chunk) {
      const part = continuations.slice(c0, c0 + chunk);
      for (const [i, c] of part.entries()) {
        if (c.length === 0) throw new Error(`scoreContinuations: continuation ${c0 + i} is empty`);
      }
      const pad = padBatch(part, { padId: 0, side: 'right' });
      const T = pad.seqLen;
      const cc = cache.select(new Array(part.length).fill(0));
      const logits = model.forward(pad.ids, { batch: part.length, attentionMask: pad.attentionMask, cache: cc, logits: 'all' }).logits!.data;
      part.forEach((c, i) => {
        let s = logProbOf(first, c[0]);
        for (let j = 1; j < c.length; j++) s += logProbOf(logits.subarray((i * T + j - 1) * V, (i * T + j) * V), c[j]);
        logProb[c0 + i] = s;
        tokens[c0 + i] = c.length;
      });
    }
  });
  const mean = new Float64Array(n);
  for (let i = 0; i < n; i++) mean[i] = logProb[i] / tokens[i];
  return { logProb, tokens, mean };
}
