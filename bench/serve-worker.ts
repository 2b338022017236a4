/**
 * The service's scoring path without the service: `VersionScorer.full` (what a scoring worker runs for a
 * full-catalogue request: the SASRec's top 50 unseen items re-ranked by LLMRec) called in this process,
 * one request per call, on one kernel thread (a worker's default on 2 cores). The same randomly
 * initialised models as bench/serve.ts (`small` LLMRec, H = 10, calibration none; SASRec d 64) over the
 * Beauty titles; histories of Beauty test users. Prints the process CPU ms per request (mean, median,
 * p10, min): unlike the service's requests/s it moves little with the machine's load, so before/after
 * pairs of kernel work can be read on a shared machine.
 *
 *   node --import tsx bench/serve-worker.ts          # BENCH_REQUESTS (100), BENCH_THREADS (1)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setThreads } from '../src/core/index.js';
import { loadSplit } from '../src/data/prepare.js';
import { VersionScorer } from '../src/serve/version-scorer.js';
import { benchServiceModel } from './serve-model.js';

setThreads(Number(process.env.BENCH_THREADS ?? 1));
const requests = Number(process.env.BENCH_REQUESTS ?? 100);
const dir = mkdtempSync(join(tmpdir(), 'evorec-bench-serve-worker-'));
const { split } = await loadSplit({ data: 'beauty' });
const ds = split.dataset;
const modelDir = await benchServiceModel(split, dir, 'none');
const catalogue = { ids: [...ds.itemIds], titles: [...ds.titles], index: new Map(ds.itemIds.map((id, i) => [id, i])) };
const version = await VersionScorer.load(modelDir, catalogue, { maxPromptTokens: 2048 });
const jobs = split.periods[0].test.slice(0, requests).map((s) => {
  const h = split.history(s, 50);
  return { kind: 'full' as const, history: h, seen: h, depth: 50 };
});
for (const job of jobs.slice(0, 5)) await version.full([job]); // warm-up
const each: number[] = [];
const t0 = performance.now();
for (const job of jobs) {
  const c0 = process.cpuUsage();
  await version.full([job]);
  const c = process.cpuUsage(c0);
  each.push((c.user + c.system) / 1000);
}
const wall = (performance.now() - t0) / jobs.length;
const mean = each.reduce((a, b) => a + b, 0) / each.length;
each.sort((a, b) => a - b);
console.log(
  `VersionScorer.full, ${jobs.length} requests one at a time: CPU ms per request mean ${mean.toFixed(1)}, median ${each[each.length >> 1].toFixed(1)}, ` +
    `p10 ${each[Math.floor(each.length / 10)].toFixed(1)}, min ${each[0].toFixed(1)}; wall ${wall.toFixed(1)} ms [load ${loadavg()[0].toFixed(1)}]`,
);
rmSync(dir, { recursive: true, force: true });
