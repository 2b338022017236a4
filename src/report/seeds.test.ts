import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UpdateRecord } from '../evolve/runner.js';
import { paperTargets } from './experiment-report.js';
import { bootstrap, bootstrapRatio, metricOf, pairedDifference, seedStat, stat, verdict } from './seeds.js';
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

  it('never calls a zero-spread difference', () => {
    assert.equal(verdict({ mean: 0.2, se: 0, n: 3 }), 0);
    assert.equal(verdict({ mean: 0.2, se: 0, n: 3, lo: 0.2, hi: 0.2 }), 0);
    assert.equal(verdict({ mean: 0.2, se: 0.05, n: 1, lo: 0.1, hi: 0.3 }), 1);
    assert.equal(verdict({ mean: -0.2, se: 0.05, n: 1, lo: -0.3, hi: -0.1 }), -1);
    assert.equal(verdict({ mean: 0.1, se: 0.05, n: 1, lo: -0.01, hi: 0.2 }), 0);
  });
});

/** An update whose per-user NDCG@3 values are given (users = rows 0..n-1, all active). */
function withSets(strategy: string, period: number, values: number[], rows = values.map((_, i) => i)): UpdateRecord {
  const u = record(strategy, period, 0, 0);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  u.eval = {
    matched: {
      period, role: 'test', sampler: 'matched', candidates: 20,
      groups: { active: { users: values.length, metrics: { 'NDCG@3': mean } }, all: { users: values.length, metrics: { 'NDCG@3': mean } } },
      sets: { rows, groups: values.map(() => 'active'), metrics: { 'NDCG@3': values } },
    },
  };
  return u;
}

describe('paired bootstrap over users and seeds', () => {
  it('one seed already has an interval; a consistent gain is called, noise is not, zero spread never', () => {
    const base = [0.1, 0.5, 0.3, 0.9, 0.0, 0.4, 0.2, 0.6];
    const plus = (d: number[]) => base.map((x, i) => x + d[i]);
    const r = (b: number[]) => [run([withSets('a', 1, b), withSets('b', 1, base)])];
    // Gains of 0.05-0.15 on every user: the mean is 0.1 by hand, and every resample stays above zero.
    const gain = bootstrap(r(plus([0.05, 0.15, 0.1, 0.1, 0.05, 0.15, 0.1, 0.1])), 'matched', 'active', 'NDCG@3', 1, 'a', 'b');
    assert.ok(Math.abs(gain.mean - 0.1) < 1e-12);
    assert.equal(gain.users, 8);
    assert.ok(gain.lo! > 0.05 && gain.hi! < 0.15 && gain.lo! < gain.hi!, `[${gain.lo}, ${gain.hi}]`);
    assert.equal(verdict(gain), 1);
    // Differences of +-0.2 that cancel: mean 0, interval around zero, not called.
    const noise = bootstrap(r(plus([0.2, -0.2, 0.2, -0.2, 0.2, -0.2, 0.2, -0.2])), 'matched', 'active', 'NDCG@3', 1, 'a', 'b');
    assert.ok(Math.abs(noise.mean) < 1e-12 && noise.lo! < 0 && noise.hi! > 0);
    assert.equal(verdict(noise), 0);
    // The same +0.1 for every user: zero spread, no call.
    const flat = bootstrap(r(plus(base.map(() => 0.1))), 'matched', 'active', 'NDCG@3', 1, 'a', 'b');
    assert.ok(Math.abs(flat.lo! - flat.hi!) < 1e-12);
    assert.equal(verdict(flat), 0);
  });

  it('pairs users by row, averages periods, and resamples seeds', () => {
    // Period 1 gains 0.1 per user, period 2 gains 0.3: the mean over periods is 0.2. b lists its users in
    // another order, so pairing must go by row.
    const b1 = [0.1, 0.2, 0.3];
    const runs = [0, 1].map((k) =>
      run([
        withSets('a', 1, b1.map((x) => x + 0.1 + 0.01 * k)), withSets('b', 1, [...b1].reverse(), [2, 1, 0]),
        withSets('a', 2, b1.map((x) => x + 0.3 - 0.01 * k)), withSets('b', 2, b1),
      ]),
    );
    const d = bootstrap(runs, 'matched', 'active', 'NDCG@3', 'mean', 'a', 'b');
    assert.ok(Math.abs(d.mean - 0.2) < 1e-12, String(d.mean));
    assert.equal(d.n, 2);
    assert.equal(d.users, 6);
    // A single strategy's value: the mean over users, periods and seeds.
    const v = bootstrap(runs, 'matched', 'active', 'NDCG@3', 1, 'b');
    assert.ok(Math.abs(v.mean - 0.2) < 1e-12);
    // Results without per-user sets fall back to the seed statistics.
    const old = [run([record('a', 1, 0.4, 0.2), record('b', 1, 0.3, 0.2)])];
    assert.deepEqual(bootstrap(old, 'popularity', 'active', 'NDCG@3', 1, 'a', 'b'), pairedDifference(old, 'a', 'b', 1, metricOf('popularity', 'active', 'NDCG@3')));
  });
});

