import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PeriodSplit, Sample } from '../data/periods.js';
import { decoderPreset } from '../io/hf-config.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { bestFusionWeight, chooseFusionWeight, FUSION_GRID, fuseScores, hybridScorer, zScores } from './hybrid.js';
import { LLMRec } from './llmrec.js';
import { PromptBuilder } from './prompt.js';
import { SASRec } from './sasrec.js';

const s32 = Math.sqrt(3 / 2); // z-scores of [1, 2, 3]: -sqrt(3/2), 0, sqrt(3/2)

describe('score-level hybrid of SASRec and LLMRec', () => {
  it('standardises each model within the set and mixes them (worked by hand)', () => {
    assert.deepEqual(Array.from(zScores([1, 2, 3])).map((x) => +x.toFixed(6)), [-s32, 0, s32].map((x) => +x.toFixed(6)));
    assert.deepEqual(Array.from(zScores([5, 5, 5])), [0, 0, 0]);
    const f = fuseScores([1, 2, 3], [3, 1, 2], 0.5);
    const want = [0, -0.5 * s32, 0.5 * s32];
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(f[i] - want[i]) < 1e-6, `${i}: ${f[i]} vs ${want[i]}`);
    assert.throws(() => fuseScores([1, 2], [1, 2, 3], 0.5), /fuseScores: 2 SASRec scores for 3 LLMRec scores/);
  });

  it('chooses the first weight at which the positive leads: lambda > 2/3 here, so 0.7', () => {
    // SASRec puts the positive (0) last, the LLMRec first. Fused: positive sqrt(3/2)(2 lambda - 1), the others
    // -sqrt(3/2) lambda and sqrt(3/2)(1 - lambda): the positive leads for lambda > 2/3.
    const { weight, ndcg3 } = bestFusionWeight([[{ sasrec: [1, 2, 3], llmrec: [3, 1, 2], positive: 0 }]]);
    assert.equal(weight, 0.7);
    assert.equal(FUSION_GRID[7], 0.7);
    assert.ok(Math.abs(ndcg3[6] - 1 / Math.log2(3)) < 1e-9, `lambda 0.6: ${ndcg3[6]}`);
    assert.equal(ndcg3[7], 1);
    assert.equal(ndcg3[0], 0.5, 'lambda 0 is SASRec alone: the positive third, NDCG@3 1/log2(4)');
    assert.throws(() => bestFusionWeight([[]]), /every view needs at least one validation set/);
  });

  it('the scorer is the fusion of the two models\' own scores, each over its own history window', () => {
    const titles = ['Rose Water Toner', 'Matte Lipstick Red', 'Argan Oil Shampoo', 'Nail Polish', 'Eye Cream', 'Soap'];
    const { tokenizer } = trainTokenizer([...titles, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
    const llm = new LLMRec(new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize }), { seed: 2 }), new PromptBuilder(tokenizer, titles, { history: 2 }));
    const sas = new SASRec({ numItems: titles.length, hidden: 16, maxLen: 3, dropout: 0, seed: 1 });
    const seqs = [[0, 1, 2, 3], [4, 5]];
    const split = { history: (s: Sample, n: number) => seqs[s.user].slice(-n) } as unknown as PeriodSplit;
    const samples = [{ user: 0, item: 4 }, { user: 1, item: 0 }] as Sample[];
    const cands = [[4, 5, 1], [0, 2, 3, 1]];
    const got = hybridScorer(llm, sas, split, 0.3).batch(samples, cands) as Float32Array[];
    const a = sas.score([[1, 2, 3], [4, 5]], cands);
    const b = llm.score([[2, 3], [4, 5]], cands);
    got.forEach((g, u) => assert.deepEqual(Array.from(g), Array.from(fuseScores(a[u], b[u], 0.3))));
    const chosen = chooseFusionWeight(llm, sas, split, [{ samples, candidates: cands }]);
    const direct = bestFusionWeight([samples.map((s, u) => ({ sasrec: a[u], llmrec: b[u], positive: cands[u].indexOf(s.item) }))]);
    assert.equal(chosen.weight, direct.weight);
    assert.deepEqual(chosen.ndcg3, direct.ndcg3);
  });
});
