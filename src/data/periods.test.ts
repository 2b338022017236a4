import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { cleanDataset } from './clean.js';
import { Dataset } from './dataset.js';
import { cutBoundaries, DEFAULT_PERIODS, PeriodSplit, periodCutDates, type Sample, type UserGroup } from './periods.js';
import { loadDataset, PACKAGE_ROOT } from './source.js';

async function* rows(list: Array<[string, string, number]>) {
  for (const [user, item, timestamp] of list) yield { user, item, timestamp };
}

const tiny: Array<[string, string, number]> = [
  ['a', 'i1', 1], ['b', 'i2', 2], ['a', 'i3', 3], ['c', 'i4', 4], ['a', 'i5', 5], ['b', 'i6', 6], // P0
  ['a', 'i7', 7], ['a', 'i8', 8], ['d', 'i1', 9], // P1
  ['d', 'i2', 10], ['b', 'i9', 11], ['a', 'i9', 12], // P2
];

const describeSamples = (split: PeriodSplit, list: Sample[]) =>
  list.map((s) => `${split.dataset.userIds[s.user]}:${split.dataset.itemIds[s.item]}${s.group ? `:${s.group}` : ''}`);

describe('period protocol on a hand-made log', async () => {
  const d = (await Dataset.fromStreams('tiny', rows(tiny))).sortChronologically();
  const split = new PeriodSplit(d, { periods: 2, base: 0.5, history: 2 });

  it('cuts P0 at the base share and the rest into equal periods', () => {
    assert.deepEqual(split.boundaries, [0, 6, 9, 12]);
  });

  it('holds out the latest (test) and latest-but-one in the same period (validation)', () => {
    const [p0, p1, p2] = split.periods;
    assert.deepEqual(describeSamples(split, p0.test), ['a:i5:base', 'b:i6:base']);
    assert.deepEqual(describeSamples(split, p0.valid), ['a:i3:base']);
    assert.deepEqual(describeSamples(split, p0.train), []);
    assert.deepEqual(describeSamples(split, p1.test), ['a:i8:active', 'b:i6:inactive']);
    assert.deepEqual(describeSamples(split, p1.valid), ['a:i7:active']);
    assert.deepEqual(describeSamples(split, p1.released), ['a:i3', 'a:i5']);
    assert.deepEqual(describeSamples(split, p2.test), ['a:i9:active', 'b:i9:active', 'd:i2:short']);
    assert.deepEqual(describeSamples(split, p2.valid), []);
    assert.deepEqual(describeSamples(split, p2.released), ['b:i6', 'a:i7', 'a:i8']);
    assert.deepEqual(p1.groups, { base: 0, active: 1, inactive: 1, new: 0, short: 0 });
  });

  it('gives each sample the last H items before it', () => {
    const a9 = split.periods[2].test.find((s) => d.userIds[s.user] === 'a')!;
    assert.deepEqual(split.history(a9).map((i) => d.itemIds[i]), ['i7', 'i8']);
    assert.deepEqual(split.history(a9, 10).map((i) => d.itemIds[i]), ['i1', 'i3', 'i5', 'i7', 'i8']);
  });

  it('makes training targets of every other interaction with a history', async () => {
    const log: Array<[string, string, number]> = [1, 2, 3, 4, 5, 6].map((t) => ['u', `i${t}`, t]);
    log.push(['v', 'x', 0], ['v', 'y', 7]);
    const ds = (await Dataset.fromStreams('t', rows(log))).sortChronologically();
    const s = new PeriodSplit(ds, { periods: 1, base: 0.75 });
    // P0 = rows 0..5 (v:x, u:i1..i5), P1 = u:i6, v:y.
    assert.deepEqual(describeSamples(s, s.periods[0].train), ['u:i2', 'u:i3']);
    assert.deepEqual(describeSamples(s, s.periods[0].valid), ['u:i4:base']);
    assert.deepEqual(describeSamples(s, s.periods[1].train), []);
    assert.deepEqual(describeSamples(s, s.periods[1].released), ['u:i4', 'u:i5']);
    assert.deepEqual(describeSamples(s, s.periods[1].test), ['v:y:short', 'u:i6:active']);
  });

  it('caps each user\'s training targets per period at the latest maxTrainPerUser, and counts the rest in popularity only', async () => {
    // P0 = the first 12 rows: u:i1..i8 (i8 test, i7 valid, i2..i6 train) and w:j1..j4 (j4 test, j3 valid,
    // j2 train). P1: u:i9, w:j5, u:i10. Cap 2: u keeps its latest two, i5 and i6; w is under the cap.
    const log: Array<[string, string, number]> = [1, 2, 3, 4, 5, 6, 7, 8].map((t) => ['u', `i${t}`, t]);
    log.push(...[1, 2, 3, 4].map((t): [string, string, number] => ['w', `j${t}`, t + 0.5]), ['u', 'i9', 20], ['w', 'j5', 21], ['u', 'i10', 22]);
    const ds = (await Dataset.fromStreams('cap', rows(log))).sortChronologically();
    const full = new PeriodSplit(ds, { periods: 1, base: 0.8 });
    const capped = new PeriodSplit(ds, { periods: 1, base: 0.8, maxTrainPerUser: 2 });
    assert.deepEqual(full.boundaries, [0, 12, 15]);
    assert.deepEqual(describeSamples(full, full.periods[0].train), ['u:i2', 'w:j2', 'u:i3', 'u:i4', 'u:i5', 'u:i6']);
    assert.deepEqual(describeSamples(capped, capped.periods[0].train), ['w:j2', 'u:i5', 'u:i6']);
    assert.deepEqual(describeSamples(capped, capped.periods[0].capped), ['u:i2', 'u:i3', 'u:i4']);
    // Held-out targets, released ones and the next period are untouched; popularity counts every training target.
    for (const role of ['valid', 'test', 'released'] as const) {
      for (const t of [0, 1]) assert.deepEqual(describeSamples(capped, capped.periods[t][role]), describeSamples(full, full.periods[t][role]), `${role} P${t}`);
    }
    assert.deepEqual(capped.popularity(1), full.popularity(1));
    assert.equal(capped.trainingUpTo(1).length, full.trainingUpTo(1).length - 3);
    assert.throws(() => new PeriodSplit(ds, { maxTrainPerUser: -1 }), { message: 'maxTrainPerUser must be an integer >= 0 (0 = all), got -1' });
  });

  it('cuts by time into equal intervals', () => {
    const ts = Float64Array.from([0, 10, 20, 30, 40, 50, 60, 70, 80, 100]);
    assert.deepEqual(cutBoundaries(ts, { ...DEFAULT_PERIODS, base: 0.5, periods: 2, cut: 'time' }), [0, 5, 8, 10]);
  });

  it('rejects bad options with a clear message', () => {
    assert.throws(() => new PeriodSplit(d, { base: 1.5 }), { message: 'base must be in (0, 1), got 1.5' });
    assert.throws(() => new PeriodSplit(d, { periods: -1 }), { message: 'periods must be an integer in [0, 250], got -1' });
    const unsorted = new Dataset('u', ['a'], ['x', 'y'], ['', ''], Int32Array.of(0, 0), Int32Array.of(0, 1), Float64Array.of(2, 1), null);
    assert.throws(() => new PeriodSplit(unsorted), /chronologically sorted/);
  });
});

