/**
 * Statistics over training seeds. An experiment is run once per training seed on the same split, user
 * samples and candidate sets; every figure is reported as the mean over seeds with its standard error, and
 * a difference between two strategies is called only when the paired per-seed difference exceeds twice
 * its standard error.
 *
 * The standard error describes training randomness only (initialisation, shuffling, dropout): the users
 * and candidates are the same in every run, which is what makes the per-seed differences paired.
 */
import type { ExperimentResults, UpdateRecord } from '../evolve/runner.js';

export interface Stat {
  mean: number;
  /** Standard error of the mean: sample standard deviation / sqrt(n); NaN for a single value. */
  se: number;
  n: number;
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

/** +1 when the mean is above zero by more than twice its standard error, -1 when below, 0 otherwise (or n < 2). */
export function verdict(s: Stat): -1 | 0 | 1 {
  if (!(s.n >= 2) || !Number.isFinite(s.se)) return 0;
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
