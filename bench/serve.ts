/**
 * Load check of the recommendation service (not part of `npm test` nor `npm run bench`):
 * `evorec serve` runs as its own process on 127.0.0.1 with a randomly initialised `small` LLMRec (the
 * cost of scoring does not depend on the weights) over the embedded Beauty titles.
 *
 * - ingest: Beauty's interactions posted in batches of 100 (durable: a batch is acknowledged after its
 *   transaction committed; SQLite with synchronous = FULL, PostgreSQL with fsync and synchronous_commit
 *   on), by 1 and by 4 clients at once, into SQLite and into PostgreSQL (`EVOREC_BENCH_PG`, a URL of a
 *   user that may create databases, or a throwaway durable cluster when PostgreSQL is installed);
 *   interactions per second and the batch latency;
 * - recommend: autocannon sends recommendation requests for random users for a fixed time, and reports
 *   requests per second and the latency percentiles.
 *
 *   node --import tsx bench/serve.ts      (BENCH_PART = ingest | recommend | all (default);
 *                                          BENCH_SECONDS, default 15; BENCH_CONNECTIONS, default 2;
 *                                          BENCH_INGEST_ROWS per run, default 20000)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { loadSplit } from '../src/data/prepare.js';
import { decoderPreset } from '../src/io/hf-config.js';
import { LLMRec } from '../src/models/llmrec.js';
import { saveLLMRec } from '../src/models/llmrec-io.js';
import { PromptBuilder } from '../src/models/prompt.js';
import { Decoder } from '../src/nn/decoder.js';
import { openStorage } from '../src/serve/open-storage.js';
import { startServe } from '../src/serve/test-utils/fixture.js';
import { findPgBin, freshDatabase, startCluster, type PgServer } from '../src/serve/test-utils/postgres.js';
import { trainTokenizer } from '../src/tokenizer/index.js';

const part = process.env.BENCH_PART ?? 'all';
const ingestRows = Number(process.env.BENCH_INGEST_ROWS ?? 20_000);
const seconds = Number(process.env.BENCH_SECONDS ?? 15);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 2);
const USERS = 500;
const TOKEN = 'bench-token-0123456789';

const dir = mkdtempSync(join(tmpdir(), 'evorec-bench-serve-'));
const { split } = await loadSplit({ data: 'beauty' });
const ds = split.dataset;
const { tokenizer } = trainTokenizer(ds.titles, { vocabSize: 8000 });
const decoder = new Decoder(decoderPreset('small', { vocabSize: tokenizer.vocabSize }), { seed: 1 });
decoder.addAdapter('default', { r: 16, alpha: 32, dropout: 0 }, { seed: 1, freezeBase: true });
const modelDir = join(dir, 'llmrec');
await saveLLMRec(modelDir, new LLMRec(decoder, new PromptBuilder(tokenizer, ds.titles, { history: 10 })));

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

async function recommend(): Promise<void> {
  const svc = await startServe(['--db', join(dir, 'bench.db'), '--model', modelDir, '--models-root', dir, '--token', TOKEN, '--pool', '20', '--quiet']);
  const post = async (path: string, body: unknown, method = 'POST') => {
    const r = await fetch(svc.url + path, { method, headers, body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  };
  for (let i = 0; i < items.length; i += 1000) await post('/v1/items', { items: items.slice(i, i + 1000) }, 'PUT');
  const rows = [];
  for (let r = 0; r < ds.numInteractions; r++) if (ds.users[r] < USERS) rows.push({ id: `b${r}`, user: ds.userIds[ds.users[r]], item: ds.itemIds[ds.items[r]], timestamp: ds.timestamps[r] });
  for (let i = 0; i < rows.length; i += 1000) await post('/v1/interactions', { interactions: rows.slice(i, i + 1000) });
  const users = ds.userIds.slice(0, USERS);
  console.log(`service ${svc.url}: ${items.length} items, ${users.length} users, ${rows.length} interactions; small preset (${decoder.config.numHiddenLayers} layers, d ${decoder.config.hiddenSize}), H = 10`);

  let k = 0;
  const scenario = (name: string, body: () => unknown) =>
    autocannon({
      url: `${svc.url}/v1/recommendations`,
      method: 'POST',
      headers,
      connections,
      duration: seconds,
      requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify(body()) }) }],
    }).then((r) => {
      const ok = r['2xx'];
      console.log(
        `| ${name} | ${connections} | ${seconds} | ${ok} | ${r.non2xx} | ${(ok / seconds).toFixed(1)} | ${r.latency.p50} | ${r.latency.p99} |`,
      );
    });
  console.log('| request | connections | seconds | 2xx | non-2xx | requests/s | p50 ms | p99 ms |');
  console.log('|---|---|---|---|---|---|---|---|');
  await scenario('pool: 20 popular unseen items, top 10', () => ({ user: users[k++ % users.length], k: 10 }));
  const cands = Array.from({ length: 20 }, (_, j) => ds.itemIds[(j * 37) % ds.numItems]);
  await scenario('20 given candidates, top 10', () => ({ user: users[k++ % users.length], k: 10, candidates: cands }));
  await scenario('5 given candidates, top 3', () => ({ user: users[k++ % users.length], k: 3, candidates: cands.slice(0, 5) }));
  const m = await (await fetch(`${svc.url}/metrics`, { headers })).json();
  console.log(`service-side latency of POST /v1/recommendations (last 4096): ${JSON.stringify(m.routes['POST /v1/recommendations'].latencyMs)}`);
  svc.proc.kill('SIGTERM');
  await svc.exited;
}

console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(', ')} on ${availableParallelism()} cores`);
if (part === 'ingest' || part === 'all') await ingest();
if (part === 'recommend' || part === 'all') await recommend();
console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(', ')}`);
rmSync(dir, { recursive: true, force: true });
