import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readAmazonMeta, readAmazonReviews } from './amazon.js';
import { parsePythonLiteral } from './python-literal.js';
import { collect, fixture, tempDir } from './test-utils/tmp.js';

const dir = tempDir();

describe('Python literal parser', () => {
  it('parses the shapes found in 2014 metadata', () => {
    const src = `{'asin': '0000031852', 'title': "Girls' Ballet Tutu \\"Zebra\\"", 'price': 3.17, 'salesRank': {'Toys & Games': 211836}, 'categories': [['Sports', 'Dance']], 'flag': True, 'none': None, 'neg': -1e3, 't': (1, 2,), 'esc': 'caf\\xe9 \\u2122 \\n'}`;
    assert.deepEqual(parsePythonLiteral(src), {
      asin: '0000031852',
      title: 'Girls\' Ballet Tutu "Zebra"',
      price: 3.17,
      salesRank: { 'Toys & Games': 211836 },
      categories: [['Sports', 'Dance']],
      flag: true,
      none: null,
      neg: -1000,
      t: [1, 2],
      esc: 'café ™ \n',
    });
  });

  it('parses unicode-prefixed strings', () => {
    assert.deepEqual(parsePythonLiteral("{u'a': u'b'}"), { a: 'b' });
  });

  it('reports the column of a syntax error', () => {
    assert.throws(() => parsePythonLiteral("{'a': 'b' 'c'}"), { message: 'expected "," or "}" at column 11' });
    assert.throws(() => parsePythonLiteral("{'a': 'b"), { message: 'unterminated string at column 9' });
  });
});

describe('Amazon raw dumps', () => {
  it('reads reviews (JSON lines, gzip)', async () => {
    const path = fixture(
      dir,
      'reviews_Beauty_5.json.gz',
      '{"reviewerID": "A1", "asin": "B1", "reviewerName": "x", "overall": 5.0, "unixReviewTime": 1252800000, "reviewTime": "09 13, 2009"}\n' +
        '{"reviewerID": "A2", "asin": "B2", "overall": 3.0, "unixReviewTime": 1252800001}\n',
    );
    assert.deepEqual(await collect(readAmazonReviews(path)), [
      { user: 'A1', item: 'B1', timestamp: 1252800000, rating: 5 },
      { user: 'A2', item: 'B2', timestamp: 1252800001, rating: 3 },
    ]);
  });

  it('reads 2014 (Python literal) and 2018 (JSON) metadata lines, titles optional', async () => {
    const path = fixture(
      dir,
      'meta_Beauty.json.gz',
      "{'asin': 'B1', 'title': 'Rose Water, 8 oz', 'price': 6.5, 'related': {'also_bought': ['B2']}}\n" +
        '{"asin": "B2", "title": "Night Cream", "brand": "X"}\n' +
        "{'asin': 'B3', 'categories': [['Beauty']]}\n",
    );
    assert.deepEqual(await collect(readAmazonMeta(path)), [
      { item: 'B1', title: 'Rose Water, 8 oz' },
      { item: 'B2', title: 'Night Cream' },
      { item: 'B3', title: '' },
    ]);
  });

  it('names file, line and field on bad input', async () => {
    const missing = fixture(dir, 'r1.json', '{"reviewerID": "A1", "asin": "B1", "unixReviewTime": 5}\n{"asin": "B1", "unixReviewTime": 5}\n');
    await assert.rejects(collect(readAmazonReviews(missing)), { message: `${missing}:2: field "reviewerID": missing` });
    const badTime = fixture(dir, 'r2.json', '{"reviewerID": "A1", "asin": "B1", "unixReviewTime": "soon"}\n');
    await assert.rejects(collect(readAmazonReviews(badTime)), { message: `${badTime}:1: field "unixReviewTime": not a number ("soon")` });
    const garbage = fixture(dir, 'm.json', "{'asin': 'B1'}\n{'asin': 'B2',,}\n");
    await assert.rejects(collect(readAmazonMeta(garbage)), (e: Error) => e.message.startsWith(`${garbage}:2: not a JSON object or Python dict literal`));
    const empty = fixture(dir, 'empty.json.gz', '');
    await assert.rejects(collect(readAmazonReviews(empty)), { message: `${empty}:1: empty file: expected one review a line` });
  });
});
