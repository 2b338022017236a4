import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decoderPreset } from '../io/index.js';
import { Decoder } from '../nn/decoder.js';
import { padBatch } from '../nn/batch.js';
import { countTargets, LmTrainer, type LmBatch } from './lm-trainer.js';

const dir = mkdtempSync(join(tmpdir(), 'evorec-lmtrainer-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const cfg = decoderPreset('tiny', { vocabSize: 100 });

function batchOf(rows: number[][], promptLen: number[]): LmBatch {
  const p = padBatch(rows, { padId: 1, side: 'right' });
  const labels = Int32Array.from(p.ids);
  rows.forEach((r, b) => {
    for (let t = 0; t < p.seqLen; t++) if (t < promptLen[b] || t >= r.length) labels[b * p.seqLen + t] = -100;
  });
  return { ids: p.ids, labels, batch: p.batch, seqLen: p.seqLen, attentionMask: p.attentionMask };
}

const rows = [[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]];
const full = batchOf(rows, [2, 3]);
const half = [batchOf([rows[0]], [2]), batchOf([rows[1]], [3])];

describe('LmTrainer', () => {
  it('counts only label tokens (shifted), prompt and padding excluded', () => {
    assert.equal(countTargets(full), 4 + 3);
    assert.equal(countTargets(batchOf([[5, 6, 7], [8, 9, 10, 11, 12]], [1, 1])), 2 + 4);
  });

  it('gradient accumulation over two half batches equals one step on the whole batch', () => {
    const a = new Decoder(cfg, { seed: 3 });
    const b = new Decoder(cfg, { seed: 3 });
    const ta = new LmTrainer(a, { lr: 1e-2, totalSteps: 4, schedule: 'constant' });
    const tb = new LmTrainer(b, { lr: 1e-2, totalSteps: 4, schedule: 'constant' });
    const ra = ta.trainStep(full);
    const rb = tb.trainStep(half);
    assert.ok(Math.abs(ra.loss - rb.loss) < 1e-5);
    assert.equal(ra.tokens, rb.tokens);
    // compare the (clipped) gradients: Adam's first step is ~lr * sign(g), so near-zero entries would flip
    const pa = a.namedParameters(), pb = b.namedParameters();
    for (let i = 0; i < pa.length; i++) {
      const ga = pa[i][1].grad!, gb = pb[i][1].grad!;
      let num = 0, den = 0;
      for (let j = 0; j < ga.length; j++) {
        num = Math.max(num, Math.abs(ga[j] - gb[j]));
        den = Math.max(den, Math.abs(ga[j]));
      }
      assert.ok(num <= 1e-5 * den + 1e-9, `${pa[i][0]}: ${num} vs ${den}`);
    }
  });

  it('loss decreases on a repeated batch; evaluate is token-weighted; save/load restores weights, moments and step', () => {
    const m = new Decoder(cfg, { seed: 4 });
    const tr = new LmTrainer(m, { lr: 5e-3, totalSteps: 20, warmupSteps: 2 });
    const first = tr.trainStep(full).loss;
    for (let i = 0; i < 15; i++) tr.trainStep(full);
    const ev = tr.evaluate([full]);
    assert.ok(ev.loss < first - 1, `${first} -> ${ev.loss}`);
    const evHalves = tr.evaluate(half);
    assert.ok(Math.abs(evHalves.loss - ev.loss) < 1e-5);
    assert.equal(evHalves.tokens, 7);
    tr.save(join(dir, 'state.ckpt'), { note: 'x' });
    const next = new Decoder(cfg, { seed: 99 });
    const tr2 = new LmTrainer(next, { lr: 5e-3, totalSteps: 20, warmupSteps: 2 });
    assert.deepEqual(tr2.load(join(dir, 'state.ckpt')), { note: 'x' });
    assert.equal(tr2.step, 16);
    const r1 = tr.trainStep(full), r2 = tr2.trainStep(full);
    assert.equal(r1.loss, r2.loss);
    assert.deepEqual(next.params['model.norm.weight'].data, m.params['model.norm.weight'].data);
  });

  it('refuses to train a fully frozen model', () => {
    const m = new Decoder(cfg).freezeBase();
    assert.throws(() => new LmTrainer(m, { lr: 1e-3, totalSteps: 1 }), /nothing to train/);
  });
});
