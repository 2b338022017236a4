/**
 * A score-level hybrid of LLMRec and SASRec: within each candidate set, each model's scores are
 * standardised (z-scores over the set's candidates), then mixed, (1 - lambda) z(SASRec) + lambda z(LLMRec).
 *
 * Why standardise: the two scores live on unrelated scales (a mean log-probability per title token
 * against a dot product), and what ranking needs is each model's spread within the set. Why a mixing
 * weight on [0, 1]: lambda = 0 is SASRec alone and lambda = 1 the LLMRec alone, so a weight chosen on
 * validation can always fall back to either model, and the hybrid is what the two add to each other.
 * The LLMRec keeps every item representable by its title; an item SASRec never trained on gets its
 * untrained embedding, which the LLMRec's share can outweigh.
 */
import type { PeriodSplit, Sample } from '../data/periods.js';
import type { BatchScorer } from '../eval/evaluate.js';
import { bestWeightByNdcg3 } from '../eval/metrics.js';
import type { LLMRec } from './llmrec.js';
import type { SASRec } from './sasrec.js';

/** The mixing weights the validation tries: 0 (SASRec alone) to 1 (LLMRec alone) in tenths. */
export const FUSION_GRID: readonly number[] = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

/** Scores standardised within the set (all zeros when they are all equal). */
export function zScores(a: ArrayLike<number>): Float64Array {
  const n = a.length;
  let m = 0;
  for (let i = 0; i < n; i++) m += a[i];
  m /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (a[i] - m) ** 2;
  const sd = Math.sqrt(v / n);
  return Float64Array.from({ length: n }, (_, i) => (sd > 0 ? (a[i] - m) / sd : 0));
}

/** (1 - lambda) z(sasrec) + lambda z(llmrec), over one candidate set. */
export function fuseScores(sasrec: ArrayLike<number>, llmrec: ArrayLike<number>, lambda: number): Float32Array {
  if (sasrec.length !== llmrec.length) throw new RangeError(`fuseScores: ${sasrec.length} SASRec scores for ${llmrec.length} LLMRec scores`);
  const a = zScores(sasrec);
  const b = zScores(llmrec);
  return Float32Array.from(a, (x, i) => (1 - lambda) * x + lambda * b[i]);
}

export interface FusionSet {
  sasrec: ArrayLike<number>;
  llmrec: ArrayLike<number>;
  positive: number;
}

/** The mixing weight with the best validation NDCG@3, averaged over views; ties go to the first (SASRec's side). */
export function bestFusionWeight(views: readonly (readonly FusionSet[])[], grid: readonly number[] = FUSION_GRID): { weight: number; ndcg3: number[] } {
  return bestWeightByNdcg3(views, grid, (s, w) => fuseScores(s.sasrec, s.llmrec, w), 'bestFusionWeight');
}

/** The hybrid as a scorer: each model reads its own history window (SASRec its maxLen, the LLMRec its prompt's). */
export function hybridScorer(llmrec: LLMRec, sasrec: SASRec, split: PeriodSplit, lambda: number): BatchScorer {
  const H = llmrec.prompts.options.history;
  const L = sasrec.config.maxLen;
  return {
    batchSize: 8,
    batch: (samples, cands) => {
      const a = sasrec.score(samples.map((s) => split.history(s, L)), cands);
      const b = llmrec.score(samples.map((s) => split.history(s, H)), cands);
      return a.map((x, i) => fuseScores(x, b[i], lambda));
    },
  };
}

/** Chooses lambda on validation sets of one or more views, scoring each set once per model. */
export function chooseFusionWeight(
  llmrec: LLMRec,
  sasrec: SASRec,
  split: PeriodSplit,
  views: readonly { samples: readonly Sample[]; candidates: readonly number[][] }[],
  grid: readonly number[] = FUSION_GRID,
): { weight: number; grid: readonly number[]; ndcg3: number[] } {
  const H = llmrec.prompts.options.history;
  const raw = views.map(({ samples, candidates }) => {
    const a = sasrec.score(samples.map((s) => split.history(s, sasrec.config.maxLen)), candidates);
    const b = llmrec.score(samples.map((s) => split.history(s, H)), candidates);
    return samples.map((s, i) => ({ sasrec: a[i], llmrec: b[i], positive: candidates[i].indexOf(s.item) }));
  });
  return { grid, ...bestFusionWeight(raw, grid) };
}
