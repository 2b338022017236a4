import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Dataset } from '../data/dataset.js';
import { PeriodSplit } from '../data/periods.js';
import { evaluate } from '../eval/evaluate.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../data/test-utils/tmp.js';
import { SASRec } from './sasrec.js';
import { loadSASRec, saveSASRec } from './sasrec-io.js';
import { sasrecScorer, sasrecSequences, trainSASRec } from './sasrec-train.js';

/** Users walk a cycle of 12 items from a random start: the next item is always (last + 1) mod 12. */
async function cycleSplit(users = 120, len = 8) {
  async function* log() {
    let ts = 0;
    for (let u = 0; u < users; u++) {
      const start = (u * 5) % 12;
      for (let j = 0; j < len; j++) yield { user: `u${u}`, item: `i${(start + j) % 12}`, timestamp: ts++ };
    }
  }
  const d = (await Dataset.fromStreams('cycle', log())).sortChronologically();
  return new PeriodSplit(d, { periods: 1, base: 0.5 });
}

describe('SASRec', () => {
  it('scores the whole catalogue exactly as it scores candidate sets (one matrix product)', () => {
    const m = new SASRec({ numItems: 37, hidden: 16, maxLen: 6, dropout: 0 });
    const histories = [[1, 2, 3], [5], [7, 8, 9, 10, 11, 12, 13, 14]];
    const all = m.scoreAll(histories);
    const items = Array.from({ length: 37 }, (_, i) => i);
    const each = m.score(histories, histories.map(() => items));
    for (let b = 0; b < histories.length; b++) {
      assert.equal(all[b].length, 37);
      for (let i = 0; i < 37; i++) assert.ok(Math.abs(all[b][i] - each[b][i]) < 1e-4, `history ${b} item ${i}: ${all[b][i]} vs ${each[b][i]}`);
    }
  });

  it('restricted to part of its catalogue, scores the kept items exactly as the whole model does', () => {
    const whole = new SASRec({ numItems: 30, hidden: 16, maxLen: 8, dropout: 0 });
    // Perturb every weight so that no row or bias is at its initial value.
    whole.parameters().forEach((p, k) => p.data.forEach((x, i) => (p.data[i] = x + 0.01 * Math.sin(k * 7 + i))));
    whole.params.item_emb.data.fill(0, 0, 16);
    const kept = [17, 3, 25, 8, 0, 12];
    const part = whole.restrictedTo(kept);
    assert.equal(part.config.numItems, 6);
    const histories = [[0, 1, 2], [3, 5, 4, 1], [2]];
    const cands = [[0, 5, 2], [1, 3], [4, 0, 1, 2, 3, 5]];
    const got = part.score(histories, cands);
    const want = whole.score(histories.map((h) => h.map((j) => kept[j])), cands.map((c) => c.map((j) => kept[j])));
    got.forEach((g, b) => assert.deepEqual([...g], [...want[b]]));
    assert.throws(() => whole.restrictedTo([3, 30]), { message: 'restrictedTo: item 1 is 30, outside this model\'s catalogue [0, 30)' });
  });

  it('never labels a held-out target', async () => {
    const split = await cycleSplit();
    for (const t of [0, 1]) {
      for (const s of sasrecSequences(split, t)) {
        const { test, valid } = split.heldOut(s.user, t);
        assert.equal(s.items.length, test, 'inputs stop before the test target');
        if (valid > 0) assert.equal(s.labels[valid - 1], -1, 'the validation target is never a label');
      }
    }
  });

  it('gives the same scores whatever the batch composition (padding is masked)', async () => {
    const m = new SASRec({ numItems: 12, hidden: 16, maxLen: 6, dropout: 0 });
    const a = m.score([[1, 2, 3]], [[4, 5, 6]])[0];
    const b = m.score([[7, 8, 9, 10, 11, 0, 1], [1, 2, 3]], [[1, 2], [4, 5, 6]])[1];
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(a[j] - b[j]) < 1e-5, `${a[j]} vs ${b[j]}`);
  });

  it('reads only the last n items with a history of n (the equal-history comparison with an LLMRec)', async () => {
    const split = await cycleSplit(10, 8);
    const m = new SASRec({ numItems: split.dataset.numItems, hidden: 16, maxLen: 6, dropout: 0 });
    const samples = split.periods[1].test.slice(0, 4);
    const cands = samples.map(() => [0, 3, 7]);
    const by = (h: number) => sasrecScorer(m, split, 256, h).batch(samples, cands);
    // Histories of 6 and more items: the window of 2 is the last two of them, scored as such.
    assert.ok(samples.every((x) => split.history(x, 6).length >= 6));
    assert.deepEqual(by(2), m.score(samples.map((x) => split.history(x, 6).slice(-2)), cands));
    assert.notDeepEqual(by(2), by(6));
    // A window above maxLen reads maxLen items, as the default does.
    assert.deepEqual(by(50), sasrecScorer(m, split).batch(samples, cands));
  });

  it('learns a task with a known answer: the next item of a cycle', async () => {
    const split = await cycleSplit();
    const model = new SASRec({ numItems: split.dataset.numItems, hidden: 32, maxLen: 8, dropout: 0, seed: 1 });
    await trainSASRec(model, split, 0, { epochs: 40, batchSize: 32, lr: 5e-3, patience: 40 });
    const r = await evaluate(split, 0, sasrecScorer(model, split), { size: 10 });
    assert.ok(r.groups.all!.metrics['HR@1'] > 0.9, `HR@1 ${r.groups.all!.metrics['HR@1']}`);
  });

  it('trains at least minStepsPerEpoch steps an epoch, so a small split is learnt in few epochs', async () => {
    const split = await cycleSplit(40, 8); // P0 holds the first 20 users: 2 batches of 10 a pass
    const make = () => new SASRec({ numItems: split.dataset.numItems, hidden: 32, maxLen: 8, dropout: 0, seed: 1 });
    const run = async (minStepsPerEpoch: number) => {
      const model = make();
      const steps: number[] = [];
      const r = await trainSASRec(model, split, 0, { epochs: 3, batchSize: 10, lr: 1e-3, patience: 100, minStepsPerEpoch, onStep: (_, n) => steps.push(n) });
      const hr = (await evaluate(split, 0, sasrecScorer(model, split), { size: 10 })).groups.all!.metrics['HR@1'];
      return { hr, steps, samples: r.samples };
    };
    const onePass = await run(0);
    const many = await run(59);
    assert.deepEqual([...new Set(onePass.steps)], [2]);
    assert.equal(onePass.steps.length, 6);
    // 59 steps round up to whole passes: 30 passes of 2 batches, every pass over every training label.
    assert.deepEqual([...new Set(many.steps)], [60]);
    assert.equal(many.steps.length, 180);
    assert.equal(many.samples, 30 * onePass.samples);
    assert.ok(onePass.hr < 0.5, `6 steps: HR@1 ${onePass.hr}`);
    assert.ok(many.hr > 0.9, `180 steps: HR@1 ${many.hr}`);
  });

  it('resumes from its checkpoint to exactly the parameters of an uninterrupted run', async () => {
    const split = await cycleSplit(40, 6);
    const dir = tempDir();
    const make = () => new SASRec({ numItems: split.dataset.numItems, hidden: 16, maxLen: 6, dropout: 0, seed: 3 });
    const opts = { batchSize: 16, lr: 5e-3, patience: 100 };
    const straight = make();
    await trainSASRec(straight, split, 0, { ...opts, epochs: 4 });
    const resumed = make();
    const ckpt = join(dir, 'sasrec.ckpt');
    await trainSASRec(resumed, split, 0, { ...opts, epochs: 2, checkpoint: ckpt });
    const again = make(); // a fresh process: only the checkpoint carries the state
    const r = await trainSASRec(again, split, 0, { ...opts, epochs: 4, checkpoint: ckpt });
    assert.equal(r.epochs, 4);
    for (const k of Object.keys(straight.params)) assert.deepEqual(again.params[k].data, straight.params[k].data, k);
  });

  it('saves and loads a model folder with identical scores', async () => {
    const m = new SASRec({ numItems: 12, hidden: 16, maxLen: 6 });
    const dir = tempDir();
    const ids = Array.from({ length: 12 }, (_, i) => `item${i}`);
    await saveSASRec(dir, m, ids);
    const { model, itemIds } = await loadSASRec(dir);
    assert.deepEqual(itemIds, ids);
    assert.deepEqual(model.score([[1, 2, 3]], [[4, 5]]), m.score([[1, 2, 3]], [[4, 5]]));
  });

  it('refuses a folder whose config is above the limits or disagrees with its files, before allocating', async () => {
    const dir = tempDir();
    await saveSASRec(dir, new SASRec({ numItems: 12, hidden: 16, maxLen: 6 }), Array.from({ length: 12 }, (_, i) => `item${i}`));
    const cfgFile = join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    const withConfig = (patch: Record<string, unknown>) => writeFileSync(cfgFile, JSON.stringify({ ...cfg, ...patch }));
    withConfig({ numItems: 1e9 });
    await assert.rejects(loadSASRec(dir), /config\.json: field "numItems": must be an integer in \[1, 16777216\], got 1000000000/);
    withConfig({ hidden: 1 << 20 });
    await assert.rejects(loadSASRec(dir), /field "hidden": must be an integer in \[1, 4096\]/);
    withConfig({ numItems: 13 });
    await assert.rejects(loadSASRec(dir), /items\.json: must be an array of 13 item ids/);
    withConfig({ maxLen: 60 });
    await assert.rejects(loadSASRec(dir), /model\.safetensors: tensor "pos_emb" is 6 x 16, config\.json says 60 x 16/);
    writeFileSync(cfgFile, '{"model_type": "sasrec", secret');
    await assert.rejects(loadSASRec(dir), (e: Error) => /config\.json: invalid JSON at line 1/.test(e.message) && !e.message.includes('secret'));
  });
});
