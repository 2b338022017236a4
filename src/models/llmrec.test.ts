import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decoderPreset } from '../io/hf-config.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';
import type { PeriodSplit, Sample } from '../data/periods.js';
import { bestPriorWeight, choosePriorWeight, LLMRec, llmrecFullScorer, PRIOR_WEIGHT_GRID } from './llmrec.js';
import { PromptBuilder } from './prompt.js';

const titles = ['Rose Water Toner', 'Matte Lipstick Red', 'Argan Oil Shampoo for Dry Hair', 'Nail Polish', 'Eye Cream with Vitamin C 1 oz', 'Soap'];
const { tokenizer } = trainTokenizer([...titles, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 320 });

function model(seed = 1) {
  const cfg = decoderPreset('tiny', { vocabSize: tokenizer.vocabSize });
  const d = new Decoder(cfg, { seed });
  d.addAdapter('default', { r: 4 }, { seed });
  // Non-zero LoRA B so the adapter path is exercised too.
  for (const p of d.adapter('default').parameters()) for (let i = 0; i < p.data.length; i++) p.data[i] += 0.01 * Math.sin(i);
  return new LLMRec(d, new PromptBuilder(tokenizer, titles), { calibration: 'none' });
}

describe('LLMRec ranking', () => {
  it('full-catalogue scores equal the reference recomputation of every title, across chunk boundaries', () => {
    const m = model();
    // A stand-in split: six items, and a history read from the sample.
    const split = { dataset: { numItems: titles.length } } as unknown as PeriodSplit;
    const samples = [{ user: 0, pos: 0, row: 0, item: 1, timestamp: 0 }, { user: 1, pos: 0, row: 1, item: 2, timestamp: 0 }] as Sample[];
    const histories = [[0, 3], [5]];
    const full = llmrecFullScorer(m, split, (s) => histories[s.user], 4)(samples);
    samples.forEach((s, u) => {
      const ref = m.scoreReference(histories[u], titles.map((_, i) => i));
      assert.equal(full[u].length, titles.length);
      for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(full[u][i] - ref[i]) < 1e-4 * Math.max(1, Math.abs(ref[i])), `u${u} item ${i}: ${full[u][i]} vs ${ref[i]}`);
    });
  });

  it('KV-cached batched scores equal full recomputation (mean and sum)', () => {
    const m = model();
    const histories = [[0, 1], [2], [3, 4, 5, 0]];
    const cands = [[2, 3, 4], [0, 5, 1, 3], [1, 2]];
    for (const reduction of ['mean', 'sum'] as const) {
      const got = m.score(histories, cands, { reduction, usersPerBatch: 3 });
      histories.forEach((h, u) => {
        const ref = m.scoreReference(h, cands[u], reduction);
        for (let j = 0; j < ref.length; j++) assert.ok(Math.abs(got[u][j] - ref[j]) < 1e-4 * Math.max(1, Math.abs(ref[j])), `${reduction} u${u} c${j}: ${got[u][j]} vs ${ref[j]}`);
      });
    }
  });

  it('does not depend on batch composition and is deterministic', () => {
    const m = model();
    const alone = m.score([[2]], [[0, 5, 1, 3]])[0];
    const batched = m.score([[0, 1, 2, 3, 4], [2]], [[5], [0, 5, 1, 3]], { usersPerBatch: 2 })[1];
    for (let j = 0; j < 4; j++) assert.ok(Math.abs(alone[j] - batched[j]) < 1e-5);
    assert.deepEqual(m.score([[2]], [[0, 5, 1, 3]])[0], alone);
  });

  it('gives length-normalised scores that are mean token log-probabilities (negative)', () => {
    const m = model();
    const [s] = m.score([[0]], [[1, 2]]);
    for (const v of s) assert.ok(v < 0 && Number.isFinite(v));
  });

  it('prior calibration subtracts the history-free score, and the cache follows weight changes', () => {
    const m = model();
    const h = [[0, 1], [4]];
    const c = [[2, 3], [5, 1]];
    const plain = m.score(h, c);
    const cal = m.score(h, c, { calibration: 'prior' });
    const prior = m.scoreReference([], [1, 2, 3, 5]);
    const idx = new Map([[1, 0], [2, 1], [3, 2], [5, 3]]);
    h.forEach((_, u) => c[u].forEach((item, j) => assert.ok(Math.abs(cal[u][j] - (plain[u][j] - prior[idx.get(item)!])) < 1e-4)));
    for (const p of m.decoder.adapter('default').parameters()) p.data[0] += 0.5;
    const moved = m.score(h, c, { calibration: 'prior' });
    const plain2 = m.score(h, c);
    const prior2 = m.scoreReference([], [2]);
    assert.ok(Math.abs(moved[0][0] - (plain2[0][0] - prior2[0])) < 1e-4, 'stale prior scores after a weight change');
  });

  it('scoreAll (the answers\' trie) equals score on every item: shared prefixes, duplicates, a title that is a prefix of another', () => {
    const shared = ['Rose Water', 'Rose Water Toner', 'Rose Water Toner', 'Soap', 'Rose', 'Rose Water Toner Spray 8 oz', 'Nail Polish', 'Nail'];
    const tok = trainTokenizer([...shared, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 }).tokenizer;
    const d = new Decoder(decoderPreset('tiny', { vocabSize: tok.vocabSize }), { seed: 3 });
    const m = new LLMRec(d, new PromptBuilder(tok, shared));
    const old = new LLMRec(d, m.prompts); // its own prior cache: the prior scores are compared too
    const all = shared.map((_, i) => i);
    const trie = m.answerTrie();
    assert.ok(trie.size < trie.totalTokens, `${trie.size} nodes for ${trie.totalTokens} tokens`);
    assert.equal(trie.terminal[1], trie.terminal[2]);
    const histories = [[0, 3], [6], []];
    for (const reduction of ['mean', 'sum'] as const) {
      for (const calibration of ['none', 'prior'] as const) {
        for (const chunk of [1, 3, 1024]) {
          const got = m.scoreAll(histories, { reduction, calibration, chunk });
          const want = old.score(histories, histories.map(() => all), { reduction, calibration });
          histories.forEach((_, u) => {
            assert.equal(got[u].length, shared.length);
            for (let i = 0; i < all.length; i++) {
              assert.ok(Math.abs(got[u][i] - want[u][i]) < 1e-4 * Math.max(1, Math.abs(want[u][i])), `${reduction}/${calibration}/chunk ${chunk} u${u} item ${i}: ${got[u][i]} vs ${want[u][i]}`);
            }
          });
        }
      }
    }
    // A subset of the catalogue, and a split with more items than titles.
    assert.equal(m.scoreAll([[1]], { items: 3 })[0].length, 3);
    const big = { dataset: { numItems: shared.length + 1 } } as unknown as PeriodSplit;
    assert.throws(() => llmrecFullScorer(m, big), /titles/);
  });

  it('prior scores (chunks after the history-free prompt) equal the reference: shared prefixes, duplicates, a title that is a prefix of another, mixed lengths', () => {
    const shared = ['Rose Water', 'Rose Water Toner', 'Rose Water Toner', 'Soap', 'Rose', 'Rose Water Toner Spray 8 oz', 'Nail Polish', 'Nail', 'Argan Oil Shampoo for Dry Hair'];
    const tok = trainTokenizer([...shared, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 }).tokenizer;
    const d = new Decoder(decoderPreset('tiny', { vocabSize: tok.vocabSize }), { seed: 5 });
    d.addAdapter('default', { r: 4 }, { seed: 5 });
    for (const p of d.adapter('default').parameters()) for (let i = 0; i < p.data.length; i++) p.data[i] += 0.01 * Math.cos(i);
    for (const reduction of ['mean', 'sum'] as const) {
      const m = new LLMRec(d, new PromptBuilder(tok, shared));
      const items = [5, 1, 2, 4, 0, 7, 6, 3, 8, 1];
      // in two calls: the second scores only the items the first did not cache
      m.priorScores(items.slice(0, 4), reduction);
      const prior = m.priorScores(items, reduction);
      const ref = m.scoreReference([], items, reduction);
      items.forEach((it, j) => assert.ok(Math.abs(prior.get(it)! - ref[j]) < 1e-4 * Math.max(1, Math.abs(ref[j])), `${reduction} item ${it}: ${prior.get(it)} vs ${ref[j]}`));
      // and the calibrated scores of a batch with mixed answer lengths
      const hist = [[0, 3], [6]], cands = [[5, 3, 1], [8, 4, 2, 7]];
      const got = m.score(hist, cands, { reduction, calibration: 'prior' });
      hist.forEach((h, u) => {
        const plain = m.scoreReference(h, cands[u], reduction), pr = m.scoreReference([], cands[u], reduction);
        cands[u].forEach((_, j) => assert.ok(Math.abs(got[u][j] - (plain[j] - pr[j])) < 1e-4 * Math.max(1, Math.abs(plain[j])), `${reduction} u${u} c${j}`));
      });
    }
  });

  it('partial prior calibration subtracts w x the history-free score', () => {
    const m = model();
    const hist = [[0, 3]];
    const cands = [[1, 2, 4]];
    const plain = m.score(hist, cands, { calibration: 'none' })[0];
    const prior = m.score([[]], cands, { calibration: 'none' })[0];
    const got = m.score(hist, cands, { calibration: 'prior', priorWeight: 0.25 })[0];
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(got[j] - (plain[j] - 0.25 * prior[j])) < 1e-5, `c${j}: ${got[j]} vs ${plain[j] - 0.25 * prior[j]}`);
    const all = m.scoreAll(hist, { calibration: 'prior', priorWeight: 0.25 })[0];
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(all[cands[0][j]] - got[j]) < 1e-4, `scoreAll c${j}`);
  });
});

