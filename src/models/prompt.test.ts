import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { trainTokenizer } from '../tokenizer/index.js';
import { PromptBuilder } from './prompt.js';

const titles = ['Rose Water Toner, 8 oz', 'Matte Lipstick Red', 'Argan Oil Shampoo for Dry Hair and a very long name indeed'];
const { tokenizer } = trainTokenizer([...titles, 'A customer bought these items, oldest first:'], { vocabSize: 300 });

describe('LLMRec prompts', () => {
  it('lays out instruction, numbered history titles and the answer cue, decoding to the expected text', () => {
    const p = new PromptBuilder(tokenizer, titles);
    const ids = p.prompt([0, 1]);
    assert.equal(
      tokenizer.decode(ids),
      'A customer bought these items, oldest first:\n1. Rose Water Toner, 8 oz\n2. Matte Lipstick Red\nThe next item the customer buys is:',
    );
  });

  it('keeps only the last H items and truncates titles to their token budget', () => {
    const p = new PromptBuilder(tokenizer, titles, { history: 2, titleTokens: 3 });
    const text = tokenizer.decode(p.prompt([2, 0, 1]));
    const lines = text.split('\n');
    assert.equal(lines.length, 4);
    assert.ok(lines[1].startsWith('1. '));
    assert.equal(tokenizer.encode(lines[1].slice(3)).length <= 3, true);
    assert.ok(!text.includes('Argan'), 'the oldest item is outside the window');
  });

  it('puts the loss on the answer only: title then end-of-sequence', () => {
    const p = new PromptBuilder(tokenizer, titles);
    const { ids, labels } = p.example([0], 1);
    const promptLen = p.prompt([0]).length;
    assert.equal(ids.length, labels.length);
    assert.ok(labels.slice(0, promptLen).every((l) => l === -100));
    assert.deepEqual(labels.slice(promptLen), ids.slice(promptLen));
    assert.equal(ids[ids.length - 1], tokenizer.specialIds.eos);
    assert.equal(tokenizer.decode(ids.slice(promptLen, -1)), ' Matte Lipstick Red');
  });
});
