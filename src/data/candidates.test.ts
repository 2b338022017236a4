import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CandidateSampler, countBin } from './candidates.js';
import { cleanDataset } from './clean.js';
import { Dataset } from './dataset.js';
import { PeriodSplit } from './periods.js';
import { loadDataset } from './source.js';

describe('candidate sets on the embedded MovieLens data', async () => {
  const { dataset } = cleanDataset((await loadDataset({ data: 'movielens' })).dataset);
  const split = new PeriodSplit(dataset, { periods: 3 });

  for (const sampler of ['matched', 'uniform', 'popularity'] as const) {
    it(`${sampler}: exactly one positive, N distinct items, none touched by the user, all existing by the period's end`, () => {
      const cs = new CandidateSampler(split);
      for (const p of split.periods) {
        for (const s of [...p.test, ...p.valid]) {
          const c = cs.candidates(s, p.index, 'test', { sampler, size: 20, seed: 7 });
          assert.equal(c.length, 20);
          assert.equal(new Set(c).size, 20);
          assert.equal(c.filter((i) => i === s.item).length, 1);
          const touched = new Set(Array.from(split.userRows[s.user], (r) => dataset.items[r]));
          for (const i of c) if (i !== s.item) assert.ok(!touched.has(i), `user ${s.user} touched negative ${i}`);
          const end = split.boundaries[p.index + 1];
          for (const i of c) assert.ok(split.firstSeen()[i] < end, `item ${i} first appears after period ${p.index}`);
        }
      }
    });
  }

  it('is fixed by the seed and independent of the order users are asked in', () => {
    const p = split.periods[1];
    const a = new CandidateSampler(split);
    const b = new CandidateSampler(split);
    const forward = p.test.map((s) => a.candidates(s, 1, 'test'));
    const backward = [...p.test].reverse().map((s) => b.candidates(s, 1, 'test')).reverse();
    assert.deepEqual(forward, backward);
    const defaults = p.test.map((s) => a.candidates(s, 1, 'test', { seed: undefined, size: undefined }));
    assert.deepEqual(defaults, forward, 'options given as undefined fall back to the defaults');
    const other = p.test.map((s) => a.candidates(s, 1, 'test', { seed: 43 }));
    assert.notDeepEqual(forward, other);
  });

  it('draws popularity negatives in proportion to training counts', () => {
    const cs = new CandidateSampler(split);
    const pop = split.popularity(0);
    const drawn = new Float64Array(dataset.numItems);
    for (const s of split.periods[0].test) for (const i of cs.candidates(s, 0, 'test', { sampler: 'popularity' })) if (i !== s.item) drawn[i]++;
    // Items never trained on are never drawn; the most popular items are drawn far more than the median one.
    for (let i = 0; i < pop.length; i++) if (pop[i] === 0) assert.equal(drawn[i], 0);
    const order = Array.from(pop.keys()).sort((x, y) => pop[y] - pop[x]);
    const top = order.slice(0, 50).reduce((acc, i) => acc + drawn[i], 0) / 50;
    const mid = order.slice(2000, 2050).reduce((acc, i) => acc + drawn[i], 0) / 50;
    assert.ok(top > 10 * mid, `top ${top} vs middle ${mid}`);
  });

  it('falls back to whatever is left when the user touched almost everything', async () => {
    async function* log() {
      for (const item of ['a', 'b', 'c', 'd']) yield { user: 'u', item, timestamp: item.charCodeAt(0) };
      yield { user: 'v', item: 'e', timestamp: 200 };
      yield { user: 'v', item: 'a', timestamp: 201 };
    }
    const d = (await Dataset.fromStreams('x', log())).sortChronologically();
    const s = new PeriodSplit(d, { periods: 1, base: 0.5 });
    const u = s.periods[1].test.find((x) => d.userIds[x.user] === 'u')!;
    for (const sampler of ['matched', 'uniform', 'popularity'] as const) {
      const c = new CandidateSampler(s).candidates(u, 1, 'test', { size: 20, sampler });
      assert.deepEqual(c.map((i) => d.itemIds[i]).sort(), ['d', 'e'], sampler);
    }
  });
});

describe('the matched sampler on the embedded Beauty data', async () => {
  const { dataset: raw } = await loadDataset({ data: 'beauty' });

  it('draws negatives from the positive\'s count bin', () => {
    const { dataset } = cleanDataset(raw, { sampleUsers: 3000, sampleSeed: 42 });
    const split = new PeriodSplit(dataset, { periods: 3 });
    const cs = new CandidateSampler(split);
    const pop = split.popularity(1);
    let same = 0;
    let all = 0;
    for (const s of split.periods[1].test) {
      for (const i of cs.candidates(s, 1, 'test')) {
        if (i === s.item) continue;
        all++;
        if (countBin(pop[i]) === countBin(pop[s.item])) same++;
      }
    }
    assert.ok(same / all > 0.9, `${same} of ${all} negatives in the positive's bin`);
  });

  it('bins counts exactly below 8, then at most 25% wide', () => {
    assert.deepEqual([0, 1, 7, 8, 9, 10, 12, 13].map(countBin), [0, 1, 7, 8, 8, 9, 9, 10]);
    for (let c = 8; c < 5000; c++) {
      let lo = c;
      while (lo > 8 && countBin(lo - 1) === countBin(c)) lo--;
      assert.ok(c <= 1.25 * lo, `${c} shares a bin with ${lo}`);
    }
  });
});
