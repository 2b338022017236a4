/**
 * The dashboard's screenshot in the docs (docs/dashboard.png): a service in this process over a temporary
 * SQLite file with a randomly initialised `tiny` LLMRec, a base log registered as version 1, then new
 * interactions and real evolutions (one the gate rejects, two it passes), recommendation requests between
 * them, and a fourth evolution running when the picture is taken. Needs Chromium (`/usr/bin/chromium`,
 * or EVOREC_CHROMIUM) and playwright-core (a dev dependency).
 *
 *   node --import tsx bench/dashboard-screenshot.ts [out.png]   # default docs/dashboard.png
 */
import { join, resolve } from 'node:path';
import { tempDir } from '../src/data/test-utils/tmp.js';
import { createService } from '../src/serve/server.js';
import { SqliteStorage } from '../src/serve/sqlite-storage.js';
import { ITEMS, interactions, tinyLLMRecFolder } from '../src/serve/test-utils/fixture.js';

const out = resolve(process.argv[2] ?? 'docs/dashboard.png');
const CHROMIUM = process.env.EVOREC_CHROMIUM ?? '/usr/bin/chromium';
const TOKEN = 'dashboard-screenshot-write-token';
const READ = 'dashboard-screenshot-read-token';
const FAST = { epochs: 1, lr: 3e-3, sasrecEpochs: 1, batchSize: 8 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = tempDir('evorec-dash-shot-');
const model = await tinyLLMRecFolder(dir);
// The catalogue and the base log the first version was trained on, stored before the service starts.
const db = join(dir, 'shop.db');
const st = new SqliteStorage(db);
await st.migrate();
await st.upsertItems(ITEMS);
await st.appendInteractions(interactions('base', 30, 5));
await st.close();
const svc = await createService({ db, tokens: [{ token: TOKEN, scope: 'write' }, { token: READ, scope: 'read' }], model, modelsRoot: dir, modelTrainedUpTo: 'latest', workers: 1, syncIntervalMs: 0 });
const base = await svc.app.listen({ host: '127.0.0.1', port: 0 });
const call = async (method: string, path: string, body?: unknown) => {
  const r = await fetch(base + path, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
};
/** Posts the rows in batches of 15, `gapMs` apart (a shape for the ingest chart). */
const ingest = async (rows: unknown[], gapMs: number) => {
  for (let i = 0; i < rows.length; i += 15) {
    await call('POST', '/v1/interactions', { interactions: rows.slice(i, i + 15) });
    await sleep(gapMs);
  }
};
const requests = async (n: number) => {
  for (let i = 0; i < n; i++) {
    await call('POST', '/v1/recommendations', { user: `u${i % 30}`, k: 3, candidates: ['i0', 'i1', 'i2', 'i3', 'i4', 'i5', 'i6', 'i7'] });
    if (i % 3 === 0) await call('GET', `/v1/users/u${i % 30}/recommendations?k=5`);
    await call('GET', '/healthz');
  }
};
const evolve = async (gateMargin: number, wait = true, opts: Record<string, number> = {}) => {
  const e = await call('POST', '/v1/evolutions', { ...FAST, ...opts, gateMargin });
  if (!wait) return e;
  for (;;) {
    const now = await call('GET', `/v1/evolutions/${e.id}`);
    if (now.status !== 'running') return now;
    await sleep(200);
  }
};

try {
  await requests(20);
  await ingest(interactions('p1', 30, 3, 5), 300);
  console.log((await evolve(-1)).message); // a gate no version passes: rejected
  await requests(20);
  console.log((await evolve(1)).message);
  await ingest(interactions('p2', 30, 3, 8), 300);
  await requests(20);
  console.log((await evolve(1)).message);
  await ingest(interactions('p3', 30, 3, 11), 200);
  await requests(10);

  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    await page.goto(`${base}/dashboard#token=${READ}`);
    await page.waitForSelector('body[data-rendered]');
    // A fourth evolution (longer: more epochs), caught running by one of the page's polls.
    const e = await evolve(1, false, { epochs: 4, sasrecEpochs: 4 });
    await page
      .waitForFunction(() => /running.*(train SASRec|EvoRec update)/.test(document.querySelector('#evolutions tbody tr')?.textContent ?? ''), undefined, { timeout: 60_000, polling: 100 })
      .catch(() => console.log('the running job was not caught by a poll'));
    console.log(`evolution ${e.id}: ${(await call('GET', `/v1/evolutions/${e.id}`)).progress.stage}`);
    await page.screenshot({ path: out, fullPage: true });
    console.log(`screenshot: ${out}`);
  } finally {
    await browser.close();
  }
} finally {
  await svc.close();
}
