/**
 * Model-free probes of a candidate view (docs/evaluation.md). A sampled candidate set is a yardstick only
 * if no statistic of an item, computed without the user, picks the positive. Each probe is computed on
 * the very candidate sets the models rank:
 *
 * - least popular first: ranks by training count up to t, ascending (the leak of the first protocol);
 * - most recently first seen first: ranks by the item's first appearance in the data, newest first;
 * - never-trained only: the share of sets whose positive is the only item never seen as a training target.
 *
 * Popularity itself (most popular first) is `popularityScorer` in evaluate.ts. A probe far from random's
 * expectation means the view measures the sampler, not the user.
 */
import type { PeriodSplit, Sample } from '../data/periods.js';
import { evaluate, GroupMeans, popularityScorer, type EvalOptions, type EvalResult, type Scorer } from './evaluate.js';

/** Ranks by training count up to t, least popular first. */
export function leastPopularScorer(split: PeriodSplit, t: number): Scorer {
  const pop = split.popularity(t);
  return (_s, cand) => cand.map((i) => -pop[i]);
}

/** Ranks by the item's first row in the data, most recently first seen first. */
export function recentFirstSeenScorer(split: PeriodSplit): Scorer {
  const first = split.firstSeen();
  return (_s, cand) => cand.map((i) => first[i]);
}

/** The share of candidate sets whose positive is the only never-trained item (metric "share"). */
export function neverTrainedOnly(split: PeriodSplit, t: number, samples: readonly Sample[], candidatesOf: (s: Sample) => number[], opts: Pick<EvalOptions, 'role' | 'sampler' | 'size'> = {}): EvalResult {
  const pop = split.popularity(t);
  const acc = new GroupMeans();
  for (const s of samples) {
    const c = candidatesOf(s);
    const only = pop[s.item] === 0 && c.every((i) => i === s.item || pop[i] > 0);
    acc.add(s.group ?? 'base', { share: only ? 1 : 0 });
  }
  const groups = acc.groups();
  return { period: t, role: opts.role ?? 'test', sampler: opts.sampler ?? 'matched', candidates: opts.size ?? 20, groups };
}

export const PROBE_NAMES = ['popularity', 'least popular first', 'most recently first seen', 'never-trained only'] as const;

/**
 * Popularity and the probes on the candidate sets of `opts` (which must fix `candidates` or a sampler and
 * seed, so they are the sets the models rank). Keys are PROBE_NAMES.
 */
export async function probeResults(split: PeriodSplit, t: number, opts: EvalOptions & { candidates: (s: Sample) => number[] }): Promise<Record<string, EvalResult>> {
  const samples = split.periods[t][opts.role ?? 'test'].filter(opts.filter ?? (() => true));
  return {
    popularity: await evaluate(split, t, popularityScorer(split, t), opts),
    'least popular first': await evaluate(split, t, leastPopularScorer(split, t), opts),
    'most recently first seen': await evaluate(split, t, recentFirstSeenScorer(split), opts),
    'never-trained only': neverTrainedOnly(split, t, samples, opts.candidates, opts),
  };
}

/** A probe is within the bound when its HR@1 lies in [low, high] × random's (the spec's "about the user" view). */
export const PROBE_BOUND = { low: 0.5, high: 1.5 };

/** The Wilson score interval of a rate p observed on n sets (z = 1.96: 95%). */
export function wilsonInterval(p: number, n: number, z = 1.96): [number, number] {
  if (!(n > 0)) return [0, 1];
  const z2 = (z * z) / n;
  const mid = (p + z2 / 2) / (1 + z2);
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n))) / (1 + z2);
  return [Math.max(0, mid - half), Math.min(1, mid + half)];
}

/**
 * Is a probe's HR@1 on n sets within the bound? 'within': the figure itself is; 'noise': it is not, but
 * its 95% interval reaches the bound, so n sets cannot tell it from a probe at the bound (at n = 67 a
 * rate of 0.05 has a standard error of 0.027, wider than the bound's half-width); 'outside': the whole
 * interval misses the bound, so the sets give something away.
 */
export function probeBoundCheck(hr1: number, n: number, random: number): 'within' | 'noise' | 'outside' {
  const lo = PROBE_BOUND.low * random;
  const hi = PROBE_BOUND.high * random;
  if (hr1 >= lo && hr1 <= hi) return 'within';
  const [a, b] = wilsonInterval(hr1, n);
  return b >= lo && a <= hi ? 'noise' : 'outside';
}
