/**
 * Candidate sets for ranking: the true item plus N-1 negatives drawn from items the user never
 * interacted with (in the whole dataset, so no future positive is ever a negative), shuffled, and fixed by
 * a seed so that every strategy ranks exactly the same sets.
 *
 * Samplers: 'popularity' draws negatives with probability proportional to their count in the training
 * data up to the period (the spec's default: it makes the task about the user, not about popularity);
 * 'uniform' draws them uniformly from the catalogue (what LLaRA-style papers use).
 */
import type { PeriodSplit, Sample } from './periods.js';
import { drawCumulative, keyedRandom } from './rng.js';

export type NegativeSampler = 'popularity' | 'uniform';
export const NEGATIVE_SAMPLERS: NegativeSampler[] = ['popularity', 'uniform'];

export interface CandidateOptions {
  /** Candidate set size N (1 positive + N-1 negatives). Default 20. */
  size?: number;
  sampler?: NegativeSampler;
  seed?: number;
}

export const DEFAULT_CANDIDATES: Required<CandidateOptions> = { size: 20, sampler: 'popularity', seed: 42 };

/** Draws candidate sets for the samples of one period. */
export class CandidateSampler {
  private readonly touched: Array<Set<number> | undefined>;
  private readonly cumulative = new Map<number, Float64Array>();

  constructor(private readonly split: PeriodSplit) {
    this.touched = new Array(split.dataset.numUsers);
  }

  private touchedBy(u: number): Set<number> {
    let s = this.touched[u];
    if (!s) {
      s = new Set<number>();
      for (const r of this.split.userRows[u]) s.add(this.split.dataset.items[r]);
      this.touched[u] = s;
    }
    return s;
  }

  private cumulativeAt(t: number): Float64Array {
    let c = this.cumulative.get(t);
    if (!c) {
      const pop = this.split.popularity(t);
      c = new Float64Array(pop.length);
      let acc = 0;
      for (let i = 0; i < pop.length; i++) c[i] = acc += pop[i];
      this.cumulative.set(t, c);
    }
    return c;
  }

  /**
   * The candidate set of a sample at period t: item indices, the true item among them at a random place.
   * `role` keys the random stream, so validation and test sets of one user differ.
   */
  candidates(s: Sample, t: number, role: string, options: CandidateOptions = {}): number[] {
    // `??` rather than a spread: an option passed as undefined must not erase its default.
    const size = options.size ?? DEFAULT_CANDIDATES.size;
    const sampler = options.sampler ?? DEFAULT_CANDIDATES.sampler;
    const seed = options.seed ?? DEFAULT_CANDIDATES.seed;
    const numItems = this.split.dataset.numItems;
    const touched = this.touchedBy(s.user);
    const available = numItems - touched.size;
    const need = Math.min(size - 1, available);
    const rand = keyedRandom(seed, sampler, t, role, this.split.dataset.userIds[s.user]);
    const chosen = new Set<number>();
    const accept = (i: number) => {
      if (!touched.has(i) && !chosen.has(i)) chosen.add(i);
    };
    if (sampler === 'popularity') {
      const cum = this.cumulativeAt(t);
      const total = cum[numItems - 1];
      // Rejection sampling; bounded so that a user who touched most popular items cannot loop forever.
      for (let tries = 0; chosen.size < need && total > 0 && tries < 50 * size; tries++) {
        accept(drawCumulative(cum, rand()));
      }
    }
    // Uniform draws (the uniform sampler, and the fallback when popular items run out).
    for (let tries = 0; chosen.size < need && tries < 50 * size; tries++) accept(Math.floor(rand() * numItems));
    for (let i = 0; chosen.size < need && i < numItems; i++) accept(i);
    const out = [s.item, ...chosen];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}
