import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MetricAccumulator, randomMetrics, setMetrics } from './metrics.js';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

describe('ranking metrics', () => {
  it('scores a positive at rank 1, 2 and 4 as computed by hand', () => {
    // Rank 1 (0-based 0): HR@1 = 1, NDCG@3 = 1/log2(2) = 1.
    let m = setMetrics([0.9, 0.1, 0.2, 0.3], 0, [1, 3]);
    assert.deepEqual(m, { 'HR@1': 1, 'NDCG@1': 1, 'HR@3': 1, 'NDCG@3': 1 });
    // Rank 2: HR@1 = 0, HR@3 = 1, NDCG@3 = 1/log2(3).
    m = setMetrics([0.5, 0.9, 0.1, 0.2], 0, [1, 3]);
    assert.equal(m['HR@1'], 0);
    assert.equal(m['HR@3'], 1);
    close(m['NDCG@3'], 1 / Math.log2(3));
    // Rank 4: outside the top 3; inside the top 5 with NDCG@5 = 1/log2(5).
    m = setMetrics([0.1, 0.9, 0.8, 0.7, 0.05], 0, [3, 5]);
    assert.equal(m['HR@3'], 0);
    assert.equal(m['NDCG@3'], 0);
    assert.equal(m['HR@5'], 1);
    close(m['NDCG@5'], 1 / Math.log2(5));
  });

  it('takes ties in expectation', () => {
    // Positive tied with one other at the top: rank 0 or 1, each with probability 1/2.
    const m = setMetrics([1, 1, 0], 0, [1, 3]);
    assert.equal(m['HR@1'], 0.5);
    close(m['NDCG@1'], 0.5);
    assert.equal(m['HR@3'], 1);
    close(m['NDCG@3'], (1 + 1 / Math.log2(3)) / 2);
  });

  it('gives a constant scorer exactly the random expectation', () => {
    const n = 20;
    const flat = setMetrics(new Array(n).fill(0), 7);
    const rnd = randomMetrics(n);
    for (const k of Object.keys(rnd)) close(flat[k], rnd[k]);
    assert.equal(rnd['HR@1'], 0.05);
    assert.equal(rnd['HR@10'], 0.5);
    close(rnd['NDCG@3'], (1 + 1 / Math.log2(3) + 0.5) / 20);
  });

  it('averages over sets', () => {
    const acc = new MetricAccumulator([1, 3]);
    acc.add([0.9, 0.1, 0.2], 0); // rank 0
    acc.add([0.1, 0.9, 0.2], 0); // rank 2
    const m = acc.mean();
    assert.equal(acc.count, 2);
    assert.equal(m['HR@1'], 0.5);
    assert.equal(m['HR@3'], 1);
    close(m['NDCG@3'], (1 + 0.5) / 2);
  });

  it('rejects a NaN positive score', () => {
    assert.throws(() => setMetrics([NaN, 1], 0), { name: 'RangeError', message: 'candidate 0 has a NaN score (the positive)' });
  });

  it('rejects a NaN score of a negative candidate, naming it, instead of ranking it below the positive', () => {
    assert.throws(() => setMetrics([1, 0.5, 2, NaN], 0), { name: 'RangeError', message: 'candidate 3 has a NaN score' });
    const acc = new MetricAccumulator([3]);
    assert.throws(() => acc.add([NaN, 0.1, 0.9], 2), { name: 'RangeError', message: 'candidate 0 has a NaN score' });
    assert.equal(acc.count, 0);
  });
});
