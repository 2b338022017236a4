/**
 * PostgresStorage against a real server (test-utils/postgres.ts: EVOREC_TEST_PG, or a throwaway cluster):
 * the Storage contract, then what several replicas on one database need.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { redactUrl } from './open-storage.js';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION_DDL, PostgresStorage } from './postgres-storage.js';
import { MIGRATIONS } from './sqlite-storage.js';
import { storageContract } from './storage-contract.js';
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
  it('has the schema versions of SqliteStorage', () => {
    assert.equal(PG_MIGRATIONS.length, MIGRATIONS.length, 'a version number means the same schema in both');
  });
});
