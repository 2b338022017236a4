/**
 * Ranking metrics over candidate sets: HR@K and NDCG@K for one positive per set.
 *
 * Ties are scored as their expectation over a random tie-break: when the positive shares its score with
 * e other candidates and g candidates score strictly higher, its rank is uniform on g..g+e (0-based).
 * That makes a constant scorer score exactly the random-ranking expectation, and no model gains from the
 * order candidates happen to be listed in.
 */

export const DEFAULT_KS = [1, 3, 5, 10] as const;

export type MetricName = `HR@${number}` | `NDCG@${number}`;
export type Metrics = Record<string, number>;

/** The gain of a hit at 0-based rank r under NDCG with one relevant item (IDCG = 1). */
export const ndcgGain = (rank: number): number => 1 / Math.log2(rank + 2);

/**
 * The positive's 0-based rank interval among `scores`: [greater, greater + equal]. A NaN score anywhere
 * (positive or not) means the scorer is broken, and would otherwise rank a negative below the positive:
 * it throws a RangeError naming the candidate.
 */
export function rankInterval(scores: ArrayLike<number>, positive: number): { greater: number; equal: number } {
  const s = scores[positive];
  if (Number.isNaN(s)) throw new RangeError(`candidate ${positive} has a NaN score (the positive)`);
  let greater = 0;
  let equal = 0;
  for (let i = 0; i < scores.length; i++) {
    if (i === positive) continue;
    if (Number.isNaN(scores[i])) throw new RangeError(`candidate ${i} has a NaN score`);
    if (scores[i] > s) greater++;
    else if (scores[i] === s) equal++;
  }
  return { greater, equal };
}

/**
 * HR@K and NDCG@K of a positive with `greater` items above it and `equal` tied with it (its rank uniform on
 * greater..greater+equal). A positive that is not ranked at all (a retriever missed it) passes Infinity.
 */
export function rankMetrics(greater: number, equal: number, ks: readonly number[] = DEFAULT_KS): Metrics {
  const out: Metrics = {};
  for (const k of ks) {
    let hr = 0;
    let ndcg = 0;
    for (let r = greater; r <= greater + equal && r < k; r++) {
      hr += 1;
      ndcg += ndcgGain(r);
    }
    out[`HR@${k}`] = hr / (equal + 1);
    out[`NDCG@${k}`] = ndcg / (equal + 1);
  }
  return out;
}

/** HR@K and NDCG@K of one candidate set, ties taken in expectation. */
export function setMetrics(scores: ArrayLike<number>, positive: number, ks: readonly number[] = DEFAULT_KS): Metrics {
  const { greater, equal } = rankInterval(scores, positive);
  return rankMetrics(greater, equal, ks);
}

/** The expected HR@K and NDCG@K of a uniformly random ranking of n candidates. */
export function randomMetrics(n: number, ks: readonly number[] = DEFAULT_KS): Metrics {
  const out: Metrics = {};
  for (const k of ks) {
    let ndcg = 0;
    for (let r = 0; r < Math.min(k, n); r++) ndcg += ndcgGain(r);
    out[`HR@${k}`] = Math.min(k, n) / n;
    out[`NDCG@${k}`] = ndcg / n;
  }
  return out;
}

/** Accumulates per-set metrics into means. */
export class MetricAccumulator {
  private readonly sums: Metrics = {};
  count = 0;

  constructor(readonly ks: readonly number[] = DEFAULT_KS) {
    for (const k of ks) {
      this.sums[`HR@${k}`] = 0;
      this.sums[`NDCG@${k}`] = 0;
    }
  }

  add(scores: ArrayLike<number>, positive: number): Metrics {
    const m = setMetrics(scores, positive, this.ks);
    for (const key in m) this.sums[key] += m[key];
    this.count++;
    return m;
  }

  mean(): Metrics {
    const out: Metrics = {};
    for (const key in this.sums) out[key] = this.count === 0 ? NaN : this.sums[key] / this.count;
    return out;
  }
}

/**
 * Grid search of one ranking weight on validation: for each weight, the mean NDCG@3 over views (each
 * view's sets weigh as one, whatever its size), with `scores(set, w)` the set's scores under that weight.
 * Ties go to the first weight of the grid. Used to choose a calibration or a hybrid's mix.
 */
export function bestWeightByNdcg3<S extends { positive: number }>(
  views: readonly (readonly S[])[],
  grid: readonly number[],
  scores: (set: S, weight: number) => ArrayLike<number>,
  what = 'bestWeightByNdcg3',
): { weight: number; ndcg3: number[] } {
  if (!views.length || views.some((v) => !v.length)) throw new RangeError(`${what}: every view needs at least one validation set`);
  const ndcg3 = grid.map((w) => {
    let sum = 0;
    for (const sets of views) {
      const acc = new MetricAccumulator([3]);
      for (const s of sets) acc.add(scores(s, w), s.positive);
      sum += acc.mean()['NDCG@3'];
    }
    return sum / views.length;
  });
  let best = 0;
  ndcg3.forEach((v, i) => { if (v > ndcg3[best]) best = i; });
  return { weight: grid[best], ndcg3 };
}
