import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as evorec from './index.js';

it('the library entry point exposes each layer and runs a small pipeline', async () => {
  for (const name of ['prepare', 'PeriodSplit', 'evaluate', 'LLMRec', 'SASRec', 'runExperiment', 'evorecStrategy', 'locateByVotes', 'forget', 'experimentHtml']) {
    assert.equal(typeof (evorec as Record<string, unknown>)[name], 'function', name);
  }
  assert.equal(typeof evorec.core.matmul, 'function');
  assert.equal(typeof evorec.nn.Decoder, 'function');
  assert.equal(typeof evorec.io.readSafetensors, 'function');
  assert.equal(typeof evorec.tokenizer.trainTokenizer, 'function');
  assert.equal(typeof evorec.train.LmTrainer, 'function');
  async function* log() {
    for (let u = 0; u < 6; u++) for (let j = 0; j < 4; j++) yield { user: `u${u}`, item: `i${(u + j) % 9}`, timestamp: u * 10 + j };
  }
  const split = new evorec.PeriodSplit((await evorec.Dataset.fromStreams('x', log())).sortChronologically(), { periods: 1 });
  const r = await evorec.evaluate(split, 0, evorec.popularityScorer(split, 0), { size: 4 });
  assert.equal(r.groups.all!.users, split.periods[0].test.length);
});
