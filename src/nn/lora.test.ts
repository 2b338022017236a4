import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AdamW, backward, noGrad } from '../core/index.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, decoderPreset, readSafetensors } from '../io/index.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { Decoder } from './decoder.js';
import { loadAdapter, loadModelFolder, saveModelAdapter, saveModelFolder } from './checkpoint-folder.js';

const dir = mkdtempSync(join(tmpdir(), 'evorec-nn-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cfg = decoderPreset('tiny', { vocabSize: 300 });
const ids = [[5, 17, 33, 2, 9, 41], [7, 7, 100, 250, 3, 12]];

/** A model with one adapter whose B is non-zero (so the adapter changes the output). */
function modelWithAdapter(seed = 1): Decoder {
  const m = new Decoder(cfg, { seed });
  const a = m.addAdapter('default', { r: 4, alpha: 16, dropout: 0.1 }, { seed: seed + 10 });
  for (const p of a.pairs.values()) for (let i = 0; i < p.B.size; i++) p.B.data[i] = 0.05 * Math.sin(i + p.layer * 7 + p.A.size);
  return m;
}

const logits = (m: Decoder) => noGrad(() => m.forward(ids, { logits: 'all' }).logits!.data);

describe('LoRA adapters', () => {
  it('a fresh adapter (B = 0) leaves the model unchanged; A is Kaiming-uniform with bound 1/sqrt(in)', () => {
    const m = new Decoder(cfg, { seed: 2 });
    const before = logits(m);
    const a = m.addAdapter('default', {}, { seed: 3 });
    assert.deepEqual(logits(m), before);
    const q = a.get(0, 'q_proj')!;
    assert.deepEqual(q.A.shape, [16, 64]);
    assert.equal(q.scale, 2);
    const bound = 1 / Math.sqrt(64);
    assert.ok(q.A.data.every((v) => Math.abs(v) <= bound));
    assert.ok(Math.max(...q.A.data) > 0.8 * bound);
    assert.ok(q.B.data.every((v) => v === 0));
    assert.equal(a.pairs.size, 7 * cfg.numHiddenLayers);
    // base frozen, adapter trainable
    assert.ok(Object.values(m.params).every((t) => !t.requiresGrad));
    assert.equal(m.trainableParameters().length, 2 * 7 * cfg.numHiddenLayers);
  });

  it('save and load a model with tokenizer and an adapter: identical logits; PEFT key names and config fields', async () => {
    const m = modelWithAdapter();
    const want = logits(m);
    const tok = trainTokenizer(['a small corpus of titles', 'another title', 'titles titles'], { vocabSize: 300 }).tokenizer;
    await saveModelFolder(join(dir, 'model'), m, { tokenizer: tok });
    await saveModelAdapter(join(dir, 'adapter'), m, 'default', { baseModel: 'runs/backbone-tiny' });

    const { model: m2, tokenizer } = await loadModelFolder(join(dir, 'model'));
    assert.ok(tokenizer);
    assert.deepEqual(tokenizer.encode('another title'), tok.encode('another title'));
    assert.deepEqual(m2.config, { ...m.config });
    const bare = logits(m2);
    await loadAdapter(join(dir, 'adapter'), m2, 'default', { activate: true });
    assert.deepEqual(logits(m2), want);
    assert.notDeepEqual(bare, want);

    const cfgJson = JSON.parse(readFileSync(join(dir, 'adapter', ADAPTER_CONFIG_FILE), 'utf8'));
    for (const [k, v] of Object.entries({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 16, lora_dropout: 0.1, bias: 'none', fan_in_fan_out: false, base_model_name_or_path: 'runs/backbone-tiny', use_rslora: false, use_dora: false })) {
      assert.deepEqual(cfgJson[k], v, k);
    }
    assert.deepEqual(cfgJson.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    for (const k of ['layers_to_transform', 'modules_to_save', 'init_lora_weights', 'inference_mode', 'rank_pattern', 'alpha_pattern']) assert.ok(k in cfgJson, k);
    const { tensors, metadata } = await readSafetensors(join(dir, 'adapter', ADAPTER_WEIGHTS_FILE));
    assert.equal(metadata.format, 'pt');
    assert.ok(tensors.has('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'));
    assert.ok(tensors.has('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight'));
    assert.deepEqual(tensors.get('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight')!.shape, [64, 4]);
    assert.equal(tensors.size, 2 * 7 * 2);
  });

  it('loading reports a shape mismatch naming the file and tensor', async () => {
    const other = new Decoder(decoderPreset('tiny', { vocabSize: 300, intermediateSize: 128 }));
    await assert.rejects(loadAdapter(join(dir, 'adapter'), other), /adapter_model\.safetensors.*mlp\.(gate|up|down)_proj\.lora_[AB]\.weight|mlp\.(gate|up|down)_proj\.lora_[AB]\.weight.*shape/);
    await assert.rejects(loadModelFolder(join(dir, 'nope')), /does not exist/);
  });

  it('per-layer masks: only the trainable layers get gradients and change under AdamW; all else bit-identical', () => {
    const m = new Decoder(decoderPreset('tiny', { vocabSize: 300, numHiddenLayers: 4 }), { seed: 4 });
    const a = m.addAdapter('default', { r: 4, alpha: 8, dropout: 0 }, { seed: 5 });
    for (const p of a.pairs.values()) for (let i = 0; i < p.B.size; i++) p.B.data[i] = 0.02 * Math.cos(i);
    m.setTrainableLayers([1, 3]);
    const trainable = m.trainableParameters();
    assert.equal(trainable.length, 2 * 7 * 2);
    const snapshot = new Map(m.namedParameters().map(([k, t]) => [k, t.data.slice()]));
    const opt = new AdamW(trainable, { lr: 1e-2 });
    const out = m.forward(ids, { labels: ids.flat(), training: true, outputHiddenStates: true });
    // layers below the first trainable one record no graph: no backward work there
    assert.deepEqual(out.hiddenStates!.map((h) => h.requiresGrad), [false, false, true, true, true]);
    backward(out.loss!);
    opt.step();
    for (const [k, t] of m.namedParameters()) {
      const inMask = /layers\.(1|3)\./.test(k) && k.startsWith('lora.');
      if (inMask) {
        assert.ok(t.grad && t.grad.some((g) => g !== 0), `${k} has a gradient`);
        assert.notDeepEqual(t.data, snapshot.get(k), `${k} changed`);
      } else {
        assert.equal(t.grad, null, `${k} has no gradient`);
        assert.deepEqual(t.data, snapshot.get(k), `${k} unchanged`);
      }
    }
    // module mask on top: only q and v of the located layers
    a.setTrainableModules(['q_proj', 'v_proj']);
    assert.equal(m.trainableParameters().length, 2 * 2 * 2);
    assert.deepEqual(a.trainableMask(), { trainable: true, layers: [1, 3], modules: ['q_proj', 'v_proj'] });
    m.setTrainableLayers(null);
    a.setTrainableModules(null);
    assert.equal(m.trainableParameters().length, 2 * 7 * 4);
  });

  it('several adapters: weighted activation equals the combined (rank-concatenated) adapter; combined saves and loads', async () => {
    const m = modelWithAdapter(6);
    const long = m.adapter('default');
    const short = m.addAdapter('short', { r: 2, alpha: 4, dropout: 0 }, { seed: 9 });
    for (const p of short.pairs.values()) for (let i = 0; i < p.B.size; i++) p.B.data[i] = 0.03 * Math.cos(i * 3 + p.layer);
    m.setActiveAdapters({ default: 0.7, short: 0.3 });
    const mixed = logits(m);
    const comb = m.combineAdapters({ default: 0.7, short: 0.3 }, 'lsat');
    assert.equal(comb.get(0, 'q_proj')!.r, 6);
    assert.deepEqual(comb.parameters(), []); // attached frozen
    m.setActiveAdapters('lsat');
    const viaComb = logits(m);
    for (let i = 0; i < mixed.length; i++) assert.ok(Math.abs(mixed[i] - viaComb[i]) < 1e-5);
    await saveModelAdapter(join(dir, 'lsat'), m, 'lsat');
    const m2 = new Decoder(cfg, { seed: 6 });
    await loadAdapter(join(dir, 'lsat'), m2, 'lsat', { activate: true });
    assert.deepEqual(logits(m2), viaComb);
    // null: bare base model
    m.setActiveAdapters(null);
    const base = logits(m);
    m.setActiveAdapters('default');
    assert.notDeepEqual(logits(m), base);
    assert.equal(long.name, 'default');
  });

  it('merge into and unmerge from the base weights', () => {
    const m = modelWithAdapter(7);
    const w0 = m.params['model.layers.0.self_attn.q_proj.weight'].data.slice();
    const withAdapter = logits(m);
    m.mergeAdapter('default');
    const merged = logits(m);
    for (let i = 0; i < merged.length; i++) assert.ok(Math.abs(merged[i] - withAdapter[i]) < 1e-4);
    m.setActiveAdapters(null);
    assert.deepEqual(logits(m), merged); // merged adapter lives in the weights now
    m.unmergeAdapter('default');
    const w1 = m.params['model.layers.0.self_attn.q_proj.weight'].data;
    for (let i = 0; i < w0.length; i++) assert.ok(Math.abs(w0[i] - w1[i]) < 1e-6);
  });
});