describe('period protocol on the embedded Beauty data', async () => {
  const { dataset: raw } = await loadDataset({ data: 'beauty' });
  const { dataset } = cleanDataset(raw);
  const split = new PeriodSplit(dataset, { periods: 3, base: 0.6 });

  it('loads 22,363 users, 12,101 items and 198,502 interactions', () => {
    assert.equal(raw.numUsers, 22363);
    assert.equal(raw.numItems, 12101);
    assert.equal(raw.numInteractions, 198502);
  });

  it('never trains on a test or validation target, at that period or any later one', () => {
    for (let t = 0; t < split.numPeriods; t++) {
      const trained = new Set(split.trainingUpTo(t).map((s) => s.row));
      for (let later = t; later < split.numPeriods; later++) {
        for (let u = 0; u < dataset.numUsers; u++) {
          const { test, valid } = split.heldOut(u, later);
          const rows = split.userRows[u];
          if (test >= 0) assert.ok(!trained.has(rows[test]), `test target of user ${u} at P${later} trained by P${t}`);
          if (valid >= 0) assert.ok(!trained.has(rows[valid]), `validation target of user ${u} at P${later} trained by P${t}`);
        }
      }
    }
  });

  it('trains, up to each period, on every interaction that has a history and is not held out', () => {
    for (let t = 0; t < split.numPeriods; t++) {
      const trained = split.trainingUpTo(t).map((s) => s.row);
      assert.equal(new Set(trained).size, trained.length, 'a training target appears twice');
      let expected = 0;
      for (let u = 0; u < dataset.numUsers; u++) {
        const n = split.rowsUpTo(u, t);
        const { test, valid } = split.heldOut(u, t);
        for (let pos = 1; pos < n; pos++) if (pos !== test && pos !== valid) expected++;
      }
      assert.equal(trained.length, expected);
      for (const r of trained) assert.ok(r < split.boundaries[t + 1]);
    }
  });

  it('agrees with an independent count of user groups per period', () => {
    // Independent of the library: raw CSV text, our own sort, our own cut and our own group rules.
    const text = gunzipSync(readFileSync(join(PACKAGE_ROOT, 'data/amazon-beauty-2014-5core/interactions.csv.gz'))).toString('utf8');
    const lines = text.trim().split('\n').slice(1).map((l, i) => {
      const [u, , ts] = l.split(',');
      return { u, ts: Number(ts), i };
    });
    lines.sort((x, y) => x.ts - y.ts || x.i - y.i);
    const n = lines.length;
    const cuts = [0, Math.round(0.6 * n)];
    for (let k = 1; k <= 3; k++) cuts.push(cuts[1] + Math.round((k * (n - cuts[1])) / 3));
    const periodsOf = new Map<string, number[]>();
    lines.forEach((x, r) => {
      let p = 0;
      while (r >= cuts[p + 1]) p++;
      if (!periodsOf.has(x.u)) periodsOf.set(x.u, []);
      periodsOf.get(x.u)!.push(p);
    });
    for (let t = 1; t <= 3; t++) {
      const count: Record<string, number> = { active: 0, inactive: 0, new: 0, short: 0 };
      for (const ps of periodsOf.values()) {
        const upTo = ps.filter((p) => p <= t);
        if (upTo.length < 2) continue; // no history before the test target
        const before = ps.filter((p) => p < t).length;
        const last = upTo[upTo.length - 1];
        const g = last < t ? 'inactive' : before === 0 ? 'new' : before >= 2 ? 'active' : 'short';
        count[g]++;
      }
      const got = split.periods[t].groups;
      assert.deepEqual({ active: got.active, inactive: got.inactive, new: got.new, short: got.short }, count, `P${t}`);
    }
    assert.deepEqual(split.boundaries, cuts);
  });

  it('labels each test sample with the group it was counted in', () => {
    for (const p of split.periods) {
      const c: Record<UserGroup, number> = { base: 0, active: 0, inactive: 0, new: 0, short: 0 };
      for (const s of p.test) c[s.group!]++;
      assert.deepEqual(c, p.groups);
    }
  });
});

