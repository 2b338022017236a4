/**
 * Load check of the recommendation service (`npm run bench:serve`; not part of `npm test` nor `npm run
 * bench`). `evorec serve` runs as its own process on 127.0.0.1 with a randomly initialised `small`
 * LLMRec and a randomly initialised SASRec retriever in its version folder (the cost of scoring does not
 * depend on the weights) over the embedded Beauty titles (12,101 items); 500 users and their
 * interactions are loaded through the API. Then, for each connection count:
 *
 * (a) autocannon sends full-catalogue requests (top 10: the SASRec's top 50 unseen items re-ranked by
 *     LLMRec) for random users for a fixed time: requests/s, p50, p99;
 * (b) meanwhile a probe thread (its own event loop, so the client's load does not delay it) sends
 *     GET /healthz every 20 ms on one keep-alive connection: p50, p99, max of its latency;
 * (c) ingestion throughput under the same load: measured by the storage work's own bench (see
 *     `ingestionScenario` below, the place for it).
 *
 *   npm run bench:serve
 *   BENCH_SECONDS=15 BENCH_CONNECTIONS=1,4,16 BENCH_WORKERS=2 BENCH_THREADS=1 BENCH_BATCH=8 BENCH_WARMUP=10 npm run bench:serve
 *
 * BENCH_WORKERS / BENCH_THREADS / BENCH_BATCH are the service's --workers / --threads / --batch (unset:
 * its defaults). BENCH_CALIBRATION (default none) is the model's scoring calibration: with `prior` the
 * first request for an item also computes its history-free score, cached per worker (about a minute of
 * CPU per worker for the whole catalogue), so `none` measures what a prior-calibrated model costs once
 * its cache is warm, and `prior` the cold start after an activation. BENCH_WARMUP seconds of load at 4
 * connections come first, unmeasured. Requests time out after 120 s (counted apart).
 * The load average is printed before and after: figures from a busy machine are lower bounds. So is the
 * service's own CPU time per request (from /proc, user + system, every thread of the service): on a
 * busy machine, cores / (CPU seconds per request) projects what idle cores would sustain.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import { loadSplit } from '../src/data/prepare.js';
import { decoderPreset } from '../src/io/hf-config.js';
import { LLMRec } from '../src/models/llmrec.js';
import { saveLLMRec } from '../src/models/llmrec-io.js';
import { PromptBuilder } from '../src/models/prompt.js';
import { SASRec } from '../src/models/sasrec.js';
import { saveSASRec } from '../src/models/sasrec-io.js';
import { Decoder } from '../src/nn/decoder.js';
import { startServe } from '../src/serve/test-utils/fixture.js';
import { trainTokenizer } from '../src/tokenizer/index.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 15);
const warmup = Number(process.env.BENCH_WARMUP ?? 10);
const connectionCounts = (process.env.BENCH_CONNECTIONS ?? '1,4,16').split(',').map(Number);
const USERS = 500;
const TOKEN = 'bench-token-0123456789';
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

const dir = mkdtempSync(join(tmpdir(), 'evorec-bench-serve-'));
const { split } = await loadSplit({ data: 'beauty' });
const ds = split.dataset;
const { tokenizer } = trainTokenizer(ds.titles, { vocabSize: 8000 });
const decoder = new Decoder(decoderPreset('small', { vocabSize: tokenizer.vocabSize }), { seed: 1 });
decoder.addAdapter('default', { r: 16, alpha: 32, dropout: 0 }, { seed: 1, freezeBase: true });
const modelDir = join(dir, 'llmrec');
const calibration = (process.env.BENCH_CALIBRATION ?? 'none') as 'none' | 'prior';
await saveLLMRec(modelDir, new LLMRec(decoder, new PromptBuilder(tokenizer, ds.titles, { history: 10 }), { calibration }));
await saveSASRec(join(modelDir, 'sasrec'), new SASRec({ numItems: ds.numItems, seed: 1 }), ds.itemIds);

const flags: string[] = [];
for (const [env, flag] of [['BENCH_WORKERS', '--workers'], ['BENCH_THREADS', '--threads'], ['BENCH_BATCH', '--batch']]) {
  if (process.env[env]) flags.push(flag, process.env[env]!);
}
const svc = await startServe(['--db', join(dir, 'bench.db'), '--model', modelDir, '--models-root', dir, '--token', TOKEN, '--quiet', ...flags]);
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const post = async (path: string, body: unknown, method = 'POST') => {
  const r = await fetch(svc.url + path, { method, headers, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
};
const items = ds.itemIds.map((id, k) => ({ id, title: ds.titles[k] }));
for (let i = 0; i < items.length; i += 1000) await post('/v1/items', { items: items.slice(i, i + 1000) }, 'PUT');
const rows = [];
for (let r = 0; r < ds.numInteractions; r++) if (ds.users[r] < USERS) rows.push({ id: `b${r}`, user: ds.userIds[ds.users[r]], item: ds.itemIds[ds.items[r]], timestamp: ds.timestamps[r] });
for (let i = 0; i < rows.length; i += 1000) await post('/v1/interactions', { interactions: rows.slice(i, i + 1000) });
const users = ds.userIds.slice(0, USERS);
const metrics = async () => (await (await fetch(`${svc.url}/metrics`, { headers })).json()) as { scoring: Record<string, unknown>; routes: Record<string, { latencyMs: unknown }> };
const scoring = (await metrics()).scoring;
console.log(`service ${svc.url}: ${items.length} items, ${users.length} users, ${rows.length} interactions; small preset (${decoder.config.numHiddenLayers} layers, d ${decoder.config.hiddenSize}), H = 10, calibration ${calibration}, SASRec retriever, depth 50`);
console.log(`scoring: ${scoring.workers} workers x ${scoring.threads} threads, batch ${scoring.batch}; ${cpus().length} CPUs; load average ${load()}`);

/** /healthz latencies from a thread of its own, one keep-alive connection, one probe every `everyMs`. */
function probeHealthz(url: string, everyMs = 20): { stop: () => Promise<number[]> } {
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const http = require('node:http');
     const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
     const out = []; let stopping = false;
     parentPort.on('message', () => { stopping = true; });
     const once = () => new Promise((resolve) => {
       const t0 = performance.now();
       http.get(workerData.url + '/healthz', { agent }, (res) => { res.resume(); res.on('end', () => resolve(performance.now() - t0)); }).on('error', () => resolve(NaN));
     });
     (async () => {
       while (!stopping) { out.push(await once()); await new Promise((r) => setTimeout(r, workerData.everyMs)); }
       agent.destroy();
       parentPort.postMessage(out);
     })();`,
    { eval: true, workerData: { url, everyMs } },
  );
  return {
    stop: () => {
      const done = new Promise<number[]>((r) => w.once('message', r));
      w.postMessage('stop');
      return done.finally(() => w.terminate());
    },
  };
}

const ticks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
/** CPU seconds the service process has used (user + system, all threads); NaN without /proc. */
const serviceCpu = (): number => {
  try {
    const stat = readFileSync(`/proc/${svc.proc.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / ticks;
  } catch {
    return NaN;
  }
};

