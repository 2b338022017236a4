/**
 * The full-catalogue view (Krichene and Rendle, KDD 2020: sampled metrics can reverse orderings): the
 * positive is ranked against every item that exists by the end of the evaluated period and that the user
 * has not interacted with before the target. HR@K and NDCG@K (default K = 10, 20), ties in expectation as
 * in metrics.ts. One code path for popularity, SASRec and the two-stage LLMRec, and for the service.
 */
import type { PeriodSplit, Sample } from '../data/periods.js';
import { rankInterval, rankMetrics, type Metrics } from './metrics.js';
import { GroupMeans, type EvalResult } from './evaluate.js';

export { rankMetrics };

export const FULL_KS = [10, 20] as const;

/** Scores of every item (index = item) for each sample; higher is better. */
export type FullScorer = (samples: Sample[]) => Promise<ArrayLike<number>[]> | ArrayLike<number>[];

/** Items a sample's ranking leaves out: everything the user touched before the target. */
export function seenBefore(split: PeriodSplit, s: Sample): Set<number> {
  const rows = split.userRows[s.user];
  const out = new Set<number>();
  for (let p = 0; p < s.pos; p++) out.add(split.dataset.items[rows[p]]);
  return out;
}

/** Counts eligible items above and tied with the positive. */
export function fullRank(scores: ArrayLike<number>, positive: number, eligible: (i: number) => boolean): { greater: number; equal: number } {
  const p = scores[positive];
  if (Number.isNaN(p)) throw new RangeError(`item ${positive} (the positive) has a NaN score`);
  let greater = 0;
  let equal = 0;
  for (let i = 0; i < scores.length; i++) {
    if (i === positive || !eligible(i)) continue;
    const x = scores[i];
    if (x > p) greater++;
    else if (x === p) equal++;
    else if (Number.isNaN(x)) throw new RangeError(`item ${i} has a NaN score`);
  }
  return { greater, equal };
}

export interface FullEvalOptions {
  role?: 'test' | 'valid';
  filter?: (s: Sample) => boolean;
  ks?: readonly number[];
  /** Samples per scorer call (default 256). */
  batchSize?: number;
  /** Keep every set's metrics (`EvalResult.sets`, for the bootstrap over users). */
  keepSets?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** Items that exist by the end of period t (the catalogue a full ranking ranks). */
function catalogueSize(split: PeriodSplit, t: number): number {
  const exists = split.existsBy(t);
  let n = 0;
  for (let i = 0; i < split.dataset.numItems; i++) if (exists(i)) n++;
  return n;
}

export async function evaluateFull(split: PeriodSplit, t: number, scorer: FullScorer, opts: FullEvalOptions = {}): Promise<EvalResult> {
  const role = opts.role ?? 'test';
  const ks = opts.ks ?? FULL_KS;
  const samples = split.periods[t][role].filter(opts.filter ?? (() => true));
  const exists = split.existsBy(t);
  const catalogue = catalogueSize(split, t);
  const acc = new GroupMeans(opts.keepSets);
  const bs = Math.max(1, opts.batchSize ?? 256);
  for (let start = 0; start < samples.length; start += bs) {
    const chunk = samples.slice(start, start + bs);
    const scores = await scorer(chunk);
    chunk.forEach((s, j) => {
      if (scores[j].length !== split.dataset.numItems) throw new RangeError(`full scorer returned ${scores[j].length} scores for ${split.dataset.numItems} items`);
      const seen = seenBefore(split, s);
      const { greater, equal } = fullRank(scores[j], s.item, (i) => exists(i) && !seen.has(i));
      acc.add(s.group ?? 'base', rankMetrics(greater, equal, ks), s.row);
    });
    opts.onProgress?.(Math.min(start + bs, samples.length), samples.length);
  }
  return { period: t, role, sampler: 'full', candidates: catalogue, ...acc.result() };
}

/**
 * Random's expectation in the full-catalogue view: with m eligible negatives the positive's rank is uniform
 * over 0..m, so HR@K = min(K, m + 1) / (m + 1) and NDCG@K = (sum over r < min(K, m + 1) of 1/log2(r + 2)) / (m + 1).
 */
export function randomFull(split: PeriodSplit, t: number, opts: Pick<FullEvalOptions, 'role' | 'filter' | 'ks'> = {}): EvalResult {
  const role = opts.role ?? 'test';
  const ks = opts.ks ?? FULL_KS;
  const exists = split.existsBy(t);
  const catalogue = catalogueSize(split, t);
  const acc = new GroupMeans();
  for (const s of split.periods[t][role].filter(opts.filter ?? (() => true))) {
    let seen = 0;
    for (const i of seenBefore(split, s)) if (i !== s.item && exists(i)) seen++;
    const n = catalogue - seen; // the positive and its m = n - 1 eligible negatives
    const m: Metrics = {};
    for (const k of ks) {
      let dcg = 0;
      for (let r = 0; r < Math.min(k, n); r++) dcg += 1 / Math.log2(r + 2);
      m[`HR@${k}`] = Math.min(k, n) / n;
      m[`NDCG@${k}`] = dcg / n;
    }
    acc.add(s.group ?? 'base', m);
  }
  return { period: t, role, sampler: 'full', candidates: catalogue, groups: acc.groups() };
}

/** Popularity over the whole catalogue: training counts up to t. */
export function popularityFull(split: PeriodSplit, t: number): FullScorer {
  const pop = split.popularity(t);
  return (samples) => samples.map(() => pop);
}

/** The k highest-scoring items among the eligible ones, best first (ties: lower index first). */
export function topK(scores: ArrayLike<number>, k: number, eligible: (i: number) => boolean): number[] {
  // A min-heap of the best k so far: O(n log k).
  const heap: number[] = [];
  const worse = (a: number, b: number) => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l], heap[m])) m = l;
      if (r < heap.length && worse(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let i = 0; i < scores.length; i++) {
    if (!eligible(i)) continue;
    if (heap.length < k) {
      heap.push(i);
      for (let c = heap.length - 1; c > 0; ) {
        const p = (c - 1) >> 1;
        if (!worse(heap[c], heap[p])) break;
        [heap[c], heap[p]] = [heap[p], heap[c]];
        c = p;
      }
    } else if (worse(heap[0], i)) {
      heap[0] = i;
      down(0);
    }
  }
  return heap.sort((a, b) => (worse(a, b) ? 1 : worse(b, a) ? -1 : 0));
}

