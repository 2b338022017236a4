import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Dataset } from '../data/dataset.js';
import { PeriodSplit } from '../data/periods.js';
import { evaluateFull, evaluateTwoStage, fullRank, randomFull, rankMetrics, topK } from './full-ranking.js';

/** One period, so every item exists by its end. Test targets: u -> c (history a, b), v -> b (history d), w -> a (history e). */
async function tinySplit() {
  async function* log() {
    const rows: [string, string, number][] = [['u', 'a', 1], ['v', 'd', 2], ['u', 'b', 3], ['v', 'b', 4], ['u', 'c', 5], ['w', 'e', 6], ['w', 'a', 7]];
    for (const [user, item, timestamp] of rows) yield { user, item, timestamp };
  }
  const d = (await Dataset.fromStreams('x', log())).sortChronologically();
  return { d, split: new PeriodSplit(d, { periods: 0, base: 1 }) };
}

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

describe('full-catalogue ranking', () => {
  it('rank metrics by hand: rank 0, rank 3, ties and a miss', () => {
    close(rankMetrics(0, 0, [10])['NDCG@10'], 1);
    close(rankMetrics(3, 0, [10])['NDCG@10'], 1 / Math.log2(5));
    // Rank uniform on 9..10 with k = 10: half a hit at rank 9.
    close(rankMetrics(9, 1, [10])['HR@10'], 0.5);
    close(rankMetrics(9, 1, [10])['NDCG@10'], 0.5 / Math.log2(11));
    assert.deepEqual(rankMetrics(Infinity, 0, [10, 20]), { 'HR@10': 0, 'NDCG@10': 0, 'HR@20': 0, 'NDCG@20': 0 });
  });

  it('counts only eligible items, and refuses NaN scores', () => {
    assert.deepEqual(fullRank([5, 9, 3, 9, 1], 2, (i) => i !== 1), { greater: 2, equal: 0 });
    assert.deepEqual(fullRank([5, 3, 3, 9], 1, () => true), { greater: 2, equal: 1 });
    assert.throws(() => fullRank([1, NaN, 0], 0, () => true), /^RangeError: item 1 has a NaN score$/);
  });

  it('top-k: best first, eligible only, ties to the lower index', () => {
    assert.deepEqual(topK([0.1, 0.9, 0.5, 0.9, 0.7, 0.2], 3, (i) => i !== 4), [1, 3, 2]);
    assert.deepEqual(topK([1, 2], 5, () => true), [1, 0]);
  });

  it('leaves out what the user touched before the target and items that do not exist yet', async () => {
    // One period, so every item exists by its end and only touched items are left out. Test targets:
    // u -> c (history a, b), v -> b (history d), w -> a (history e).
    const { d, split } = await tinySplit();
    const id = (x: string) => d.itemIds.indexOf(x);
    // Scores: a 5, b 4, c 3, d 2, e 1 for everyone.
    const scores = new Float32Array(d.numItems);
    for (const [x, v] of [['a', 5], ['b', 4], ['c', 3], ['d', 2], ['e', 1]] as const) scores[id(x)] = v;
    const r = await evaluateFull(split, 0, (samples) => samples.map(() => scores), { ks: [1, 2] });
    // u -> c: a and b touched, so c is first. v -> b: a is above (d touched). w -> a: nothing above it.
    const byUser = new Map<string, number>();
    for (const s of split.periods[0].test) byUser.set(d.userIds[s.user], s.item);
    assert.deepEqual([...byUser].sort(), [['u', id('c')], ['v', id('b')], ['w', id('a')]]);
    close(r.groups.all!.metrics['HR@1'], 2 / 3);
    close(r.groups.all!.metrics['NDCG@2'], (1 + 1 / Math.log2(3) + 1) / 3);
    assert.equal(r.groups.all!.users, 3);
    assert.equal(r.candidates, 5);
    // Two-stage with depth 1: the retriever keeps only its best eligible item; the re-ranker cannot help v.
    const two = await evaluateTwoStage(split, 0, (samples) => samples.map(() => scores), (_s, lists) => lists.map((l) => l.map(() => 0)), { depth: 1, ks: [1] });
    close(two.groups.all!.metrics['recall@1'], 2 / 3);
    close(two.groups.all!.metrics['HR@1'], 2 / 3);
    // Depth 2 and a re-ranker that reverses the retriever: u's list is [c, d] -> d first; v's [a, b] -> b.
    const rev = await evaluateTwoStage(split, 0, (samples) => samples.map(() => scores), (_s, lists) => lists.map((l) => l.map((i) => -scores[i])), { depth: 2, ks: [1] });
    close(rev.groups.all!.metrics['recall@2'], 1);
    close(rev.groups.all!.metrics['HR@1'], 1 / 3);
  });

  it('gives random\'s expectation by hand, equal to ranking with every score tied', async () => {
    const { d, split } = await tinySplit();
    const r = randomFull(split, 0, { ks: [1, 2] });
    // u (c; a, b touched): 3 eligible items; v (b; d touched): 4; w (a; e touched): 4.
    close(r.groups.all!.metrics['HR@1'], (1 / 3 + 1 / 4 + 1 / 4) / 3);
    close(r.groups.all!.metrics['NDCG@2'], ((1 + 1 / Math.log2(3)) / 3 + (2 * (1 + 1 / Math.log2(3))) / 4) / 3);
    const tied = await evaluateFull(split, 0, (samples) => samples.map(() => new Float32Array(d.numItems)), { ks: [1, 2] });
    for (const k of ['HR@1', 'HR@2', 'NDCG@1', 'NDCG@2']) close(r.groups.all!.metrics[k], tied.groups.all!.metrics[k]);
  });
});
