/**
 * The Storage contract, run against every implementation (sqlite-storage.test.ts,
 * postgres-storage.test.ts): what the service relies on, checked on a real database each time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdConflictError, type Storage } from './storage.js';

/** One fresh, empty database of the implementation under test. */
export interface ContractDb {
  open(): Storage;
  /** Runs SQL on the database directly (a script of statements), bypassing the Storage. */
  exec(sql: string): Promise<void>;
  /** Rows of one SELECT run directly. */
  rows(sql: string): Promise<Record<string, unknown>[]>;
  /** How the database is named in messages (a file path, a redacted URL). */
  label: string;
  cleanup(): Promise<void>;
}

export interface ContractTarget {
  name: string;
  /** The migrations and the schema_version DDL the implementation applies. */
  migrations: readonly string[];
  schemaVersionDdl: string;
  fresh(): Promise<ContractDb>;
  /** The driver's message when a statement breaks a unique index. */
  uniqueViolation: RegExp;
  /** Why the suite is skipped (no server), or false. */
  skip?: string | false;
}

const T = '2024-01-01T00:00:00.000Z';

export function storageContract(target: ContractTarget): void {
  describe(`Storage contract: ${target.name}`, { skip: target.skip ?? false }, () => {
    /** A fresh database, migrated, with the catalogue a, b, c. */
    const withStorage = (f: (s: Storage, db: ContractDb) => Promise<void>) => async () => {
      const db = await target.fresh();
      const s = db.open();
      try {
        await s.migrate();
        await s.upsertItems([{ id: 'a', title: 'A' }, { id: 'b', title: 'B' }, { id: 'c', title: 'C' }]);
        await f(s, db);
      } finally {
        await s.close();
        await db.cleanup();
      }
    };

    it('creates the schema on an empty database, recording each migration; migrating again changes nothing', async () => {
      const db = await target.fresh();
      const s = db.open();
      try {
        assert.equal(await s.migrate(), target.migrations.length);
        assert.equal(await s.migrate(), target.migrations.length);
        const v = await db.rows('SELECT version FROM schema_version ORDER BY version');
        assert.deepEqual(v.map((r) => Number(r.version)), target.migrations.map((_, k) => k + 1));
        assert.deepEqual(await s.logState(), { lastSeq: 0, count: 0 });
        assert.equal(await s.lastSeq(), 0);
      } finally {
        await s.close();
        await db.cleanup();
      }
    });

    it('migrates a database of the first schema version in order, back-filling the item counters', async () => {
      const db = await target.fresh();
      await db.exec(target.schemaVersionDdl);
      await db.exec(target.migrations[0]);
      await db.exec(`INSERT INTO schema_version (version, applied_at) VALUES (1, '${T}')`);
      await db.exec(`INSERT INTO items (id, title, created_at, updated_at) VALUES ('a', 'A', '${T}', '${T}'), ('b', 'B', '${T}', '${T}')`);
      await db.exec(`INSERT INTO users (id, created_at) VALUES ('u', '${T}')`);
      const [u] = await db.rows("SELECT idx FROM users WHERE id = 'u'");
      const [b] = await db.rows("SELECT idx FROM items WHERE id = 'b'");
      await db.exec(`INSERT INTO interactions (client_id, user_idx, item_idx, timestamp, received_at) VALUES ('c1', ${u.idx}, ${b.idx}, 0, '${T}'), ('c2', ${u.idx}, ${b.idx}, 1, '${T}')`);
      const s = db.open();
      try {
        assert.equal(await s.migrate(), target.migrations.length);
        assert.deepEqual(await s.popularity(5), [{ item: 'b', count: 2 }, { item: 'a', count: 0 }], 'migration 3 back-filled the counters');
        assert.deepEqual((await db.rows('SELECT version FROM schema_version ORDER BY version')).map((r) => Number(r.version)), [1, 2, 3]);
        assert.deepEqual((await s.interactions(0, 10)).map((r) => [r.id, r.user, r.item]), [['c1', 'u', 'b'], ['c2', 'u', 'b']], 'the data survived');
      } finally {
        await s.close();
        await db.cleanup();
      }
    });

    it('refuses a database of a newer evorec', async () => {
      const db = await target.fresh();
      const s = db.open();
      try {
        await s.migrate();
        const newer = target.migrations.length + 1;
        await db.exec(`INSERT INTO schema_version (version, applied_at) VALUES (${newer}, '${T}')`);
        await assert.rejects(s.migrate(), { message: `${db.label}: schema version ${newer} is newer than this evorec (knows ${target.migrations.length}); upgrade evorec` });
      } finally {
        await s.close();
        await db.cleanup();
      }
    });

    it('upserts items: new ids in first-insertion order, changed titles kept, unchanged ones not counted', withStorage(async (s) => {
      const stamp0 = await s.catalogueStamp();
      assert.deepEqual(await s.upsertItems([{ id: 'a', title: 'A' }]), { created: 0, updated: 0 });
      assert.equal(await s.catalogueStamp(), stamp0, 'no change, same stamp');
      assert.deepEqual(await s.upsertItems([{ id: 'd', title: 'D' }, { id: 'a', title: 'A2' }, { id: 'e', title: 'E' }]), { created: 2, updated: 1 });
      assert.deepEqual(await s.items(), [
        { id: 'a', title: 'A2' },
        { id: 'b', title: 'B' },
        { id: 'c', title: 'C' },
        { id: 'd', title: 'D' },
        { id: 'e', title: 'E' },
      ]);
      const stamp1 = await s.catalogueStamp();
      assert.notEqual(stamp1, stamp0);
      // A retitle alone (no new item) changes the stamp too; wait a tick so the update time differs.
      await new Promise((r) => setTimeout(r, 5));
      await s.upsertItems([{ id: 'b', title: 'B2' }]);
      assert.notEqual(await s.catalogueStamp(), stamp1, 'a retitle changes the stamp');
      // The same id twice in one batch: created once, the second title wins.
      assert.deepEqual(await s.upsertItems([{ id: 'f', title: 'F' }, { id: 'f', title: 'F2' }]), { created: 1, updated: 1 });
      assert.deepEqual((await s.items()).at(-1), { id: 'f', title: 'F2' });
      assert.deepEqual(await s.missingItems(['a', 'zz', 'f', 'zz', 'yy']), ['zz', 'yy']);
      assert.deepEqual(await s.missingItems([]), []);
    }));

    it('appends in batch order, and acknowledges repeated ids (within a batch and across calls) with the stored seq', withStorage(async (s) => {
      const r1 = await s.appendInteractions([
        { id: 'x1', user: 'u', item: 'a', timestamp: 1.5 },
        { id: 'x2', user: 'v', item: 'b', timestamp: 2 },
        { id: 'x1', user: 'u', item: 'a', timestamp: 1.5 },
        { id: 'x3', user: 'u', item: 'c', timestamp: 3 },
      ]);
      assert.deepEqual(r1, [
        { id: 'x1', status: 'created', seq: 1 },
        { id: 'x2', status: 'created', seq: 2 },
        { id: 'x1', status: 'duplicate', seq: 1 },
        { id: 'x3', status: 'created', seq: 3 },
      ]);
      assert.equal(typeof r1[0].seq, 'number');
      const r2 = await s.appendInteractions([
        { id: 'x3', user: 'u', item: 'c', timestamp: 3 },
        { id: 'x4', user: 'w', item: 'a', timestamp: 4 },
        { id: 'x1', user: 'u', item: 'a', timestamp: 99 },
      ]);
      assert.deepEqual(r2, [
        { id: 'x3', status: 'duplicate', seq: 3 },
        { id: 'x4', status: 'created', seq: 4 },
        { id: 'x1', status: 'duplicate', seq: 1 },
      ], 'a repeat with another timestamp is the same interaction');
      assert.deepEqual(await s.logState(), { lastSeq: 4, count: 4 });
      assert.equal(await s.lastSeq(), 4);
      assert.equal(await s.userCount(), 3, 'users u, v, w created on first sight');
      assert.deepEqual(await s.interactions(0, 4), [
        { seq: 1, id: 'x1', user: 'u', item: 'a', timestamp: 1.5 },
        { seq: 2, id: 'x2', user: 'v', item: 'b', timestamp: 2 },
        { seq: 3, id: 'x3', user: 'u', item: 'c', timestamp: 3 },
        { seq: 4, id: 'x4', user: 'w', item: 'a', timestamp: 4 },
      ]);
      // A batch of only repeats stores nothing and counts nothing.
      await s.appendInteractions([{ id: 'x2', user: 'v', item: 'b', timestamp: 2 }]);
      assert.deepEqual(await s.popularity(3), [{ item: 'a', count: 2 }, { item: 'b', count: 1 }, { item: 'c', count: 1 }]);
    }));

    it('refuses a reused id with other content (IdConflictError), storing nothing of that batch', withStorage(async (s) => {
      await s.appendInteractions([{ id: 'x1', user: 'u', item: 'a', timestamp: 1 }, { id: 'x2', user: 'u', item: 'b', timestamp: 2 }]);
      const refused = (e: unknown) => e instanceof IdConflictError;
      await assert.rejects(
        s.appendInteractions([{ id: 'x3', user: 'v', item: 'c', timestamp: 3 }, { id: 'x2', user: 'u', item: 'c', timestamp: 3 }]),
        (e: unknown) => refused(e) && (e as Error).message === 'interaction id "x2" was already used for user "u" and item "b"',
      );
      await assert.rejects(
        s.appendInteractions([{ id: 'x1', user: 'w', item: 'a', timestamp: 1 }]),
        (e: unknown) => refused(e) && (e as Error).message === 'interaction id "x1" was already used for user "u" and item "a"',
        'another user is a conflict too',
      );
      // Within one batch: the second use differs from the first.
      await assert.rejects(
        s.appendInteractions([{ id: 'y1', user: 'v', item: 'a', timestamp: 5 }, { id: 'y1', user: 'v', item: 'b', timestamp: 5 }]),
        (e: unknown) => refused(e) && (e as Error).message === 'interaction id "y1" was already used for user "v" and item "a"',
      );
      assert.deepEqual(await s.logState(), { lastSeq: 2, count: 2 }, 'the refused batches stored nothing');
      assert.equal(await s.userCount(), 1, 'no user of a refused batch was created');
      assert.deepEqual(await s.popularity(3), [{ item: 'a', count: 1 }, { item: 'b', count: 1 }, { item: 'c', count: 0 }]);
      // An unknown item refuses the batch the same way.
      await assert.rejects(s.appendInteractions([{ id: 'z1', user: 'n', item: 'a', timestamp: 6 }, { id: 'z2', user: 'n', item: 'nope', timestamp: 6 }]), { name: 'RangeError', message: 'unknown item "nope"' });
      assert.deepEqual(await s.logState(), { lastSeq: 2, count: 2 });
      // The log goes on after the refusals.
      assert.deepEqual(await s.appendInteractions([{ id: 'x3', user: 'v', item: 'c', timestamp: 3 }]), [{ id: 'x3', status: 'created', seq: 3 }], 'a refused batch used up no seq');
    }));

    it('reads the log by seq range, a user\'s recent items oldest first, their items, and popularity', withStorage(async (s) => {
      const rows = ['a', 'b', 'a', 'c', 'b', 'a'].map((item, k) => ({ id: `r${k}`, user: k % 2 ? 'v' : 'u', item, timestamp: 100 + k }));
      await s.appendInteractions(rows);
      assert.deepEqual((await s.interactions(2, 5)).map((r) => r.seq), [3, 4, 5], '(from, to]');
      assert.deepEqual(await s.interactions(6, 100), []);
      assert.deepEqual(await s.interactions(0, 0), []);
      assert.deepEqual(await s.recentItems('u', 2), ['a', 'b'], "u's items are a, a, b; the last two, oldest first");
      assert.deepEqual(await s.recentItems('u', 10), ['a', 'a', 'b']);
      assert.deepEqual(await s.recentItems('v', 10), ['b', 'c', 'a']);
      assert.equal(await s.recentItems('nobody', 3), null);
      assert.deepEqual([...(await s.userItems('u'))].sort(), ['a', 'b']);
      assert.deepEqual(await s.userItems('nobody'), new Set());
      assert.deepEqual(await s.popularity(2), [{ item: 'a', count: 3 }, { item: 'b', count: 2 }]);
      assert.deepEqual(await s.popularity(10), [{ item: 'a', count: 3 }, { item: 'b', count: 2 }, { item: 'c', count: 1 }]);
      assert.equal(await s.userCount(), 2);
    }));

    it('ties in popularity go by catalogue order', withStorage(async (s) => {
      await s.appendInteractions([{ id: 'p1', user: 'u', item: 'c', timestamp: 1 }, { id: 'p2', user: 'u', item: 'a', timestamp: 2 }]);
      assert.deepEqual(await s.popularity(3), [{ item: 'a', count: 1 }, { item: 'c', count: 1 }, { item: 'b', count: 0 }]);
    }));

    it('registers versions, keeps one active, and records the activation history', withStorage(async (s, db) => {
      assert.equal(await s.activeVersion(), null);
      const v1 = await s.addVersion({ folder: '/m1', parentId: null, trainedUpTo: 0, metrics: {}, note: null });
      const v2 = await s.addVersion({ folder: '/m2', parentId: v1.id, trainedUpTo: 2, metrics: { gate: { before: 0.25, after: 0.5 }, layers: [1, 3] }, note: 'evolved' });
      assert.equal(v1.status, 'candidate');
      assert.equal(v1.activatedAt, null);
      assert.match(v1.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'an ISO time');
      assert.deepEqual({ ...v2, createdAt: '' }, { id: v2.id, folder: '/m2', parentId: v1.id, trainedUpTo: 2, metrics: { gate: { before: 0.25, after: 0.5 }, layers: [1, 3] }, status: 'candidate', createdAt: '', activatedAt: null, note: 'evolved' });
      await assert.rejects(s.addVersion({ folder: '/m3', parentId: null, trainedUpTo: 0, metrics: {}, note: null, status: 'active' }), { message: 'addVersion: register the version, then activate it' });
      const a1 = await s.activateVersion(v1.id, 'first');
      assert.equal(a1.status, 'active');
      assert.match(a1.activatedAt!, /^\d{4}-.*Z$/);
      await s.activateVersion(v2.id, 'second');
      await s.activateVersion(v1.id, 'rollback from version 2');
      assert.deepEqual((await s.versions()).map((v) => [v.id, v.status]), [[v1.id, 'active'], [v2.id, 'retired']]);
      assert.equal((await s.activeVersion())!.id, v1.id);
      assert.deepEqual((await s.activationHistory()).map((h) => [h.versionId, h.reason]), [[v1.id, 'first'], [v2.id, 'second'], [v1.id, 'rollback from version 2']]);
      await assert.rejects(db.exec("UPDATE model_versions SET status = 'active'"), target.uniqueViolation, 'the partial unique index refuses a second active version');
      await s.setVersionStatus(v2.id, 'rejected', 'gate failed');
      assert.deepEqual(await s.version(v2.id).then((v) => [v!.status, v!.note]), ['rejected', 'gate failed']);
      await s.setVersionStatus(v2.id, 'retired');
      assert.deepEqual(await s.version(v2.id).then((v) => [v!.status, v!.note]), ['retired', 'gate failed'], 'no note keeps the note');
      await assert.rejects(s.setVersionStatus(v2.id, 'active'), { message: 'setVersionStatus: use activateVersion' });
      assert.equal(await s.version(9999), null);
    }));

    it('records evolution jobs and their progress', withStorage(async (s) => {
      const v = await s.addVersion({ folder: '/m1', parentId: null, trainedUpTo: 3, metrics: {}, note: null });
      const e = await s.startEvolution({ baseVersionId: v.id, fromSeq: 3, toSeq: 9, options: { epochs: 2, gate: { margin: 0.02 } } });
      assert.deepEqual({ ...e, startedAt: '' }, {
        id: e.id,
        status: 'running',
        baseVersionId: v.id,
        fromSeq: 3,
        toSeq: 9,
        newVersionId: null,
        options: { epochs: 2, gate: { margin: 0.02 } },
        progress: { stage: 'starting', done: 0, total: 0, log: [] },
        message: null,
        pid: null,
        startedAt: '',
        finishedAt: null,
      });
      const nv = await s.addVersion({ folder: '/m2', parentId: v.id, trainedUpTo: 9, metrics: {}, note: null });
      await s.updateEvolution(e.id, { pid: 4242, progress: { stage: 'train SASRec', done: 1, total: 3, log: ['line 1'] } });
      await s.updateEvolution(e.id, {});
      const finishedAt = '2024-05-06T07:08:09.010Z';
      await s.updateEvolution(e.id, { status: 'succeeded', newVersionId: nv.id, message: 'version 2 active', finishedAt });
      const got = (await s.evolution(e.id))!;
      assert.deepEqual([got.status, got.pid, got.newVersionId, got.message, got.finishedAt], ['succeeded', 4242, nv.id, 'version 2 active', finishedAt]);
      assert.deepEqual(got.progress, { stage: 'train SASRec', done: 1, total: 3, log: ['line 1'] });
      const e2 = await s.startEvolution({ baseVersionId: nv.id, fromSeq: 9, toSeq: 12, options: {} });
      assert.deepEqual((await s.evolutions()).map((x) => [x.id, x.status]), [[e.id, 'succeeded'], [e2.id, 'running']]);
      assert.equal(await s.evolution(9999), null);
    }));
  });
}
