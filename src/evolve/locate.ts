/**
 * EvoRec's Locate step: which decoder layers react most to a user's preference drift?
 *
 * For every active user of period t, two prompts go through the current model: one built from the history
 * before Pt (old preference) and one from the updated history (up to the end of Pt, held-out targets
 * excluded). Per decoder layer, the output hidden states are mean-pooled over real tokens (padding
 * excluded) and the cosine similarity of the two pooled vectors is taken; the layer of lowest similarity
 * gets the user's vote. The k layers with most votes are located (ties: lower mean similarity first).
 *
 * With `signal: 'contribution'` the vote compares each layer's own contribution (its output minus its
 * input) instead of its output: a drift locator rather than a depth locator (see LocateSignal).
 *
 * A layer whose pooled vector is zero for either prompt has no direction, so no similarity (cosine is
 * NaN): it takes no part in that user's vote, neither winning it nor counting as unmoved, and stays out of
 * its mean similarity. A user with no such similarity in any layer casts no vote.
 *
 * The gradient-magnitude locator (for the ablation) ranks layers by the norm of the LoRA gradient of the
 * next-item loss on a sample of the new data instead.
 */
import { backward, noGrad } from '../core/index.js';
import type { PeriodSplit, Sample } from '../data/periods.js';
import { LINEAR_MODULES } from '../io/hf-folder.js';
import type { LLMRec } from '../models/llmrec.js';
import { llmrecBatches } from '../models/llmrec-train.js';
import { padBatch } from '../nn/batch.js';
import { meanPool } from '../nn/decoder.js';
import { activeUsers, visibleRows } from './forget.js';

export interface LocateResult {
  /** Located layers, ascending. */
  layers: number[];
  /** Votes per layer. */
  votes: number[];
  /**
   * Mean cosine similarity per layer over the users for whom the layer has one (NaN when none, and for
   * the gradient locator).
   */
  meanSimilarity: number[];
  /** Per-layer score used by the gradient locator (gradient norm); empty for the vote locator. */
  gradientNorm: number[];
  /** With `normalize: 'unrelated'`: each layer's mean distance (1 - cosine) between two users' old prompts. */
  unrelatedDistance?: number[];
  users: number;
}

/** k from a share of the layers (at least 1), or k itself when `k` is given. */
export function locateK(numLayers: number, opts: { k?: number; share?: number }): number {
  const k = opts.k ?? Math.round((opts.share ?? 0.3) * numLayers);
  return Math.min(numLayers, Math.max(1, k));
}

