import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Dataset } from '../data/dataset.js';
import { PeriodSplit } from '../data/periods.js';
import { tempDir } from '../data/test-utils/tmp.js';
import { evaluate } from '../eval/evaluate.js';
import { decoderPreset } from '../io/hf-config.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { LLMRec } from './llmrec.js';
import { trainLLMRec } from './llmrec-train.js';
import { PromptBuilder } from './prompt.js';

const NAMES = ['red apple', 'green pear', 'blue plum', 'gold melon', 'pink peach', 'black grape', 'white lime', 'brown fig'];

/** Users walk a cycle of titled items: the next item is always the one after the last. */
async function cycleSplit() {
  async function* log() {
    let ts = 0;
    for (let u = 0; u < 48; u++) {
      const start = (u * 3) % NAMES.length;
      for (let j = 0; j < 5; j++) yield { user: `u${u}`, item: `i${(start + j) % NAMES.length}`, timestamp: ts++ };
    }
  }
  async function* items() {
    for (let k = 0; k < NAMES.length; k++) yield { item: `i${k}`, title: NAMES[k] };
  }
  const d = (await Dataset.fromStreams('cycle', log(), items())).sortChronologically();
  return new PeriodSplit(d, { periods: 1, base: 0.75, history: 3 });
}

describe('LLMRec training', () => {
  it('learns a task with a known answer: the next item of a titled cycle', async () => {
    const split = await cycleSplit();
    const { tokenizer } = trainTokenizer([...NAMES, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
    const decoder = new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize }), { seed: 3 });
    // Plain likelihood: this test is about the training loop, not the ranking calibration.
    const model = new LLMRec(decoder, new PromptBuilder(tokenizer, split.dataset.titles, { history: 3 }), { calibration: 'none' });
    const scorer = { batchSize: 16, batch: (ss: typeof split.periods[0]['test'], cs: number[][]) => model.score(ss.map((s) => split.history(s, 3)), cs) };
    const before = await evaluate(split, 0, scorer, { size: 5 });
    const losses: number[] = [];
    const r = await trainLLMRec(model, split.trainingUpTo(0), (s) => split.history(s, 3), {
      epochs: 12, lr: 3e-3, batchSize: 8, patience: 100, onEval: (e) => losses.push(e.loss),
    });
    const after = await evaluate(split, 0, scorer, { size: 5 });
    assert.ok(losses[losses.length - 1] < losses[0] / 3, `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
    assert.ok(after.groups.all!.metrics['HR@1'] > 0.9, `HR@1 ${before.groups.all!.metrics['HR@1']} -> ${after.groups.all!.metrics['HR@1']}`);
    assert.equal(r.trainableParameters, decoder.numParameters());
  });

  async function small() {
    const split = await cycleSplit();
    const { tokenizer } = trainTokenizer([...NAMES, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
    const decoder = new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize }), { seed: 3 });
    decoder.addAdapter('default', { r: 4, dropout: 0 }, { seed: 3, freezeBase: true });
    const model = new LLMRec(decoder, new PromptBuilder(tokenizer, split.dataset.titles, { history: 3 }), { calibration: 'none' });
    const samples = split.trainingUpTo(0).slice(0, 16);
    return { split, model, samples, params: () => decoder.adapter('default').parameters(true) };
  }

  it('without validation samples (validator null): no early stopping, the final state is kept, no best score', async () => {
    const { split, model, samples, params } = await small();
    let last: Float32Array[] = [];
    const evals: number[] = [];
    let calls = 0;
    const r = await trainLLMRec(model, samples, (s) => split.history(s, 3), {
      epochs: 4, lr: 3e-3, batchSize: 8, patience: 1,
      onStep: () => { last = params().map((p) => p.data.slice()); },
      onEval: (e) => evals.push(e.score),
    }, () => { calls++; return null; });
    assert.equal(calls, 4, 'validated at every epoch end');
    assert.equal(r.steps, 8, 'all 4 epochs of 2 steps: patience never runs out');
    assert.equal(r.bestScore, undefined);
    assert.equal(r.bestStep, 8, 'the kept state is the final one');
    assert.deepEqual(evals, [], 'no score to report');
    params().forEach((p, i) => assert.deepEqual(p.data, last[i], 'parameters of the last step'));
  });

  it('resumes a checkpoint only with the settings and examples that wrote it, naming what differs', async () => {
    const { split, model, samples } = await small();
    const ckpt = join(tempDir(), 'train.ckpt');
    const h = (s: (typeof samples)[0]) => split.history(s, 3);
    const opts = { epochs: 2, lr: 3e-3, batchSize: 8, checkpoint: ckpt };
    const first = await trainLLMRec(model, samples, h, opts, () => 0.5);
    // The same settings: the finished checkpoint is resumed, nothing is trained again.
    const again = await trainLLMRec((await small()).model, samples, h, opts, () => 0.5);
    assert.equal(again.steps, first.steps);
    assert.equal(again.samplesSeen, first.samplesSeen);
    await assert.rejects(trainLLMRec((await small()).model, samples, h, { ...opts, lr: 0.01 }, () => 0.5), {
      name: 'RangeError',
      message: `${ckpt}: this checkpoint was trained with lr 0.003, not 0.01; rerun with the same options, or use a new --out (or delete the checkpoint) to start over`,
    });
    await assert.rejects(trainLLMRec((await small()).model, samples, h, { ...opts, epochs: 5 }, () => 0.5), { message: /trained with epochs 2, not 5;/ });
    await assert.rejects(trainLLMRec((await small()).model, samples.slice(1), h, opts, () => 0.5), {
      message: `${ckpt}: this checkpoint was trained with other training examples (data, sample, history or prompt), not these; rerun with the same options, or use a new --out (or delete the checkpoint) to start over`,
    });
    await assert.rejects(trainLLMRec((await small()).model, samples, (s) => split.history(s, 1), opts, () => 0.5), { message: /other training examples/ });
  });

  it('a validator that returns NaN (with samples to score) is an error, not "no better"', async () => {
    const { split, model, samples } = await small();
    await assert.rejects(
      trainLLMRec(model, samples, (s) => split.history(s, 3), { epochs: 2, batchSize: 8 }, () => NaN),
      { name: 'RangeError', message: 'the validation score at step 2 is NaN: the validator is broken (it returns null when it has no samples)' },
    );
  });
});
