/**
 * Load check of the recommendation service (`npm run bench:serve`; not part of `npm test` nor `npm run
 * bench`). `evorec serve` runs as its own process on 127.0.0.1 with a randomly initialised `small`
 * LLMRec and a randomly initialised SASRec retriever in its version folder (the cost of scoring does not
 * depend on the weights) over the embedded Beauty titles (12,101 items). Two parts:
 *
 * - ingest: Beauty's interactions posted in batches of 100 (durable: a batch is acknowledged after its
 *   transaction committed; SQLite with synchronous = FULL, PostgreSQL with fsync and synchronous_commit
 *   on), by 1 and by 4 clients at once, into SQLite and into PostgreSQL (`EVOREC_BENCH_PG`, a URL of a
 *   user that may create databases, or a throwaway durable cluster when PostgreSQL is installed);
 *   interactions per second and the batch latency; then the Storage alone (no HTTP);
 * - recommend: 500 users and their interactions loaded through the API; then, for each connection count,
 *   (a) autocannon sends full-catalogue requests (top 10: the SASRec's top 50 unseen items re-ranked by
 *   LLMRec) for random users for a fixed time: requests/s, p50, p99; (b) meanwhile a probe thread (its own
 *   event loop, so the client's load does not delay it) sends GET /healthz every 20 ms on one keep-alive
 *   connection: p50, p99, max of its latency; the service's own CPU time per request (from /proc, user +
 *   system, every thread of the service): on a busy machine, cores / (CPU seconds per request) projects
 *   what idle cores would sustain; (c) ingestion paced at a batch of 100 every 100 ms from a thread of its
 *   own, alone and then beside 4 connections of full-catalogue requests: the batches' p50, p99, max;
 *   (d) unless BENCH_EVOLVE=0, the same three (4 connections, probes, paced ingestion) while an evolution
 *   of the served version runs (the folder registered as trained on the log so far, new interactions).
 *
 *   npm run bench:serve
 *   BENCH_PART=recommend BENCH_SECONDS=15 BENCH_CONNECTIONS=1,4,16 BENCH_WORKERS=2 BENCH_THREADS=1 BENCH_BATCH=8 npm run bench:serve
 *
 * BENCH_PART = ingest | recommend | all (default); BENCH_INGEST_ROWS per ingest run (default 20000).
 * BENCH_WORKERS / BENCH_THREADS / BENCH_BATCH are the service's --workers / --threads / --batch (unset:
 * its defaults). BENCH_CALIBRATION (default none) is the model's scoring calibration: with `prior` the
 * first request for an item also computes its history-free score, cached per worker (about a minute of
 * CPU per worker for the whole catalogue), so `none` measures what a prior-calibrated model costs once
 * its cache is warm, and `prior` the cold start after an activation. BENCH_WARMUP (default 10) seconds of
 * load at 4 connections come first, unmeasured. Requests time out after 120 s (counted apart).
 * The load average is printed before and after: figures from a busy machine are lower bounds.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import { loadSplit } from '../src/data/prepare.js';
import { openStorage } from '../src/serve/open-storage.js';
import { startServe } from '../src/serve/test-utils/fixture.js';
import { findPgBin, freshDatabase, startCluster, type PgServer } from '../src/serve/test-utils/postgres.js';
import { BENCH_MODEL, benchServiceModel } from './serve-model.js';

const part = process.env.BENCH_PART ?? 'all';
const ingestRows = Number(process.env.BENCH_INGEST_ROWS ?? 20_000);
const seconds = Number(process.env.BENCH_SECONDS ?? 15);
const warmup = Number(process.env.BENCH_WARMUP ?? 10);
const connectionCounts = (process.env.BENCH_CONNECTIONS ?? '1,4,16').split(',').map(Number);
const USERS = 500;
const TOKEN = 'bench-token-0123456789';

const dir = mkdtempSync(join(tmpdir(), 'evorec-bench-serve-'));
const { split } = await loadSplit({ data: 'beauty' });
const ds = split.dataset;
const calibration = (process.env.BENCH_CALIBRATION ?? 'none') as 'none' | 'prior';
const modelDir = await benchServiceModel(split, dir, calibration);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const items = ds.itemIds.map((id, k) => ({ id, title: ds.titles[k] }));

/** Posts `rows` in batches of 100 from `clients` clients at once; interactions/s and batch latency. */
async function ingestRun(url: string, rows: { id: string; user: string; item: string; timestamp: number }[], clients: number) {
  const batches: (typeof rows)[] = [];
  for (let i = 0; i < rows.length; i += 100) batches.push(rows.slice(i, i + 100));
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < batches.length) {
        const b = batches[next++];
        const s = performance.now();
        const r = await fetch(`${url}/v1/interactions`, { method: 'POST', headers, body: JSON.stringify({ interactions: b }) });
        const body = (await r.json()) as { created: number };
        if (!r.ok || body.created !== b.length) throw new Error(`ingest: ${r.status} ${JSON.stringify(body).slice(0, 200)}`);
        latencies.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(1);
  return { secs, perSecond: rows.length / secs, p50: q(0.5), p99: q(0.99) };
}