function topK(scores: number[], k: number, tiebreak: number[]): number[] {
  // A NaN tie-break (a layer without a mean similarity) orders after every number.
  const tb = (a: number, b: number) => (Number.isNaN(tiebreak[a]) ? (Number.isNaN(tiebreak[b]) ? 0 : 1) : Number.isNaN(tiebreak[b]) ? -1 : tiebreak[a] - tiebreak[b]);
  const order = scores.map((_, l) => l).sort((a, b) => scores[b] - scores[a] || tb(a, b) || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

/** Cosine similarity of a[offA..offA+n) and b[offB..offB+n); NaN when either is the zero vector (no direction). */
export function cosine(a: Float32Array, b: Float32Array, offA = 0, offB = 0, n = a.length): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[offA + i];
    const y = b[offB + i];
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : NaN;
}

/**
 * Old and updated histories of the active users of period t (item indices, last H each).
 */
export function driftPairs(split: PeriodSplit, t: number, H: number): { user: number; old: number[]; updated: number[] }[] {
  const items = split.dataset.items;
  return activeUsers(split, t).map((u) => {
    const { visible, before } = visibleRows(split, u, t);
    return { user: u, old: before.slice(-H).map((r) => items[r]), updated: visible.slice(-H).map((r) => items[r]) };
  });
}

/**
 * What a layer's vote compares between the old and the updated prompt:
 * - 'output': the layer's output, the residual stream after it (the paper's method). Every layer adds to
 *   the stream, so its pooled vector drifts more the deeper it is, and the last layer wins on depth alone
 *   (review: mean similarities 0.9964, 0.9932, 0.9915, 0.9889 for layers 1 to 4);
 * - 'contribution': the layer's own contribution, output minus input (h_l - h_{l-1}, the embedding before
 *   layer 0): what the layer itself computes differently for the drifted history.
 */
export type LocateSignal = 'output' | 'contribution';

/**
 * How a user's per-layer similarity becomes a vote:
 * - 'none': the least similar layer gets it (the paper);
 * - 'unrelated': each layer's distance 1 - sim is divided by the same layer's distance between unrelated
 *   prompts (user i's old prompt against user i+1's, averaged over users: how far two users' prompts lie
 *   apart there without any drift), and the layer whose move is the largest multiple of that gets it. A
 *   layer where every two prompts differ (low layers follow the tokens) no longer wins on that alone; one
 *   where different users' prompts are alike but a user's drift moves it, does.
 */
export type LocateNormalize = 'none' | 'unrelated';

/** Distances below this are rounding: a layer that did not move, or whose users all look alike. */
const STILL = 1e-6;

/** A move as a multiple of the layer's distance between users (Infinity when users are alike there but it moved). */
function relativeMove(move: number, between: number): number {
  if (Number.isNaN(between)) return NaN;
  if (move < STILL) return 0;
  return between < STILL ? Infinity : move / between;
}

/** Vote locator: per user, the layer whose pooled hidden state (or contribution) moved most between old and updated prompts. */
export function locateByVotes(
  model: LLMRec,
  pairs: readonly { old: readonly number[]; updated: readonly number[] }[],
  opts: { k?: number; share?: number; batchSize?: number; signal?: LocateSignal; normalize?: LocateNormalize } = {},
): LocateResult {
  const L = model.decoder.config.numHiddenLayers;
  const D = model.decoder.config.hiddenSize;
  const U = pairs.length;
  // Pooled vectors of every user's old and updated prompt, per layer: [U * D] each.
  const oldV = Array.from({ length: L }, () => new Float32Array(U * D));
  const newV = Array.from({ length: L }, () => new Float32Array(U * D));
  const bs = opts.batchSize ?? 16;
  const pad = model.padId;
  noGrad(() => {
    for (let s = 0; s < U; s += bs) {
      const chunk = pairs.slice(s, s + bs);
      const prompts = [...chunk.map((p) => model.prompts.prompt(p.old)), ...chunk.map((p) => model.prompts.prompt(p.updated))];
      const b = padBatch(prompts, { padId: pad, side: 'left' });
      const out = model.decoder.forward(b.ids, { batch: b.batch, attentionMask: b.attentionMask, logits: 'none', outputHiddenStates: true });
      const n = chunk.length;
      const states = out.hiddenStates!.map((h) => meanPool(h, b.attentionMask)); // embedding, then each layer's output
      for (let l = 0; l < L; l++) {
        // Mean pooling is linear, so the pooled contribution is the difference of the pooled states.
        const v = opts.signal === 'contribution' ? states[l + 1].map((x, i) => x - states[l][i]) : states[l + 1];
        oldV[l].set(v.subarray(0, n * D), s * D);
        newV[l].set(v.subarray(n * D, 2 * n * D), s * D);
      }
    }
  });
  const sim = (l: number, i: number, j: number) => cosine(oldV[l], newV[l], i * D, j * D, D);
  // Distance between unrelated prompts per layer (NaN when it cannot be had: one user, or no direction).
  const unrelated = new Array<number>(L).fill(NaN);
  if (opts.normalize === 'unrelated' && U > 1) {
    for (let l = 0; l < L; l++) {
      let sum = 0;
      let count = 0;
      for (let i = 0; i < U; i++) {
        const x = cosine(oldV[l], oldV[l], i * D, ((i + 1) % U) * D, D);
        if (Number.isNaN(x)) continue;
        sum += x;
        count++;
      }
      if (count > 0) unrelated[l] = Math.max(0, 1 - sum / count);
    }
  }
  const votes = new Array<number>(L).fill(0);
  const simSum = new Array<number>(L).fill(0);
  const simCount = new Array<number>(L).fill(0);
  for (let i = 0; i < U; i++) {
    let best = -1;
    let bestMove = -Infinity;
    for (let l = 0; l < L; l++) {
      const x = sim(l, i, i);
      if (Number.isNaN(x)) continue; // a zero pooled vector: no similarity, no part in the vote
      simSum[l] += x;
      simCount[l]++;
      const move = opts.normalize === 'unrelated' ? relativeMove(1 - x, unrelated[l]) : 1 - x;
      if (Number.isNaN(move)) continue; // no unrelated distance for this layer: it cannot be compared
      if (move > bestMove) {
        bestMove = move;
        best = l;
      }
    }
    if (best >= 0) votes[best]++;
  }
  const meanSimilarity = simSum.map((x, l) => (simCount[l] > 0 ? x / simCount[l] : NaN));
  const k = locateK(L, opts);
  return { layers: topK(votes, k, meanSimilarity), votes, meanSimilarity, gradientNorm: [], users: U, ...(opts.normalize === 'unrelated' ? { unrelatedDistance: unrelated } : {}) };
}

/** Gradient locator: layers ranked by the norm of their LoRA gradients on a sample of the new data. */
export function locateByGradient(
  model: LLMRec,
  samples: readonly Sample[],
  historyOf: (s: Sample) => number[],
  opts: { k?: number; share?: number; adapter?: string; batchSize?: number } = {},
): LocateResult {
  const dec = model.decoder;
  const L = dec.config.numHiddenLayers;
  const adapter = dec.adapter(opts.adapter ?? 'default');
  const pairs = LINEAR_MODULES.flatMap((m) => Array.from({ length: L }, (_, l) => adapter.get(l, m)).filter((p) => p !== undefined));
  // Every pair must receive a gradient for the ranking, whatever the current trainable mask.
  const saved = pairs.map((p) => [p.A.requiresGrad, p.B.requiresGrad] as const);
  pairs.forEach((p) => {
    p.A.requiresGrad = true;
    p.B.requiresGrad = true;
    p.A.grad = null;
    p.B.grad = null;
  });
  try {
    for (const b of llmrecBatches(model, samples, historyOf, opts.batchSize ?? 16)) {
      const out = dec.forward(b.ids, { batch: b.batch, attentionMask: b.attentionMask, labels: b.labels });
      backward(out.loss!);
    }
    const norm = new Array<number>(L).fill(0);
    for (const p of pairs) {
      for (const g of [p.A.grad, p.B.grad]) if (g) for (let i = 0; i < g.length; i++) norm[p.layer] += g[i] * g[i];
    }
    const gradientNorm = norm.map(Math.sqrt);
    const k = locateK(L, opts);
    return { layers: topK(gradientNorm, k, gradientNorm.map((x) => -x)), votes: new Array(L).fill(0), meanSimilarity: new Array(L).fill(NaN), gradientNorm, users: samples.length };
  } finally {
    pairs.forEach((p, i) => {
      p.A.requiresGrad = saved[i][0];
      p.B.requiresGrad = saved[i][1];
      p.A.grad = null;
      p.B.grad = null;
    });
  }
}

/** Trains only the located layers' LoRA pairs; returns the trainable count and its share of the adapter. */
export function applyLocatedLayers(model: LLMRec, layers: readonly number[] | null, adapter = 'default'): { trainable: number; total: number; share: number } {
  model.decoder.setTrainableLayers(layers, adapter);
  const a = model.decoder.adapter(adapter);
  const trainable = a.numParameters(true);
  const total = a.numParameters(false);
  return { trainable, total, share: total > 0 ? trainable / total : 0 };
}
