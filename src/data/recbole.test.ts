import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readRecboleInter, readRecboleItems } from './recbole.js';
import { collect, fixture, tempDir } from './test-utils/tmp.js';

const dir = tempDir();

describe('RecBole atomic files', () => {
  it('reads .inter and .item with typed headers', async () => {
    const inter = fixture(dir, 'ml.inter', 'user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t881250949\n2\t20\t3.5\t891717742\n');
    assert.deepEqual(await collect(readRecboleInter(inter)), [
      { user: '1', item: '10', timestamp: 881250949, rating: 4 },
      { user: '2', item: '20', timestamp: 891717742, rating: 3.5 },
    ]);
    const items = fixture(dir, 'ml.item', 'item_id:token\tmovie_title:token_seq\tclass:token_seq\n10\tToy Story\tAnimation\n');
    assert.deepEqual(await collect(readRecboleItems(items, { title: 'movie_title' })), [{ item: '10', title: 'Toy Story' }]);
  });

  it('works without a rating field', async () => {
    const inter = fixture(dir, 'a.inter', 'user_id:token\titem_id:token\ttimestamp:float\nu\ti\t3\n');
    assert.deepEqual(await collect(readRecboleInter(inter)), [{ user: 'u', item: 'i', timestamp: 3 }]);
  });

  it('names file, line and field on bad input', async () => {
    const badHeader = fixture(dir, 'b.inter', 'user_id\titem_id:token\n');
    await assert.rejects(collect(readRecboleInter(badHeader)), {
      message: `${badHeader}:1: field "user_id": header field 1 is "user_id", expected name:type with type token, token_seq, float or float_seq`,
    });
    const cols = fixture(dir, 'c.inter', 'user_id:token\titem_id:token\ttimestamp:float\nu\ti\n');
    await assert.rejects(collect(readRecboleInter(cols)), {
      message: `${cols}:2: field "timestamp": expected 3 columns (user_id, item_id, timestamp), found 2`,
    });
    const ts = fixture(dir, 'd.inter', 'user_id:token\titem_id:token\ttimestamp:float\nu\ti\tyesterday\n');
    await assert.rejects(collect(readRecboleInter(ts)), { message: `${ts}:2: field "timestamp": not a number ("yesterday")` });
    const unknown = fixture(dir, 'e.inter', 'uid:token\titem_id:token\ttimestamp:float\n');
    await assert.rejects(collect(readRecboleInter(unknown)), {
      message: `${unknown}:1: field "user_id": unknown column "user_id" (for user); the header has: uid, item_id, timestamp`,
    });
    const empty = fixture(dir, 'f.inter', '');
    await assert.rejects(collect(readRecboleInter(empty)), { message: `${empty}:1: empty file: expected a name:type header` });
  });
});
