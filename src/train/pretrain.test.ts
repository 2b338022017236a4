import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { noGrad } from '../core/index.js';
import { loadModelFolder } from '../nn/checkpoint-folder.js';
import { LOG_FILE, pretrain, pretrainCorpus, STATE_FILE, type PretrainOptions } from './pretrain.js';

const dir = mkdtempSync(join(tmpdir(), 'evorec-pretrain-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let documents: string[] = [];
const base = (out: string): PretrainOptions => ({
  documents,
  preset: 'tiny',
  maxSamples: 400,
  steps: 24,
  batch: 4,
  seqLen: 32,
  lr: 3e-3,
  seed: 1,
  evalEvery: 6,
  evalSequences: 8,
  checkpointEvery: 12,
  out: join(dir, out),
});

describe('pretrain (tiny preset, Beauty slice)', () => {
  it('builds the corpus from titles and base-period title sequences', async () => {
    documents = await pretrainCorpus({ data: 'beauty' }, 400);
    assert.ok(documents.length > 400);
    assert.ok(documents.some((d) => d.includes('\n')));
    assert.ok(documents.some((d) => !d.includes('\n')));
  });

  it('trains (loss decreases), resumes from the saved step to the same weights, and writes a loadable HF folder', async () => {
    const full = await pretrain(base('full'));
    assert.equal(full.completedSteps, 24);
    assert.equal(full.history.length, 4);
    const first = full.history[0], last = full.history[full.history.length - 1];
    assert.ok(last.trainLoss < first.trainLoss - 0.5, `train loss ${first.trainLoss} -> ${last.trainLoss}`);
    assert.ok(last.valLoss! < first.valLoss!, `validation loss ${first.valLoss} -> ${last.valLoss}`);
    assert.ok(Number.isFinite(full.valPerplexity) && full.valPerplexity > 1);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', STATE_FILE, LOG_FILE]) assert.ok(existsSync(join(full.out, f)), f);

    // interrupted at step 12, then resumed: continues at 12 and ends with the same weights
    const part = await pretrain({ ...base('split'), stopAfter: 12 });
    assert.equal(part.completedSteps, 12);
    const rest = await pretrain({ ...base('split'), resume: true });
    assert.equal(rest.startStep, 12);
    assert.equal(rest.completedSteps, 24);
    assert.deepEqual(rest.history.map((h) => h.step), [6, 12, 18, 24]);

    const a = await loadModelFolder(full.out);
    const b = await loadModelFolder(rest.out);
    assert.ok(a.tokenizer && b.tokenizer);
    assert.equal(a.model.config.modelType, 'qwen2');
    const ids = a.tokenizer.encode('Shampoo, 8 Ounce');
    assert.deepEqual(b.tokenizer.encode('Shampoo, 8 Ounce'), ids);
    const la = noGrad(() => a.model.forward([ids]).logits!.data);
    const lb = noGrad(() => b.model.forward([ids]).logits!.data);
    let maxDiff = 0;
    for (let i = 0; i < la.length; i++) maxDiff = Math.max(maxDiff, Math.abs(la[i] - lb[i]));
    assert.ok(maxDiff < 1e-4, `resumed run differs from the uninterrupted one by ${maxDiff}`);
    assert.ok(Math.abs(rest.valLoss - full.valLoss) < 1e-3);

    await assert.rejects(pretrain({ ...base('split'), resume: true, batch: 8 }), /batch differs/);
    await assert.rejects(pretrain({ ...base('none'), resume: true }), /no trainer-state\.ckpt/);
  });
});