/** Scores of every item for each input of a batch (index = item); higher is better. */
export type BatchRetriever<T> = (inputs: T[]) => Promise<ArrayLike<number>[]> | ArrayLike<number>[];

/** Scores of candidate lists for each input of a batch; higher is better. */
export type BatchReranker<T> = (inputs: T[], candidates: number[][]) => Promise<ArrayLike<number>[]> | ArrayLike<number>[];

/** The retriever's top `depth` eligible items for each input, best first (ties: lower index first). */
export async function retrieveTop<T>(inputs: T[], retriever: BatchRetriever<T>, eligible: (x: T) => (i: number) => boolean, depth: number): Promise<number[][]> {
  const scores = await retriever(inputs);
  return inputs.map((x, j) => topK(scores[j], depth, eligible(x)));
}

/**
 * The two-stage ranking of one batch: the retriever's top `depth` eligible items of each input, and the
 * re-ranker's scores of that list. The yardstick's two-stage view (evaluateTwoStage) and the service's
 * full-catalogue recommendations (serve/version-scorer.ts) both rank through this function.
 */
export async function twoStage<T>(
  inputs: T[],
  retriever: BatchRetriever<T>,
  eligible: (x: T) => (i: number) => boolean,
  reranker: BatchReranker<T>,
  depth: number,
): Promise<{ lists: number[][]; scores: ArrayLike<number>[] }> {
  const lists = await retrieveTop(inputs, retriever, eligible, depth);
  return { lists, scores: await reranker(inputs, lists) };
}

/** What a full ranking of sample `s` at period t ranks: items that exist by t and that the user has not touched before the target. */
function eligibleAt(split: PeriodSplit, t: number): (s: Sample) => (i: number) => boolean {
  const exists = split.existsBy(t);
  return (s) => {
    const seen = seenBefore(split, s);
    return (i) => exists(i) && !seen.has(i);
  };
}

/** The retriever's top `depth` items for each sample, best first, among the items a full ranking ranks. */
export async function retrieve(split: PeriodSplit, t: number, retriever: FullScorer, samples: Sample[], depth: number): Promise<number[][]> {
  return retrieveTop(samples, retriever, eligibleAt(split, t), depth);
}

/** Re-ranks candidate lists (for example an LLMRec scorer); higher is better. */
export type Reranker = BatchReranker<Sample>;

/**
 * The two-stage production form: `retriever` scores the whole catalogue and its top `depth` eligible items
 * are re-ranked by `reranker`. A positive the retriever misses counts as a miss. Metrics are HR@K and
 * NDCG@K of the re-ranked list plus `recall@<depth>`, the retriever's share of positives retrieved.
 */
export async function evaluateTwoStage(
  split: PeriodSplit,
  t: number,
  retriever: FullScorer,
  reranker: Reranker,
  opts: FullEvalOptions & { depth?: number } = {},
): Promise<EvalResult> {
  const role = opts.role ?? 'test';
  const ks = opts.ks ?? FULL_KS;
  const depth = opts.depth ?? 50;
  const samples = split.periods[t][role].filter(opts.filter ?? (() => true));
  const eligible = eligibleAt(split, t);
  const acc = new GroupMeans(opts.keepSets);
  const bs = Math.max(1, opts.batchSize ?? 64);
  for (let start = 0; start < samples.length; start += bs) {
    const chunk = samples.slice(start, start + bs);
    const { lists, scores: reranked } = await twoStage(chunk, retriever, eligible, reranker, depth);
    chunk.forEach((s, j) => {
      const at = lists[j].indexOf(s.item);
      let m: Metrics;
      if (at < 0) m = rankMetrics(Infinity, 0, ks);
      else {
        const { greater, equal } = rankInterval(reranked[j], at);
        m = rankMetrics(greater, equal, ks);
      }
      m[`recall@${depth}`] = at < 0 ? 0 : 1;
      acc.add(s.group ?? 'base', m, s.row);
    });
    opts.onProgress?.(Math.min(start + bs, samples.length), samples.length);
  }
  return { period: t, role, sampler: 'two-stage', candidates: depth, ...acc.result() };
}
