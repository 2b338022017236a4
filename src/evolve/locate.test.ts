import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Tensor } from '../core/index.js';
import { decoderPreset } from '../io/hf-config.js';
import { LLMRec } from '../models/llmrec.js';
import { PromptBuilder } from '../models/prompt.js';
import { Decoder, type DecoderOutput } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { applyLocatedLayers, cosine, locateByGradient, locateByVotes, locateK } from './locate.js';

const titles = ['red apple', 'green pear', 'blue plum', 'gold melon', 'pink peach', 'black grape'];
const { tokenizer } = trainTokenizer([...titles, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });

function realModel(layers = 4) {
  const d = new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize, numHiddenLayers: layers }), { seed: 2 });
  d.addAdapter('default', { r: 4 }, { seed: 2, freezeBase: true });
  return new LLMRec(d, new PromptBuilder(tokenizer, titles));
}

describe('Locate', () => {
  it('votes for the layer whose pooled hidden state moves most, ignoring padding', () => {
    const model = realModel(4);
    const D = model.decoder.config.hiddenSize;
    // Stand-in forward: layer 2 turns the old prompt's pooled state orthogonal to the updated one; every
    // other layer keeps them identical. Padding positions carry huge values that would flip the vote.
    model.decoder.forward = ((ids: Int32Array, o: { batch: number; attentionMask: Uint8Array }) => {
      const B = o.batch;
      const T = ids.length / B;
      const n = B / 2;
      const layer = (l: number) => {
        const h = new Float32Array(B * T * D);
        for (let b = 0; b < B; b++) {
          for (let t = 0; t < T; t++) {
            const off = (b * T + t) * D;
            if (!o.attentionMask[b * T + t]) {
              h.fill(b < n ? 1e6 : -1e6, off, off + D);
              continue;
            }
            h[off] = 1;
            if (l === 2 && b < n) {
              h[off] = 0;
              h[off + 1] = 1;
            }
            if (l === 3 && b < n) h[off + 1] = 0.5; // moves too, but less
          }
        }
        return new Tensor(h, [B, T, D]);
      };
      return { hiddenStates: [0, 1, 2, 3, 4].map((l) => layer(l - 1)), logits: null, loss: null, lossTokens: 0, lastHiddenState: layer(3) } as unknown as DecoderOutput;
    }) as unknown as Decoder['forward'];
    const pairs = [
      { old: [0], updated: [1, 2, 3] },
      { old: [4, 5, 0, 1], updated: [2] },
      { old: [3, 3], updated: [3, 4] },
    ];
    const r = locateByVotes(model, pairs, { k: 1 });
    assert.deepEqual(r.votes, [0, 0, 3, 0]);
    assert.deepEqual(r.layers, [2]);
    assert.ok(Math.abs(r.meanSimilarity[2]) < 1e-9);
    assert.ok(Math.abs(r.meanSimilarity[3] - 1 / Math.sqrt(1.25)) < 1e-6);
    const two = locateByVotes(model, pairs, { k: 2 });
    assert.deepEqual(two.layers, [2, 3], 'ties in votes go to the lower mean similarity');
  });

  it('runs on a real decoder: one vote per user, k layers located', () => {
    const model = realModel(4);
    const r = locateByVotes(model, [{ old: [0, 1], updated: [2, 3] }, { old: [4], updated: [5, 0, 1] }], { share: 0.5 });
    assert.equal(r.votes.reduce((a, b) => a + b, 0), 2);
    assert.equal(r.layers.length, 2);
  });

  it('applies the located layers: only their LoRA pairs are trainable', () => {
    const model = realModel(4);
    const info = applyLocatedLayers(model, [1, 3]);
    assert.equal(info.share, 0.5);
    const a = model.decoder.adapter('default');
    for (let l = 0; l < 4; l++) assert.equal(a.get(l, 'q_proj')!.A.requiresGrad, l === 1 || l === 3);
  });

  it('ranks layers by LoRA gradient norm for the gradient locator', () => {
    const model = realModel(3);
    // Non-zero B so that A receives gradient too.
    for (const p of model.decoder.adapter('default').parameters(true)) for (let i = 0; i < p.size; i++) p.data[i] += 0.01 * Math.cos(i);
    const samples = [{ user: 0, row: 0, pos: 1, item: 1, timestamp: 0 }, { user: 0, row: 1, pos: 2, item: 2, timestamp: 1 }];
    const r = locateByGradient(model, samples, (s) => [s.item - 1], { k: 1 });
    assert.equal(r.layers.length, 1);
    assert.equal(r.gradientNorm.indexOf(Math.max(...r.gradientNorm)), r.layers[0]);
    assert.ok(r.gradientNorm.every((g) => g > 0));
  });

  it('computes k from a share and cosine of known vectors', () => {
    assert.equal(locateK(28, { share: 0.3 }), 8);
    assert.equal(locateK(4, { share: 0.01 }), 1);
    assert.equal(locateK(4, { k: 9 }), 4);
    assert.ok(Math.abs(cosine(Float32Array.of(1, 0), Float32Array.of(1, 1)) - Math.SQRT1_2) < 1e-12);
  });
});
