/**
 * Statistics of an experiment run once per training seed on the same split, user samples and candidate
 * sets.
 *
 * Intervals and calls come from a paired bootstrap over users and seeds (`bootstrap`): each replicate
 * draws the seeds with replacement and, per period, the evaluated users with replacement (the same users
 * for both strategies and every seed, which is what pairs them), so even one seed has an interval that
 * says how much the figure depends on which users were sampled. A difference is called only when its 95%
 * interval excludes zero, never on zero spread. Results without per-user sets (written before they were
 * kept) fall back to the mean and standard error over seeds.
 */
import { keyedRandom } from '../data/rng.js';
import type { ExperimentResults, UpdateRecord } from '../evolve/runner.js';

export interface Stat {
  mean: number;
  /** Standard error of the mean: sample standard deviation / sqrt(n); NaN for a single value. */
  se: number;
  /** Seeds behind the figure. */
  n: number;
  /** 95% bootstrap interval over users and seeds, when per-user sets were kept. */
  lo?: number;
  hi?: number;
  /** Users behind the figure (per period, summed over the periods averaged). */
  users?: number;
}

export function stat(values: number[]): Stat {
  const xs = values.filter(Number.isFinite);
  const n = xs.length;
  if (n === 0) return { mean: NaN, se: NaN, n: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, se: NaN, n };
  const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
  return { mean, se: Math.sqrt(variance / n), n };
}

/**
 * +1 when the difference is called above zero, -1 below, 0 otherwise. With a bootstrap interval: called
 * when it excludes zero (and has spread). Without: more than twice the standard error over at least two
 * seeds, never on a zero standard error.
 */
export function verdict(s: Stat): -1 | 0 | 1 {
  if (s.lo !== undefined && s.hi !== undefined) {
    // Spread below rounding (the same difference for every user and seed) is no spread.
    if (!(s.hi - s.lo > 1e-9)) return 0;
    if (s.lo > 0) return 1;
    if (s.hi < 0) return -1;
    return 0;
  }
  if (!(s.n >= 2) || !Number.isFinite(s.se) || s.se === 0) return 0;
  if (s.mean > 2 * s.se) return 1;
  if (s.mean < -2 * s.se) return -1;
  return 0;
}

/** A quantity of one update record (a metric, a time, a count). */
export type Measure = (u: UpdateRecord) => number;

export const metricOf =
  (sampler: string, group: string, metric: string): Measure =>
  (u) =>
    u.eval[sampler]?.groups[group as 'all']?.metrics[metric] ?? NaN;

const meanOf = (xs: number[]) => {
  const v = xs.filter(Number.isFinite);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
};

/** One run's value of a measure for a strategy at a period, or averaged over the periods it finished. */
export function runValue(run: ExperimentResults, strategy: string, period: number | 'mean', measure: Measure): number {
  return meanOf(run.updates.filter((u) => u.strategy === strategy && (period === 'mean' || u.period === period)).map(measure));
}

/** Mean and standard error over runs (seeds) of a strategy's measure. */
export function seedStat(runs: ExperimentResults[], strategy: string, period: number | 'mean', measure: Measure): Stat {
  return stat(runs.map((r) => runValue(r, strategy, period, measure)));
}

/** Paired difference a − b over runs (seeds): each run's difference, then mean and standard error. */
export function pairedDifference(runs: ExperimentResults[], a: string, b: string, period: number | 'mean', measure: Measure): Stat {
  return stat(runs.map((r) => runValue(r, a, period, measure) - runValue(r, b, period, measure)));
}

/** Bootstrap replicates (fixed seed, so reports are reproducible byte for byte). */
export const BOOTSTRAP = { replicates: 1000, seed: 7 };

/**
 * A strategy's metric (b omitted) or the paired difference a − b, for one period or averaged over the
 * periods, with a paired bootstrap over users and seeds. Returns the seed-based Stat when per-user sets
 * are missing.
 */
export function bootstrap(runs: ExperimentResults[], sampler: string, group: string, metric: string, period: number | 'mean', a: string, b?: string): Stat {
  const d = userValues(runs, sampler, group, metric, period, a, b);
  if (!d) {
    // Without per-user sets: the statistics over seeds.
    const measure = metricOf(sampler, group, metric);
    return b === undefined ? seedStat(runs, a, period, measure) : pairedDifference(runs, a, b, period, measure);
  }
  const rand = keyedRandom(BOOTSTRAP.seed, 'bootstrap', sampler, group, metric, String(period), a, b ?? '');
  return resample(runs.length, [d], rand, ([x]) => x);
}

/**
 * d[p][r]: the per-user values (b omitted) or paired differences a − b of period p in run r, users in one
 * order for all runs; null when per-user sets are missing or the runs' users differ.
 */
