import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { backward, noGrad, type Tensor } from '../core/index.js';
import { decoderPreset, peftLoraKey } from '../io/index.js';
import { Decoder, meanPool } from './decoder.js';
import { loadAdapter, loadModelFolder } from './checkpoint-folder.js';
import { padBatch } from './batch.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

interface Expected {
  batch: number;
  seq: number;
  ids: number[];
  attention_mask: number[];
  positions: number[];
  labels: number[];
  logits: number[];
  layer_outputs: number[][];
  loss: number;
  lora_grads: Record<string, number[]>;
}

const expected = JSON.parse(readFileSync(fixtures + 'qwen2-lora-expected.json', 'utf8')) as Expected;

/** max |a - b| / max |b| (the core golden test's measure). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** Real-token rows of [B, T, D] (mask 1), concatenated. */
function realRows(h: Tensor, mask: ArrayLike<number> | null, b: number): number[] {
  const [, T, D] = h.shape;
  const out: number[] = [];
  for (let t = 0; t < T; t++) if (!mask || mask[b * T + t]) out.push(...h.data.subarray((b * T + t) * D, (b * T + t + 1) * D));
  return out;
}

describe('Decoder vs PyTorch golden fixture (Qwen2, GQA, q/k/v bias, RoPE 1e6, LoRA on 7 projections)', () => {
  it('loads through the HF and PEFT loaders and matches logits, layer outputs, loss and LoRA gradients within 1e-4', async () => {
    const { model, tokenizer } = await loadModelFolder(fixtures + 'qwen2-lora-model');
    assert.equal(tokenizer, null);
    const adapter = await loadAdapter(fixtures + 'qwen2-lora-adapter', model, 'default', { trainable: true, activate: true });
    assert.equal(adapter.pairs.size, 14);
    const out = model.forward(expected.ids, { batch: expected.batch, attentionMask: expected.attention_mask, labels: expected.labels, logits: 'all', outputHiddenStates: true });
    const eL = relErr(out.logits!.data, expected.logits);
    assert.ok(eL < 1e-4, `logits relative error ${eL}`);
    for (let l = 0; l < 2; l++) {
      const e = relErr(out.hiddenStates![l + 1].data, expected.layer_outputs[l]);
      assert.ok(e < 1e-4, `layer ${l} output relative error ${e}`);
    }
    assert.ok(Math.abs(out.loss!.item() - expected.loss) / expected.loss < 1e-5, `loss ${out.loss!.item()} vs ${expected.loss}`);
    backward(out.loss!);
    // base frozen: no gradient there
    for (const t of Object.values(model.params)) assert.equal(t.grad, null);
    for (const [k, g] of Object.entries(expected.lora_grads)) {
      const [, t] = adapter.namedParameters().find(([n]) => n === k)!;
      const e = relErr(t.grad!, g);
      assert.ok(e < 1e-4, `${k} gradient relative error ${e}`);
    }
  });

  it('positions from the mask equal the fixture positions (left padding)', () => {
    // the fixture's positions: cumsum(mask) - 1 clamped at 0
    const T = expected.seq;
    for (let b = 0; b < expected.batch; b++) {
      let p = 0;
      for (let t = 0; t < T; t++) {
        if (expected.attention_mask[b * T + t]) assert.equal(expected.positions[b * T + t], p++);
        else assert.equal(expected.positions[b * T + t], 0);
      }
    }
  });
});

