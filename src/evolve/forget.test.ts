import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Dataset } from '../data/dataset.js';
import { PeriodSplit } from '../data/periods.js';
import { SASRec } from '../models/sasrec.js';
import { filteredHistory, forget } from './forget.js';

/**
 * A constructed history: the SASRec is replaced by a stand-in whose representation is the embedding of
 * "makeup" items, so items of the old "garden" taste score low and must be the ones forgotten.
 */
async function makeSplit() {
  async function* log() {
    // u0 (active): 5 garden items and 5 makeup items before P1, then 2 makeup items in P1.
    let ts = 0;
    const old = ['g0', 'm0', 'g1', 'm1', 'g2', 'm2', 'g3', 'm3', 'g4', 'm4'];
    for (const it of old) yield { user: 'u0', item: it, timestamp: ts++ };
    for (let v = 1; v <= 6; v++) for (let k = 0; k < 3; k++) yield { user: `v${v}`, item: `m${k}`, timestamp: ts++ };
    yield { user: 'u0', item: 'm5', timestamp: 1000 };
    yield { user: 'u0', item: 'm6', timestamp: 1001 };
    yield { user: 'u0', item: 'm7', timestamp: 1002 };
  }
  const d = (await Dataset.fromStreams('forget', log())).sortChronologically();
  return new PeriodSplit(d, { periods: 1, base: 0.9 });
}

function standIn(split: PeriodSplit): SASRec {
  const m = new SASRec({ numItems: split.dataset.numItems, hidden: 4, maxLen: 20, dropout: 0 });
  const E = m.params.item_emb.data;
  split.dataset.itemIds.forEach((id, i) => {
    // Garden items point one way, makeup items the other; the index breaks ties within a taste.
    E.set(id.startsWith('g') ? [-1, 0, 0, i * 1e-3] : [1, 0, 0, i * 1e-3], (i + 1) * 4);
  });
  m.representations = (hs) => hs.map(() => Float32Array.of(1, 0, 0, 0));
  return m;
}

describe('Forget', () => {
  it('removes the lowest-scoring share of the pre-period history, never Pt items', async () => {
    const split = await makeSplit();
    const u0 = split.dataset.userIds.indexOf('u0');
    assert.equal(split.periods[1].test.find((s) => s.user === u0)?.group, 'active');
    const f = forget(split, 1, standIn(split), { ratio: 0.3 });
    const gone = [...f.removed.get(u0)!].map((r) => split.dataset.itemIds[split.dataset.items[r]]).sort();
    assert.deepEqual(gone, ['g0', 'g1', 'g2']); // 30% of 10 = 3, all garden
    assert.equal(f.itemsRemoved, 3);
    assert.equal(f.usersFiltered, 1);
    const test = split.periods[1].test.find((s) => s.user === u0)!;
    // Chronological history g0 m0 g1 m1 g2 m2 g3 m3 g4 m4 | m5 m6 (m7 is the test target), less g0-g2.
    assert.deepEqual(
      filteredHistory(split, f, test, 10).map((i) => split.dataset.itemIds[i]),
      ['m0', 'm1', 'm2', 'g3', 'm3', 'g4', 'm4', 'm5', 'm6'],
    );
    assert.deepEqual(filteredHistory(split, f, test, 3).map((i) => split.dataset.itemIds[i]), ['m4', 'm5', 'm6']);
  });

  it('keeps at least minHistory items and leaves inactive users alone', async () => {
    const split = await makeSplit();
    const f = forget(split, 1, standIn(split), { ratio: 0.9, minHistory: 11 });
    const u0 = split.dataset.userIds.indexOf('u0');
    // 10 old + 1 visible in P1 (m5; m6 is validation, m7 test): at most 0 can go while keeping 11.
    assert.equal(f.removed.get(u0), undefined);
    const f2 = forget(split, 1, standIn(split), { ratio: 0.9, minHistory: 5 });
    assert.equal(f2.removed.get(u0)!.size, 6); // 11 visible - 5 = 6 < 9
    for (const v of ['v1', 'v2']) assert.equal(f2.removed.get(split.dataset.userIds.indexOf(v)), undefined);
  });

  it('the ablations remove as many items, the oldest or a seeded random draw, without a SASRec', async () => {
    const split = await makeSplit();
    const u0 = split.dataset.userIds.indexOf('u0');
    const names = (f: ReturnType<typeof forget>) => [...f.removed.get(u0)!].map((r) => split.dataset.itemIds[split.dataset.items[r]]).sort();
    assert.deepEqual(names(forget(split, 1, null, { ratio: 0.3, select: 'oldest' })), ['g0', 'g1', 'm0']);
    const a = forget(split, 1, null, { ratio: 0.3, select: 'random', seed: 4 });
    assert.equal(a.itemsRemoved, 3, 'the same budget as the method');
    assert.deepEqual(names(forget(split, 1, null, { ratio: 0.3, select: 'random', seed: 4 })), names(a), 'seeded');
    const draws = new Set([4, 5, 6, 7, 8, 9].map((seed) => names(forget(split, 1, null, { ratio: 0.3, select: 'random', seed })).join()));
    assert.ok(draws.size > 1, 'other seeds draw other items');
    for (const d of draws) for (const n of d.split(',')) assert.ok(/^[gm][0-4]$/.test(n), `${n}: only pre-period items go`);
    assert.throws(() => forget(split, 1, null, { ratio: 0.3 }), /^RangeError: forget: selecting by SASRec needs a SASRec \(select 'random' or 'oldest' does not\)$/);
  });
});