async function ingest(): Promise<void> {
  const all = [];
  for (let r = 0; r < ds.numInteractions; r++) all.push({ id: `i${r}`, user: ds.userIds[ds.users[r]], item: ds.itemIds[ds.items[r]], timestamp: ds.timestamps[r] });
  if (all.length < 3 * ingestRows) throw new Error(`BENCH_INGEST_ROWS=${ingestRows}: Beauty has ${all.length} interactions, three runs need three times as many`);
  let pgServer: PgServer | null = null;
  const stores: { name: string; db: () => Promise<{ spec: string; drop: () => Promise<void> }> }[] = [
    { name: 'SQLite (WAL, synchronous = FULL)', db: async () => ({ spec: join(dir, `ingest-${Date.now()}.db`), drop: async () => {} }) },
  ];
  const pgUrl = process.env.EVOREC_BENCH_PG;
  const bin = findPgBin();
  if (pgUrl || bin) {
    pgServer = pgUrl ? { adminUrl: pgUrl, origin: 'EVOREC_BENCH_PG', stop: async () => {} } : await startCluster(bin!, { durable: true });
    const server = pgServer;
    stores.push({ name: `PostgreSQL (fsync, synchronous_commit on; ${server.origin.split(' (')[0]})`, db: async () => {
      const d = await freshDatabase(server);
      return { spec: d.url, drop: d.drop };
    } });
  } else console.log('PostgreSQL: not installed and EVOREC_BENCH_PG not set; SQLite only');
  console.log(`ingest: ${ingestRows} Beauty interactions per run, batches of 100 (POST /v1/interactions), ${items.length} items`);
  console.log('| storage | clients | interactions | seconds | interactions/s | batch p50 ms | batch p99 ms |');
  console.log('|---|---|---|---|---|---|---|');
  try {
    for (const store of stores) {
      const db = await store.db();
      const svc = await startServe(['--db', db.spec, '--model', modelDir, '--models-root', dir, '--versions', join(dir, 'versions'), '--token', TOKEN, '--quiet']);
      try {
        for (let i = 0; i < items.length; i += 1000) {
          const r = await fetch(`${svc.url}/v1/items`, { method: 'PUT', headers, body: JSON.stringify({ items: items.slice(i, i + 1000) }) });
          if (!r.ok) throw new Error(`items: ${r.status} ${await r.text()}`);
        }
        for (const [k, clients] of [1, 4].entries()) {
          const r = await ingestRun(svc.url, all.slice(k * ingestRows, (k + 1) * ingestRows), clients);
          console.log(`| ${store.name} | ${clients} | ${ingestRows} | ${r.secs.toFixed(1)} | ${Math.round(r.perSecond)} | ${r.p50} | ${r.p99} |`);
        }
      } finally {
        svc.proc.kill('SIGTERM');
        await svc.exited;
        await db.drop();
      }
      // The storage alone, in this process (no HTTP, no service): what the database costs per batch.
      const direct = await store.db();
      const storage = await openStorage(direct.spec);
      try {
        await storage.migrate();
        for (let i = 0; i < items.length; i += 1000) await storage.upsertItems(items.slice(i, i + 1000));
        const rows = all.slice(2 * ingestRows, 3 * ingestRows);
        const latencies: number[] = [];
        const t0 = performance.now();
        for (let i = 0; i < rows.length; i += 100) {
          const s = performance.now();
          await storage.appendInteractions(rows.slice(i, i + 100));
          latencies.push(performance.now() - s);
        }
        const secs = (performance.now() - t0) / 1000;
        latencies.sort((a, b) => a - b);
        const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(1);
        console.log(`| ${store.name}, the Storage alone (no HTTP) | 1 | ${rows.length} | ${secs.toFixed(1)} | ${Math.round(rows.length / secs)} | ${q(0.5)} | ${q(0.99)} |`);
      } finally {
        await storage.close();
        await direct.drop();
      }
    }
  } finally {
    await pgServer?.stop();
  }
}

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

/**
 * Paced ingestion from a thread of its own (so the load generator's work does not delay it): a batch of
 * 100 interactions every `everyMs` on one keep-alive connection until stopped; each batch's latency.
 */
