/**
 * Does batching several users' requests into one LLMRec.score call help? What a scoring worker of the
 * service does with the requests that queued while it was busy (src/serve/scoring-pool.ts). The `small`
 * preset, randomly initialised (the cost does not depend on the weights), the embedded Beauty titles,
 * H = 10, 50 candidates per user (the full-catalogue depth), one kernel thread: the same users scored
 * one call per user, and in calls of 2, 4, 8 and 16 users, the sizes interleaved in every round. Reported
 * as CPU time per request (the process's own time, less sensitive than wall time to other jobs on the
 * machine), best of the rounds.
 *
 *   node --import tsx bench/serve-batching.ts      (BENCH_USERS, default 16; BENCH_ROUNDS, default 3)
 */
import { loadavg } from 'node:os';
import { setThreads } from '../src/core/index.js';
import { loadSplit } from '../src/data/prepare.js';
import { decoderPreset } from '../src/io/hf-config.js';
import { LLMRec } from '../src/models/llmrec.js';
import { PromptBuilder } from '../src/models/prompt.js';
import { Decoder } from '../src/nn/decoder.js';
import { trainTokenizer } from '../src/tokenizer/index.js';

const USERS = Number(process.env.BENCH_USERS ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
setThreads(1);
const { split } = await loadSplit({ data: 'beauty' });
const ds = split.dataset;
const { tokenizer } = trainTokenizer(ds.titles, { vocabSize: 8000 });
const decoder = new Decoder(decoderPreset('small', { vocabSize: tokenizer.vocabSize }), { seed: 1 });
decoder.addAdapter('default', { r: 16, alpha: 32, dropout: 0 }, { seed: 1, freezeBase: true });
const model = new LLMRec(decoder, new PromptBuilder(tokenizer, ds.titles, { history: 10 }));
const rows = split.userRows;
const histories = Array.from({ length: USERS }, (_, u) => Array.from(rows[u].slice(-10), (r) => ds.items[r]));
const candidates = Array.from({ length: USERS }, (_, u) => Array.from({ length: 50 }, (_, j) => (u * 7919 + j * 104729) % ds.numItems));
model.score(histories, candidates); // fills the prior cache: what follows is the steady state

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
console.log(`batching: ${USERS} users x 50 candidates, H = 10, small preset, 1 thread; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('| users per call | CPU ms per request (best of rounds) | wall ms per request | vs one per call |');
console.log('|---|---|---|---|');
// Rounds interleave the call sizes, so that a change in the machine's load between rounds hits them all.
const sizes = [1, 2, 4, 8, 16].filter((p) => p <= USERS);
const best = new Map(sizes.map((p) => [p, { cpu: Infinity, wall: Infinity }]));
for (let round = 0; round < ROUNDS; round++) {
  for (const per of sizes) {
    const c0 = cpuMs();
    const t0 = performance.now();
    for (let s = 0; s < USERS; s += per) model.score(histories.slice(s, s + per), candidates.slice(s, s + per), { usersPerBatch: per });
    const b = best.get(per)!;
    b.cpu = Math.min(b.cpu, (cpuMs() - c0) / USERS);
    b.wall = Math.min(b.wall, (performance.now() - t0) / USERS);
  }
}
const single = best.get(1)!.cpu;
for (const per of sizes) {
  const b = best.get(per)!;
  console.log(`| ${per} | ${b.cpu.toFixed(1)} | ${b.wall.toFixed(1)} | ${(b.cpu / single).toFixed(2)} |`);
}
console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
