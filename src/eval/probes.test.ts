import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CandidateSampler } from '../data/candidates.js';
import { Dataset } from '../data/dataset.js';
import { PeriodSplit } from '../data/periods.js';
import { loadSplit } from '../data/prepare.js';
import { neverTrainedOnly, probeBoundCheck, probeResults, wilsonInterval } from './probes.js';

describe('probes on the embedded Beauty data', async () => {
  // The probe bound of docs/evaluation.md: on the sets the models rank, no model-free ranking (popularity,
  // least popular first, most recently first seen first) gets outside 0.5x to 1.5x of random's HR@1, in
  // every period, and the positive is never the only never-trained item. The first protocol ('popularity')
  // fails the same check, which shows the check can fail.
  // The samples share the whole data's cut dates, as every command's do (loadSplit).
  for (const users of [250, 3000]) {
    const { split } = await loadSplit({ data: 'beauty' }, { sampleUsers: users, sampleSeed: 42 }, { periods: 3 });
    const cs = new CandidateSampler(split);
    const probes = async (sampler: 'matched' | 'popularity', t: number) =>
      probeResults(split, t, { sampler, size: 20, seed: 42, candidates: (s) => cs.candidates(s, t, 'test', { sampler, size: 20, seed: 42 }) });

    it(`keeps every probe within 0.5x-1.5x of random's HR@1 at ${users} users, in every period`, async () => {
      for (let t = 0; t < split.numPeriods; t++) {
        const r = await probes('matched', t);
        for (const name of ['popularity', 'least popular first', 'most recently first seen']) {
          const hr1 = r[name].groups.all!.metrics['HR@1'];
          assert.ok(hr1 >= 0.025 && hr1 <= 0.075, `P${t} ${name}: HR@1 ${hr1.toFixed(4)} (random 0.05)`);
        }
        assert.equal(r['never-trained only'].groups.all!.metrics.share, 0, `P${t}`);
      }
    });

    it(`shows the leak of the first protocol at ${users} users`, async () => {
      const r = await probes('popularity', 0);
      assert.ok(r['least popular first'].groups.all!.metrics['HR@1'] > 0.075);
    });
  }

});

describe('probes on hand-made sets', () => {
  it('popularity, least popular first, most recently first seen and the never-trained share, counted by hand', async () => {
    // One period. Training targets are every interaction but each user's first (no history), latest (test)
    // and latest-but-one (validation): only u's and w's "a" at times 2 and 7, so a is trained twice and
    // every other item never. First rows: c 0, a 1, x 2, d 4, f 5, b 8, e 9. Tests: u -> b, v -> e, w -> d.
    async function* log() {
      const rows: [string, string, number][] = [
        ['u', 'c', 1], ['u', 'a', 2], ['u', 'x', 3], ['v', 'a', 4], ['v', 'd', 5], ['w', 'f', 6],
        ['w', 'a', 7], ['w', 'c', 9], ['u', 'b', 10], ['v', 'e', 11], ['w', 'd', 12],
      ];
      for (const [user, item, timestamp] of rows) yield { user, item, timestamp };
    }
    const d = (await Dataset.fromStreams('x', log())).sortChronologically();
    const split = new PeriodSplit(d, { periods: 0, base: 1 });
    const id = (x: string) => d.itemIds.indexOf(x);
    const name = (i: number) => d.itemIds[i];
    assert.deepEqual(Array.from(split.popularity(0), (n, i) => `${name(i)}${n}`).sort(), ['a2', 'b0', 'c0', 'd0', 'e0', 'f0', 'x0']);
    assert.deepEqual(Array.from(split.firstSeen(), (r, i) => `${name(i)}${r}`).sort(), ['a1', 'b8', 'c0', 'd4', 'e9', 'f5', 'x2']);
    const samples = split.periods[0].test;
    assert.deepEqual(samples.map((s) => `${d.userIds[s.user]}${name(s.item)}`).sort(), ['ub', 've', 'wd']);
    // u: b ties e on count (0), e is newer. v: e ties x on count, e is newer. w: d is less popular and newer
    // than a, and the only never-trained item.
    const sets: Record<string, string[]> = { u: ['b', 'e'], v: ['e', 'x'], w: ['d', 'a'] };
    const candidates = (s: (typeof samples)[number]) => sets[d.userIds[s.user]].map(id);
    const r = await probeResults(split, 0, { size: 2, candidates });
    const hr1 = (k: string) => r[k].groups.all!.metrics['HR@1'];
    assert.equal(r.popularity.groups.all!.users, 3);
    assert.ok(Math.abs(hr1('popularity') - (0.5 + 0.5 + 0) / 3) < 1e-12);
    assert.ok(Math.abs(hr1('least popular first') - (0.5 + 0.5 + 1) / 3) < 1e-12);
    assert.ok(Math.abs(hr1('most recently first seen') - (0 + 1 + 1) / 3) < 1e-12);
    assert.ok(Math.abs(r['never-trained only'].groups.all!.metrics.share - 1 / 3) < 1e-12);
    assert.deepEqual(neverTrainedOnly(split, 0, samples, candidates).groups.base, { users: 3, metrics: { share: 1 / 3 } });
  });
});

describe('the probe bound at a given number of sets', () => {
  it('gives the Wilson 95% interval (values from the closed form, computed independently)', () => {
    const [a, b] = wilsonInterval(0.05, 67);
    assert.ok(Math.abs(a - 0.018088) < 1e-5 && Math.abs(b - 0.130717) < 1e-5, `${a} ${b}`);
    const [c, d] = wilsonInterval(0, 100);
    assert.equal(c, 0);
    assert.ok(Math.abs(d - 0.036995) < 1e-5, `${d}`);
  });

  it('tells a probe at the bound, one that n sets cannot tell from it, and one that misses it', () => {
    assert.equal(probeBoundCheck(0.05, 67, 0.05), 'within');
    assert.equal(probeBoundCheck(0.075, 67, 0.05), 'within');
    // 7 of 67 sets (0.104): above 1.5x random, but its interval [0.052, 0.200] reaches the bound.
    assert.equal(probeBoundCheck(7 / 67, 67, 0.05), 'noise');
    assert.equal(probeBoundCheck(1 / 76, 76, 0.05), 'noise');
    // The first protocol's least popular first at 250 users: 0.90, interval [0.857, 0.931].
    assert.equal(probeBoundCheck(0.9, 250, 0.05), 'outside');
    assert.equal(probeBoundCheck(0, 1000, 0.05), 'outside');
  });
});
