import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metricOf, pairedDifference, seedStat, stat, verdict } from './seeds.js';
import { record, run } from './test-fixtures.js';

describe('statistics over seeds', () => {
  it('mean and standard error by hand', () => {
    const s = stat([1, 2, 3, 4]);
    assert.equal(s.mean, 2.5);
    assert.ok(Math.abs(s.se - Math.sqrt(5 / 3 / 4)) < 1e-12);
    assert.equal(s.n, 4);
    assert.ok(Number.isNaN(stat([7]).se));
    assert.equal(stat([7]).mean, 7);
    assert.equal(stat([NaN, 2]).n, 1);
  });

  it('calls a difference only beyond twice its standard error', () => {
    assert.equal(verdict({ mean: 1, se: 0.4, n: 3 }), 1);
    assert.equal(verdict({ mean: 1, se: 0.5, n: 3 }), 0);
    assert.equal(verdict({ mean: -1, se: 0.4, n: 3 }), -1);
    assert.equal(verdict({ mean: 5, se: NaN, n: 1 }), 0);
  });

  it('averages over periods within a seed, then over seeds; differences are paired by seed', () => {
    const runs = [
      run([record('a', 1, 0.2, 0.5), record('a', 2, 0.4, 0.5), record('b', 1, 0.1, 0.3), record('b', 2, 0.3, 0.3)]),
      run([record('a', 1, 0.6, 0.5), record('a', 2, 0.8, 0.5), record('b', 1, 0.5, 0.4), record('b', 2, 0.7, 0.4)]),
    ];
    const active = metricOf('popularity', 'active', 'NDCG@3');
    // a: seed means 0.3 and 0.7 -> mean 0.5, se = sd(0.3, 0.7)/sqrt(2) = 0.2828.../1.414... = 0.2
    const a = seedStat(runs, 'a', 'mean', active);
    assert.ok(Math.abs(a.mean - 0.5) < 1e-12 && Math.abs(a.se - 0.2) < 1e-12);
    assert.ok(Math.abs(seedStat(runs, 'a', 2, active).mean - 0.6) < 1e-12);
    // a - b is 0.1 in both seeds: no spread, so the paired difference is called although the
    // unpaired standard errors (0.2 each) overlap.
    const d = pairedDifference(runs, 'a', 'b', 'mean', active);
    assert.ok(Math.abs(d.mean - 0.1) < 1e-12 && d.se < 1e-12);
    assert.equal(verdict({ ...d, se: d.se + 1e-9 }), 1);
    const inactive = pairedDifference(runs, 'a', 'b', 'mean', metricOf('popularity', 'inactive', 'NDCG@3'));
    assert.ok(Math.abs(inactive.mean - 0.15) < 1e-12 && Math.abs(inactive.se - 0.05) < 1e-12);
  });
});