describe('Decoder inference', () => {
  const cfg = decoderPreset('tiny', { vocabSize: 50 });
  const model = new Decoder(cfg, { seed: 3 });
  model.addAdapter('default', { r: 4, alpha: 8, dropout: 0 }, { seed: 5 });
  // give B non-zero values so the adapter matters
  for (const t of model.adapter('default').parameters(true)) if (t.name?.includes('lora_B')) for (let i = 0; i < t.size; i++) t.data[i] = Math.sin(i) * 0.05;

  it('KV-cache decoding equals full recomputation (last-position logits), also from a shared prefix', () => {
    const seq = [5, 9, 11, 3, 7, 21, 2, 8];
    const full = model.logitsOf([seq]);
    const V = cfg.vocabSize;
    noGrad(() => {
      const cache = model.newCache(1);
      model.forward([seq.slice(0, 5)], { cache, logits: 'none' });
      for (let t = 5; t < seq.length; t++) {
        const o = model.forward([[seq[t]]], { cache, logits: 'last' });
        const want = full.data.subarray(t * V, (t + 1) * V);
        assert.ok(relErr(o.logits!.data, want) < 1e-5, `step ${t}`);
      }
      assert.equal(cache.length, seq.length);
      // shared prefix expanded to 3 rows, each continued with a different candidate
      const pre = model.newCache(1);
      model.forward([seq.slice(0, 4)], { cache: pre, logits: 'none' });
      const cands = [[7, 21], [1, 30], [44, 2]];
      const c3 = pre.select([0, 0, 0]);
      const o3 = model.forward(cands, { cache: c3, logits: 'all' });
      cands.forEach((c, i) => {
        const ref = model.logitsOf([[...seq.slice(0, 4), ...c]]);
        const got = o3.logits!.data.subarray(i * 2 * V, (i + 1) * 2 * V);
        assert.ok(relErr(got, ref.data.subarray(4 * V, 6 * V)) < 1e-5, `candidate ${i}`);
      });
    });
  });

  it('KV cache with a left-padded batch equals each row decoded alone', () => {
    const rows = [[4, 6, 8, 10], [12, 14]];
    const { ids, attentionMask } = padBatch(rows, { padId: 1, side: 'left' });
    const V = cfg.vocabSize;
    noGrad(() => {
      const cache = model.newCache(2);
      model.forward(ids, { batch: 2, attentionMask, cache, logits: 'none' });
      const o = model.forward([[3], [5]], { cache, logits: 'last' });
      const r0 = model.logitsOf([[...rows[0], 3]]);
      const r1 = model.logitsOf([[...rows[1], 5]]);
      assert.ok(relErr(o.logits!.data.subarray(0, V), r0.data.subarray(4 * V)) < 1e-5);
      assert.ok(relErr(o.logits!.data.subarray(V, 2 * V), r1.data.subarray(2 * V)) < 1e-5);
    });
  });

  it('per-layer hidden states with left or right padding equal those without padding on real tokens', () => {
    const rows = [[4, 6, 8, 10, 12], [30, 31, 32]];
    const alone = rows.map((r) => noGrad(() => model.forward([r], { outputHiddenStates: true, logits: 'none' }).hiddenStates!));
    for (const side of ['left', 'right'] as const) {
      const { ids, attentionMask } = padBatch(rows, { padId: 1, side });
      const hs = noGrad(() => model.forward(ids, { batch: 2, attentionMask, outputHiddenStates: true, logits: 'none' }).hiddenStates!);
      assert.equal(hs.length, cfg.numHiddenLayers + 1);
      for (let l = 0; l <= cfg.numHiddenLayers; l++) {
        for (let b = 0; b < 2; b++) {
          const e = relErr(realRows(hs[l], attentionMask, b), realRows(alone[b][l], null, 0));
          assert.ok(e < 1e-5, `${side} padding, layer ${l}, row ${b}: ${e}`);
        }
        // mean pooling over real tokens agrees too
        const pooled = meanPool(hs[l], attentionMask);
        const D = cfg.hiddenSize;
        for (let b = 0; b < 2; b++) assert.ok(relErr(pooled.subarray(b * D, (b + 1) * D), meanPool(alone[b][l], null)) < 1e-5);
      }
    }
  });

  it('loss with labels equals cross-entropy of the logits; a frozen base records no gradient', () => {
    const ids = [[3, 4, 5, 6, 7]];
    const labels = [3, 4, -100, 6, 7];
    const a = model.forward(ids, { labels, logits: 'all' });
    const b = model.forward(ids, { labels });
    assert.equal(a.lossTokens, 3);
    assert.ok(Math.abs(a.loss!.item() - b.loss!.item()) < 1e-6);
    backward(b.loss!);
    assert.ok(Object.values(model.params).every((t) => t.grad === null));
    for (const t of model.adapter('default').parameters()) t.grad = null;
    for (const t of Object.values(model.params)) assert.equal(t.requiresGrad, false);
    assert.ok(peftLoraKey(0, 'q_proj', 'A').startsWith('base_model.model.model.layers.0'));
  });
});
