/**
 * The service on PostgreSQL (test-utils/postgres.ts: EVOREC_TEST_PG, or a throwaway cluster): two
 * replicas on one database, an evolution whose child reads the log from PostgreSQL, and a replica killed
 * with SIGKILL in the middle of a burst of ingestion. Every URL carries a password (the throwaway
 * cluster trusts local connections and ignores it) that must never be shown.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { commandLine } from './lifetime.js';
import { PostgresStorage } from './postgres-storage.js';
import { createService } from './server.js';
import { ITEMS, interactions, startServe, tinyLLMRecFolder, type ServeProcess } from './test-utils/fixture.js';
import { freshDatabase, postgresForTests, type PgServer, type TestDatabase } from './test-utils/postgres.js';

const server = await postgresForTests();
const skip = typeof server === 'string' ? server : false;
const pgServer = server as PgServer;

const TOKEN = 'test-token-0123456789';
const PASSWORD = 'pw-never-shown-4711';
const FAST = { epochs: 1, lr: 3e-3, sasrecEpochs: 1, batchSize: 8 };

interface Reply {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function client(base: string) {
  return async (method: string, path: string, body?: unknown): Promise<Reply> => {
    const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const x = await f();
    if (x !== undefined) return x;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The database's URL with a password in it. */
const withPassword = (db: TestDatabase) => {
  const u = new URL(db.url);
  u.password = PASSWORD;
  return u.toString();
};

