import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Dataset } from '../data/dataset.js';
import { PeriodSplit } from '../data/periods.js';
import { evaluate, popularityScorer, randomResult, resultsMarkdown } from './evaluate.js';

async function* log() {
  // 30 users; item "hot" is bought by everyone in P0, each user's test target is "hot" or a rare item.
  for (let u = 0; u < 30; u++) {
    yield { user: `u${u}`, item: `a${u}`, timestamp: u };
    yield { user: `u${u}`, item: `b${u % 7}`, timestamp: 100 + u };
    yield { user: `u${u}`, item: u % 3 === 0 ? `rare${u}` : 'hot', timestamp: 200 + u };
  }
  for (let u = 0; u < 30; u++) yield { user: `w${u}`, item: 'hot', timestamp: 50 + u };
  for (let u = 0; u < 30; u++) yield { user: `w${u}`, item: `c${u % 5}`, timestamp: 60 + u };
}

describe('evaluate', async () => {
  const d = (await Dataset.fromStreams('t', log())).sortChronologically();
  const split = new PeriodSplit(d, { periods: 1, base: 0.7 });

  it('a perfect scorer hits every set, a constant one matches the random expectation', async () => {
    const perfect = await evaluate(split, 0, (s, cand) => cand.map((i) => (i === s.item ? 1 : 0)), { size: 5 });
    assert.equal(perfect.groups.all!.metrics['HR@1'], 1);
    const flat = await evaluate(split, 0, (_s, cand) => cand.map(() => 0), { size: 5 });
    const rnd = randomResult(split, 0, { size: 5 });
    for (const k of Object.keys(rnd.groups.all!.metrics)) {
      assert.ok(Math.abs(flat.groups.all!.metrics[k] - rnd.groups.all!.metrics[k]) < 1e-12, k);
    }
    assert.equal(flat.groups.all!.users, split.periods[0].test.length);
  });

  it('reports each group and "all", with counts that add up', async () => {
    const r = await evaluate(split, 1, popularityScorer(split, 1), { size: 5 });
    const parts = (['active', 'inactive', 'new', 'short'] as const).reduce((a, g) => a + (r.groups[g]?.users ?? 0), 0);
    assert.equal(r.groups.all!.users, parts);
    const md = resultsMarkdown({ popularity: r });
    assert.match(md, /^\| model \| group \| users \| HR@1 \| HR@3 \| NDCG@3 \| HR@10 \| NDCG@10 \|/);
    assert.match(md, /\| popularity \| all \| \d+ \| /);
  });

  it('rejects a scorer that returns the wrong number of scores', async () => {
    await assert.rejects(evaluate(split, 0, () => [1]), { message: 'scorer returned 1 scores for 20 candidates' });
  });
});