describe('choosing the prior weight on validation', () => {
  // View A's positive wins only for w > 0.4, view B's only for w < 0.5; at w = 0.5 B's two candidates tie
  // (-0.5 each, exact in float32), which counts in expectation: NDCG@3 (1 + 1/log2 3) / 2. Worked by hand:
  // w <= 0.375: (1/log2 3 + 1) / 2; w = 0.5: (1 + (1 + 1/log2 3) / 2) / 2; w > 0.5: (1 + 1/log2 3) / 2.
  const A = [{ plain: [-1, -2], prior: [-0.5, -3], positive: 1 }];
  const B = [{ plain: [-2, -1], prior: [-3, -1], positive: 1 }];
  const r2 = 1 / Math.log2(3);

  it('takes the weight with the best mean NDCG@3 over views, ties in a set counted in expectation', () => {
    const { weight, ndcg3 } = bestPriorWeight([A, B]);
    assert.equal(weight, 0.5);
    assert.deepEqual(PRIOR_WEIGHT_GRID.slice(0, 5), [0, 0.125, 0.25, 0.375, 0.5]);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(ndcg3[i] - (r2 + 1) / 2) < 1e-6, `w ${PRIOR_WEIGHT_GRID[i]}: ${ndcg3[i]}`);
    assert.ok(Math.abs(ndcg3[4] - (1 + (1 + r2) / 2) / 2) < 1e-6, `w 0.5: ${ndcg3[4]}`);
    for (let i = 5; i < 9; i++) assert.ok(Math.abs(ndcg3[i] - (1 + r2) / 2) < 1e-6, `w ${PRIOR_WEIGHT_GRID[i]}: ${ndcg3[i]}`);
    // One view alone: A wants any w > 0.4 (the first such grid point), B any w < 0.5 (the first, 0).
    assert.equal(bestPriorWeight([A]).weight, 0.5);
    assert.equal(bestPriorWeight([B]).weight, 0);
  });

  it('refuses a view without sets', () => {
    assert.throws(() => bestPriorWeight([A, []]), /bestPriorWeight: every view needs at least one validation set/);
  });

  it('sets the chosen weight on the model, and its curve is what model.score ranks with', () => {
    const m = model();
    const samples = [{ user: 0, pos: 0, row: 0, item: 1, timestamp: 0 }, { user: 1, pos: 0, row: 1, item: 5, timestamp: 0 }] as Sample[];
    const histories = [[0, 3], [2, 4]];
    const candidates = [[1, 2, 4, 5], [0, 5, 3]];
    const { weight, ndcg3 } = choosePriorWeight(m, [{ samples, candidates }], (s) => histories[s.user]);
    assert.equal(m.scoring.calibration, 'prior');
    assert.equal(m.scoring.priorWeight, weight);
    for (const [i, w] of PRIOR_WEIGHT_GRID.entries()) {
      const sc = m.score(histories, candidates, { priorWeight: w });
      const mean = sc.reduce((sum, s, u) => sum + bestPriorWeight([[{ plain: s, prior: s.map(() => 0), positive: candidates[u].indexOf(samples[u].item) }]], [0]).ndcg3[0], 0) / 2;
      assert.ok(Math.abs(mean - ndcg3[i]) < 1e-6, `w ${w}: ${mean} vs ${ndcg3[i]}`);
    }
  });
});
