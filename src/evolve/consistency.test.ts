import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backward } from '../core/index.js';
import { decoderPreset } from '../io/hf-config.js';
import { LLMRec } from '../models/llmrec.js';
import { PromptBuilder } from '../models/prompt.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { ConsistencyTerm } from './consistency.js';

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
});
