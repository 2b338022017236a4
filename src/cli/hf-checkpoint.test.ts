/**
 * A Hugging Face Qwen2 folder end to end through the commands users run (issue 17): the committed
 * fixture src/io/fixtures/qwen2-tiny-hf (sharded BF16 safetensors + index, tokenizer.json with
 * special added tokens, Qwen2's tokenizer_config.json and generation_config.json) copied as a user's
 * folder; `evorec train-base --backbone <it> --tune lora`, `evorec evaluate` of the result, `evorec
 * experiment --backbone <it>` (static and evorec), and `evorec serve` registering the trained folder
 * and ranking candidates.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FRUIT_TITLES, roundsDataset, tempDir } from '../data/test-utils/tmp.js';
import { readPeftAdapter } from '../io/hf-folder.js';
import { startServe, type ServeProcess } from '../serve/test-utils/fixture.js';

const run = promisify(execFile);
const cli = ['--import', 'tsx', join(import.meta.dirname, 'main.ts')];
const FIXTURE = fileURLToPath(new URL('../io/fixtures/qwen2-tiny-hf/', import.meta.url));
const NAMES = FRUIT_TITLES;
const TOKEN = 'test-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

const spawned: ServeProcess[] = [];
after(() => {
  for (const s of spawned) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
});

describe('a Hugging Face Qwen2 folder through train-base, evaluate, experiment and serve', () => {
  const dir = tempDir('evorec-hf-');
  roundsDataset(dir, 30, 1_700_000_000);
  // The user's folder: the fixture as downloaded (nothing of evorec's added to it).
  const backbone = join(dir, 'Qwen2-tiny');
  cpSync(FIXTURE, backbone, { recursive: true });
  const shipped = readdirSync(backbone).sort();
  const trained = join(dir, 'llmrec');
  const common = ['--data', dir, '--periods', '2', '--base', '0.5', '--history', '3', '--candidates', '5', '--quiet'];

  it('train-base --tune lora trains a PEFT adapter on it, saves an LLMRec folder and evaluates it; evaluate gives the same figures', async () => {
    const { stdout } = await run('node', [...cli, 'train-base', ...common, '--backbone', backbone, '--tune', 'lora', '--lora-rank', '4', '--max-samples', '30', '--valid-users', '10', '--eval-users', '20', '--lr', '3e-3', '--out', trained, '--json']);
    const r = JSON.parse(stdout);
    assert.ok(r.training.training.steps > 0, 'trained some steps');
    assert.equal(r.training.trainSamples, 30);
    for (const f of ['config.json', 'llmrec.json', 'tokenizer.json', 'tokenizer_config.json', 'adapter/adapter_config.json', 'adapter/adapter_model.safetensors', 'results.json']) {
      assert.ok(existsSync(join(trained, f)), f);
    }
    // The backbone folder is left as it was; the saved one keeps the HF config (qwen2, padded vocab).
    assert.deepEqual(readdirSync(backbone).sort(), shipped);
    const cfg = JSON.parse(readFileSync(join(trained, 'config.json'), 'utf8'));
    assert.equal(cfg.model_type, 'qwen2');
    assert.equal(cfg.vocab_size, 448);
    // A PEFT adapter on the Qwen2 module names, non-zero after training.
    const { config: acfg, tensors } = await readPeftAdapter(join(trained, 'adapter'));
    assert.equal(acfg.r, 4);
    const b = tensors.get('base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight');
    assert.ok(b && b.data.some((x) => x !== 0), 'lora_B trained away from zero');
    const m = r.results.matched.llmrec.groups.all;
    assert.ok(m.users > 0);
    for (const k of ['HR@1', 'NDCG@3', 'HR@5']) assert.ok(m.metrics[k] >= 0 && m.metrics[k] <= 1, `${k}: ${m.metrics[k]}`);

    const again = join(dir, 'again.json');
    const ev = await run('node', [...cli, 'evaluate', ...common, '--model', trained, '--eval-users', '20', '--out', again]);
    assert.match(ev.stdout, /\| llmrec \| all \|/);
    const re = JSON.parse(readFileSync(again, 'utf8')).matched.llmrec.groups.all.metrics;
    for (const k of Object.keys(m.metrics)) assert.ok(Math.abs(m.metrics[k] - re[k]) < 1e-9, `${k}: ${m.metrics[k]} vs ${re[k]}`);
  });

  it('experiment --backbone runs static and evorec over two periods from it', async () => {
    const out = join(dir, 'exp');
    const { stdout } = await run('node', [
      ...cli, 'experiment', ...common, '--backbone', backbone, '--strategies', 'static,evorec', '--lora-rank', '4', '--sasrec-epochs', '1',
      '--eval-users', '10', '--valid-users', '10', '--train-seeds', '1', '--out', out,
    ]);
    assert.match(stdout, /\| evorec \| /);
    assert.match(stdout, /\| static \| /);
    for (const f of ['results.json', 'results.md', 'seed-1/base/llmrec.json', 'seed-1/adapters/evorec/p1/adapter_config.json', 'seed-1/adapters/evorec/p2/adapter_model.safetensors']) {
      assert.ok(existsSync(join(out, f)), f);
    }
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.deepEqual(results.seeds, [1]);
    const updates = results.runs[0].updates as { strategy: string; period: number; report: { steps: number } }[];
    assert.deepEqual(updates.map((u) => `${u.strategy}@${u.period}`).sort(), ['evorec@1', 'evorec@2', 'static@1', 'static@2']);
    for (const u of updates) assert.ok(u.strategy === 'static' ? u.report.steps === 0 : u.report.steps > 0, `${u.strategy}@${u.period}: ${u.report.steps} steps`);
    assert.deepEqual(readdirSync(backbone).sort(), shipped, 'the backbone folder is not written to');
  });

  it('serve registers the trained folder and ranks given candidates with it', async () => {
    const svc = await startServe(['--db', join(dir, 'serve.db'), '--model', trained, '--token', TOKEN, '--models-root', dir, '--quiet']);
    spawned.push(svc);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
      const res = await fetch(svc.url + path, { method, headers: AUTH, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      return { status: res.status, body: await res.json() };
    };
    assert.equal((await call('PUT', '/v1/items', { items: NAMES.map((title, k) => ({ id: `i${k}`, title })) })).status, 200);
    const log = [];
    for (let j = 0; j < 4; j++) for (let u = 0; u < 5; u++) log.push({ id: `e-${u}-${j}`, user: `u${u}`, item: `i${(u + j) % NAMES.length}`, timestamp: 1_800_000_000 + j * 10 + u });
    assert.equal((await call('POST', '/v1/interactions', { interactions: log })).body.created, 20);
    const v = await call('POST', '/v1/versions', { folder: trained, trainedUpTo: 'latest', activate: true });
    assert.equal(v.status, 201, JSON.stringify(v.body));
    assert.equal(v.body.status, 'active');
    const candidates = ['i0', 'i4', 'i5', 'i7', 'i9'];
    const rec = await call('POST', '/v1/recommendations', { user: 'u1', k: 5, candidates });
    assert.equal(rec.status, 200, JSON.stringify(rec.body));
    assert.equal(rec.body.version, v.body.id);
    assert.deepEqual(rec.body.history, ['i2', 'i3', 'i4'], "the user's last H = 3 items");
    const ids = rec.body.items.map((x: { id: string }) => x.id);
    assert.deepEqual([...ids].sort(), candidates, 'every candidate ranked once');
    const s = rec.body.items.map((x: { score: number }) => x.score);
    for (let i = 0; i + 1 < s.length; i++) assert.ok(Number.isFinite(s[i]) && s[i] >= s[i + 1], `sorted by score: ${s}`);
    assert.ok(s[0] > s[s.length - 1], `the model tells the candidates apart: ${s}`);
    svc.proc.kill('SIGTERM');
    assert.equal(await svc.exited, 0);
  });
});
