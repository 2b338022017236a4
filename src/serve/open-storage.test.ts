import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { isPostgresUrl, normaliseSpec, openStorage, redactUrl, storageLabel } from './open-storage.js';
import { PostgresStorage } from './postgres-storage.js';
import { SqliteStorage } from './sqlite-storage.js';
import { startServe } from './test-utils/fixture.js';

describe('openStorage', () => {
  it('selects PostgreSQL for postgres:// and postgresql:// URLs, SQLite for anything else', async () => {
    assert.ok(isPostgresUrl('postgres://db/shop'));
    assert.ok(isPostgresUrl('postgresql://u:p@db:5432/shop'));
    assert.ok(isPostgresUrl('POSTGRES://db/shop'));
    assert.ok(!isPostgresUrl('shop.db'));
    assert.ok(!isPostgresUrl('./postgres/shop.db'), 'a folder named postgres is a path');
    assert.ok(!isPostgresUrl('postgres:shop.db'));
    const file = join(tempDir(), 'a.db');
    const s = await openStorage(file);
    assert.ok(s instanceof SqliteStorage);
    await s.close();
    // The pool connects on first use: constructing it reaches no server.
    const p = await openStorage('postgresql://u:secret@127.0.0.1:1/shop');
    assert.ok(p instanceof PostgresStorage);
    assert.equal((p as PostgresStorage).label, 'postgresql://u:***@127.0.0.1:1/shop');
    await p.close();
  });

  it('redacts every password of a URL, and leaves the rest as given', () => {
    assert.equal(redactUrl('postgres://evorec:s3cret@db.internal:5432/shop'), 'postgres://evorec:***@db.internal:5432/shop');
    assert.equal(redactUrl('postgres://evorec:p%40ss%2Fw@db/shop?sslmode=require'), 'postgres://evorec:***@db/shop?sslmode=require');
    assert.equal(redactUrl('postgresql://db/shop?user=evorec&password=s3cret&application_name=x'), 'postgresql://db/shop?user=evorec&password=***&application_name=x');
    assert.equal(redactUrl('postgres://evorec@db/shop'), 'postgres://evorec@db/shop', 'no password, nothing to hide');
    assert.equal(redactUrl('postgres://evorec:s3cret@[bad/shop'), 'postgres://evorec:***@[bad/shop', 'an unparsable URL is masked too');
    assert.equal(redactUrl('shop.db'), 'shop.db');
  });

  it('names a SQLite file by its absolute path, a URL by its redacted form', () => {
    assert.equal(storageLabel('shop.db'), join(process.cwd(), 'shop.db'));
    assert.equal(storageLabel('postgres://u:pw@h/d'), 'postgres://u:***@h/d');
    assert.equal(normaliseSpec('shop.db'), join(process.cwd(), 'shop.db'));
    assert.equal(normaliseSpec('postgres://u:pw@h/d'), 'postgres://u:pw@h/d', 'the URL itself is kept for the connection');
  });

  it('evorec serve: a PostgreSQL database it cannot use is one line naming it, without the password (exit 1)', async () => {
    const port = await new Promise<number>((r) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => r(p));
      });
    });
    const url = `postgresql://evorec:s3cret-pw@127.0.0.1:${port}/shop`;
    const shown = `postgresql://evorec:***@127.0.0.1:${port}/shop`;
    const token = ['--token', 'test-token-0123456789'];
    await assert.rejects(startServe(['--db', url, ...token]), {
      message: `serve exited with 1: evorec: ${shown}: give --versions <dir> with a PostgreSQL database (evolved versions' folders must be where every replica can read them)\n`,
    });
    await assert.rejects(startServe(['--db', url, '--versions', join(tempDir(), 'v'), ...token]), {
      message: `serve exited with 1: evorec: ${shown}: cannot connect: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    });
  });
});
