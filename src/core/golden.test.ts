/**
 * Golden check against PyTorch: a 2-layer Llama-style decoder (RMSNorm, RoPE, GQA attention with a
 * key-padding mask, SwiGLU, LM head, cross-entropy with ignore index). The fixture was written by
 * reference/llama_block.py (float64); the engine (float32) must match within 1e-4 relative error
 * (max abs difference over max abs value) for logits, loss and every weight gradient.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tensor, parameter } from './tensor.js';
import { backward } from './autograd.js';
import * as op from './ops/index.js';
import { tsKernels, loadNativeKernels, nativeLoadError, setKernels, type Kernels } from './kernels/index.js';
import { relErr } from './test-utils/gradcheck.js';

interface Fixture {
  config: { vocab: number; d_model: number; n_heads: number; n_kv_heads: number; head_dim: number; ffn: number; n_layers: number; rope_base: number; eps: number; batch: number; seq: number };
  ids: number[];
  mask: number[];
  positions: number[];
  labels: number[];
  weights: Record<string, { shape: number[]; data: number[] }>;
  logits: number[];
  loss: number;
  grads: Record<string, number[]>;
}

const fx = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures/llama_block.json', import.meta.url)), 'utf8')) as Fixture;
const TOL = 1e-4;

function loadWeights(frozen: (name: string) => boolean = () => false): Record<string, Tensor> {
  const W: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(fx.weights)) {
    W[k] = parameter(Float32Array.from(v.data), v.shape, k);
    if (frozen(k)) W[k].freeze();
  }
  return W;
}

const impls: { name: string; k: Kernels | null }[] = [
  { name: 'native', k: loadNativeKernels() },
  { name: 'ts', k: tsKernels },
];

for (const { name, k } of impls) {
  describe(`golden 2-layer Llama block vs PyTorch (${name} kernels)`, { skip: k ? false : `native addon not built: ${nativeLoadError()}` }, () => {
    let prev: Kernels;
    before(() => {
      prev = setKernels(k!);
    });
    after(() => {
      setKernels(prev);
    });

    it('logits, loss and all weight gradients within 1e-4 relative error', () => {
      const { logits, loss, W } = runWith(loadWeights());
      const eL = relErr(logits.data, fx.logits);
      assert.ok(eL < TOL, `logits relative error ${eL}`);
      const eLoss = Math.abs(loss.item() - fx.loss) / Math.abs(fx.loss);
      assert.ok(eLoss < TOL, `loss ${loss.item()} vs ${fx.loss}`);
      backward(loss);
      for (const [n, g] of Object.entries(fx.grads)) {
        const got = W[n].grad;
        assert.ok(got, `no gradient for ${n}`);
        const e = relErr(got, g);
        assert.ok(e < TOL, `gradient of ${n}: relative error ${e}`);
      }
    });

    it('freezing the embedding and layer 0: no gradient there, nothing recorded, same upper gradients', () => {
      const lower = (n: string): boolean => n === 'embed' || n.startsWith('layers.0.');
      const { loss, W, layer0Recorded } = runWith(loadWeights(lower));
      assert.equal(layer0Recorded, false, 'no op over frozen inputs may be recorded');
      backward(loss);
      for (const [n, t] of Object.entries(W)) {
        if (lower(n)) assert.equal(t.grad, null, `${n} should have no gradient`);
        else assert.ok(relErr(t.grad!, fx.grads[n]) < TOL, `gradient of ${n}`);
      }
    });
  });
}

function runWith(W: Record<string, Tensor>): { logits: Tensor; loss: Tensor; W: Record<string, Tensor>; layer0Recorded: boolean } {
  const c = fx.config;
  const B = c.batch, T = c.seq;
  const keyMask = Uint8Array.from(fx.mask);
  const positions = Int32Array.from(fx.positions);
  let layer0Recorded = true;
  let x = op.embedding(W.embed, Int32Array.from(fx.ids), [B, T]);
  for (let l = 0; l < c.n_layers; l++) {
    const p = `layers.${l}.`;
    const h = op.rmsNorm(x, W[p + 'input_norm'], c.eps);
    const rope = { headDim: c.head_dim, base: c.rope_base, positions };
    const q = op.rope(op.linear(h, W[p + 'q_proj']), rope);
    const k = op.rope(op.linear(h, W[p + 'k_proj']), rope);
    const v = op.linear(h, W[p + 'v_proj']);
    const a = op.attention(q, k, v, { numHeads: c.n_heads, numKvHeads: c.n_kv_heads, causal: true, keyMask });
    x = op.add(x, op.linear(a, W[p + 'o_proj']));
    const n = op.rmsNorm(x, W[p + 'post_norm'], c.eps);
    x = op.add(x, op.linear(op.swiglu(op.linear(n, W[p + 'gate_proj']), op.linear(n, W[p + 'up_proj'])), W[p + 'down_proj']));
    if (l === 0) layer0Recorded = x.node !== null;
  }
  const logits = op.linear(op.rmsNorm(x, W.final_norm, c.eps), W.lm_head);
  logits.retainGrad = true;
  return { logits, loss: op.crossEntropy(logits, Int32Array.from(fx.labels)), W, layer0Recorded };
}