describe('evorec serve on PostgreSQL', { skip }, () => {
  let dir: string;
  let model: string;
  const spawned: ServeProcess[] = [];
  before(async () => {
    dir = tempDir('evorec-serve-pg-');
    model = await tinyLLMRecFolder(dir);
    process.stderr.write(`PostgreSQL tests on ${pgServer.origin}\n`);
  });
  after(async () => {
    for (const s of spawned) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
    await pgServer.stop();
  });

  it('two replicas on one database: ingestion through both is idempotent, and each follows the activations and catalogue changes made through the other', async () => {
    const db = await freshDatabase(pgServer);
    const url = withPassword(db);
    const logs: string[] = [];
    const common = { db: url, versionsDir: join(dir, 'versions'), token: TOKEN, modelsRoot: dir, syncIntervalMs: 100, log: (l: string) => logs.push(l) };
    await assert.rejects(createService({ ...common, versionsDir: undefined, model }), {
      name: 'RangeError',
      message: `${url.replace(PASSWORD, '***')}: give --versions <dir> with a PostgreSQL database (evolved versions' folders must be where every replica can read them)`,
    });
    const a = await createService({ ...common, model });
    const b = await createService(common);
    try {
      const ca = client(await a.app.listen({ host: '127.0.0.1', port: 0 }));
      const cb = client(await b.app.listen({ host: '127.0.0.1', port: 0 }));
      const health = async (c: typeof ca) => (await c('GET', '/healthz')).body.activeVersion as number;
      const v1 = await health(ca);
      assert.equal(await health(cb), v1, 'the second replica serves the version the first registered');

      // Items added through A: B ingests and recommends with them before its next sync.
      assert.equal((await ca('PUT', '/v1/items', { items: ITEMS.slice(0, 8) })).status, 200);
      assert.equal((await cb('POST', '/v1/interactions', { interactions: [0, 1, 2].map((k) => ({ id: `c${k}`, user: 'u0', item: `i${k}` })) })).body.created, 3);
      const rec = await cb('POST', '/v1/recommendations', { user: 'u0', k: 2, candidates: ['i3', 'i7'] });
      assert.equal(rec.status, 200, JSON.stringify(rec.body));
      assert.deepEqual(rec.body.history, ['i0', 'i1', 'i2']);
      // A retitle through A reaches B's prompts through the sync.
      await ca('PUT', '/v1/items', { items: [...ITEMS.slice(8), { id: 'i0', title: 'crimson apple' }] });
      await until("B's catalogue", async () => (b.host.title('i0') === 'crimson apple' && b.host.title('i15') === ITEMS[15].title ? true : undefined), 5000);

      // Overlapping batches through both replicas at once: A sends rows [20k, 20k + 20), B rows [20k + 10, 20k + 30).
      const rows = interactions('o', 20, 12);
      const sendA = Array.from({ length: 11 }, (_, k) => rows.slice(20 * k, 20 * k + 20));
      const sendB = Array.from({ length: 11 }, (_, k) => rows.slice(20 * k + 10, 20 * k + 30));
      const replies = await Promise.all([...sendA.map((r) => ca('POST', '/v1/interactions', { interactions: r })), ...sendB.map((r) => cb('POST', '/v1/interactions', { interactions: r }))]);
      assert.deepEqual(replies.map((r) => r.status), replies.map(() => 200));
      const acked = new Map<string, number[]>();
      for (const r of replies) for (const x of r.body.results) acked.set(x.id, [...(acked.get(x.id) ?? []), x.seq]);
      const sent = new Set([...sendA, ...sendB].flat().map((r) => r.id));
      assert.equal(replies.reduce((n, r) => n + r.body.created, 0), sent.size, 'each id created once over both replicas');
      const stored = new Map((await a.storage.interactions(0, Number.MAX_SAFE_INTEGER)).map((r) => [r.id, r.seq]));
      assert.equal(stored.size, sent.size + 3);
      for (const [id, seqs] of acked) assert.deepEqual([...new Set(seqs)], [stored.get(id)], `${id}: the stored seq, acknowledged by every replica`);
      assert.ok([...acked.values()].filter((s) => s.length === 2).length >= 100, 'the overlap went through both');

      // An activation through A is served by B after its sync; a rollback through B is followed by A.
      const m2 = join(dir, 'm2');
      cpSync(model, m2, { recursive: true });
      const v2 = (await ca('POST', '/v1/versions', { folder: m2, trainedUpTo: 'latest', activate: true })).body.id as number;
      assert.equal(await health(ca), v2);
      await until('B to serve version 2', async () => ((await health(cb)) === v2 ? true : undefined), 5000);
      assert.equal((await cb('POST', '/v1/recommendations', { user: 'u0', k: 1 })).body.version, v2);
      const rb = await cb('POST', '/v1/versions/rollback');
      assert.equal(rb.status, 200, JSON.stringify(rb.body));
      assert.equal(rb.body.id, v1);
      await until('A to serve version 1 again', async () => ((await health(ca)) === v1 ? true : undefined), 5000);

      // Activations through both at once: one active version in the database, and both replicas serve it.
      const flips = await Promise.all([v1, v2, v1, v2, v2, v1].map((v, k) => (k % 2 ? cb : ca)('POST', `/v1/versions/${v}/activate`)));
      assert.deepEqual(flips.map((r) => r.status), flips.map(() => 200));
      const inDb = (await a.storage.versions()).filter((v) => v.status === 'active');
      assert.equal(inDb.length, 1);
      await until('both replicas on the active version', async () => ((await health(ca)) === inDb[0].id && (await health(cb)) === inDb[0].id ? true : undefined), 5000);

      const shown = logs.join('\n');
      assert.ok(!shown.includes(PASSWORD), 'no password in the logs');
      assert.match(shown, /serving version \d+ \(.*\) from postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/evorec_test_/);
      assert.match(shown, /version \d+ active \(activated through another replica\)/);
    } finally {
      await a.close();
      await b.close();
      await db.drop();
    }
  });

  it('evolves: the child reads the log from PostgreSQL, and its command line names the database without the password', async () => {
    const db = await freshDatabase(pgServer);
    const svc = await createService({ db: withPassword(db), model, versionsDir: join(dir, 'evolved'), token: TOKEN, modelsRoot: dir });
    try {
      const call = client(await svc.app.listen({ host: '127.0.0.1', port: 0 }));
      await call('PUT', '/v1/items', { items: ITEMS });
      assert.equal((await call('POST', '/v1/interactions', { interactions: interactions('base', 30, 5) })).body.created, 150);
      const v0 = (await call('POST', '/v1/versions', { folder: model, trainedUpTo: 'latest', activate: true })).body.id;
      assert.equal((await call('POST', '/v1/interactions', { interactions: interactions('new', 30, 3, 5) })).body.created, 90);
      const started = await call('POST', '/v1/evolutions', { ...FAST, gateMargin: 1 });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      const pid = await until('the job pid', async () => ((await call('GET', `/v1/evolutions/${started.body.id}`)).body.pid as number | null) ?? undefined);
      const args = commandLine(pid);
      assert.ok(args, 'the child is still starting');
      assert.ok(args.includes(`--db=${db.url.replace('postgres@', `postgres:***@`)}`), args.join(' '));
      assert.ok(!args.join(' ').includes(PASSWORD));
      const done = await until('the evolution', async () => {
        const e = (await call('GET', `/v1/evolutions/${started.body.id}`)).body;
        return e.status === 'running' ? undefined : e;
      });
      assert.equal(done.status, 'succeeded', done.message);
      assert.deepEqual([done.fromSeq, done.toSeq], [150, 240]);
      const nv = (await call('GET', `/v1/versions/${done.newVersionId}`)).body;
      assert.deepEqual([nv.status, nv.parentId, nv.trainedUpTo], ['active', v0, 240]);
      assert.deepEqual(nv.metrics.interactions, { base: 150, new: 90 }, 'the child read both periods from PostgreSQL');
    } finally {
      await svc.close();
      await db.drop();
    }
  });

  it('a replica killed with SIGKILL mid-burst loses no acknowledged interaction; a resend stores each id once', async (t) => {
    const db = await freshDatabase(pgServer);
    const url = withPassword(db);
    const args = ['--db', url, '--models-root', dir, '--versions', join(dir, 'killed'), '--token', TOKEN];
    const svc = await startServe([...args, '--model', model]);
    spawned.push(svc);
    const call = client(svc.url);
    await call('PUT', '/v1/items', { items: ITEMS });
    // Four clients send batches of 50 new interactions back to back; the replica is killed once 12 are acknowledged.
    const sent: { id: string; user: string; item: string; timestamp: number }[][] = [];
    const acked = new Map<string, number>();
    let ackedBatches = 0;
    const burst = async (c: number) => {
      for (let j = 0; ; j++) {
        const batch = Array.from({ length: 50 }, (_, k) => ({ id: `k${c}-${j}-${k}`, user: `u${(c * 50 + k) % 40}`, item: ITEMS[(j + k) % ITEMS.length].id, timestamp: 1_700_000_000 + j }));
        sent.push(batch);
        let r: Reply;
        try {
          r = await call('POST', '/v1/interactions', { interactions: batch });
        } catch {
          return; // the replica is gone
        }
        assert.equal(r.status, 200, JSON.stringify(r.body));
        for (const x of r.body.results) acked.set(x.id, x.seq);
        if (++ackedBatches === 12) svc.proc.kill('SIGKILL');
      }
    };
    await Promise.all([0, 1, 2, 3].map(burst));
    assert.equal(await svc.exited, null, 'killed by the signal');
    assert.ok(ackedBatches >= 12);
    assert.ok(!svc.stderr().includes(PASSWORD), 'no password on stderr');
    assert.match(svc.stderr(), /from postgres:\/\/postgres:\*\*\*@/);

    const storage = new PostgresStorage(db.url);
    try {
      const stored = new Map((await storage.interactions(0, Number.MAX_SAFE_INTEGER)).map((r) => [r.id, r]));
      for (const [id, seq] of acked) assert.equal(stored.get(id)?.seq, seq, `acknowledged ${id} stored with seq ${seq}`);
      for (const batch of sent) {
        const n = batch.filter((r) => stored.has(r.id)).length;
        assert.ok(n === 0 || n === batch.length, `batch ${batch[0].id}: ${n} of ${batch.length} stored (a batch is one transaction)`);
      }
      const unacked = sent.filter((b) => !acked.has(b[0].id));
      t.diagnostic(`${ackedBatches} batches acknowledged, ${unacked.length} in flight at the kill, ${unacked.filter((b) => stored.has(b[0].id)).length} of those committed`);
      const total = (await storage.popularity(ITEMS.length)).reduce((n, p) => n + p.count, 0);
      assert.equal(total, stored.size, 'the item counters agree with the log');

      // A client resends everything it sent (it cannot know what the dead replica committed) to a new replica.
      const again = await startServe(args);
      spawned.push(again);
      const c2 = client(again.url);
      let created = 0;
      for (const batch of sent) {
        const r = await c2('POST', '/v1/interactions', { interactions: batch });
        assert.equal(r.status, 200);
        created += r.body.created;
        for (const x of r.body.results) if (acked.has(x.id)) assert.deepEqual([x.status, x.seq], ['duplicate', acked.get(x.id)], x.id);
      }
      again.proc.kill('SIGTERM');
      assert.equal(await again.exited, 0);
      const ids = sent.flat().map((r) => r.id);
      assert.equal(created, ids.length - stored.size, 'what the dead replica committed is not stored again');
      assert.deepEqual(await storage.logState().then((s) => s.count), ids.length, 'every sent id stored once');
      assert.equal(new Set((await storage.interactions(0, Number.MAX_SAFE_INTEGER)).map((r) => r.id)).size, ids.length);
    } finally {
      await storage.close();
      await db.drop();
    }
  });
});
