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
