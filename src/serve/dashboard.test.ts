/**
 * The operator's dashboard: the rolling interaction counter, GET /v1/dashboard's content against a service
 * with known versions, evolutions and interactions (exact values), its auth, and the page itself in a
 * headless Chromium (playwright-core driving /usr/bin/chromium; skipped with the reason when it is missing).
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { INGEST_BUCKETS, Metrics } from './metrics.js';
import { createService, type Service } from './server.js';
import { SqliteStorage } from './sqlite-storage.js';
import { ITEMS, interactions, tinyLLMRecFolder } from './test-utils/fixture.js';

const WRITE = 'dash-write-token-0123456789';
const READ = 'dash-read-token-0123456789';
const CHROMIUM = process.env.EVOREC_CHROMIUM ?? '/usr/bin/chromium';

describe('Metrics: interactions stored per second', () => {
  it('counts stored interactions in 10-second buckets over 10 minutes', () => {
    let now = 1_000_000_005_000; // Unix ms: second 1,000,000,005 lies in the bucket that starts at 1,000,000,000
    const m = new Metrics(() => now);
    m.recordIngest(5);
    m.recordIngest(0);
    now += 10_000;
    m.recordIngest(7);
    now += 20_000; // two buckets later
    m.recordIngest(3);
    const r = m.ingestRate();
    assert.equal(r.bucketSeconds, 10);
    assert.equal(r.buckets.length, INGEST_BUCKETS);
    assert.deepEqual(r.buckets.slice(-4), [
      { t: 1_000_000_000, count: 5 },
      { t: 1_000_000_010, count: 7 },
      { t: 1_000_000_020, count: 0 },
      { t: 1_000_000_030, count: 3 },
    ]);
    assert.equal(r.buckets[0].t, 1_000_000_030 - (INGEST_BUCKETS - 1) * 10);
    assert.equal(r.total, 15);
    assert.equal(r.perSecond, 0.2, 'the six full buckets before the current one: 12 interactions in 60 s');
    now += INGEST_BUCKETS * 10_000; // everything has left the window
    assert.deepEqual(new Set(m.ingestRate().buckets.map((b) => b.count)), new Set([0]));
    assert.equal(m.ingestRate().total, 15);
  });
});

describe('GET /dashboard and GET /v1/dashboard', () => {
  let dir: string;
  let svc: Service;
  let base: string;
  const folders: string[] = [];

  before(async () => {
    dir = tempDir('evorec-dash-');
    const model = await tinyLLMRecFolder(dir);
    for (const name of ['v1', 'v2', 'v3', 'v4']) {
      cpSync(model, join(dir, name), { recursive: true });
      folders.push(join(dir, name));
    }
    // The registry and the jobs written straight into the database: known versions, gate scores and progress.
    const db = join(dir, 'dash.db');
    const st = new SqliteStorage(db);
    await st.migrate();
    await st.upsertItems(ITEMS);
    await st.appendInteractions(interactions('base', 10, 4));
    const gate = (before: number, after: number, passed: boolean, groups?: Record<string, { before: number; after: number; samples: number }>) => ({
      gate: { slice: 'test targets of the new period', samples: 20, before, after, margin: 0.02, enabled: true, passed, ...(groups ? { groups } : {}) },
      bestValid: after + 0.01,
      steps: 12,
    });
    const v1 = await st.addVersion({ folder: folders[0], parentId: null, trainedUpTo: 40, metrics: {}, note: 'registered at start' });
    await st.activateVersion(v1.id, 'registered at start');
    const e1 = await st.startEvolution({ baseVersionId: 1, fromSeq: 40, toSeq: 40, options: { epochs: 1 } });
    await st.addVersion({ folder: folders[1], parentId: 1, trainedUpTo: 40, metrics: gate(0.25, 0.3125, true, { active: { before: 0.2, after: 0.3, samples: 12 }, new: { before: 0.3, after: 0.33, samples: 8 } }), note: 'evolution 1' });
    await st.activateVersion(2, 'evolution 1');
    await st.updateEvolution(e1.id, { status: 'succeeded', newVersionId: 2, message: 'version 2 active', progress: { stage: 'finished', done: 12, total: 12, log: ['gate after: NDCG@3 0.3125'] }, finishedAt: new Date().toISOString() });
    const e2 = await st.startEvolution({ baseVersionId: 2, fromSeq: 40, toSeq: 40, options: { epochs: 1 } });
    await st.addVersion({ folder: folders[2], parentId: 2, trainedUpTo: 40, metrics: gate(0.3125, 0.125, false), note: 'evolution 2: gate failed', status: 'rejected' });
    await st.updateEvolution(e2.id, { status: 'rejected', newVersionId: 3, message: 'gate failed', progress: { stage: 'finished', done: 6, total: 6, log: [] }, finishedAt: new Date().toISOString() });
    await st.addVersion({ folder: folders[3], parentId: null, trainedUpTo: 40, metrics: {}, note: 'registered' });
    // A job cut short by a restart, mid-update.
    const e3 = await st.startEvolution({ baseVersionId: 2, fromSeq: 40, toSeq: 40, options: {} });
    await st.updateEvolution(e3.id, { status: 'interrupted', progress: { stage: 'EvoRec update', done: 3, total: 8, log: ['located layers 1, 2'] }, message: 'the service stopped' });
    await st.close();

    svc = await createService({ db, tokens: [{ token: WRITE, scope: 'write' }, { token: READ, scope: 'read' }], modelsRoot: dir, workers: 1, syncIntervalMs: 0 });
    base = await svc.app.listen({ host: '127.0.0.1', port: 0 });
    // 12 interactions through the service (the rolling counter sees these, not the ones written above), one repeated.
    const post = (rows: unknown) => fetch(`${base}/v1/interactions`, { method: 'POST', headers: { authorization: `Bearer ${WRITE}`, 'content-type': 'application/json' }, body: JSON.stringify({ interactions: rows }) });
    assert.equal((await post(interactions('new', 4, 3, 5))).status, 200);
    assert.equal((await post(interactions('new', 1, 1, 5))).status, 200, 'a repeat: acknowledged, not counted');
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });
  after(async () => {
    await svc?.close();
  });

  const get = (path: string, token?: string) => fetch(base + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('answers the versions, jobs, quality series and counters the service holds', async () => {
    const r = await get('/v1/dashboard', READ);
    assert.equal(r.status, 200);
    const d: any = await r.json(); // eslint-disable-line @typescript-eslint/no-explicit-any
    const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
    for (const v of d.versions) {
      assert.match(v.createdAt, iso);
      assert.ok(v.activatedAt === null || iso.test(v.activatedAt));
    }
    assert.equal(d.activeVersion, 2);
    assert.equal(d.evolution, null);
    assert.deepEqual(d.log, { interactions: 52, lastSeq: 52, users: 10, items: 16 });
    const noTimes = ({ createdAt, activatedAt, ...v }: Record<string, unknown>) => (void createdAt, void activatedAt, v);
    assert.deepEqual(d.versions.map(noTimes), [
      { id: 4, parentId: null, status: 'candidate', trainedUpTo: 40, note: 'registered', gate: null, bestValid: null },
      { id: 3, parentId: 2, status: 'rejected', trainedUpTo: 40, note: 'evolution 2: gate failed', gate: { before: 0.3125, after: 0.125, samples: 20, margin: 0.02, passed: false }, bestValid: 0.135 },
      { id: 2, parentId: 1, status: 'active', trainedUpTo: 40, note: 'evolution 1', gate: { before: 0.25, after: 0.3125, samples: 20, margin: 0.02, passed: true }, bestValid: 0.3225 },
      { id: 1, parentId: null, status: 'retired', trainedUpTo: 40, note: 'registered at start', gate: null, bestValid: null },
    ]);
    assert.deepEqual(
      d.evolutions.map(({ startedAt, finishedAt, ...e }: Record<string, unknown>) => (assert.match(String(startedAt), iso), assert.ok(finishedAt === null || iso.test(String(finishedAt))), e)),
      [
        { id: 3, status: 'interrupted', baseVersionId: 2, newVersionId: null, fromSeq: 40, toSeq: 40, stage: 'EvoRec update', done: 3, total: 8, message: 'the service stopped', lastLog: 'located layers 1, 2' },
        { id: 2, status: 'rejected', baseVersionId: 2, newVersionId: 3, fromSeq: 40, toSeq: 40, stage: 'finished', done: 6, total: 6, message: 'gate failed', lastLog: null },
        { id: 1, status: 'succeeded', baseVersionId: 1, newVersionId: 2, fromSeq: 40, toSeq: 40, stage: 'finished', done: 12, total: 12, message: 'version 2 active', lastLog: 'gate after: NDCG@3 0.3125' },
      ],
    );
    assert.deepEqual(d.activations.map((a: { versionId: number; reason: string }) => [a.versionId, a.reason]), [
      [1, 'registered at start'],
      [2, 'evolution 1'],
    ]);
    assert.deepEqual(d.quality, {
      metric: 'NDCG@3',
      series: [
        { name: 'gate: this version', points: [{ version: 2, value: 0.3125 }, { version: 3, value: 0.125 }] },
        { name: 'gate: its parent', points: [{ version: 2, value: 0.25 }, { version: 3, value: 0.3125 }] },
        { name: 'active users', points: [{ version: 2, value: 0.3 }] },
        { name: 'new users', points: [{ version: 2, value: 0.33 }] },
      ],
    });
    assert.equal(d.ingest.total, 12);
    assert.equal(d.ingest.bucketSeconds, 10);
    assert.equal(d.ingest.buckets.length, INGEST_BUCKETS);
    assert.equal(d.ingest.buckets.reduce((s: number, b: { count: number }) => s + b.count, 0), 12);
    assert.deepEqual(Object.keys(d.routes), ['GET /healthz', 'POST /v1/interactions']);
    assert.equal(d.routes['GET /healthz'].count, 3);
    assert.deepEqual(d.routes['POST /v1/interactions'].byStatus, { 200: 2 });
    assert.deepEqual(Object.keys(d.routes['GET /healthz'].latencyMs), ['p50', 'p90', 'p95', 'p99', 'max']);
    assert.deepEqual(d.scoring, { workers: 1, busy: 0, queued: 0 });
  });

  it('refuses the data without a token or with a wrong one; the page is open and holds no data', async () => {
    const none = await get('/v1/dashboard');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.deepEqual(await none.json(), { error: 'missing bearer token (Authorization: Bearer <token>)', statusCode: 401 });
    assert.equal((await get('/v1/dashboard', 'not-a-token-0123456789')).status, 401);
    assert.equal((await get('/v1/dashboard', WRITE)).status, 200, 'a write token reads too');
    const page = await get('/dashboard');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /connect-src 'self'/);
    const html = await page.text();
    assert.ok(!html.includes('evolution 1') && !html.includes(WRITE) && !html.includes(READ), 'no data in the page');
    assert.ok(!/<(script|link|img)[^>]+(src|href)="(?!data:)/i.test(html), 'nothing loaded from elsewhere');
  });

  it('renders the tables and charts in a headless Chromium', async (t) => {
    if (!existsSync(CHROMIUM)) {
      const why = `${CHROMIUM} is not installed (apt-get install chromium), or set EVOREC_CHROMIUM`;
      console.log(`# skipped: ${why}`);
      t.skip(why);
      return;
    }
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const sent: string[] = [];
      page.on('request', (req) => sent.push(req.url()));
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${base}/dashboard#token=${READ}`);
      await page.waitForSelector('body[data-rendered]', { timeout: 20_000 });
      assert.deepEqual(errors, []);
      assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');
      for (const u of sent) assert.ok(!u.includes(READ), `no token in a request URL: ${u}`);
      assert.deepEqual(await page.$$eval('#versions tbody tr', (rows) => rows.map((r) => r.getAttribute('data-version'))), ['4', '3', '2', '1']);
      assert.deepEqual(await page.$$eval('#versions tbody tr .st', (xs) => xs.map((x) => x.textContent)), ['candidate', 'rejected', 'active', 'retired']);
      assert.equal(await page.$$eval('#evolutions tbody tr', (rows) => rows.length), 3);
      assert.equal(await page.textContent('#h-active'), 'v2');
      // One path per series (drawn first series on top, so in reverse order in the document), one circle per point.
      assert.deepEqual(await page.$$eval('#quality svg path.series', (ps) => ps.map((p) => p.getAttribute('data-series'))), ['new users', 'active users', 'gate: its parent', 'gate: this version']);
      assert.equal(await page.$$eval('#quality svg circle.point', (xs) => xs.length), 6);
      assert.equal(await page.$$eval('#ingest svg rect.bar', (xs) => xs.length), INGEST_BUCKETS);
      // The routes recorded when the page's data was answered: those of before() at least (then GET /dashboard, and GET /v1/dashboard from the second poll).
      const routes = await page.$$eval('#latency svg rect.bar', (xs) => [...new Set(xs.map((x) => x.getAttribute('data-route')))]);
      assert.ok(routes.includes('GET /healthz') && routes.includes('POST /v1/interactions'), routes.join(', '));
      assert.equal(await page.$$eval('#latency svg rect.bar', (xs) => xs.length), routes.length * 3, 'p50, p95, p99 per route');
      const shot = process.env.EVOREC_DASHBOARD_SCREENSHOT ? resolve(process.env.EVOREC_DASHBOARD_SCREENSHOT) : join(dir, 'dashboard.png');
      mkdirSync(dirname(shot), { recursive: true });
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 10_000);
      console.log(`# screenshot: ${shot}`);
    } finally {
      await browser.close();
    }
  });
});
