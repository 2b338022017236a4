import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fixture, tempDir } from '../data/test-utils/tmp.js';
import { decoderPreset } from '../io/hf-config.js';
import { saveModelFolder } from '../nn/checkpoint-folder.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';

const run = promisify(execFile);
const cli = ['--import', 'tsx', join(import.meta.dirname, 'main.ts')];
const NAMES = ['red apple', 'green pear', 'blue plum', 'gold melon', 'pink peach', 'black grape', 'white lime', 'brown fig', 'gray kiwi', 'tan date'];

describe('evorec train-base and evaluate (LLMRec)', () => {
  it('trains on P0 from a backbone folder, saves an LLMRec folder, and evaluates it again with the same figures', async () => {
    const dir = tempDir();
    const rows = ['user_id,item_id,timestamp'];
    let ts = 0;
    for (let u = 0; u < 40; u++) for (let j = 0; j < 5; j++) rows.push(`u${u},i${(u * 3 + j) % NAMES.length},${ts++}`);
    fixture(dir, 'interactions.csv', rows.join('\n') + '\n');
    fixture(dir, 'items.csv', 'item_id,title\n' + NAMES.map((n, k) => `i${k},${n}`).join('\n') + '\n');
    const { tokenizer } = trainTokenizer([...NAMES, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
    const backbone = join(dir, 'backbone');
    await saveModelFolder(backbone, new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize }), { seed: 1 }), { tokenizer });

    const out = join(dir, 'llmrec');
    const common = ['--data', dir, '--periods', '1', '--base', '0.8', '--history', '3', '--candidates', '5', '--quiet'];
    const { stdout } = await run('node', [...cli, 'train-base', ...common, '--backbone', backbone, '--tune', 'lora', '--lora-rank', '4', '--epochs', '2', '--lr', '3e-3', '--valid-users', '10', '--eval-users', '0', '--out', out]);
    assert.match(stdout, /\| llmrec \| all \| \d+ \|/);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'llmrec.json', 'adapter/adapter_config.json', 'adapter/adapter_model.safetensors', 'results.json']) {
      assert.ok(existsSync(join(out, f)), f);
    }
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).results;
    const again = await run('node', [...cli, 'evaluate', ...common, '--model', out, '--full-users', '3', '--out', join(dir, 'again.json')]);
    assert.match(again.stdout, /\| llmrec \| all \|/);
    const reloaded = JSON.parse(readFileSync(join(dir, 'again.json'), 'utf8'));
    for (const sampler of ['matched', 'uniform']) {
      const a = saved[sampler].llmrec.groups.all.metrics;
      const b = reloaded[sampler].llmrec.groups.all.metrics;
      for (const k of Object.keys(a)) assert.ok(Math.abs(a[k] - b[k]) < 1e-9, `${sampler} ${k}: ${a[k]} vs ${b[k]}`);
    }
    // --full-users: every title scored exactly (the answers' trie) for a fixed sample of 3 users
    const exact = reloaded.full['llmrec (3 users)'].groups.all.metrics;
    for (const k of ['HR@10', 'NDCG@10', 'HR@20', 'NDCG@20']) assert.ok(exact[k] >= 0 && exact[k] <= 1, `${k}: ${exact[k]}`);
    assert.match(again.stdout, /full catalogue/);

    // --calibration auto (the default) stores the prior weight it chose on validation, one of the grid's.
    const manifest = JSON.parse(readFileSync(join(out, 'llmrec.json'), 'utf8'));
    const chosen = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).training.calibration;
    assert.equal(manifest.scoring.calibration, 'prior');
    assert.equal(manifest.scoring.priorWeight, chosen.weight);
    assert.equal(chosen.ndcg3.length, chosen.grid.length);
    assert.equal(Math.max(...chosen.ndcg3), chosen.ndcg3[chosen.grid.indexOf(chosen.weight)]);

    // The hybrid with a SASRec of the same data, its weight named in the table; --views keeps only those asked for.
    const sas = join(dir, 'sasrec');
    await run('node', [...cli, 'sasrec', ...common, '--epochs', '1', '--hidden', '8', '--out', sas]);
    const hybrid = await run('node', [...cli, 'evaluate', ...common, '--model', out, '--fuse', sas, '--fuse-weight', '0.25', '--views', 'uniform', '--out', join(dir, 'hybrid.json')]);
    assert.match(hybrid.stdout, /\| hybrid \(LLMRec weight 0\.25\) \| all \|/);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(join(dir, 'hybrid.json'), 'utf8'))), ['uniform']);
    await assert.rejects(run('node', [...cli, 'evaluate', ...common, '--model', out, '--views', 'matched,foo']), (e: { stderr: string; code: number }) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /--views: expected a list of matched, uniform, full, got "matched,foo"/);
      return true;
    });
    await assert.rejects(run('node', [...cli, 'evaluate', ...common, '--model', out, '--fuse-weight', '2']), /--fuse-weight must be a number from 0 to 1, got "2"/);
  });

  it('tells the user to pretrain when the backbone folder is missing', async () => {
    await assert.rejects(run('node', [...cli, 'train-base', '--backbone', '/nonexistent/backbone', '--quiet']), (e: { stderr: string; code: number }) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /^evorec: \/nonexistent\/backbone: no config.json; pretrain a backbone first/);
      return true;
    });
  });
});