describe('period cuts as dates, shared by every user sample', async () => {
  // A tie at the cut: rows 4 and 5 share timestamp 5, and a count cut at base 0.5 falls between them.
  const log: Array<[string, string, number]> = [
    ['a', 'i1', 1], ['b', 'i2', 2], ['c', 'i3', 3], ['a', 'i4', 4], ['b', 'i5', 5],
    ['c', 'i6', 5], ['a', 'i7', 6], ['b', 'i8', 7], ['c', 'i9', 8], ['a', 'i2', 9],
  ];
  const d = (await Dataset.fromStreams('ties', rows(log))).sortChronologically();

  it('turns count cuts into the first timestamp of each later period, ties going to the later period', () => {
    assert.deepEqual(cutBoundaries(d.timestamps, { ...DEFAULT_PERIODS, periods: 2, base: 0.5 }), [0, 5, 8, 10]);
    const dates = periodCutDates(d.timestamps, { periods: 2, base: 0.5 });
    assert.deepEqual(dates, [5, 8]);
    // Applied to the same data, the tie at timestamp 5 moves wholly into P1.
    assert.deepEqual(new PeriodSplit(d, { periods: 2, base: 0.5, cutDates: dates }).boundaries, [0, 4, 8, 10]);
  });

  it('places a sample by the dates, not by its own counts', () => {
    const sample = cleanDataset(d, { kcore: 0, sampleUsers: 2, sampleSeed: 1 });
    assert.equal(sample.population.numInteractions, 10);
    assert.ok(sample.dataset.numInteractions < 10);
    const dates = periodCutDates(sample.population.timestamps, { periods: 2, base: 0.5 });
    const split = new PeriodSplit(sample.dataset, { periods: 2, base: 0.5, cutDates: dates });
    const ts = sample.dataset.timestamps;
    for (let r = 0; r < ts.length; r++) {
      const want = ts[r] < 5 ? 0 : ts[r] < 8 ? 1 : 2;
      assert.equal(split.periodOf(r), want, `row ${r} at ${ts[r]}`);
    }
  });

  it('rejects dates that do not fit the periods', () => {
    assert.throws(() => new PeriodSplit(d, { periods: 2, cutDates: [4] }), /cutDates: expected 2 dates \(one per period after P0\), got 1/);
    assert.throws(() => new PeriodSplit(d, { periods: 2, cutDates: [7, 4] }), /cutDates: dates must be ascending numbers, got 7, 4/);
  });
});

describe('loadSplit on a user sample of the embedded Beauty data', async () => {
  const { loadSplit } = await import('./prepare.js');
  const whole = await loadSplit({ data: 'beauty' });
  const sample = await loadSplit({ data: 'beauty' }, { sampleUsers: 250 });

  it('shares the whole data\'s cut dates, so no sample row sits in another period than in the whole data', () => {
    const dates = periodCutDates(whole.dataset.timestamps, DEFAULT_PERIODS);
    assert.deepEqual(sample.split.options.cutDates, dates);
    assert.deepEqual(whole.split.options.cutDates, dates);
    const ts = sample.dataset.timestamps;
    for (let r = 0; r < ts.length; r++) {
      let want = 0;
      while (want < dates.length && ts[r] >= dates[want]) want++;
      if (sample.split.periodOf(r) !== want) assert.fail(`row ${r} at ${ts[r]}: P${sample.split.periodOf(r)}, the whole data's dates say P${want}`);
    }
    // The sample's own count cut would end P0 elsewhere (2013-10-11 against the whole data's 2013-09-28 at 250 users).
    const own = cutBoundaries(ts, DEFAULT_PERIODS)[1];
    assert.notEqual(ts[own], dates[0]);
  });
});
