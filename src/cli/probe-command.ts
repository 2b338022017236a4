/**
 * `evorec probes`: checks the yardstick before any model. For every period and candidate view it prints
 * random's HR@1 beside popularity and the model-free probes, computed on the test sets the models rank,
 * and flags a probe outside 0.5x-1.5x of random (docs/evaluation.md).
 */
import type { Command } from 'commander';
import { CandidateSampler, NEGATIVE_SAMPLERS, type NegativeSampler } from '../data/candidates.js';
import { loadSplit } from '../data/prepare.js';
import { checkCandidateSize } from '../data/errors.js';
import { randomMetrics } from '../eval/metrics.js';
import { PROBE_BOUND, probeResults } from '../eval/probes.js';
import { addCleanOptions, addDataOptions, addPeriodOptions, cleanFrom, parseSamplers, periodsFrom, sourceFrom } from './data-commands.js';

export interface ProbeRow {
  sampler: NegativeSampler;
  period: number;
  users: number;
  random: number;
  popularity: number;
  leastPopular: number;
  recentFirstSeen: number;
  neverTrainedOnly: number;
  /** Share of negatives that first appear after the period's end (0 in every view by construction). */
  futureNegatives: number;
  /** Share of negatives whose first appearance in the whole (unsampled) data is after the target's date. */
  newerThanTarget: number;
  withinBound: boolean;
}

export function registerProbeCommand(program: Command): void {
  const cmd = program.command('probes').description('model-free probes of the candidate views, per period (check the yardstick before the model)');
  addDataOptions(cmd);
  addCleanOptions(cmd);
  addPeriodOptions(cmd);
  cmd
    .option('--samplers <list>', `candidate views (comma-separated: ${NEGATIVE_SAMPLERS.join(', ')})`, NEGATIVE_SAMPLERS.join(','))
    .option('--json', 'print the rows as JSON')
    .action(async (o) => {
      const samplers = parseSamplers(o.samplers);
      const { split, report, raw } = await loadSplit(sourceFrom(o), cleanFrom(o), periodsFrom(o));
      // Each item's first date in the whole data (the raw source, before any user sample).
      const firstDate = new Map<string, number>();
      for (let r = 0; r < raw.numInteractions; r++) {
        const id = raw.itemIds[raw.items[r]];
        const d = firstDate.get(id);
        if (d === undefined || raw.timestamps[r] < d) firstDate.set(id, raw.timestamps[r]);
      }
      checkCandidateSize(o.candidates, split.dataset.numItems);
      const cs = new CandidateSampler(split);
      const random = randomMetrics(o.candidates)['HR@1'];
      const rows: ProbeRow[] = [];
      for (const sampler of samplers) {
        for (let t = 0; t < split.numPeriods; t++) {
          const r = await probeResults(split, t, { sampler, size: o.candidates, seed: o.seed, candidates: (s) => cs.candidates(s, t, 'test', { sampler, size: o.candidates, seed: o.seed }) });
          const hr1 = (k: string) => r[k].groups.all?.metrics['HR@1'] ?? NaN;
          const exists = split.existsBy(t);
          let negatives = 0;
          let future = 0;
          let newer = 0;
          for (const s of split.periods[t].test) {
            for (const i of cs.candidates(s, t, 'test', { sampler, size: o.candidates, seed: o.seed })) {
              if (i === s.item) continue;
              negatives++;
              if (!exists(i)) future++;
              if ((firstDate.get(split.dataset.itemIds[i]) ?? Infinity) > s.timestamp) newer++;
            }
          }
          const row = {
            sampler, period: t, users: r.popularity.groups.all?.users ?? 0, random,
            popularity: hr1('popularity'), leastPopular: hr1('least popular first'), recentFirstSeen: hr1('most recently first seen'),
            neverTrainedOnly: r['never-trained only'].groups.all?.metrics.share ?? NaN,
            futureNegatives: negatives ? future / negatives : 0,
            newerThanTarget: negatives ? newer / negatives : 0,
          };
          const ok = (x: number) => x >= PROBE_BOUND.low * random && x <= PROBE_BOUND.high * random;
          rows.push({ ...row, withinBound: ok(row.popularity) && ok(row.leastPopular) && ok(row.recentFirstSeen) });
        }
      }
      if (o.json) {
        process.stdout.write(JSON.stringify({ data: split.dataset.name, users: report.after.users, candidates: o.candidates, seed: o.seed, bound: PROBE_BOUND, rows }, null, 2) + '\n');
        return;
      }
      const f = (x: number) => x.toFixed(3);
      const lines = [
        `Probes on ${split.dataset.name}, ${report.after.users.toLocaleString('en-US')} users, ${o.candidates} candidates (test sets, all users; HR@1, random ${f(random)}; bound ${PROBE_BOUND.low}x-${PROBE_BOUND.high}x random)`,
        '',
        '| view | period | users | popularity | least popular first | most recently first seen | never-trained only | future negatives | newer than the target | within bound |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
        ...rows.map((r) => `| ${r.sampler} | P${r.period} | ${r.users.toLocaleString('en-US')} | ${f(r.popularity)} | ${f(r.leastPopular)} | ${f(r.recentFirstSeen)} | ${(r.neverTrainedOnly * 100).toFixed(1)}% | ${(r.futureNegatives * 100).toFixed(1)}% | ${(r.newerThanTarget * 100).toFixed(1)}% | ${r.withinBound ? 'yes' : 'NO'} |`),
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
}
