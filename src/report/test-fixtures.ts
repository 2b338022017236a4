/** Constructed experiment results for the report tests. */
import type { ExperimentResults, UpdateRecord } from '../evolve/runner.js';

/** An update record with given NDCG@3 for active and inactive users. */
export function record(strategy: string, period: number, active: number, inactive: number, seconds = 1): UpdateRecord {
  const g = (v: number) => ({ n: 10, metrics: { 'HR@1': v / 2, 'HR@3': v, 'NDCG@3': v } });
  return {
    strategy,
    period,
    seconds,
    peakRssMb: 100,
    report: { samplesSeen: 10, trainSamples: 10, trainableParameters: strategy === 'static' ? 0 : 50, loraParameters: 100, steps: 1 },
    eval: { popularity: { period, role: 'test', sampler: 'popularity', candidates: 20, groups: { active: g(active), inactive: g(inactive), all: g((active + inactive) / 2) } } },
  } as unknown as UpdateRecord;
}

export function run(updates: UpdateRecord[]): ExperimentResults {
  return { format: 'evorec-experiment/1', strategies: [...new Set(updates.map((u) => u.strategy))], periods: 2, baselines: {}, updates };
}

