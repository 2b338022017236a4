import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { tempDir } from '../data/test-utils/tmp.js';
import { MIGRATIONS, SqliteStorage } from './sqlite-storage.js';
import { IdConflictError } from './storage.js';

describe('SqliteStorage', () => {
  it('creates the schema, and migrates a file of an older schema version in order', async () => {
    const file = join(tempDir(), 'old.db');
    // A file as the first schema version wrote it, with data.
    const db = new Database(file);
    db.exec('CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)');
    db.exec(MIGRATIONS[0]);
    db.prepare('INSERT INTO schema_version VALUES (1, ?)').run(new Date().toISOString());
    db.prepare("INSERT INTO items (id, title, created_at, updated_at) VALUES ('a', 'A', 'x', 'x'), ('b', 'B', 'x', 'x')").run();
    db.prepare("INSERT INTO users (id, created_at) VALUES ('u', 'x')").run();
    db.prepare("INSERT INTO interactions (client_id, user_idx, item_idx, timestamp, received_at) VALUES ('c1', 1, 2, 0, 'x'), ('c2', 1, 2, 1, 'x')").run();
    db.close();
    const s = new SqliteStorage(file);
    assert.equal(await s.migrate(), MIGRATIONS.length);
    assert.equal(await s.migrate(), MIGRATIONS.length, 'migrating again changes nothing');
    assert.deepEqual(await s.popularity(5), [{ item: 'b', count: 2 }, { item: 'a', count: 0 }], 'migration 3 back-filled the counters');
    const versions = s.db.prepare('SELECT version FROM schema_version ORDER BY version').all() as { version: number }[];
    assert.deepEqual(versions.map((v) => v.version), [1, 2, 3]);
    await s.close();
  });

  it('appends idempotently, refuses a reused id with other content, and keeps one active version', async () => {
    const s = new SqliteStorage(join(tempDir(), 'svc.db'));
    await s.migrate();
    await s.upsertItems([{ id: 'a', title: 'A' }, { id: 'b', title: 'B' }]);
    assert.deepEqual(await s.upsertItems([{ id: 'a', title: 'A2' }, { id: 'c', title: 'C' }]), { created: 1, updated: 1 });
    assert.deepEqual((await s.items()).map((i) => i.id), ['a', 'b', 'c']);
    const r = await s.appendInteractions([
      { id: 'x1', user: 'u', item: 'a', timestamp: 1 },
      { id: 'x2', user: 'u', item: 'b', timestamp: 2 },
      { id: 'x1', user: 'u', item: 'a', timestamp: 1 },
    ]);
    assert.deepEqual(r.map((x) => x.status), ['created', 'created', 'duplicate']);
    assert.equal(r[2].seq, r[0].seq);
    await assert.rejects(s.appendInteractions([{ id: 'x3', user: 'v', item: 'c', timestamp: 3 }, { id: 'x2', user: 'u', item: 'c', timestamp: 3 }]), IdConflictError);
    assert.deepEqual(await s.logState(), { lastSeq: 2, count: 2 }, 'the refused batch stored nothing');
    assert.deepEqual(await s.recentItems('u', 5), ['a', 'b']);
    assert.equal(await s.recentItems('nobody', 5), null);
    const v1 = await s.addVersion({ folder: '/m1', parentId: null, trainedUpTo: 0, metrics: {}, note: null });
    const v2 = await s.addVersion({ folder: '/m2', parentId: v1.id, trainedUpTo: 2, metrics: { gate: 1 }, note: null });
    await s.activateVersion(v1.id, 'first');
    await s.activateVersion(v2.id, 'second');
    assert.deepEqual((await s.versions()).map((v) => v.status), ['retired', 'active']);
    assert.deepEqual((await s.activationHistory()).map((h) => h.versionId), [v1.id, v2.id]);
    assert.throws(() => s.db.prepare("UPDATE model_versions SET status = 'active'").run(), /UNIQUE/);
    await s.close();
  });
});