describe('the paper\'s targets: ratios of paired differences', () => {
  // Eight users, both groups. finetune loses 0.1-0.3 per inactive user and gains 0.2-0.4 per active one;
  // evorec loses exactly a quarter of each user's loss and gains exactly a third of each gain.
  const base = [0.1, 0.5, 0.3, 0.9, 0.2, 0.4, 0.6, 0.7];
  const ft = [0.1, 0.3, 0.2, 0.2, 0.15, 0.25, 0.1, 0.3];
  const groups = base.map((_, i) => (i % 2 ? 'inactive' : 'active'));
  const values = (k: number) => base.map((x, i) => (groups[i] === 'inactive' ? x - k * ft[i] : x + k * (ft[i] + 0.1)));
  const rec = (strategy: string, k: number, seconds: number) => {
    const u = withSets(strategy, 1, values(k));
    u.eval.matched.sets!.groups = groups;
    u.seconds = seconds;
    return u;
  };
  const runs = [run([rec('static', 0, 0), rec('finetune', 1, 10), rec('evorec', 0.25, 6)])];
  runs[0].updates[2].eval.matched.sets!.metrics['NDCG@3'] = base.map((x, i) => (groups[i] === 'inactive' ? x - 0.25 * ft[i] : x + (ft[i] + 0.1) / 3));

  it('the share is the ratio of the mean differences, in every resample when each user\'s ratio is the same', () => {
    const loss = bootstrapRatio(runs, 'matched', 'inactive', 'NDCG@3', ['static', 'evorec'], ['static', 'finetune'])!;
    assert.ok(Math.abs(loss.mean - 0.25) < 1e-9 && Math.abs(loss.lo! - 0.25) < 1e-9 && Math.abs(loss.hi! - 0.25) < 1e-9, JSON.stringify(loss));
    const gain = bootstrapRatio(runs, 'matched', 'active', 'NDCG@3', ['evorec', 'static'], ['finetune', 'static'])!;
    assert.ok(Math.abs(gain.mean - 1 / 3) < 1e-9 && Math.abs(gain.hi! - 1 / 3) < 1e-9);
    assert.equal(bootstrapRatio([run([record('static', 1, 0, 0), record('finetune', 1, 0, 0)])], 'popularity', 'inactive', 'NDCG@3', ['static', 'finetune'], ['static', 'finetune']), null, 'no per-user sets');
  });

  it('says which targets hold: a quarter of the loss (<= 0.5 holds), a third of the gain (>= 2/3 fails), 0.6x the time (one seed)', () => {
    const lines = paperTargets(runs, 'matched');
    assert.match(lines[0], /^- Inactive users: evorec loses 0\.25 \[0\.25, 0\.25\] of finetune's NDCG@3 loss \(.*\); target at most 0\.5: holds\.$/);
    assert.match(lines[1], /^- Active users: evorec keeps 0\.33 \[0\.33, 0\.33\] of finetune's NDCG@3 gain \(.*\); target at least 0\.67: fails\.$/);
    assert.equal(lines[2], '- Update time: evorec takes 0.60x finetune\'s (its Forget filter\'s training included); target at most 0.7x: holds on one seed.');
    // Records that carry the filter's time say how much of it the filter is, and the update's time alone.
    const timed = structuredClone(runs);
    timed[0].updates[2].forgetSeconds = 2;
    assert.equal(paperTargets(timed, 'matched')[2], '- Update time: evorec takes 0.60x finetune\'s (its Forget filter\'s SASRec 2.0 s a period of it; the update alone 0.40x); target at most 0.7x: holds on one seed.');
    // A finetune that neither loses nor gains: nothing to take a share of.
    const flat = [run([rec('static', 0, 0), rec('finetune', 0, 10), rec('evorec', 0, 6)])];
    assert.match(paperTargets(flat, 'matched')[0], /^- Inactive users: finetune changes inactive users' NDCG@3 by .* over static, not beyond its interval, so there is no loss for evorec to halve: the target is moot here\.$/);
    // A finetune that raises inactive users (no forgetting at all): also nothing to take a share of.
    const better = [run([rec('static', 0, 0), rec('finetune', -1, 10), rec('evorec', -0.25, 6)])];
    assert.match(paperTargets(better, 'matched')[0], /^- Inactive users: finetune raises inactive users' NDCG@3 by \+0\.\d+ \[\+0\.\d+, \+0\.\d+\] ▲ over static, so there is no loss for evorec to halve: the target is moot here\.$/);
    // Shares that differ from user to user (0.2, 1.2, 0.9, 0.5 of each active gain): the interval crosses
    // 2/3 with the mean (0.76) above it, so neither holds nor fails.
    const shares = [0.2, 1.2, 0.9, 0.5];
    const mixed = [run([rec('static', 0, 0), rec('finetune', 1, 10), rec('evorec', 0.25, 6)])];
    mixed[0].updates[2].eval.matched.sets!.metrics['NDCG@3'] = base.map((x, i) => (groups[i] === 'inactive' ? x - 0.25 * ft[i] : x + shares[i / 2] * (ft[i] + 0.1)));
    const gain = bootstrapRatio(mixed, 'matched', 'active', 'NDCG@3', ['evorec', 'static'], ['finetune', 'static'])!;
    assert.ok(gain.lo! < 2 / 3 && gain.hi! > 2 / 3 && gain.mean > 2 / 3, JSON.stringify(gain));
    assert.match(paperTargets(mixed, 'matched')[1], /^- Active users: evorec keeps 0\.76 \[[\d.]+, [\d.]+\] of finetune's NDCG@3 gain \(.*\); target at least 0\.67: not shown \(the interval crosses the target; the mean is on its right side\)\.$/);
  });
});
