import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { FRUIT_TITLES, roundsDataset, tempDir } from '../data/test-utils/tmp.js';
import { decoderPreset } from '../io/hf-config.js';
import { saveModelFolder } from '../nn/checkpoint-folder.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';

const run = promisify(execFile);
const cli = ['--import', 'tsx', join(import.meta.dirname, 'main.ts')];
const NAMES = FRUIT_TITLES;

/** A small dataset of 20 users over four rounds (some users skip a round) and a tiny untrained backbone. */
async function tinySetup(): Promise<{ dir: string; backbone: string }> {
  const dir = tempDir();
  roundsDataset(dir, 20);
  const { tokenizer } = trainTokenizer([...NAMES, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
  const backbone = join(dir, 'backbone');
  await saveModelFolder(backbone, new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize }), { seed: 1 }), { tokenizer });
  return { dir, backbone };
}

describe('evorec experiment', () => {
  it('runs the strategies once per training seed, writes results.json, results.md and report.html with mean ± SE, and resumes', async () => {
    const { dir, backbone } = await tinySetup();
    const out = join(dir, 'exp');
    const args = [
      'experiment', '--data', dir, '--periods', '2', '--base', '0.5', '--history', '3', '--candidates', '5', '--backbone', backbone,
      '--strategies', 'static,finetune,evorec', '--lora-rank', '4', '--sasrec-epochs', '2', '--eval-users', '0', '--valid-users', '10', '--train-seeds', '2', '--out', out, '--quiet',
    ];
    const first = await run('node', [...cli, ...args]);
    assert.match(first.stdout, /## Averaged over periods/);
    assert.match(first.stdout, /\| evorec \| /);
    assert.match(first.stdout, /mean over 2 training seeds/);
    assert.match(first.stdout, /\| finetune \| [-+]\d\.\d{4} \[[-+]\d\.\d{4}, [-+]\d\.\d{4}\]/);
    const files = ['results.json', 'results.md', 'report.html', 'sasrec/p1/config.json'];
    for (const seed of [1, 2]) files.push(`seed-${seed}/results.json`, `seed-${seed}/base/llmrec.json`, `seed-${seed}/adapters/evorec/p2/adapter_config.json`);
    for (const f of files) assert.ok(existsSync(join(out, f)), f);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /<svg/);
    assert.match(html, /NDCG@3 of inactive users, by period/);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.equal(results.format, 'evorec-experiment-seeds/1');
    assert.deepEqual(results.seeds, [1, 2]);
    assert.deepEqual(results.runs.map((r: { updates: unknown[] }) => r.updates.length), [6, 6]);
    // The seeds differ in training, not in what they are evaluated on.
    const weights = (seed: number) => readFileSync(join(out, `seed-${seed}`, 'adapters', 'finetune', 'p1', 'adapter_model.safetensors'));
    assert.notDeepEqual(weights(1), weights(2));
    assert.deepEqual(results.runs[0].baselines.p1, results.runs[1].baselines.p1);
    assert.equal(results.title, readFileSync(join(out, 'results.md'), 'utf8').split('\n')[0].slice(2));
    // `evorec report` rewrites the reports from results.json alone.
    const rewritten = await run('node', [...cli, 'report', '--out', out, '--title', 'Another title']);
    assert.match(rewritten.stdout, /^# Another title\n/);
    assert.equal(readFileSync(join(out, 'results.md'), 'utf8').split('\n').slice(1).join('\n'), first.stdout.replace(/\nWrote [^\n]*\n$/, '').split('\n').slice(1).join('\n'));
    const rewrittenHtml = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(rewrittenHtml, /<title>Another title<\/title>/);
    // The title heads the page once, above the command and the charts.
    assert.match(rewrittenHtml, /<body>\n<h1>Another title<\/h1>\n<p>Command: evorec experiment [^<]*<\/p>\n<p>Base model: a LoRA adapter trained on P0 in each seed\.<\/p>\n<div class="charts">/);
    assert.equal(rewrittenHtml.split('<h1>').length, 2);
    const again = await run('node', [...cli, ...args]);
    assert.equal(again.stdout.replace(/in \S+\.\n$/, '').split('\n').slice(1).join('\n'), first.stdout.replace(/in \S+\.\n$/, '').split('\n').slice(1).join('\n'));
    // A resume with options that change what is trained is refused, naming the option; nothing is touched.
    const before = readFileSync(join(out, 'results.json'), 'utf8');
    await assert.rejects(run('node', [...cli, ...args, '--update-lr', '0.01']), (e: { stderr: string; code: number }) => {
      assert.equal(e.code, 1);
      assert.equal(e.stderr, `evorec: ${join(out, 'options.json')}: this run was made with --update-lr 0.0004, not 0.01; resume with the same options or use a new --out\n`);
      return true;
    });
    await assert.rejects(run('node', [...cli, ...args, '--samplers', 'uniform']), /this run was made with --samplers "matched,uniform", not "uniform"/);
    assert.equal(readFileSync(join(out, 'results.json'), 'utf8'), before);
  });

  it('starts every seed from one --base-model: a fully tuned one gets a zero LoRA adapter, so P0 scores are the folder\'s own', async () => {
    const { dir, backbone } = await tinySetup();
    const data = ['--data', dir, '--periods', '2', '--base', '0.5', '--history', '3', '--candidates', '5', '--quiet'];
    const baseDir = join(dir, 'full-base');
    await run('node', [...cli, 'train-base', ...data, '--backbone', backbone, '--tune', 'full', '--valid-users', '10', '--eval-users', '0', '--out', baseDir]);
    const trained = JSON.parse(readFileSync(join(baseDir, 'results.json'), 'utf8'));
    const out = join(dir, 'exp');
    const args = ['experiment', ...data, '--base-model', baseDir, '--strategies', 'static,finetune', '--samplers', 'matched,uniform', '--lora-rank', '4', '--eval-users', '0', '--valid-users', '10', '--train-seeds', '2', '--out', out];
    const first = await run('node', [...cli, ...args]);
    assert.match(first.stdout, new RegExp(`Base model: ${baseDir}, shared by every seed`));
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), new RegExp(`<p>Base model: ${baseDir}, shared by every seed`));
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.equal(results.baseModel, baseDir);
    for (const seed of [1, 2]) {
      assert.ok(!existsSync(join(out, `seed-${seed}`, 'base')), 'no base adapter trained');
      assert.deepEqual(JSON.parse(readFileSync(join(out, `seed-${seed}`, 'base-model.json'), 'utf8')), { path: baseDir });
    }
    // The zero-initialised adapter changes nothing: the experiment's P0 figures are train-base's own (all test users, same candidates).
    for (const sampler of ['matched', 'uniform']) {
      for (const r of results.runs) assert.deepEqual(r.baselines.base[sampler].groups.all.metrics, trained.results[sampler].llmrec.groups.all.metrics);
    }
    // The seeds share the base, so static is the same in both; finetune's updates differ.
    const staticOf = (r: { updates: { strategy: string; eval: unknown }[] }) => r.updates.filter((u) => u.strategy === 'static').map((u) => u.eval);
    assert.deepEqual(staticOf(results.runs[0]), staticOf(results.runs[1]));
    // ... copied, not computed again: nothing of it depends on the training seed (runner.test.ts checks the copy against computing it).
    assert.deepEqual(results.runs[1].updates.filter((u: { strategy: string }) => u.strategy === 'static').map((u: { copiedFromSeed?: number }) => u.copiedFromSeed), [1, 1]);
    const weights = (seed: number) => readFileSync(join(out, `seed-${seed}`, 'adapters', 'finetune', 'p1', 'adapter_model.safetensors'));
    assert.notDeepEqual(weights(1), weights(2));
    // A resumed run cannot switch bases.
    const switched = args.filter((a, i) => a !== '--base-model' && args[i - 1] !== '--base-model');
    await assert.rejects(run('node', [...cli, ...switched, '--backbone', backbone]), (e: { stderr: string }) => {
      // The run's options.json catches it first (the seed folders' base-model.json is a second guard).
      assert.equal(e.stderr, `evorec: ${join(out, 'options.json')}: this run was made with --base-model ${JSON.stringify(baseDir)}, not null; resume with the same options or use a new --out\n`);
      return true;
    });
  });

  it('starts from a LoRA --base-model with its adapter as the base: P0 scores are the folder\'s own', async () => {
    const { dir, backbone } = await tinySetup();
    const data = ['--data', dir, '--periods', '2', '--base', '0.5', '--history', '3', '--candidates', '5', '--quiet'];
    const baseDir = join(dir, 'lora-base');
    await run('node', [...cli, 'train-base', ...data, '--backbone', backbone, '--tune', 'lora', '--lora-rank', '4', '--valid-users', '10', '--eval-users', '0', '--out', baseDir]);
    const trained = JSON.parse(readFileSync(join(baseDir, 'results.json'), 'utf8'));
    const out = join(dir, 'exp');
    await run('node', [...cli, 'experiment', ...data, '--base-model', baseDir, '--strategies', 'static,finetune', '--lora-rank', '4', '--eval-users', '0', '--valid-users', '10', '--out', out]);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.deepEqual(results.runs[0].baselines.base.matched.groups.all.metrics, trained.results.matched.llmrec.groups.all.metrics);
    assert.ok(!existsSync(join(out, 'seed-1', 'base')));
    const finetune = results.runs[0].updates.find((u: { strategy: string }) => u.strategy === 'finetune');
    assert.equal(finetune.report.loraParameters, JSON.parse(readFileSync(join(baseDir, 'llmrec.json'), 'utf8')).train.training.trainableParameters);
  });

  it('report names the folder without results.json', async () => {
    await assert.rejects(run('node', [...cli, 'report', '--out', join(tempDir(), 'nothing')]), (e: { stderr: string }) => {
      assert.match(e.stderr, /nothing\/results\.json: not found \(run evorec experiment first\)/);
      return true;
    });
  });

  it('rejects an unknown strategy by name', async () => {
    await assert.rejects(run('node', [...cli, 'experiment', '--strategies', 'static,magic', '--quiet']), (e: { stderr: string }) => {
      assert.match(e.stderr, /^evorec: --strategies: unknown strategy "magic" \(known: static, retrain/);
      return true;
    });
  });
});
