/**
 * PostgresStorage against a real server (test-utils/postgres.ts: EVOREC_TEST_PG, or a throwaway cluster):
 * the Storage contract, then what several replicas on one database need.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createServer } from 'node:net';
import pg from 'pg';
import { redactUrl } from './open-storage.js';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION_DDL, PostgresStorage } from './postgres-storage.js';
import { MIGRATIONS } from './sqlite-storage.js';
import { storageContract } from './storage-contract.js';
import { StorageError, type ModelVersion } from './storage.js';
import { freshDatabase, postgresForTests, type PgServer } from './test-utils/postgres.js';

const server = await postgresForTests();
const skip = typeof server === 'string' ? server : false;
const pgServer = server as PgServer;
after(async () => {
  if (!skip) await pgServer.stop();
});
if (!skip) process.stderr.write(`PostgreSQL tests on ${pgServer.origin}\n`);

/** Runs `f` with a client of the database at `url`. */
async function withClient<T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

storageContract({
  name: 'PostgresStorage',
  migrations: PG_MIGRATIONS,
  schemaVersionDdl: PG_SCHEMA_VERSION_DDL,
  uniqueViolation: /^error: duplicate key value violates unique constraint "one_active_version"$/,
  skip,
  async fresh() {
    const db = await freshDatabase(pgServer);
    return {
      label: redactUrl(db.url),
      open: () => new PostgresStorage(db.url),
      exec: (sql) => withClient(db.url, async (c) => void (await c.query(sql))),
      rows: (sql) => withClient(db.url, async (c) => (await c.query(sql)).rows),
      cleanup: () => db.drop(),
    };
  },
});

