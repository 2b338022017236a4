import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { backward, noGrad, type Tensor } from '../core/index.js';
import { countParameters, decoderPreset, HF_KEYS, type LinearModule, peftLoraKey } from '../io/index.js';
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
  /** Tied fixtures: gradient w.r.t. the embedding matrix (input lookup + LM head), trained with the adapter. */
  embed_grad?: number[];
}

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

/**
 * The golden fixtures written by reference/llama_lora_model.py (float64 PyTorch, from scratch):
 *  - qwen2-lora: 2 layers, untied head, RoPE 1e6, LoRA on all seven projections of every layer;
 *  - qwen2-deep: the `deep` preset's shape (8 layers, 4 / 2 heads, tied embeddings with no
 *    lm_head.weight in the file, RoPE 1e4) at hidden 32, with LoRA on layers_to_transform [1, 4, 6]
 *    and target_modules q_proj, v_proj, down_proj only, and the embedding trained too.
 */
const GOLDEN = [
  { prefix: 'qwen2-lora', title: 'Qwen2, 2 layers, GQA, q/k/v bias, RoPE 1e6, untied, LoRA on 7 projections x all layers', layers: 2, tied: false, pairs: 14 },
  { prefix: 'qwen2-deep', title: 'Qwen2 deep shape, 8 layers, GQA, RoPE 1e4, tied, LoRA on q/v/down of layers 1, 4, 6', layers: 8, tied: true, pairs: 9 },
] as const;

for (const fx of GOLDEN) {
  const expected = JSON.parse(readFileSync(fixtures + fx.prefix + '-expected.json', 'utf8')) as Expected;
  const adapterJson = JSON.parse(readFileSync(fixtures + fx.prefix + '-adapter/adapter_config.json', 'utf8')) as { layers_to_transform: number[] | null; target_modules: LinearModule[] };

  describe(`Decoder vs PyTorch golden fixture ${fx.prefix} (${fx.title})`, () => {
    it('loads through the HF and PEFT loaders and matches logits, layer outputs, loss and gradients within 1e-4', async () => {
      const { model, tokenizer } = await loadModelFolder(fixtures + fx.prefix + '-model');
      assert.equal(tokenizer, null);
      assert.equal(model.numLayers, fx.layers);
      assert.equal(expected.layer_outputs.length, fx.layers);
      assert.equal(model.config.tieWordEmbeddings, fx.tied);
      assert.equal(HF_KEYS.lmHead in model.params, !fx.tied);
      if (fx.tied) assert.equal(model.headWeight, model.params[HF_KEYS.embedTokens]);
      const adapter = await loadAdapter(fixtures + fx.prefix + '-adapter', model, 'default', { trainable: true, activate: true });
      // exactly the (layer, module) pairs of adapter_config.json (layers_to_transform x target_modules)
      const want = new Set<string>();
      for (let l = 0; l < fx.layers; l++) {
        if (adapterJson.layers_to_transform && !adapterJson.layers_to_transform.includes(l)) continue;
        for (const m of adapterJson.target_modules) want.add(`${l}.${m}`);
      }
      assert.equal(want.size, fx.pairs);
      assert.deepEqual(new Set(adapter.pairs.keys()), want);
      assert.deepEqual(new Set(adapter.namedParameters().map(([k]) => k)), new Set(Object.keys(expected.lora_grads)));
      if (expected.embed_grad) model.setBaseTrainable(true, (n) => n === HF_KEYS.embedTokens);

      const out = model.forward(expected.ids, { batch: expected.batch, attentionMask: expected.attention_mask, labels: expected.labels, logits: 'all', outputHiddenStates: true });
      const eL = relErr(out.logits!.data, expected.logits);
      assert.ok(eL < 1e-4, `logits relative error ${eL}`);
      assert.equal(out.hiddenStates!.length, fx.layers + 1);
      for (let l = 0; l < fx.layers; l++) {
        const e = relErr(out.hiddenStates![l + 1].data, expected.layer_outputs[l]);
        assert.ok(e < 1e-4, `layer ${l} output relative error ${e}`);
      }
      assert.ok(Math.abs(out.loss!.item() - expected.loss) / expected.loss < 1e-5, `loss ${out.loss!.item()} vs ${expected.loss}`);
      backward(out.loss!);
      // base frozen (but for the embedding where the fixture trains it): no gradient there
      for (const [n, t] of Object.entries(model.params)) if (!(expected.embed_grad && n === HF_KEYS.embedTokens)) assert.equal(t.grad, null, n);
      for (const [k, g] of Object.entries(expected.lora_grads)) {
        const [, t] = adapter.namedParameters().find(([n]) => n === k)!;
        const e = relErr(t.grad!, g);
        assert.ok(e < 1e-4, `${k} gradient relative error ${e}`);
      }
      if (expected.embed_grad) {
        const e = relErr(model.params[HF_KEYS.embedTokens].grad!, expected.embed_grad);
        assert.ok(e < 1e-4, `embedding gradient relative error ${e}`);
      }

      // The adapter matters, and where: without it the outputs of the layers before the first adapted
      // one still match the fixture, the first adapted layer's and the logits do not (far beyond 1e-4).
      model.setActiveAdapters(null);
      const base = noGrad(() => model.forward(expected.ids, { batch: expected.batch, attentionMask: expected.attention_mask, logits: 'all', outputHiddenStates: true }));
      model.setActiveAdapters('default');
      const first = adapter.layers()[0];
      for (let l = 0; l < first; l++) assert.ok(relErr(base.hiddenStates![l + 1].data, expected.layer_outputs[l]) < 1e-4, `layer ${l} (no adapter) without the adapter`);
      const eFirst = relErr(base.hiddenStates![first + 1].data, expected.layer_outputs[first]);
      assert.ok(eFirst > 1e-2, `layer ${first} without the adapter: relative error only ${eFirst}`);
      const eBase = relErr(base.logits!.data, expected.logits);
      assert.ok(eBase > 1e-2, `logits without the adapter: relative error only ${eBase}`);
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
}

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

describe('deep preset', () => {
  it('has 8 layers and the hand-counted number of parameters', () => {
    const c = decoderPreset('deep');
    assert.equal(c.numHiddenLayers, 8);
    assert.deepEqual([c.hiddenSize, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.intermediateSize, c.vocabSize], [128, 4, 2, 32, 384, 8000]);
    assert.equal(c.tieWordEmbeddings, true);
    // embedding 8000 x 128                                        = 1,024,000 (tied: lm_head is this matrix)
    // per layer:
    //   attention: q 128x128 16,384 + k 64x128 8,192 + v 64x128 8,192 + o 128x128 16,384
    //              + q/k/v bias 128 + 64 + 64                     =    49,408
    //   MLP: gate 384x128 + up 384x128 + down 128x384 = 3 x 49,152 =   147,456
    //   RMSNorm weights (input, post-attention) 2 x 128           =       256
    //                                                   one layer =   197,120;  x 8 = 1,576,960
    // final norm                                                  =       128
    // total 1,024,000 + 1,576,960 + 128                           = 2,601,088
    assert.equal(countParameters(c), 2_601_088);
  });
});