const pct = (xs: number[], p: number) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};

let k = 0;
const full = (connections: number, duration: number) =>
  autocannon({
    url: `${svc.url}/v1/recommendations`,
    method: 'POST',
    headers,
    connections,
    duration,
    timeout: 120,
    requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify({ user: users[k++ % users.length], k: 10 }) }) }],
  });

/**
 * (c) Ingestion throughput under scoring load: the storage work adds its scenario here (POST
 * /v1/interactions batches while `full` runs), reported as rows/s and batch p50/p99.
 */
async function ingestionScenario(): Promise<void> {}

if (warmup > 0) {
  const w = await full(4, warmup);
  console.log(`warm-up: ${warmup} s at 4 connections, ${w['2xx']} requests (priors of the retrieved items cached); load average ${load()}`);
}
console.log('');
console.log('| request | connections | seconds | 2xx | non-2xx, errors | requests/s | p50 ms | p99 ms | /healthz p50 ms | p99 ms | max ms | service CPU ms / request | load average |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const connections of connectionCounts) {
  const probe = probeHealthz(svc.url);
  const cpu0 = serviceCpu();
  const r = await full(connections, seconds);
  const cpu = serviceCpu() - cpu0;
  const h = await probe.stop();
  const ok = r['2xx'];
  const f = (x: number) => x.toFixed(1);
  console.log(
    `| full catalogue, top 10 (SASRec 50 + LLMRec) | ${connections} | ${seconds} | ${ok} | ${r.non2xx + r.errors} | ${f(ok / seconds)} | ${r.latency.p50} | ${r.latency.p99} | ${f(pct(h, 50))} | ${f(pct(h, 99))} | ${f(Math.max(...h))} | ${ok ? ((1000 * cpu) / ok).toFixed(0) : '-'} | ${loadavg()[0].toFixed(1)} |`,
  );
}
await ingestionScenario();
const m = await metrics();
console.log('');
console.log(`service-side latency of POST /v1/recommendations (last 4096): ${JSON.stringify(m.routes['POST /v1/recommendations'].latencyMs)}`);
console.log(`batches by size (requests per worker call): ${JSON.stringify(m.scoring.batchSizes)}; load average ${load()}`);
svc.proc.kill('SIGTERM');
await svc.exited;
rmSync(dir, { recursive: true, force: true });
