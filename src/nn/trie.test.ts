import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decoderPreset } from '../io/index.js';
import { Decoder } from './decoder.js';
import { scoreContinuations } from './score.js';
import { scoreTrie, TokenTrie } from './trie.js';

const cfg = decoderPreset('tiny', { vocabSize: 60 });
const model = new Decoder(cfg, { seed: 8 });
model.addAdapter('default', { r: 4, alpha: 8, dropout: 0 }, { seed: 2 });
for (const t of model.adapter('default').parameters(true)) if (t.name?.includes('lora_B')) for (let i = 0; i < t.size; i++) t.data[i] = Math.cos(i) * 0.05;
const V = cfg.vocabSize;

// Shared prefixes, a sequence that is a prefix of others, duplicates, single tokens.
const conts = [[7, 9, 11], [7, 9], [7, 9, 11, 3], [42], [30, 31, 32, 33], [7, 9, 11], [30, 2], [42], [7, 12, 13, 14, 15], [5, 5]];

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
}

describe('TokenTrie', () => {
  it('shares prefixes, maps duplicates to one node, and numbers nodes in depth-first preorder', () => {
    const t = new TokenTrie(conts);
    assert.equal(t.totalTokens, conts.reduce((a, c) => a + c.length, 0));
    // distinct paths: 7 9 11 3 | 12 13 14 15 | 42 | 30 31 32 33 | 2 | 5 5
    assert.equal(t.size, 4 + 4 + 1 + 4 + 1 + 2);
    assert.equal(t.terminal[0], t.terminal[5]);
    assert.equal(t.terminal[3], t.terminal[7]);
    assert.equal(t.parent[t.terminal[0]], t.terminal[1]); // [7, 9] is a prefix of [7, 9, 11]
    conts.forEach((c, i) => {
      const path: number[] = [];
      for (let x = t.terminal[i]; x >= 0; x = t.parent[x]) path.unshift(t.token[x]);
      assert.deepEqual(path, c);
      assert.equal(t.lengths[i], c.length);
    });
    for (let i = 0; i < t.size; i++) {
      assert.ok(t.parent[i] < i);
      for (let c = t.childStart[i]; c < t.childStart[i + 1]; c++) assert.equal(t.parent[t.childList[c]], i);
    }
    assert.deepEqual([...t.inner()].map((i) => t.token[i]), [7, 9, 11, 12, 13, 14, 30, 31, 32, 5]);
  });

  it('rejects empty sequences and bad tokens', () => {
    assert.throws(() => new TokenTrie([[1], []]), /sequence 1 is empty/);
    assert.throws(() => new TokenTrie([[1, -2]]), /token -2/);
    assert.throws(() => scoreTrie(model, [1, 2], new TokenTrie([[3, V]])), /out of range/);
    assert.throws(() => scoreTrie(model, [], new TokenTrie([[3]])), /at least one token/);
  });
});

describe('scoreTrie', () => {
  it('equals scoreContinuations for every sequence, whatever the forwards are cut into', () => {
    const prefix = [4, 8, 15, 16, 23];
    const ref = scoreContinuations(model, prefix, conts);
    const trie = new TokenTrie(conts);
    for (const [chunk, headRows] of [[1, 1], [2, 3], [3, 512], [4096, 2]]) {
      const r = scoreTrie(model, prefix, trie, { chunk, headRows });
      assert.deepEqual([...r.tokens], conts.map((c) => c.length));
      const e = maxDiff(r.logProb, ref.logProb);
      assert.ok(e < 1e-4, `chunk ${chunk}, headRows ${headRows}: logProb off by ${e}`);
      assert.ok(maxDiff(r.mean, ref.mean) < 1e-4);
      assert.equal(r.logProb[0], r.logProb[5], 'duplicates score the same');
    }
  });

  it('feeds every node with children once, and branches at every depth stay exact', () => {
    // A comb: a spine with a branch (and a branch of a branch) at every depth, so chains nest deeply.
    const spine = [11, 12, 13, 14, 15, 16, 17];
    const seqs: number[][] = [spine];
    for (let d = 0; d < spine.length; d++) {
      seqs.push([...spine.slice(0, d), 40 + d, 50 + d]);
      seqs.push([...spine.slice(0, d), 40 + d, 20, 21]);
    }
    const prefix = [3, 1, 4, 1, 5];
    const trie = new TokenTrie(seqs);
    let fed = 0;
    const counting = Object.create(model) as Decoder;
    counting.forward = (ids, opts) => {
      const o = model.forward(ids, opts);
      fed += opts?.attentionMask ? [...opts.attentionMask].filter((m) => m).length : (ids as readonly number[][]).flat().length;
      return o;
    };
    const ref = scoreContinuations(model, prefix, seqs);
    for (const chunk of [1, 5, 4096]) {
      fed = 0;
      const r = scoreTrie(counting, prefix, trie, { chunk });
      assert.equal(fed, prefix.length + trie.inner().length, `chunk ${chunk}: tokens fed`);
      assert.ok(maxDiff(r.logProb, ref.logProb) < 1e-4, `chunk ${chunk}: ${maxDiff(r.logProb, ref.logProb)}`);
    }
    assert.ok(trie.inner().length < seqs.reduce((a, c) => a + c.length - 1, 0));
  });
});
