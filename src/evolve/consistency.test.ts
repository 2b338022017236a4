import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backward } from '../core/index.js';
import { Dataset } from '../data/dataset.js';
import { PeriodSplit, type Sample } from '../data/periods.js';
import { keyedRandom } from '../data/rng.js';
import { decoderPreset } from '../io/hf-config.js';
import { LLMRec } from '../models/llmrec.js';
import { PromptBuilder } from '../models/prompt.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { ConsistencyTerm, consistencySamples } from './consistency.js';

const titles = ['red apple', 'green pear', 'blue plum', 'gold melon'];
const { tokenizer } = trainTokenizer([...titles, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 280 });

describe('consistency term', () => {
  it('is zero for an unchanged model, positive after a change, and has a gradient on the adapter', () => {
    const d = new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize }), { seed: 4 });
    d.addAdapter('default', { r: 4, dropout: 0 }, { seed: 4, freezeBase: true });
    const model = new LLMRec(d, new PromptBuilder(tokenizer, titles));
    const prompts = [[0], [1, 2], [3, 0, 1]].map((h) => model.prompts.prompt(h));
    const term = new ConsistencyTerm(model, prompts, { lambda: 2, batch: 2 });
    const same = term.loss(0)!;
    assert.ok(Math.abs(same.item()) < 1e-5, `KL of identical models ${same.item()}`);
    for (const p of d.adapter('default').parameters()) for (let i = 0; i < p.size; i++) p.data[i] += 0.05 * Math.sin(i + 1);
    const moved = term.loss(1)!;
    assert.ok(moved.item() > 1e-4);
    backward(moved);
    const grads = d.adapter('default').parameters().map((p) => p.grad);
    assert.ok(grads.some((g) => g !== null && g.some((x) => x !== 0)));
  });

  it('builds its prompts from inactive users\' training histories, never from a prompt of the period\'s test or validation', async () => {
    // P0: a x5, b x3, c x2; P1: b x1, d x4; P2: d x3, e x2 (20 rows, base 0.5, two periods of 5).
    const log: Array<[string, number]> = [
      ['a', 5], ['b', 3], ['c', 2],
      ['b', 1], ['d', 4],
      ['d', 3], ['e', 2],
    ];
    async function* rows() {
      let ts = 0;
      for (const [user, n] of log) for (let j = 0; j < n; j++) yield { user, item: `i${ts % 7}`, timestamp: ts++ };
    }
    const d = (await Dataset.fromStreams('inactive', rows())).sortChronologically();
    const split = new PeriodSplit(d, { periods: 2, base: 0.5, history: 2 });
    assert.deepEqual(split.boundaries, [0, 10, 15, 20]);
    // The window a prompt is built from: the user and the rows of its last-H history.
    const H = split.options.history;
    const windowOf = (s: Sample) => `${s.user}:${Math.max(0, s.pos - H)}-${s.pos}`;
    const names = (list: Sample[]) => list.map((s) => d.userIds[s.user]).sort();
    for (const t of [1, 2]) {
      const samples = consistencySamples(split, t, 100, keyedRandom(1, 'consistency', t));
      const evaluated = new Set([...split.periods[t].test, ...split.periods[t].valid].map(windowOf));
      const training = new Set(split.trainingUpTo(t).map(windowOf));
      for (const s of samples) {
        assert.ok(!evaluated.has(windowOf(s)), `P${t}: consistency prompt ${windowOf(s)} is a test or validation prompt`);
        const { test, valid } = split.heldOut(s.user, t);
        assert.equal(s.pos, (valid >= 0 ? valid : test) - 1, 'the last training target: its history ends before the held-out items');
        assert.ok(training.has(windowOf(s)), 'a training target of t');
        assert.deepEqual(split.history(s).length, Math.min(H, s.pos));
      }
      // a (inactive at 1 and 2) and b (inactive at 2) have a training target before their held-out ones;
      // c's two interactions are both held out, so c has none.
      assert.deepEqual(names(samples), t === 1 ? ['a'] : ['a', 'b']);
    }
    assert.equal(consistencySamples(split, 2, 1, keyedRandom(1, 'consistency', 2)).length, 1, 'at most count');
  });
});
