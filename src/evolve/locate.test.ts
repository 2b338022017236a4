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

  it('the contribution signal finds a middle layer that drifts, where the output vote picks the last layer on depth', () => {
    const model = realModel(4);
    const D = model.decoder.config.hiddenSize;
    // Stand-in forward, the same vector at every real token. The embedding is 5 e0. Layers 0, 2 and 3 each
    // add 3 x_l for the old prompt and 3 (0.6 x_l + 0.8 y_l) for the updated one (cosine 0.6: every layer
    // reacts a little); layer 1 adds 0.5 x_1 against 0.5 y_1 (cosine 0: the layer that drifts). The stream
    // after layer l holds the embedding plus every contribution so far, so its old/updated cosine falls
    // with depth (0.894, 0.888, 0.828, 0.789), and the paper's vote goes to the last layer.
    const x = (l: number) => 1 + 2 * l;
    const y = (l: number) => 2 + 2 * l;
    model.decoder.forward = ((ids: Int32Array, o: { batch: number; attentionMask: Uint8Array }) => {
      const B = o.batch;
      const T = ids.length / B;
      const n = B / 2;
      const vec = (b: number, upTo: number) => {
        const v = new Float32Array(D);
        v[0] = 5;
        for (let l = 0; l <= upTo; l++) {
          const s = l === 1 ? 0.5 : 3;
          if (b < n) v[x(l)] += s;
          else if (l === 1) v[y(l)] += s;
          else {
            v[x(l)] += 0.6 * s;
            v[y(l)] += 0.8 * s;
          }
        }
        return v;
      };
      const state = (upTo: number) => {
        const h = new Float32Array(B * T * D);
        for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) if (o.attentionMask[b * T + t]) h.set(vec(b, upTo), (b * T + t) * D);
        return new Tensor(h, [B, T, D]);
      };
      return { hiddenStates: [-1, 0, 1, 2, 3].map(state), logits: null, loss: null, lossTokens: 0, lastHiddenState: state(3) } as unknown as DecoderOutput;
    }) as unknown as Decoder['forward'];
    const pairs = [
      { old: [0], updated: [1, 2, 3] },
      { old: [4, 5, 0, 1], updated: [2] },
    ];
    const output = locateByVotes(model, pairs, { k: 1 });
    assert.deepEqual(output.votes, [0, 0, 0, 2]);
    assert.deepEqual(output.meanSimilarity.map((v) => Number(v.toFixed(3))), [0.894, 0.888, 0.828, 0.789]);
    const drift = locateByVotes(model, pairs, { k: 1, signal: 'contribution' });
    assert.deepEqual(drift.votes, [0, 2, 0, 0]);
    assert.deepEqual(drift.layers, [1]);
    assert.deepEqual(drift.meanSimilarity.map((v) => Number(v.toFixed(6))), [0.6, 0, 0.6, 0.6]);
  });

  it('normalised by unrelated users\' distance, the vote passes over a layer that follows the tokens for one that moves with the drift', () => {
    const model = realModel(3);
    const D = model.decoder.config.hiddenSize;
    let layer2Moves = false;
    // Contributions (stand-in forward, the same vector at every real token; row b < n is user b's old
    // prompt, row n + b the updated one). Layer 0 follows the tokens: a direction of its own for every
    // prompt (every two prompts orthogonal: distance 1, the largest). Layer 1 is alike for all users
    // (e_c + 0.2 e_u, a little of the user) until the drift turns it (0.6 e_c + 0.8 e_d + 0.2 e_u): the
    // same user's prompts are 1 - 0.64/1.04 = 0.385 apart, two users' old prompts 1 - 1/1.04 = 0.0385.
    // Layer 2 does not move. Raw, layer 0 wins every vote; as a multiple of the users' distance, layer 1
    // moves 10x and layer 0 1x.
    model.decoder.forward = ((ids: Int32Array, o: { batch: number; attentionMask: Uint8Array }) => {
      const B = o.batch;
      const T = ids.length / B;
      const n = B / 2;
      const c = 2 * B;
      const d = c + 1;
      const contribution = (l: number, b: number) => {
        const v = new Float32Array(D);
        const user = b % n;
        if (l === 0) v[b] = 1;
        else if (l === 1) {
          v[d + 1 + user] = 0.2;
          if (b < n) v[c] = 1;
          else {
            v[c] = 0.6;
            v[d] = 0.8;
          }
        } else v[b >= n && layer2Moves ? D - 2 : D - 1] = 1;
        return v;
      };
      const state = (upTo: number) => {
        const h = new Float32Array(B * T * D);
        for (let b = 0; b < B; b++) {
          const v = new Float32Array(D);
          for (let l = 0; l <= upTo; l++) contribution(l, b).forEach((x, i) => (v[i] += x));
          for (let t = 0; t < T; t++) if (o.attentionMask[b * T + t]) h.set(v, (b * T + t) * D);
        }
        return new Tensor(h, [B, T, D]);
      };
      return { hiddenStates: [-1, 0, 1, 2].map(state), logits: null, loss: null, lossTokens: 0, lastHiddenState: state(2) } as unknown as DecoderOutput;
    }) as unknown as Decoder['forward'];
    const pairs = [0, 1, 2, 3].map((i) => ({ old: [i], updated: [i + 1, 5] }));
    const raw = locateByVotes(model, pairs, { k: 1, signal: 'contribution' });
    assert.deepEqual(raw.votes, [4, 0, 0]);
    const rel = locateByVotes(model, pairs, { k: 1, signal: 'contribution', normalize: 'unrelated' });
    assert.deepEqual(rel.votes, [0, 4, 0]);
    assert.deepEqual(rel.layers, [1]);
    assert.deepEqual(rel.unrelatedDistance!.map((x) => Number(x.toFixed(4))), [1, 0.0385, 0]);
    // A layer where all users' old prompts are alike (distance 0) but every user's drift moves it: an
    // unbounded multiple, so it wins.
    layer2Moves = true;
    assert.deepEqual(locateByVotes(model, pairs, { k: 1, signal: 'contribution', normalize: 'unrelated' }).votes, [0, 0, 4]);
    layer2Moves = false;
    // One user: no unrelated pair to measure a layer's spread by, so no layer can be compared: no vote.
    assert.deepEqual(locateByVotes(model, pairs.slice(0, 1), { k: 1, signal: 'contribution', normalize: 'unrelated' }).votes, [0, 0, 0]);
  });

  it('has no cosine for a zero vector, and a degenerate layer neither wins nor loses a vote', () => {
    assert.ok(Number.isNaN(cosine(Float32Array.of(0, 0), Float32Array.of(1, 1))), 'zero vector first');
    assert.ok(Number.isNaN(cosine(Float32Array.of(1, 1), Float32Array.of(0, 0))), 'zero vector second');
    assert.ok(Number.isNaN(cosine(Float32Array.of(0, 0), Float32Array.of(0, 0))), 'two zero vectors');
    assert.equal(cosine(Float32Array.of(9, 0, 0, 2), Float32Array.of(9, 0, 0, 1), 2, 0, 2), 0, 'offsets: (0, 2) vs (9, 0)');
    const model = realModel(3);
    const D = model.decoder.config.hiddenSize;
    // Stand-in forward. User 0 (batch rows 0 and n) pools to the zero vector in every layer; user 1's old
    // prompt pools to zero in layer 0 only, its other layers keep their direction but layer 2 moves a
    // little; user 2 moves most in layer 1.
    model.decoder.forward = ((ids: Int32Array, o: { batch: number }) => {
      const B = o.batch;
      const T = ids.length / B;
      const n = B / 2;
      const layer = (l: number) => {
        const h = new Float32Array(B * T * D);
        for (let b = 0; b < B; b++) {
          const user = b % n;
          if (user === 0) continue;
          if (user === 1 && b < n && l === 0) continue;
          for (let t = 0; t < T; t++) {
            const off = (b * T + t) * D;
            h[off] = 1;
            if (b < n && ((user === 1 && l === 2) || (user === 2 && l === 1))) h[off + 1] = user === 1 ? 0.5 : 2;
          }
        }
        return new Tensor(h, [B, T, D]);
      };
      return { hiddenStates: [0, 1, 2, 3].map((l) => layer(l - 1)), logits: null, loss: null, lossTokens: 0, lastHiddenState: layer(2) } as unknown as DecoderOutput;
    }) as unknown as Decoder['forward'];
    const pairs = [{ old: [0], updated: [1] }, { old: [2], updated: [3] }, { old: [4], updated: [5] }];
    const r = locateByVotes(model, pairs, { k: 1 });
    // User 0 casts no vote (before: layer 0 won it with a "similarity" of 1); user 1 votes among layers 1
    // and 2 only.
    assert.deepEqual(r.votes, [0, 1, 1]);
    // Mean similarity over the users for whom the layer has one: layer 0 only user 2's (1).
    assert.equal(r.meanSimilarity[0], 1);
    assert.ok(Math.abs(r.meanSimilarity[1] - (1 + 1 / Math.sqrt(5)) / 2) < 1e-6, `layer 1 ${r.meanSimilarity[1]}`);
    assert.ok(Math.abs(r.meanSimilarity[2] - (1 / Math.sqrt(1.25) + 1) / 2) < 1e-6, `layer 2 ${r.meanSimilarity[2]}`);
    assert.deepEqual(r.layers, [1], 'tied votes: the lower mean similarity');
    // Only degenerate users: no votes, no mean similarity, and the located layers fall to index order.
    const none = locateByVotes(model, [pairs[0]], { k: 1 });
    assert.deepEqual(none.votes, [0, 0, 0]);
    assert.ok(none.meanSimilarity.every(Number.isNaN), `${none.meanSimilarity}`);
    assert.deepEqual(none.layers, [0]);
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
