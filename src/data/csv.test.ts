import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readCsvInteractions, readCsvItems } from './csv.js';
import { DataError } from './errors.js';
import { collect, fixture, tempDir } from './test-utils/tmp.js';

const dir = tempDir();

describe('CSV/TSV loaders', () => {
  it('reads interactions with an optional rating, plain and gzip', async () => {
    const text = 'user_id,item_id,timestamp,rating\nu1,i1,100,5\nu2,i2,200.5,3.5\n';
    for (const name of ['a.csv', 'a.csv.gz']) {
      const rows = await collect(readCsvInteractions(fixture(dir, name, text)));
      assert.deepEqual(rows, [
        { user: 'u1', item: 'i1', timestamp: 100, rating: 5 },
        { user: 'u2', item: 'i2', timestamp: 200.5, rating: 3.5 },
      ]);
    }
  });

  it('detects gzip by content, not by name', async () => {
    const { gzipSync } = await import('node:zlib');
    const path = fixture(dir, 'packed.csv', gzipSync('user_id,item_id,timestamp\nu,i,1\n'));
    assert.deepEqual(await collect(readCsvInteractions(path)), [{ user: 'u', item: 'i', timestamp: 1 }]);
  });

  it('takes configurable column names and TSV', async () => {
    const path = fixture(dir, 'b.tsv', 'who\twhen\twhat\nu1\t7\ti9\n');
    const rows = await collect(readCsvInteractions(path, { user: 'who', item: 'what', timestamp: 'when' }));
    assert.deepEqual(rows, [{ user: 'u1', item: 'i9', timestamp: 7 }]);
  });

  it('reads quoted titles with commas, quotes and a byte-order mark', async () => {
    const path = fixture(dir, 'items.csv', '\ufeffitem_id,title\ni1,"Shampoo, 2 pack"\ni2,"The ""Best"" Cream"\ni3,\n');
    assert.deepEqual(await collect(readCsvItems(path)), [
      { item: 'i1', title: 'Shampoo, 2 pack' },
      { item: 'i2', title: 'The "Best" Cream' },
      { item: 'i3', title: '' },
    ]);
  });

  const bad: Array<[string, string, string]> = [
    ['wrong column count', 'user_id,item_id,timestamp\nu1,i1,1\nu2,i2\n', 'cols.csv:3: field "timestamp": expected 3 columns (user_id, item_id, timestamp), found 2'],
    ['non-numeric timestamp', 'user_id,item_id,timestamp\nu1,i1,1\nu2,i2,abc\n', 'ts.csv:3: field "timestamp": not a number ("abc")'],
    ['empty user id', 'user_id,item_id,timestamp\n,i1,1\n', 'ts.csv:2: field "user_id": empty value'],
    ['unknown column name', 'user,item_id,timestamp\nu1,i1,1\n', 'ts.csv:1: field "user_id": unknown column "user_id" (for user); the header has: user, item_id, timestamp'],
    ['empty file', '', 'ts.csv:1: empty file: expected a header row'],
    ['non-numeric rating', 'user_id,item_id,timestamp,rating\nu1,i1,1,five\n', 'ts.csv:2: field "rating": not a number ("five")'],
  ];
  for (const [what, text, message] of bad) {
    it(`rejects ${what} with file, line and field`, async () => {
      const name = message.slice(0, message.indexOf(':'));
      const path = fixture(dir, name, text);
      await assert.rejects(collect(readCsvInteractions(path)), (e: unknown) => {
        assert.ok(e instanceof DataError);
        assert.equal(e.message, `${dir}/${message}`);
        return true;
      });
    });
  }

  it('rejects a corrupt gzip file naming the file and the line reached', async () => {
    const { gzipSync } = await import('node:zlib');
    const good = gzipSync('user_id,item_id,timestamp\n' + 'u1,i1,1\n'.repeat(20000));
    const broken = Buffer.concat([good.subarray(0, 200), Buffer.alloc(100, 0x41)]);
    const path = fixture(dir, 'broken.csv', broken);
    await assert.rejects(collect(readCsvInteractions(path)), (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.match(e.message, new RegExp(`^${path}:\\d+: corrupt or truncated gzip data: `));
      return true;
    });
  });

  it('rejects a .gz name without gzip content', async () => {
    const path = fixture(dir, 'x.csv', 'not gzip');
    const { renameSync } = await import('node:fs');
    renameSync(path, `${path}.gz`);
    await assert.rejects(collect(readCsvInteractions(`${path}.gz`)), { message: `${path}.gz: not a gzip file (no gzip header), but the name ends in .gz` });
  });

  it('rejects a missing file', async () => {
    await assert.rejects(collect(readCsvInteractions(`${dir}/nope.csv`)), { message: `${dir}/nope.csv: file not found` });
  });

  it('rejects an unterminated quote with its line', async () => {
    const path = fixture(dir, 'q.csv', 'item_id,title\ni1,"open\n');
    await assert.rejects(collect(readCsvItems(path)), (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.match(e.message, new RegExp(`^${path}:\\d+: (field "title": )?malformed CSV`));
      return true;
    });
  });
});
