/**
 * Candidate sets for ranking: the true item plus N-1 negatives, shuffled, and fixed by a seed so that every
 * strategy ranks exactly the same sets. Negatives are items the user never interacted with (in the whole
 * dataset, so no future positive is ever a negative).
 *
 * Samplers (docs/evaluation.md has the measurements behind them):
 *
 * - 'matched' (the default, the "about the user" view): negatives as like the positive as a model-free
 *   statistic can see. They share its training-count bin up to t (exact counts below 8, then bins at most
 *   25% wide), and the positive's rank by first appearance in the data is drawn uniformly: a random number
 *   of the negatives first appeared just after it, the rest just before. So "least popular first", "most
 *   popular first" and "most recently first seen first" rank the positive near random's expectation, and
 *   what is left to rank on is the user.
 * - 'uniform': negatives uniform over the items that exist by the end of period t (what LLaRA-style
 *   papers use; popularity is a real baseline there).
 * - 'popularity': the first protocol, kept to reproduce old results only. It draws in proportion to
 *   training counts, so a never-trained item can never be a negative and the positive is often the only
 *   one: it leaks the answer (docs/evaluation.md).
 *
 * Only items that exist by the end of the evaluated period (first row below its end) are negatives.
 */
import type { PeriodSplit, Sample } from './periods.js';
import { drawCumulative, keyedRandom } from './rng.js';

export type NegativeSampler = 'matched' | 'uniform' | 'popularity';
export const NEGATIVE_SAMPLERS: NegativeSampler[] = ['matched', 'uniform', 'popularity'];

export interface CandidateOptions {
  /** Candidate set size N (1 positive + N-1 negatives). Default 20. */
  size?: number;
  sampler?: NegativeSampler;
  seed?: number;
}

export const DEFAULT_CANDIDATES: Required<CandidateOptions> = { size: 20, sampler: 'matched', seed: 42 };

/** The matched sampler picks at random among the nearest (this × the number needed) untouched items of a side. */
const WINDOW_SETS = 2;

/**
 * The training-count bin of the matched sampler: exact counts up to 7, then bins whose upper edge is at
 * most 1.25 times their lower edge, so that within a bin "more popular" means at most 25% more.
 */
export function countBin(c: number): number {
  if (c < 8) return c;
  return 8 + Math.floor(Math.log(c / 8) / Math.log(1.25));
}

/** The matched sampler's index at one period: existing items of each count bin, by first row. */
interface MatchIndex {
  bins: Int32Array[];
  /** Bin and place in it of every existing item; -1 for items that do not exist yet. */
  binOf: Int32Array;
  place: Int32Array;
}

/** Draws candidate sets for the samples of one period. */
export class CandidateSampler {
  private readonly touched: Array<Set<number> | undefined>;
  private readonly cumulative = new Map<number, Float64Array>();
  private readonly existing = new Map<number, Int32Array>();
  private readonly indexes = new Map<number, MatchIndex>();

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

