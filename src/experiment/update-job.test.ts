import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { FRUIT_TITLES, roundsDataset, tempDir } from '../data/test-utils/tmp.js';
import { decoderPreset } from '../io/hf-config.js';
import { isLLMRecFolder, readLLMRecManifest } from '../models/llmrec-io.js';
import { saveModelFolder } from '../nn/checkpoint-folder.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { startServe } from '../serve/test-utils/fixture.js';
import { runExperiment } from './experiment.js';
import { parseJobYaml, updateInProcess, type UpdateJobManifest } from './update-job.js';

const run = promisify(execFile);
const cli = ['--import', 'tsx', join(import.meta.dirname, '..', 'cli', 'main.ts')];
const NAMES = FRUIT_TITLES;

/** 20 users over four rounds (some skip a round), a tiny untrained backbone, and a finished experiment run. */
async function tinyRun(): Promise<{ dir: string; out: string }> {
  const dir = tempDir();
  roundsDataset(dir, 20);
  const { tokenizer } = trainTokenizer([...NAMES, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
  const backbone = join(dir, 'backbone');
  await saveModelFolder(backbone, new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize }), { seed: 1 }), { tokenizer });
  const out = join(dir, 'exp');
  // No validation users: the updates train every epoch without early stopping, as the exported job does.
  await runExperiment({
    out, data: dir, users: 0, periods: 2, baseShare: 0.5, history: 3, candidates: 5, backbone, strategies: ['static', 'evorec'],
    loraRank: 4, sasrecEpochs: 2, evalUsers: 0, validUsers: 0, updateLr: 3e-3, batch: 8,
  });
  return { dir, out };
}

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('update jobs for LLaMA-Factory (tiny preset)', () => {
  it('round trip: export, train from the job files alone, import: the scores of an in-process update with the same settings', async () => {
    const { dir, out } = await tinyRun();
    const job = join(dir, 'job');
    const exported = await run('node', [...cli, 'export-update', '--run', out, '--period', '2', '--job', job, '--json', '--quiet']);
    const m = JSON.parse(exported.stdout) as UpdateJobManifest;
    assert.equal(m.format, 'evorec-update-job/1');
    assert.equal(m.period, 2);
    assert.equal(m.trainSeed, 1);
    // The tiny backbone has 2 layers: EvoRec locates round(0.3 * 2) = 1, the other is merged.
    assert.equal(m.layers.length, 1);
    assert.deepEqual([...m.layers, ...m.frozenLayers].sort(), [0, 1]);
    for (const [f, h] of Object.entries(m.files)) assert.equal(sha(join(job, f)), h, f);

    // The LLaMA-Factory files, with their documented fields.
    const info = JSON.parse(readFileSync(join(job, 'data', 'dataset_info.json'), 'utf8'));
    assert.deepEqual(info.evorec_train, { file_name: 'train.json', formatting: 'sharegpt', columns: { messages: 'conversations' }, tags: { role_tag: 'from', content_tag: 'value', user_tag: 'human', assistant_tag: 'gpt' } });
    const train = JSON.parse(readFileSync(join(job, 'data', 'train.json'), 'utf8'));
    assert.equal(train.length, m.examples.train);
    assert.ok(m.examples.train > 0);
    assert.deepEqual(train[0].conversations.map((c: { from: string }) => c.from), ['human', 'gpt']);
    assert.match(train[0].conversations[0].value, /^A customer bought these items, oldest first:\n1\. /);
    assert.match(train[0].conversations[1].value, /^ .+<\|endoftext\|>$/);
    const y = parseJobYaml(readFileSync(join(job, 'job.yaml'), 'utf8'));
    assert.deepEqual(
      { stage: y.stage, do_train: y.do_train, finetuning_type: y.finetuning_type, template: y.template, dataset: y.dataset, dataset_dir: y.dataset_dir, model: y.model_name_or_path, adapters: y.adapter_name_or_path },
      { stage: 'sft', do_train: true, finetuning_type: 'lora', template: 'empty', dataset: 'evorec_train', dataset_dir: 'data', model: 'model', adapters: 'adapters/frozen,adapters/located' },
    );
    assert.deepEqual(
      { lr: y.learning_rate, epochs: y.num_train_epochs, batch: y.per_device_train_batch_size, sched: y.lr_scheduler_type, warmup: y.warmup_ratio, seed: y.seed, rank: y.lora_rank, alpha: y.lora_alpha, dropout: y.lora_dropout },
      { lr: 3e-3, epochs: 2, batch: 8, sched: 'cosine', warmup: 0.05, seed: 1 + 2, rank: 4, alpha: 32, dropout: 0.05 },
    );
    // Floats carry a dot, so YAML 1.1 readers (PyYAML, hence LLaMA-Factory) read numbers, not strings ("4e-4" is a string there).
    for (const k of ['learning_rate', 'num_train_epochs', 'warmup_ratio', 'weight_decay', 'max_grad_norm', 'lora_dropout', 'adam_beta1', 'adam_beta2']) {
      assert.match(readFileSync(join(job, 'job.yaml'), 'utf8'), new RegExp(`^${k}: \\d+\\.\\d+(e-\\d+)?$`, 'm'), k);
    }
    const located = JSON.parse(readFileSync(join(job, 'adapters', 'located', 'adapter_config.json'), 'utf8'));
    assert.deepEqual([located.peft_type, located.r, located.lora_alpha, located.lora_dropout, located.layers_to_transform, located.layers_pattern, located.inference_mode], ['LORA', 4, 32, 0.05, m.layers, 'layers', false]);
    assert.deepEqual(located.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    assert.deepEqual(JSON.parse(readFileSync(join(job, 'adapters', 'frozen', 'adapter_config.json'), 'utf8')).layers_to_transform, m.frozenLayers);
    assert.ok(existsSync(join(job, 'model', 'config.json')) && existsSync(join(job, 'model', 'tokenizer.json')));

    // evorec's trainer stands in for llamafactory-cli, on the job folder alone; then the import.
    const trained = JSON.parse((await run('node', [...cli, 'train-job', '--job', job, '--json'])).stdout);
    // Two epochs of ceil(n / 8) steps over one layer's LoRA (7 projections, rank 4), no early stopping.
    assert.equal(trained.training.steps, 2 * Math.ceil(m.examples.train / 8));
    assert.ok(trained.training.trainableParameters > 0);
    assert.notDeepEqual(readFileSync(join(job, 'output', 'adapter_model.safetensors')), readFileSync(join(job, 'adapters', 'located', 'adapter_model.safetensors')), 'the located layers were trained');
    const returned = JSON.parse(readFileSync(join(job, 'output', 'adapter_config.json'), 'utf8'));
    assert.deepEqual(returned.layers_to_transform, m.layers);
    const saved = join(dir, 'saved');
    const imported = JSON.parse((await run('node', [...cli, 'import-adapter', '--job', job, '--save', saved, '--json', '--quiet'])).stdout);
    const inProcess = await updateInProcess({ run: out, period: 2 });
    for (const view of ['matched', 'uniform']) {
      assert.deepEqual(imported.eval[view].groups, inProcess[view].groups, view);
      assert.deepEqual(imported.eval[view].sets, inProcess[view].sets, view);
    }
    assert.ok(imported.eval.matched.groups.active.users > 0 && imported.eval.matched.groups.inactive.users > 0);
    // The update changed the ranking: the imported adapter does not score as the untouched base (static).
    assert.notDeepEqual(imported.eval.matched.sets, imported.strategies[0].eval.matched.sets);
    // The run's strategies at P2 stand beside it, on the same users.
    assert.deepEqual(imported.strategies.map((s: { strategy: string }) => s.strategy), ['static', 'evorec']);
    assert.equal(imported.strategies[0].eval.matched.groups.all.users, imported.eval.matched.groups.all.users);
    // The saved folder is an LLMRec folder with the whole adapter (both layers).
    assert.ok(isLLMRecFolder(saved));
    assert.equal(readLLMRecManifest(saved).adapter, 'adapter');
    assert.equal(JSON.parse(readFileSync(join(saved, 'adapter', 'adapter_config.json'), 'utf8')).layers_to_transform, null);
    // Registered as a version of a running service (its models root holds the folder).
    const token = 'a-write-token-of-the-test-0123';
    const svc = await startServe(['--db', join(dir, 'shop.db'), '--models-root', dir, '--model', saved, '--quiet'], { ...process.env, EVOREC_TOKEN: token });
    try {
      const reg = JSON.parse((await run('node', [...cli, 'import-adapter', '--job', job, '--save', join(dir, 'saved2'), '--register', svc.url, '--activate', '--json', '--quiet'], { env: { ...process.env, EVOREC_TOKEN: token } })).stdout);
      assert.equal(reg.registered.folder, join(dir, 'saved2'));
      assert.equal(reg.registered.status, 'active');
      const versions = (await (await fetch(`${svc.url}/v1/versions`, { headers: { authorization: `Bearer ${token}` } })).json()) as { folder: string; status: string }[];
      assert.deepEqual(versions.map((v: { folder: string; status: string }) => [v.folder, v.status]), [[saved, 'retired'], [join(dir, 'saved2'), 'active']]);
      await assert.rejects(run('node', [...cli, 'import-adapter', '--job', job, '--save', join(tempDir(), 'outside'), '--register', svc.url, '--quiet'], { env: { ...process.env, EVOREC_TOKEN: token } }), (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr, /^evorec: --register: http:\/\/[^ ]+\/v1\/versions answered 400: body\.folder: /);
        return true;
      });
    } finally {
      svc.proc.kill('SIGTERM');
      await svc.exited;
    }
    const table = (await run('node', [...cli, 'import-adapter', '--job', job, '--quiet'])).stdout;
    assert.match(table, /\| \*\*evorec \(imported\)\*\* \| \d\.\d{4} \|/);
    assert.match(table, /\| static \| /);

    // Bad input: one clear line naming the file and field, exit code 1.
    await assert.rejects(run('node', [...cli, 'import-adapter', '--job', job, '--adapter', join(job, 'adapters', 'frozen'), '--quiet']), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /^evorec: .*frozen\/adapter_config\.json: field "layers_to_transform": \[\d\], but the job trains layers \[\d\]\n$/);
      return true;
    });
    await assert.rejects(run('node', [...cli, 'export-update', '--run', out, '--period', '2', '--job', job, '--quiet']), /already exists; use a new --job folder/);
    await assert.rejects(run('node', [...cli, 'export-update', '--run', out, '--period', '3', '--job', join(dir, 'j3'), '--quiet']), /--period: expected an incremental period from 1 to 2, got 3/);
    await assert.rejects(run('node', [...cli, 'export-update', '--run', out, '--period', '1', '--strategy', 'finetune', '--job', join(dir, 'j4'), '--quiet']), /--strategy: "finetune" is not a strategy of the EvoRec family/);
  });

  it('reads job.yaml strictly, naming the line', () => {
    assert.deepEqual(parseJobYaml('# c\n### model\na: 1\nb: "x y"\nc: true\nd: 4.0e-4\ne: adapters/a,adapters/b\n'), { a: 1, b: 'x y', c: true, d: 4e-4, e: 'adapters/a,adapters/b' });
    assert.throws(() => parseJobYaml('a: 1\n  - list\n', 'job.yaml'), /^RangeError: job\.yaml:2: expected "key: value"/);
    assert.throws(() => parseJobYaml('a: 1\na: 2\n', 'job.yaml'), /job\.yaml:2: field "a": given twice/);
  });
});
