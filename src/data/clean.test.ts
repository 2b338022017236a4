import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cleanDataset } from './clean.js';
import { Dataset } from './dataset.js';

async function build(rows: Array<[string, string, number, number?]>, titles: Record<string, string> = {}) {
  async function* inter() {
    for (const [user, item, timestamp, rating] of rows) yield { user, item, timestamp, ...(rating !== undefined ? { rating } : {}) };
  }
  async function* items() {
    for (const [item, title] of Object.entries(titles)) yield { item, title };
  }
  return Dataset.fromStreams('t', inter(), items());
}

const show = (d: Dataset) => Array.from(d.users, (u, r) => `${d.userIds[u]}:${d.itemIds[d.items[r]]}@${d.timestamps[r]}`);

describe('cleaning', () => {
  it('sorts by time keeping file order for ties, and keeps the first of repeated pairs', async () => {
    const d = await build([['u', 'b', 5], ['u', 'a', 3], ['v', 'a', 3], ['u', 'a', 1], ['u', 'c', 3]], { a: 'A', b: 'B', c: 'C' });
    const { dataset, report } = cleanDataset(d);
    assert.deepEqual(show(dataset), ['u:a@1', 'v:a@3', 'u:c@3', 'u:b@5']);
    assert.equal(report.removedDuplicates, 1);
    assert.deepEqual(show(cleanDataset(d, { dedupe: false }).dataset), ['u:a@1', 'u:a@3', 'v:a@3', 'u:c@3', 'u:b@5']);
  });

  it('drops low ratings', async () => {
    const d = await build([['u', 'a', 1, 5], ['u', 'b', 2, 2], ['u', 'c', 3, 4]], { a: 'A', b: 'B', c: 'C' });
    const { dataset, report } = cleanDataset(d, { minRating: 4 });
    assert.deepEqual(show(dataset), ['u:a@1', 'u:c@3']);
    assert.equal(report.removedByMinRating, 1);
  });

  it('gives untitled items a placeholder or drops them, and counts them', async () => {
    const d = await build([['u', 'a', 1], ['u', 'b', 2]], { a: 'Alpha' });
    const kept = cleanDataset(d);
    assert.deepEqual(kept.dataset.titles, ['Alpha', 'Item b']);
    assert.equal(kept.report.untitledItems, 1);
    const dropped = cleanDataset(d, { untitled: 'drop' });
    assert.deepEqual(show(dropped.dataset), ['u:a@1']);
    assert.equal(dropped.report.removedUntitled, 1);
    assert.deepEqual(d.titles, ['Alpha', ''], 'the input dataset is not modified');
  });

  it('iterates the k-core filter until it is stable', async () => {
    // k = 2: item z has one interaction, so w loses one and drops below 2, which then removes item y's second.
    const rows: Array<[string, string, number]> = [
      ['u', 'x', 1], ['u', 'y', 2], ['v', 'x', 3], ['v', 'y', 4], ['w', 'y', 5], ['w', 'z', 6],
    ];
    const { dataset, report } = cleanDataset(await build(rows), { kcore: 2 });
    assert.deepEqual(show(dataset), ['u:x@1', 'u:y@2', 'v:x@3', 'v:y@4']);
    assert.equal(report.removedByKcore, 2);
    assert.equal(report.kcoreRounds, 2);
    assert.deepEqual(report.after, { users: 2, items: 2, interactions: 4 });
  });

  it('keeps a fixed user sample, independent of row order', async () => {
    const rows: Array<[string, string, number]> = [];
    for (let u = 0; u < 50; u++) for (let j = 0; j < 3; j++) rows.push([`u${u}`, `i${(u + j) % 7}`, u * 10 + j]);
    const a = cleanDataset(await build(rows), { sampleUsers: 10, sampleSeed: 3 });
    const b = cleanDataset(await build([...rows].reverse()), { sampleUsers: 10, sampleSeed: 3 });
    assert.equal(a.dataset.numUsers, 10);
    assert.deepEqual([...a.dataset.userIds].sort(), [...b.dataset.userIds].sort());
    assert.equal(a.report.removedBySample, 120);
    assert.notDeepEqual([...cleanDataset(await build(rows), { sampleUsers: 10, sampleSeed: 4 }).dataset.userIds].sort(), [...a.dataset.userIds].sort());
  });
});