  /** Items whose first row lies before the end of period t. */
  existingAt(t: number): Int32Array {
    let e = this.existing.get(t);
    if (!e) {
      const exists = this.split.existsBy(t);
      const out: number[] = [];
      for (let i = 0; i < this.split.dataset.numItems; i++) if (exists(i)) out.push(i);
      e = Int32Array.from(out);
      this.existing.set(t, e);
    }
    return e;
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

  private indexAt(t: number): MatchIndex {
    let x = this.indexes.get(t);
    if (!x) {
      const pop = this.split.popularity(t);
      const first = this.split.firstSeen();
      const lists: number[][] = [];
      for (const i of this.existingAt(t)) (lists[countBin(pop[i])] ??= []).push(i);
      const bins = Array.from(lists, (l) => Int32Array.from((l ?? []).sort((a, b) => first[a] - first[b])));
      const binOf = new Int32Array(this.split.dataset.numItems).fill(-1);
      const place = new Int32Array(this.split.dataset.numItems).fill(-1);
      bins.forEach((l, b) => l.forEach((i, k) => ((binOf[i] = b), (place[i] = k))));
      x = { bins, binOf, place };
      this.indexes.set(t, x);
    }
    return x;
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
    const touched = this.touchedBy(s.user);
    const existing = this.existingAt(t);
    const rand = keyedRandom(seed, sampler, t, role, this.split.dataset.userIds[s.user]);
    const chosen = new Set<number>();
    const ok = (i: number) => !touched.has(i) && !chosen.has(i) && i !== s.item;
    const need = size - 1;
    if (sampler === 'matched') {
      const { bins, binOf, place } = this.indexAt(t);
      const b = binOf[s.item];
      if (b < 0) throw new RangeError(`item ${this.split.dataset.itemIds[s.item]} is a target of period ${t} but does not exist by its end`);
      const first = this.split.firstSeen();
      const f = first[s.item];
      // The positive's rank by first appearance is drawn uniformly: `newer` negatives first appeared after
      // it, the rest before, each a random pick among the nearest untouched items of the positive's count
      // bin. When the bin runs out on one side (the positive is among its newest or oldest), the shortfall
      // comes from the nearest bins, still on that side in time. So "least popular first", "most popular
      // first" and "most recently first seen first" all see the positive at a near-uniform place.
      const newer = Math.floor(rand() * size);
      const window = WINDOW_SETS * need;
      /** Up to n untouched items of bin `bin`, nearest in first row to f on the `step` side. */
      const nearest = (bin: number, step: 1 | -1, n: number, out: number[]) => {
        const l = bins[bin];
        if (!l || l.length === 0) return;
        let k: number;
        if (bin === b) k = place[s.item] + step;
        else {
          // First index whose first row is above f (the newer side starts there).
          let lo = 0;
          let hi = l.length;
          while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (first[l[mid]] <= f) lo = mid + 1;
            else hi = mid;
          }
          k = step === 1 ? lo : lo - 1;
        }
        for (let m = 0; k >= 0 && k < l.length && m < n; k += step) if (ok(l[k])) (out.push(l[k]), m++);
      };
      const pick = (pool: number[], n: number) => {
        let j = 0;
        for (; j < pool.length && n > 0; j++) {
          const k = j + Math.floor(rand() * (pool.length - j));
          [pool[j], pool[k]] = [pool[k], pool[j]];
          if (ok(pool[j])) (chosen.add(pool[j]), n--);
        }
        return n;
      };
      for (const [step, n] of [[1, newer], [-1, need - newer]] as const) {
        let left = n;
        for (let d = 0; left > 0 && d < bins.length; d++) {
          const pool: number[] = [];
          for (const bin of d === 0 ? [b] : [b + d, b - d]) if (bin >= 0 && bin < bins.length) nearest(bin, step, WINDOW_SETS * left, pool);
          left = pick(pool, left);
        }
      }
      // Only when one whole side of time is used up: fill from anywhere near, so the set is still full.
      for (let d = 0; chosen.size < need && d < bins.length; d++) {
        const pool: number[] = [];
        for (const bin of d === 0 ? [b] : [b + d, b - d]) if (bin >= 0 && bin < bins.length) for (const st of [1, -1] as const) nearest(bin, st, window, pool);
        pick(pool, need - chosen.size);
      }
    } else {
      const accept = (i: number) => {
        if (ok(i)) chosen.add(i);
      };
      // Bounded draws, then a sweep, so a user who touched almost everything cannot loop forever.
      if (sampler === 'popularity') {
        const cum = this.cumulativeAt(t);
        const total = cum[cum.length - 1];
        for (let tries = 0; chosen.size < need && total > 0 && tries < 50 * size; tries++) accept(drawCumulative(cum, rand()));
      }
      // Uniform draws over existing items (the uniform sampler, and the fallback when popular items run out).
      for (let tries = 0; chosen.size < need && tries < 50 * size; tries++) accept(existing[Math.floor(rand() * existing.length)]);
      for (let i = 0; chosen.size < need && i < existing.length; i++) accept(existing[i]);
    }
    const out = [s.item, ...chosen];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}