function userValues(runs: ExperimentResults[], sampler: string, group: string, metric: string, period: number | 'mean', a: string, b?: string): number[][][] | null {
  const find = (r: ExperimentResults, s: string, p: number) => r.updates.find((u) => u.strategy === s && u.period === p)?.eval[sampler];
  const periods = [...new Set(runs.flatMap((r) => r.updates.filter((u) => u.strategy === a && (period === 'mean' || u.period === period)).map((u) => u.period)))].sort((x, y) => x - y);
  const d: number[][][] = [];
  for (const p of periods) {
    const perRun: number[][] = [];
    for (const r of runs) {
      const ea = find(r, a, p);
      const eb = b === undefined ? undefined : find(r, b, p);
      if (!ea?.sets || (b !== undefined && !eb?.sets)) return null;
      const values = ea.sets.metrics[metric];
      if (!values) return null;
      const other = new Map<number, number>();
      if (eb?.sets) eb.sets.rows.forEach((row, i) => other.set(row, eb.sets!.metrics[metric][i]));
      const xs: number[] = [];
      ea.sets.rows.forEach((row, i) => {
        if (group !== 'all' && ea.sets!.groups[i] !== group) return;
        if (b === undefined) xs.push(values[i]);
        else if (other.has(row)) xs.push(values[i] - other.get(row)!);
      });
      perRun.push(xs);
    }
    if (perRun[0].length === 0 || perRun.some((xs) => xs.length !== perRun[0].length)) return null;
    d.push(perRun);
  }
  return d.length ? d : null;
}

const meanArr = (xs: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
};

/**
 * The paired bootstrap over users and seeds of a function of one or more quantities that share their
 * users (every d has the same periods, runs and users): each replicate draws the seeds and, per period,
 * the users once, and applies `combine` to each quantity's mean over them.
 */
function resample(nRuns: number, ds: number[][][][], rand: () => number, combine: (means: number[]) => number): Stat {
  // The mean over the drawn seeds of the mean over periods of the mean over the drawn users: summed in
  // that order without an array per level (the replicates are most of a report's time).
  const estimate = (d: number[][][], seedIdx: number[], users: Int32Array[] | null) => {
    let overSeeds = 0;
    for (const r of seedIdx) {
      let overPeriods = 0;
      for (let p = 0; p < d.length; p++) {
        const xs = d[p][r];
        if (!users) overPeriods += meanArr(xs);
        else {
          const drawn = users[p];
          let s = 0;
          for (let i = 0; i < drawn.length; i++) s += xs[drawn[i]];
          overPeriods += s / drawn.length;
        }
      }
      overSeeds += overPeriods / d.length;
    }
    return overSeeds / seedIdx.length;
  };
  const all = Array.from({ length: nRuns }, (_, r) => r);
  const point = combine(ds.map((d) => estimate(d, all, null)));
  const reps = new Float64Array(BOOTSTRAP.replicates);
  const d0 = ds[0];
  for (let k = 0; k < reps.length; k++) {
    const seedIdx = nRuns > 1 ? all.map(() => Math.floor(rand() * nRuns)) : all;
    const users = d0.map((perRun) => {
      const n = perRun[0].length;
      const drawn = new Int32Array(n);
      for (let i = 0; i < n; i++) drawn[i] = Math.floor(rand() * n);
      return drawn;
    });
    reps[k] = combine(ds.map((d) => estimate(d, seedIdx, users)));
  }
  const finite = Array.from(reps).filter(Number.isFinite).sort((x, y) => x - y);
  if (finite.length === 0) return { mean: point, se: NaN, n: nRuns, users: d0.reduce((acc, perRun) => acc + perRun[0].length, 0) };
  const q = (x: number) => finite[Math.min(finite.length - 1, Math.max(0, Math.round(x * (finite.length - 1))))];
  const m = meanArr(finite);
  const sd = Math.sqrt(finite.reduce((acc, x) => acc + (x - m) ** 2, 0) / Math.max(1, finite.length - 1));
  return { mean: point, se: sd, n: nRuns, lo: q(0.025), hi: q(0.975), users: d0.reduce((acc, perRun) => acc + perRun[0].length, 0) };
}

/**
 * The ratio of two paired differences on the same users, (a − b) / (c − d), averaged over periods, with
 * its paired bootstrap interval (numerator and denominator resampled together); null without per-user
 * sets or when the two pairs' users differ. E.g. the share of finetune's inactive-user loss EvoRec loses:
 * (static − evorec) / (static − finetune).
 */
export function bootstrapRatio(runs: ExperimentResults[], sampler: string, group: string, metric: string, num: [string, string], den: [string, string]): Stat | null {
  const n = userValues(runs, sampler, group, metric, 'mean', num[0], num[1]);
  const d = userValues(runs, sampler, group, metric, 'mean', den[0], den[1]);
  if (!n || !d || n.length !== d.length || n.some((perRun, p) => perRun[0].length !== d[p][0].length)) return null;
  const rand = keyedRandom(BOOTSTRAP.seed, 'bootstrap-ratio', sampler, group, metric, ...num, ...den);
  return resample(runs.length, [n, d], rand, ([x, y]) => x / y);
}
