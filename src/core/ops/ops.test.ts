import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, randn } from '../tensor.js';
import { Rng } from '../random.js';
import { tsKernels, loadNativeKernels, nativeLoadError, setKernels, type Kernels } from '../kernels/index.js';
import { gradCheck } from '../test-utils/gradcheck.js';
import * as op from './index.js';
import { backward, noGrad } from '../autograd.js';

function rnd(shape: number[], seed: number, std = 1): Tensor {
  return randn(shape, { rng: new Rng(seed), std, requiresGrad: true });
}
function positive(shape: number[], seed: number): Tensor {
  const t = rnd(shape, seed);
  for (let i = 0; i < t.size; i++) t.data[i] = 0.5 + Math.abs(t.data[i]);
  return t;
}
/** Values bounded away from 0 (for relu's kink). */
function awayFromZero(shape: number[], seed: number): Tensor {
  const t = rnd(shape, seed);
  for (let i = 0; i < t.size; i++) t.data[i] = (t.data[i] >= 0 ? 0.1 : -0.1) + t.data[i];
  return t;
}

const impls: { name: string; k: Kernels | null }[] = [
  { name: 'native', k: loadNativeKernels() },
  { name: 'ts', k: tsKernels },
];

for (const { name, k } of impls) {
  describe(`op gradients vs finite differences (${name} kernels)`, { skip: k ? false : `native addon not built: ${nativeLoadError()}` }, () => {
    let prev: Kernels;
    before(() => {
      prev = setKernels(k!);
    });
    after(() => {
      setKernels(prev);
    });

    it('add, sub, mul, div with broadcasting', () => {
      const a = rnd([2, 3, 4], 1);
      const b = rnd([4], 2);
      const c = rnd([3, 1], 3);
      const d = positive([2, 1, 4], 4);
      gradCheck((x, y) => op.add(x, y), [a, b]);
      gradCheck((x, y) => op.sub(x, y), [a, c]);
      gradCheck((x, y) => op.mul(x, y), [a, c]);
      gradCheck((x, y) => op.div(x, y), [a, d]);
      gradCheck((x, y) => op.mul(x, y), [rnd([3, 4], 5), rnd([3, 4], 6)]);
      gradCheck((x) => op.add(op.scale(x, 2.5), 0.3), [a]);
    });

    it('unary: exp, log, sqrt, square, tanh, relu, sigmoid, logSigmoid, silu, gelu', () => {
      const x = rnd([5, 6], 10);
      gradCheck(op.exp, [rnd([5, 6], 11, 0.5)]);
      gradCheck(op.log, [positive([5, 6], 12)]);
      gradCheck(op.sqrt, [positive([5, 6], 13)]);
      gradCheck(op.square, [x]);
      gradCheck(op.tanh, [x]);
      gradCheck(op.relu, [awayFromZero([5, 6], 14)]);
      gradCheck(op.sigmoid, [x]);
      gradCheck(op.logSigmoid, [rnd([5, 6], 15, 3)]);
      gradCheck(op.silu, [x]);
      gradCheck(op.gelu, [x]);
    });

    it('matmul: transpose flags, batching, shared operands', () => {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const a = rnd(tA ? [4, 3] : [3, 4], 20);
        const b = rnd(tB ? [5, 4] : [4, 5], 21);
        gradCheck((x, y) => op.matmul(x, y, { transA: tA, transB: tB }), [a, b]);
        const ab = rnd(tA ? [2, 4, 3] : [2, 3, 4], 22);
        const bb = rnd(tB ? [2, 5, 4] : [2, 4, 5], 23);
        gradCheck((x, y) => op.matmul(x, y, { transA: tA, transB: tB }), [ab, bb]);
        // shared 2-D b (folded for !transA) and shared 2-D a
        gradCheck((x, y) => op.matmul(x, y, { transA: tA, transB: tB }), [ab, b]);
        gradCheck((x, y) => op.matmul(x, y, { transA: tA, transB: tB }), [a, bb]);
      }
    });

    it('linear (HF layout) with and without bias', () => {
      const x = rnd([2, 3, 6], 30);
      const W = rnd([5, 6], 31);
      const bias = rnd([5], 32);
      gradCheck((a, w, b) => op.linear(a, w, b), [x, W, bias]);
      gradCheck((a, w) => op.linear(a, w), [x, W]);
    });

    it('loraLinear (fused) with bias and with dropout matches the unfused composition', () => {
      const x = rnd([2, 3, 6], 33);
      const W = rnd([5, 6], 34);
      const A = rnd([2, 6], 35);
      const Bm = rnd([5, 2], 36);
      const bias = rnd([5], 37);
      gradCheck((a, w, la, lb, b) => op.loraLinear(a, w, la, lb, { scale: 1.5, bias: b }), [x, W, A, Bm, bias]);
      gradCheck((a, w, la, lb) => op.loraLinear(a, w, la, lb, { scale: 2, dropout: 0.3, rng: new Rng(3) }), [x, W, A, Bm]);
      const fused = op.loraLinear(x, W, A, Bm, { scale: 1.5, bias });
      const plain = op.add(op.linear(x, W, bias), op.scale(op.linear(op.linear(x, A), Bm), 1.5));
      for (let i = 0; i < fused.size; i++) assert.ok(Math.abs(fused.data[i] - plain.data[i]) < 1e-5);
    });

    it('loraLinear under dropout (bit mask, input rebuilt in the backward) matches dropout with a stored mask', () => {
      // rows x in = 75 x 40 = 3000 draws: several mask words, and rows past the kernel's row blocks;
      // rank 20: the path with a temporary xa
      for (const r of [4, 20]) loraUnderDropout(r);
    });
    function loraUnderDropout(r: number): void {
      const x = rnd([3, 25, 40], 60), W = rnd([24, 40], 61), A = rnd([r, 40], 62), Bm = rnd([24, r], 63);
      const g = rnd([3, 25, 24], 64).data;
      const run = (f: () => Tensor): Float32Array[] => {
        for (const t of [x, A, Bm, W]) t.grad = null;
        backward(f(), g);
        return [x, A, Bm, W].map((t) => Float32Array.from(t.grad!));
      };
      const yF = op.loraLinear(x, W, A, Bm, { scale: 2, dropout: 0.3, rng: new Rng(9) });
      const gF = run(() => op.loraLinear(x, W, A, Bm, { scale: 2, dropout: 0.3, rng: new Rng(9) }));
      const composed = () => op.add(op.linear(x, W), op.scale(op.linear(op.linear(op.dropout(x, 0.3, { rng: new Rng(9) }), A), Bm), 2));
      const yC = composed();
      const gC = run(composed);
      for (let i = 0; i < yF.size; i++) assert.ok(Math.abs(yF.data[i] - yC.data[i]) < 1e-4, `y[${i}]`);
      gF.forEach((a, j) => a.forEach((v, i) => assert.ok(Math.abs(v - gC[j][i]) < 1e-4, `rank ${r}, grad ${j}[${i}]: ${v} vs ${gC[j][i]}`)));
    }

    it('embedding (scatter-add gradient, repeated and padding ids)', () => {
      const W = rnd([7, 4], 40);
      const ids = Int32Array.from([1, 3, 1, -1, 6, 3]);
      gradCheck((w) => op.embedding(w, ids, [2, 3]), [W]);
    });

    it('rmsNorm and layerNorm', () => {
      const x = rnd([3, 4, 8], 50);
      const w = rnd([8], 51);
      const b = rnd([8], 52);
      gradCheck((a, c) => op.rmsNorm(a, c, 1e-6), [x, w]);
      gradCheck((a, c, d) => op.layerNorm(a, c, d, 1e-5), [x, w, b]);
    });

    it('rope (rotate_half), default and explicit positions', () => {
      const x = rnd([2, 3, 2 * 8], 60);
      gradCheck((a) => op.rope(a, { headDim: 8, base: 10000 }), [x]);
      const pos = Int32Array.from([0, 1, 2, 5, 6, 7]);
      gradCheck((a) => op.rope(a, { headDim: 8, base: 1e6, positions: pos }), [x]);
    });

    it('softmax, logSoftmax, swiglu', () => {
      const x = rnd([4, 7], 70);
      gradCheck(op.softmax, [x]);
      gradCheck(op.logSoftmax, [x]);
      gradCheck((g, u) => op.swiglu(g, u), [rnd([3, 5], 71), rnd([3, 5], 72)]);
    });

    it('attention: causal, non-causal, key padding, GQA, KV-cache offset', () => {
      const B = 2, T = 4, Dh = 4;
      // MHA, causal
      gradCheck((q, k, v) => op.attention(q, k, v, { numHeads: 2 }), [rnd([B, T, 8], 80), rnd([B, T, 8], 81), rnd([B, T, 8], 82)]);
      // GQA 4 query heads over 2 kv heads, causal + key padding (row 1 left-padded by 2)
      const mask = Uint8Array.from([1, 1, 1, 1, 0, 0, 1, 1]);
      gradCheck((q, k, v) => op.attention(q, k, v, { numHeads: 4, numKvHeads: 2, keyMask: mask }), [rnd([B, T, 4 * Dh], 83), rnd([B, T, 2 * Dh], 84), rnd([B, T, 2 * Dh], 85)]);
      // non-causal with padding (SASRec-style bidirectional would use this), 4-D layout
      gradCheck((q, k, v) => op.attention(q, k, v, { causal: false, keyMask: mask }), [rnd([B, T, 2, Dh], 86), rnd([B, T, 1, Dh], 87), rnd([B, T, 1, Dh], 88)]);
      // S > T (queries are the last T of S positions)
      gradCheck((q, k, v) => op.attention(q, k, v, { numHeads: 2, numKvHeads: 1 }), [rnd([B, 2, 2 * Dh], 89), rnd([B, 5, Dh], 90), rnd([B, 5, Dh], 91)]);
    });

    it('attention with a shared prefix: gradients to q, k, v; inference path equals the recorded one', () => {
      const Dh = 4, S0 = 3, B = 3, T = 2;
      const prefix = { k: rnd([2, S0, Dh], 92).data, v: rnd([2, S0, Dh], 93).data, rows: Int32Array.from([1, 0, 1]), length: S0 };
      const mask = Uint8Array.from([0, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 0]);
      const f = (q: Tensor, k: Tensor, v: Tensor) => op.attention(q, k, v, { numHeads: 2, numKvHeads: 1, keyMask: mask, prefix });
      const q = rnd([B, T, 2 * Dh], 94), k = rnd([B, T, Dh], 95), v = rnd([B, T, Dh], 96);
      gradCheck(f, [q, k, v]);
      const rec = f(q, k, v).data;
      const inf = noGrad(() => f(q, k, v)).data;
      for (let i = 0; i < rec.length; i++) assert.ok(Math.abs(rec[i] - inf[i]) < 1e-5, `prefix attention ${i}: ${rec[i]} vs ${inf[i]}`);
      // query mask: masked rows are zeros with no gradient, with and without a prefix
      const qm = Uint8Array.from([1, 0, 0, 1, 1, 1]);
      const fm = (q: Tensor, k: Tensor, v: Tensor) => op.attention(q, k, v, { numHeads: 2, numKvHeads: 1, keyMask: mask, prefix, queryMask: qm });
      gradCheck(fm, [q, k, v]);
      gradCheck((q, k, v) => op.attention(q, k, v, { numHeads: 2, numKvHeads: 1, queryMask: qm }), [q, k, v]);
      const recM = fm(q, k, v).data, infM = noGrad(() => fm(q, k, v)).data;
      for (let i = 0; i < recM.length; i++) {
        const r = Math.floor(i / (2 * Dh));
        assert.ok(Math.abs(recM[i] - infM[i]) < 1e-5 && (qm[r] || recM[i] === 0), `masked attention ${i}`);
      }
    });

    it('crossEntropy with ignore index (mean over non-ignored)', () => {
      const logits = rnd([2, 3, 6], 100, 2);
      gradCheck((l) => op.crossEntropy(l, Int32Array.from([1, -100, 5, 0, 2, -100])), [logits]);
      gradCheck((l) => op.crossEntropy(l, [3, 3, 1, 4, 0, 5], { reduction: 'sum' }), [logits]);
    });

    it('linearLogProbs equals logSoftmax(linear) at the targets, with and without bias', () => {
      const x = rnd([7, 5], 140), W = rnd([11, 5], 141), bias = rnd([11], 142);
      const tg = Int32Array.from([3, 0, 10, -100, 5, 5, 1]);
      for (const b of [bias, null]) {
        const ref = op.logSoftmax(op.linear(x, W, b)).data;
        const lp = op.linearLogProbs(x, W, tg, { bias: b });
        tg.forEach((t, r) => assert.ok(Math.abs(lp[r] - (t < 0 ? 0 : ref[r * 11 + t])) < 1e-5, `row ${r}: ${lp[r]}`));
      }
      assert.throws(() => op.linearLogProbs(x, W, Int32Array.from([3, 0, 11, -100, 5, 5, 1])), /out of range/);
    });

    it('linearCrossEntropy (fused LM head) matches linear + crossEntropy and its gradients', () => {
      const x = rnd([2, 3, 5], 150);
      const W = rnd([9, 5], 151);
      const bias = rnd([9], 152);
      const tg = Int32Array.from([1, -100, 8, 0, 2, 4]);
      gradCheck((a, w, b) => op.linearCrossEntropy(a, w, tg, { bias: b }), [x, W, bias]);
      // chunked path (2 rows per chunk, logits recomputed in the backward)
      gradCheck((a, w, b) => op.linearCrossEntropy(a, w, tg, { bias: b, maxBufferFloats: 2 * 9 }), [x, W, bias]);
      const l1 = op.linearCrossEntropy(x, W, tg, { bias });
      const l2 = op.crossEntropy(op.linear(x, W, bias), tg);
      assert.ok(Math.abs(l1.item() - l2.item()) < 1e-6);
    });

    it('sum, mean (all and per axis)', () => {
      const x = rnd([2, 3, 4], 110);
      gradCheck((a) => op.sum(a), [x]);
      gradCheck((a) => op.mean(a), [x]);
      gradCheck((a) => op.sum(a, 1), [x]);
      gradCheck((a) => op.mean(a, -1, true), [x]);
      gradCheck((a) => op.mean(a, 0), [x]);
    });

    it('reshape, transpose, permute, slice, concat', () => {
      const x = rnd([2, 3, 4], 120);
      const y = rnd([2, 2, 4], 121);
      gradCheck((a) => op.mul(op.reshape(a, [6, -1]), op.reshape(a, [6, 4])), [x]);
      gradCheck((a) => op.transpose(a, 0, 2), [x]);
      gradCheck((a) => op.permute(a, [1, 2, 0]), [x]);
      gradCheck((a) => op.slice(a, 1, 1, 3), [x]);
      gradCheck((a, b) => op.concat([a, b], 1), [x, y]);
    });

    it('dropout (fixed mask from a seeded generator)', () => {
      const x = rnd([4, 5], 130);
      gradCheck((a) => op.dropout(a, 0.3, { rng: new Rng(5) }), [x]);
      const out = op.dropout(x, 0.5, { rng: new Rng(1) });
      let zeros = 0;
      for (let i = 0; i < out.size; i++) {
        if (out.data[i] === 0) zeros++;
        else assert.ok(Math.abs(out.data[i] - 2 * x.data[i]) < 1e-6);
      }
      assert.ok(zeros > 0 && zeros < out.size);
      assert.equal(op.dropout(x, 0.5, { training: false }), x);
    });

    it('a composed block (LoRA-style linear + attention + loss)', () => {
      const x = rnd([2, 3, 8], 140, 0.5);
      const W = rnd([8, 8], 141, 0.3).freeze();
      const A = rnd([2, 8], 142, 0.3);
      const Bm = rnd([8, 2], 143, 0.3);
      const f = (a: Tensor, b: Tensor): Tensor => {
        const h = op.add(op.linear(x, W), op.scale(op.linear(op.linear(x, a), b), 2));
        const att = op.attention(h, h, h, { numHeads: 2 });
        return op.crossEntropy(att, Int32Array.from([1, 2, 3, 4, 5, -100]));
      };
      gradCheck(f, [A, Bm]);
    });
  });
}
