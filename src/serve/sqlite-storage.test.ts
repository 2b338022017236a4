import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { tempDir } from '../data/test-utils/tmp.js';
import { MIGRATIONS, SCHEMA_VERSION_DDL, SqliteStorage } from './sqlite-storage.js';
import { storageContract } from './storage-contract.js';

storageContract({
  name: 'SqliteStorage',
  migrations: MIGRATIONS,
  schemaVersionDdl: SCHEMA_VERSION_DDL,
  uniqueViolation: /^SqliteError: UNIQUE constraint failed: model_versions\.status$/,
  async fresh() {
    const dir = tempDir('evorec-sqlite-');
    const file = join(dir, 'svc.db');
    const raw = () => new Database(file);
    return {
      label: file,
      open: () => new SqliteStorage(file),
      async exec(sql) {
        const db = raw();
        try {
          db.exec(sql);
        } finally {
          db.close();
        }
      },
      async rows(sql) {
        const db = raw();
        try {
          return db.prepare(sql).all() as Record<string, unknown>[];
        } finally {
          db.close();
        }
      },
      async cleanup() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});

describe('SqliteStorage', () => {
  it('opens read-only for the evolution child: reads, and refuses writes', async () => {
    const file = join(tempDir(), 'ro.db');
    const w = new SqliteStorage(file);
    await w.migrate();
    await w.upsertItems([{ id: 'a', title: 'A' }]);
    const r = new SqliteStorage(file, { readonly: true });
    try {
      assert.deepEqual(await r.items(), [{ id: 'a', title: 'A' }]);
      await assert.rejects(r.upsertItems([{ id: 'b', title: 'B' }]), /attempt to write a readonly database/);
    } finally {
      await r.close();
      await w.close();
    }
  });
});