function pacedIngest(url: string, rows: { id: string; user: string; item: string; timestamp: number }[], everyMs = 100): { stop: () => Promise<number[]> } {
  const w = new Worker(
    `const { parentPort, workerData: d } = require('node:worker_threads');
     const http = require('node:http');
     const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
     const out = []; let stopping = false;
     parentPort.on('message', () => { stopping = true; });
     const post = (batch) => new Promise((resolve, reject) => {
       const body = JSON.stringify({ interactions: batch });
       const t0 = performance.now();
       const req = http.request(d.url + '/v1/interactions', { method: 'POST', agent, headers: { ...d.headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
         let text = ''; res.on('data', (c) => (text += c));
         res.on('end', () => (res.statusCode === 200 || res.statusCode === 201) && JSON.parse(text).created === batch.length ? resolve(performance.now() - t0) : reject(new Error('ingest: ' + res.statusCode + ' ' + text.slice(0, 200))));
       });
       req.on('error', reject); req.end(body);
     });
     (async () => {
       for (let i = 0; !stopping && i < d.rows.length; i += 100) {
         const ms = await post(d.rows.slice(i, i + 100));
         out.push(ms);
         await new Promise((r) => setTimeout(r, Math.max(0, d.everyMs - ms)));
       }
       agent.destroy();
       if (!stopping) await new Promise((r) => parentPort.once('message', r));
       parentPort.postMessage(out);
     })().catch((e) => { throw e; });`,
    { eval: true, workerData: { url, rows, everyMs, headers } },
  );
  return {
    stop: () => {
      const done = new Promise<number[]>((r, j) => (w.once('message', r), w.once('error', j)));
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
/** CPU seconds a process has used (user + system, all threads); NaN without /proc. */
const processCpu = (pid: number | undefined): number => statCpu(`/proc/${pid}/stat`);
/** CPU seconds of the process's main thread (its event loop: HTTP, storage reads, JSON); NaN without /proc. */
const mainThreadCpu = (pid: number | undefined): number => statCpu(`/proc/${pid}/task/${pid}/stat`);
function statCpu(path: string): number {
  try {
    const stat = readFileSync(path, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / ticks;
  } catch {
    return NaN;
  }
}

const pct = (xs: number[], p: number) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};


async function recommend(): Promise<void> {
  const flags: string[] = [];
  for (const [env, flag] of [['BENCH_WORKERS', '--workers'], ['BENCH_THREADS', '--threads'], ['BENCH_BATCH', '--batch']]) {
    if (process.env[env]) flags.push(flag, process.env[env]!);
  }
  const svc = await startServe(['--db', join(dir, 'bench.db'), '--model', modelDir, '--models-root', dir, '--token', TOKEN, '--quiet', ...flags]);
  const post = async (path: string, body: unknown, method = 'POST') => {
    const r = await fetch(svc.url + path, { method, headers, body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  };
  for (let i = 0; i < items.length; i += 1000) await post('/v1/items', { items: items.slice(i, i + 1000) }, 'PUT');
  const rows = [];
  for (let r = 0; r < ds.numInteractions; r++) if (ds.users[r] < USERS) rows.push({ id: `b${r}`, user: ds.userIds[ds.users[r]], item: ds.itemIds[ds.items[r]], timestamp: ds.timestamps[r] });
  for (let i = 0; i < rows.length; i += 1000) await post('/v1/interactions', { interactions: rows.slice(i, i + 1000) });
  const users = ds.userIds.slice(0, USERS);
  const metrics = async () => (await (await fetch(`${svc.url}/metrics`, { headers })).json()) as { scoring: Record<string, unknown>; routes: Record<string, { latencyMs: unknown }> };
  const scoring = (await metrics()).scoring;
  console.log(`service ${svc.url}: ${items.length} items, ${users.length} users, ${rows.length} interactions; ${BENCH_MODEL}, H = 10, calibration ${calibration}, SASRec retriever, depth 50`);
  console.log(`scoring: ${scoring.workers} workers x ${scoring.threads} threads, batch ${scoring.batch}; ${availableParallelism()} cores; load average ${load()}`);

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

  if (warmup > 0) {
    const w = await full(4, warmup);
    console.log(`warm-up: ${warmup} s at 4 connections, ${w['2xx']} requests (unmeasured; with calibration prior it fills the priors cache); load average ${load()}`);
  }
  console.log('');
  console.log('| request | connections | seconds | 2xx | non-2xx, errors | requests/s | p50 ms | p99 ms | /healthz p50 ms | p99 ms | max ms | service CPU ms / request | of which main thread | load average |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const connections of connectionCounts) {
    const probe = probeHealthz(svc.url);
    const cpu0 = processCpu(svc.proc.pid), main0 = mainThreadCpu(svc.proc.pid);
    const r = await full(connections, seconds);
    const cpu = processCpu(svc.proc.pid) - cpu0, mainCpu = mainThreadCpu(svc.proc.pid) - main0;
    const h = await probe.stop();
    const ok = r['2xx'];
    const f = (x: number) => x.toFixed(1);
    console.log(
      `| full catalogue, top 10 (SASRec 50 + LLMRec) | ${connections} | ${seconds} | ${ok} | ${r.non2xx + r.errors} | ${f(ok / seconds)} | ${r.latency.p50} | ${r.latency.p99} | ${f(pct(h, 50))} | ${f(pct(h, 99))} | ${f(Math.max(...h))} | ${ok ? ((1000 * cpu) / ok).toFixed(0) : '-'} | ${ok ? ((1000 * mainCpu) / ok).toFixed(1) : '-'} | ${loadavg()[0].toFixed(1)} |`,
    );
  }
  // Ingestion beside the scoring: a batch of 100 every 100 ms (1,000 interactions/s) alone, then while
  // 4 connections keep the scoring pool busy; the batches' latencies should not move.
  const fresh = [];
  for (let r = 0; r < ds.numInteractions; r++) if (ds.users[r] >= USERS) fresh.push({ id: `m${r}`, user: ds.userIds[ds.users[r]], item: ds.itemIds[ds.items[r]], timestamp: ds.timestamps[r] });
  const half = Math.floor(fresh.length / 2);
  console.log('');
  console.log('| ingestion, batches of 100 every 100 ms | batches | batch p50 ms | p99 ms | max ms | recommendations/s meanwhile | their p99 ms |');
  console.log('|---|---|---|---|---|---|---|');
  for (const loaded of [false, true]) {
    const ing = pacedIngest(svc.url, loaded ? fresh.slice(half) : fresh.slice(0, half));
    let rec: Awaited<ReturnType<typeof full>> | null = null;
    if (loaded) rec = await full(4, seconds);
    else await new Promise((r) => setTimeout(r, seconds * 1000));
    const l = await ing.stop();
    const f = (x: number) => x.toFixed(1);
    console.log(`| ${loaded ? 'with 4 connections of full-catalogue requests' : 'alone'} | ${l.length} | ${f(pct(l, 50))} | ${f(pct(l, 99))} | ${f(Math.max(...l))} | ${rec ? f(rec['2xx'] / seconds) : '-'} | ${rec ? rec.latency.p99 : '-'} |`);
  }
  // During an evolution: the served folder registered as trained on the log so far, new interactions of
  // the bench's users (their own items again, later), an evolution started, then the same paced
  // ingestion, /healthz probes and 4 connections while its process trains.
  if (process.env.BENCH_EVOLVE !== '0') {
    await post('/v1/versions', { folder: modelDir, trainedUpTo: 'latest', activate: true });
    const last = Math.max(...rows.map((x) => x.timestamp));
    const later = rows.map((x, j) => ({ ...x, id: `e${j}`, timestamp: last + 1 + j }));
    for (let i = 0; i < later.length; i += 1000) await post('/v1/interactions', { interactions: later.slice(i, i + 1000) });
    const r0 = await fetch(`${svc.url}/v1/evolutions`, { method: 'POST', headers, body: '{}' });
    if (r0.status !== 202) throw new Error(`evolution: ${r0.status} ${await r0.text()}`);
    const job = (await r0.json()) as { id: number };
    const status = async () => ((await (await fetch(`${svc.url}/v1/evolutions/${job.id}`, { headers })).json()) as { status: string }).status;
    const more = later.map((x, j) => ({ ...x, id: `f${j}`, timestamp: last + 1 + later.length + j }));
    const probe = probeHealthz(svc.url);
    const ing = pacedIngest(svc.url, more);
    const rec = await full(4, seconds);
    const l = await ing.stop();
    const h = await probe.stop();
    const st = await status();
    const f = (x: number) => x.toFixed(1);
    console.log('');
    console.log(`during evolution ${job.id} (status at the end of the window: ${st}), ${seconds} s, 4 connections: ${f(rec['2xx'] / seconds)} requests/s, p50 ${rec.latency.p50} ms, p99 ${rec.latency.p99} ms; /healthz p50 ${f(pct(h, 50))} p99 ${f(pct(h, 99))} max ${f(Math.max(...h))} ms; ingestion batches of 100 every 100 ms: ${l.length}, p50 ${f(pct(l, 50))} p99 ${f(pct(l, 99))} max ${f(Math.max(...l))} ms`);
  }
  const m = await metrics();
  console.log('');
  console.log(`service-side latency of POST /v1/recommendations (last 4096): ${JSON.stringify(m.routes['POST /v1/recommendations'].latencyMs)}`);
  console.log(`batches by size (requests per worker call): ${JSON.stringify(m.scoring.batchSizes)}; load average ${load()}`);
  svc.proc.kill('SIGTERM');
  await svc.exited;
}

console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(', ')} on ${availableParallelism()} cores`);
if (part === 'ingest' || part === 'all') await ingest();
if (part === 'recommend' || part === 'all') await recommend();
console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(', ')}`);
rmSync(dir, { recursive: true, force: true });
