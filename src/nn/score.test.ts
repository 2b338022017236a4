import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { noGrad } from '../core/index.js';
import { decoderPreset } from '../io/index.js';
import { Decoder } from './decoder.js';
import { scoreContinuations } from './score.js';

describe('scoreContinuations', () => {
  it('equals the log-likelihood from a full forward of prefix + continuation, in chunks with padding', () => {
    const cfg = decoderPreset('tiny', { vocabSize: 60 });
    const m = new Decoder(cfg, { seed: 8 });
    const prefix = [4, 8, 15, 16, 23];
    const conts = [[42], [7, 9, 11], [2, 3], [30, 31, 32, 33], [5, 5]];
    const r = scoreContinuations(m, prefix, conts, { chunk: 2 });
    const V = cfg.vocabSize;
    conts.forEach((c, i) => {
      const seq = [...prefix, ...c];
      const logits = noGrad(() => m.forward([seq]).logits!.data);
      let want = 0;
      for (let j = 0; j < c.length; j++) {
        const row = logits.subarray((prefix.length + j - 1) * V, (prefix.length + j) * V);
        const mx = Math.max(...row);
        want += row[c[j]] - mx - Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0));
      }
      assert.ok(Math.abs(r.logProb[i] - want) < 1e-4, `continuation ${i}: ${r.logProb[i]} vs ${want}`);
      assert.equal(r.tokens[i], c.length);
      assert.ok(Math.abs(r.mean[i] - want / c.length) < 1e-4);
    });
    assert.throws(() => scoreContinuations(m, prefix, [[]]), /empty/);
  });
});
