/**
 * Inputs that used to pass silently or fail with a misleading message (issue 17, point 5): each must end
 * in one DataError naming the file, the line and the field.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { readAmazonReviews } from './amazon.js';
import { cleanDataset } from './clean.js';
import { readCsvInteractions } from './csv.js';
import { Dataset } from './dataset.js';
import { DataError } from './errors.js';
import { readRecboleInter } from './recbole.js';
import { datasetStats } from './stats.js';
import { collect, fixture, tempDir } from './test-utils/tmp.js';

const dir = tempDir();

async function rejectsWith(p: Promise<unknown>, message: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof DataError, String(e));
    assert.equal(e.message, message);
    return true;
  });
}

const DECIMAL = 'timestamps are Unix seconds, written as digits with an optional fraction (1388534400 or 1388534400.5)';

describe('timestamps: non-negative decimal Unix seconds up to 9999-12-31', () => {
  const cases: Array<[string, string]> = [
    ['0x10', `not a decimal number ("0x10"): ${DECIMAL}`],
    ['1e3', `not a decimal number ("1e3"): ${DECIMAL}`],
    ['1e300', `not a decimal number ("1e300"): ${DECIMAL}`],
    ['-5', 'negative ("-5"): timestamps are Unix seconds since 1970-01-01'],
    ['99999999999999', 'out of range ("99999999999999"): timestamps are Unix seconds up to 253402300799 (9999-12-31); milliseconds must be divided by 1000'],
  ];
  for (const [raw, why] of cases) {
    it(`CSV rejects ${raw}`, async () => {
      const path = fixture(dir, `ts-${raw}.csv`, `user_id,item_id,timestamp\nu1,i1,1\nu1,i2,${raw}\n`);
      await rejectsWith(collect(readCsvInteractions(path)), `${path}:3: field "timestamp": ${why}`);
    });
    it(`RecBole rejects ${raw}`, async () => {
      const path = fixture(dir, `ts-${raw}.inter`, `user_id:token\titem_id:token\ttimestamp:float\nu\ti\t${raw}\n`);
      await rejectsWith(collect(readRecboleInter(path)), `${path}:2: field "timestamp": ${why}`);
    });
  }

  it('Amazon reviews reject negative, huge and non-decimal string times', async () => {
    const line = (t: string) => `{"reviewerID": "A1", "asin": "B1", "unixReviewTime": ${t}}\n`;
    const neg = fixture(dir, 'neg.json', line('1') + line('-5'));
    await rejectsWith(collect(readAmazonReviews(neg)), `${neg}:2: field "unixReviewTime": negative (-5): timestamps are Unix seconds since 1970-01-01`);
    const huge = fixture(dir, 'huge.json', line('1e300'));
    await rejectsWith(
      collect(readAmazonReviews(huge)),
      `${huge}:1: field "unixReviewTime": out of range (1e+300): timestamps are Unix seconds up to 253402300799 (9999-12-31); milliseconds must be divided by 1000`,
    );
    const hex = fixture(dir, 'hex.json', line('"0x10"'));
    await rejectsWith(collect(readAmazonReviews(hex)), `${hex}:1: field "unixReviewTime": not a decimal number ("0x10"): ${DECIMAL}`);
  });

  it('still reads integers and decimals', async () => {
    const path = fixture(dir, 'ok.csv', 'user_id,item_id,timestamp\nu1,i1,0\nu1,i2, 1388534400.5 \nu1,i3,253402300799\n');
    assert.deepEqual((await collect(readCsvInteractions(path))).map((r) => r.timestamp), [0, 1388534400.5, 253402300799]);
  });
});

describe('headers', () => {
  it('CSV rejects a duplicate column name on line 1', async () => {
    const path = fixture(dir, 'dup.csv', 'user_id,item_id,timestamp,item_id\nu1,i1,5,i2\n');
    await rejectsWith(collect(readCsvInteractions(path)), `${path}:1: field "item_id": duplicate column name (columns 2 and 4)`);
  });

  it('RecBole rejects a duplicate field name on line 1', async () => {
    const path = fixture(dir, 'dup.inter', 'user_id:token\titem_id:token\ttimestamp:float\tuser_id:float\nu\ti\t3\t4\n');
    await rejectsWith(collect(readRecboleInter(path)), `${path}:1: field "user_id": duplicate column name (columns 1 and 4)`);
  });
});

describe('malformed and binary files', () => {
  it('reports a stray quote inside an unquoted CSV field at its line and field, not as gzip', async () => {
    const path = fixture(dir, 'quote.csv', 'user_id,item_id,timestamp\nu1,i1,1\nu1,i2,2\nu2,i"1,3\n');
    await rejectsWith(
      collect(readCsvInteractions(path)),
      `${path}:4: field "item_id": malformed CSV: a quote inside an unquoted field (the field so far is "i"); quote the whole field and double its quotes, as in "a ""b"" c"`,
    );
  });

  it('reports a binary file as binary, at the line of its first NUL byte', async () => {
    // Fixed pseudo-random bytes (no gzip magic), with a newline before the first NUL.
    const bytes = Buffer.alloc(3000);
    let x = 12345;
    for (let i = 0; i < bytes.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      bytes[i] = 1 + ((x >>> 16) % 255);
    }
    bytes[0] = 0x41;
    bytes[10] = 0x0a;
    bytes[20] = 0x00;
    const path = fixture(dir, 'random.csv', bytes);
    await rejectsWith(collect(readCsvInteractions(path)), `${path}:2: binary data (a NUL byte at offset 20), not text: expected a CSV/TSV, JSON-lines or RecBole file, plain or gzip`);
    const gz = fixture(dir, 'random.csv.gz', bytes);
    await rejectsWith(collect(readCsvInteractions(gz)), `${gz}:2: binary data (a NUL byte at offset 20), not text: expected a CSV/TSV, JSON-lines or RecBole file, plain or gzip`);
    const rb = fixture(dir, 'random.inter', bytes);
    await rejectsWith(collect(readRecboleInter(rb)), `${rb}:2: binary data (a NUL byte at offset 20), not text: expected a CSV/TSV, JSON-lines or RecBole file, plain or gzip`);
  });

  it('reports text that is not UTF-8 at its line', async () => {
    const path = fixture(dir, 'latin1.csv', Buffer.concat([Buffer.from('user_id,item_id,timestamp\nu1,caf'), Buffer.from([0xe9]), Buffer.from(',1\n')]));
    await rejectsWith(collect(readCsvInteractions(path)), `${path}:2: not UTF-8 text (byte 0xe9 at offset 32): save the file as UTF-8`);
  });

  it('still reports a corrupt gzip stream as gzip', async () => {
    const good = gzipSync('user_id,item_id,timestamp\n' + 'u1,i1,1\n'.repeat(20000));
    const path = fixture(dir, 'broken.csv', Buffer.concat([good.subarray(0, 200), Buffer.alloc(100, 0x41)]));
    await assert.rejects(collect(readCsvInteractions(path)), /corrupt or truncated gzip data/);
  });
});

describe('cleaning that removes everything', () => {
  async function build(rows: Array<[string, string, number]>) {
    async function* inter() {
      for (const [user, item, timestamp] of rows) yield { user, item, timestamp };
    }
    return Dataset.fromStreams('t', inter());
  }

  it('says so, naming the k-core filter and the largest counts', async () => {
    const d = await build([['u', 'a', 1], ['u', 'b', 2], ['v', 'a', 3]]);
    assert.throws(() => cleanDataset(d, { kcore: 1000000 }), {
      name: 'RangeError',
      message: 'the k-core filter (--kcore 1000000) removed all 3 interactions: the most active user has 2 interactions, the most popular item 2',
    });
  });

  it('says so for the minimum rating', async () => {
    async function* inter() {
      yield { user: 'u', item: 'a', timestamp: 1, rating: 2 };
    }
    const d = await Dataset.fromStreams('t', inter());
    assert.throws(() => cleanDataset(d, { minRating: 3 }), { name: 'RangeError', message: 'the minimum rating (--min-rating 3) removed all 1 interactions' });
  });

  it('stats of an empty dataset have no dates instead of throwing "Invalid time value"', async () => {
    const d = (await build([['u', 'a', 1]])).select([]);
    assert.equal(datasetStats(d).firstDate, '');
  });
});