describe('PostgresStorage', { skip }, () => {
  /** `n` storages on one fresh database (each its own pool, as replicas have), closed and dropped after `f`. */
  const replicas = (n: number, f: (s: PostgresStorage[], url: string) => Promise<void>) => async () => {
    const db = await freshDatabase(pgServer);
    const s = Array.from({ length: n }, () => new PostgresStorage(db.url));
    try {
      await f(s, db.url);
    } finally {
      await Promise.all(s.map((x) => x.close()));
      await db.drop();
    }
  };
  const ITEMS = Array.from({ length: 20 }, (_, k) => ({ id: `i${k}`, title: `item ${k}` }));

  it('has the schema versions of SqliteStorage', () => {
    assert.equal(PG_MIGRATIONS.length, MIGRATIONS.length, 'a version number means the same schema in both');
  });

  it('migrates once when four replicas start together (advisory lock)', replicas(4, async (s, url) => {
    assert.deepEqual(await Promise.all(s.map((x) => x.migrate())), [3, 3, 3, 3]);
    const versions = await withClient(url, async (c) => (await c.query('SELECT version FROM schema_version ORDER BY version')).rows.map((r) => r.version));
    assert.deepEqual(versions, [1, 2, 3], 'each migration recorded once');
  }));

  it('ingests overlapping batches from two replicas at once: each id stored once, the same seq acknowledged to both', replicas(2, async ([a, b]) => {
    await a.migrate();
    await b.migrate();
    await a.upsertItems(ITEMS);
    // 30 batches of 40 per replica; replica b's batch j repeats the second half of a's batch j and adds 20 of its own.
    const batch = (tag: string, j: number, from: number) => Array.from({ length: 40 }, (_, k) => {
      const n = from + k;
      return { id: `${tag}-${j}-${n}`, user: `u${(j * 7 + n) % 25}`, item: `i${(j + n) % 20}`, timestamp: j * 100 + n };
    });
    const batchesA = Array.from({ length: 30 }, (_, j) => batch('x', j, 0));
    const batchesB = Array.from({ length: 30 }, (_, j) => batch('x', j, 20));
    const acks = new Map<string, { seq: number; status: string }[]>();
    // Every batch of both replicas in flight together (each pool runs 10 transactions at a time).
    const results = await Promise.all([...batchesA.map((r) => a.appendInteractions(r)), ...batchesB.map((r) => b.appendInteractions(r))]);
    for (const r of results.flat()) acks.set(r.id, [...(acks.get(r.id) ?? []), r]);
    const ids = new Set([...batchesA, ...batchesB].flat().map((r) => r.id));
    assert.equal(ids.size, 30 * 60);
    const log = await a.interactions(0, Number.MAX_SAFE_INTEGER);
    assert.equal(log.length, ids.size, 'every id stored once');
    assert.equal(new Set(log.map((r) => r.id)).size, ids.size);
    const stored = new Map(log.map((r) => [r.id, r.seq]));
    for (const [id, a2] of acks) {
      assert.deepEqual(new Set(a2.map((x) => x.seq)), new Set([stored.get(id)]), `${id}: one seq, the stored one, acknowledged to every replica`);
      assert.equal(a2.filter((x) => x.status === 'created').length, 1, `${id}: created once`);
    }
    assert.equal([...acks.values()].filter((x) => x.length === 2).length, 30 * 20, 'the overlap was acknowledged to both');
    // Within each batch, the rows it created follow its order.
    for (const r of results) {
      const created = r.filter((x) => x.status === 'created').map((x) => x.seq);
      assert.deepEqual(created, [...created].sort((p, q) => p - q));
    }
    // The counters kept in the ingest transactions agree with the log.
    const counts = new Map<string, number>();
    for (const r of log) counts.set(r.item, (counts.get(r.item) ?? 0) + 1);
    assert.deepEqual(new Map((await b.popularity(20)).map((p) => [p.item, p.count])), counts);
  }));

  it('never shows a seq before the rows below it: the log up to a visible seq is final (seq order is commit order)', replicas(3, async ([a, b, reader]) => {
    await a.migrate();
    await a.upsertItems(ITEMS);
    const seen: { lastSeq: number; count: number }[] = [];
    let writing = true;
    const watch = (async () => {
      while (writing) {
        const { lastSeq } = await reader.logState();
        seen.push({ lastSeq, count: (await reader.interactions(0, lastSeq)).length });
      }
    })();
    const rows = (tag: string, j: number) => Array.from({ length: 25 }, (_, k) => ({ id: `${tag}-${j}-${k}`, user: `u${k}`, item: `i${k % 20}`, timestamp: k }));
    await Promise.all(Array.from({ length: 40 }, (_, j) => (j % 2 ? a : b).appendInteractions(rows(j % 2 ? 'a' : 'b', j))));
    writing = false;
    await watch;
    const final = await reader.interactions(0, Number.MAX_SAFE_INTEGER);
    assert.equal(final.length, 1000);
    assert.ok(seen.length > 3, `the reader looked ${seen.length} times`);
    for (const { lastSeq, count } of seen) assert.equal(count, final.filter((r) => r.seq <= lastSeq).length, `up to seq ${lastSeq}, rows were still to come`);
  }));

  it('keeps exactly one active version under concurrent activations from two replicas, the first ones included', replicas(2, async ([a, b]) => {
    await a.migrate();
    const vs: ModelVersion[] = [];
    for (let k = 0; k < 8; k++) vs.push(await a.addVersion({ folder: `/m${k}`, parentId: null, trainedUpTo: 0, metrics: {}, note: null }));
    // No version active yet: two first activations at once (no active row to lock).
    await Promise.all([a.activateVersion(vs[0].id, 'a first'), b.activateVersion(vs[1].id, 'b first')]);
    // Then many, interleaved.
    await Promise.all(vs.flatMap((v, k) => [a.activateVersion(v.id, `a ${k}`), b.activateVersion(vs[(k + 3) % vs.length].id, `b ${k}`)]));
    const active = (await a.versions()).filter((v) => v.status === 'active');
    assert.equal(active.length, 1);
    const history = await b.activationHistory();
    assert.equal(history.length, 2 + 2 * vs.length, 'every activation recorded');
    assert.equal(history.at(-1)!.versionId, active[0].id, 'the last activation recorded is the one in force');
    assert.equal((await b.activeVersion())!.id, active[0].id, 'both replicas see it');
    assert.deepEqual((await a.versions()).filter((v) => v.status !== 'active').map((v) => v.status), Array(vs.length - 1).fill('retired'));
    await assert.rejects(a.activateVersion(9999, 'none'), { name: 'RangeError', message: 'no version 9999' });
    assert.equal((await a.activeVersion())!.id, active[0].id, 'a refused activation changes nothing');
  }));

  it('returns bigints as exact numbers, and refuses a seq beyond 2^53 - 1 rather than round it', replicas(1, async ([s], url) => {
    await s.migrate();
    await s.upsertItems(ITEMS);
    const big = Number.MAX_SAFE_INTEGER - 1;
    await withClient(url, (c) => c.query(`ALTER TABLE interactions ALTER COLUMN seq RESTART WITH ${big}`));
    assert.deepEqual(await s.appendInteractions([{ id: 'b1', user: 'u', item: 'i1', timestamp: 1 }, { id: 'b2', user: 'u', item: 'i2', timestamp: 2 }]), [
      { id: 'b1', status: 'created', seq: big },
      { id: 'b2', status: 'created', seq: big + 1 },
    ]);
    await assert.rejects(s.appendInteractions([{ id: 'b3', user: 'u', item: 'i3', timestamp: 3 }]), {
      name: 'RangeError',
      message: "PostgreSQL returned the bigint 9007199254740992, beyond JavaScript's exact integers (2^53 - 1)",
    });
    assert.deepEqual(await s.logState(), { lastSeq: big + 1, count: 2 }, 'the refused batch was rolled back');
  }));

  it('commits synchronously whatever the database default, and opens read-only sessions for the evolution child', replicas(1, async ([s], url) => {
    await s.migrate();
    const name = new URL(url).pathname.slice(1);
    await withClient(url, (c) => c.query(`ALTER DATABASE ${name} SET synchronous_commit = off`));
    const fresh = new PostgresStorage(url);
    const ro = new PostgresStorage(url, { readonly: true });
    try {
      assert.equal((await fresh.pool.query('SHOW synchronous_commit')).rows[0].synchronous_commit, 'on');
      assert.equal((await withClient(url, (c) => c.query('SHOW synchronous_commit'))).rows[0].synchronous_commit, 'off', 'the database default the storage overrides');
      assert.deepEqual(await ro.items(), []);
      await assert.rejects(ro.upsertItems(ITEMS), /^error: cannot execute INSERT in a read-only transaction$/);
    } finally {
      await fresh.close();
      await ro.close();
    }
  }));

  it('names the database without its password when it cannot connect', async () => {
    const port = await new Promise<number>((r) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => r(p));
      });
    });
    const s = new PostgresStorage(`postgres://evorec:s3cret@127.0.0.1:${port}/shop`);
    try {
      await assert.rejects(s.migrate(), (e: unknown) => {
        assert.ok(e instanceof StorageError);
        assert.equal(e.message, `postgres://evorec:***@127.0.0.1:${port}/shop: cannot connect: connect ECONNREFUSED 127.0.0.1:${port}`);
        return true;
      });
    } finally {
      await s.close();
    }
  });
});
