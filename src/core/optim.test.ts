import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parameter, tensor } from './tensor.js';
import { backward } from './autograd.js';
import { AdamW, clipGradNorm, gradNorm, weightDecayGroups, scaleGrads } from './optim.js';
import { lrSchedule } from './schedule.js';
import * as op from './ops/index.js';
import { tsKernels, loadNativeKernels, nativeLoadError, setKernels, type Kernels } from './kernels/index.js';
import { relErr } from './test-utils/gradcheck.js';

interface AdamFixture {
  init: number[][]; grads: number[][][]; lrs: number[]; norms: number[]; max_norm: number;
  final: number[][]; exp_avg: number[][]; exp_avg_sq: number[][];
}
const fx = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures/adamw.json', import.meta.url)), 'utf8')) as AdamFixture;

for (const { name, k } of [{ name: 'native', k: loadNativeKernels() }, { name: 'ts', k: tsKernels as Kernels | null }]) {
  describe(`AdamW and clipping vs torch.optim.AdamW (${name} kernels)`, { skip: k ? false : `native addon not built: ${nativeLoadError()}` }, () => {
    let prev: Kernels;
    before(() => {
      prev = setKernels(k!);
    });
    after(() => {
      setKernels(prev);
    });
    it('5 steps, two groups (wd 0.1 and 0), clip_grad_norm 3.0, changing lr', () => {
      const p1 = parameter(Float32Array.from(fx.init[0]), [4, 3]);
      const p2 = parameter(Float32Array.from(fx.init[1]), [5]);
      const opt = new AdamW([{ params: [p1], weightDecay: 0.1 }, { params: [p2], weightDecay: 0 }], { lr: 0.01, betas: [0.9, 0.95], eps: 1e-8 });
      fx.grads.forEach((gs, s) => {
        p1.grad = Float32Array.from(gs[0]);
        p2.grad = Float32Array.from(gs[1]);
        const norm = clipGradNorm([p1, p2], fx.max_norm);
        assert.ok(Math.abs(norm - fx.norms[s]) < 1e-5 * fx.norms[s]);
        opt.step(fx.lrs[s]);
      });
      assert.ok(relErr(p1.data, fx.final[0]) < 1e-5, `p1 ${relErr(p1.data, fx.final[0])}`);
      assert.ok(relErr(p2.data, fx.final[1]) < 1e-5);
      assert.ok(relErr(opt.stateOf(p1).m, fx.exp_avg[0]) < 1e-5);
      assert.ok(relErr(opt.stateOf(p1).v, fx.exp_avg_sq[0]) < 1e-4);
      assert.equal(opt.stepCount, 5);
    });
  });
}

describe('optimiser helpers', () => {
  it('skips frozen parameters and parameters without gradient; zeroGrad keeps buffers', () => {
    const a = parameter(Float32Array.from([1, 1]));
    const b = parameter(Float32Array.from([1, 1])).freeze();
    const c = parameter(Float32Array.from([1, 1]));
    const opt = new AdamW([a, b, c], { lr: 0.1, weightDecay: 0 });
    backward(op.sum(op.mul(op.add(a, b), a)));
    opt.step();
    assert.ok(a.data[0] < 1);
    assert.deepEqual(Array.from(b.data), [1, 1]);
    assert.deepEqual(Array.from(c.data), [1, 1]);
    opt.zeroGrad();
    assert.deepEqual(Array.from(a.grad!), [0, 0]);
  });

  it('weightDecayGroups puts norms, biases and 1-D tensors in the no-decay group', () => {
    const named = {
      'layers.0.q_proj': parameter(new Float32Array(4), [2, 2]),
      'layers.0.input_norm': parameter(new Float32Array(2), [2]),
      'head.bias': parameter(new Float32Array(2), [2]),
      frozen: parameter(new Float32Array(4), [2, 2]).freeze(),
    };
    const [decay, plain] = weightDecayGroups(named, 0.1);
    assert.deepEqual(decay.params, [named['layers.0.q_proj']]);
    assert.equal(decay.weightDecay, 0.1);
    assert.deepEqual(plain.params, [named['layers.0.input_norm'], named['head.bias']]);
    assert.equal(plain.weightDecay, 0);
  });

  it('gradNorm, clipGradNorm (no-op below the limit), scaleGrads', () => {
    const a = parameter(Float32Array.from([3, 0]));
    const b = parameter(Float32Array.from([4]));
    a.grad = Float32Array.from([3, 0]);
    b.grad = Float32Array.from([4]);
    assert.equal(gradNorm([a, b]), 5);
    assert.equal(clipGradNorm([a, b], 10), 5);
    assert.deepEqual(Array.from(b.grad), [4]);
    clipGradNorm([a, b], 1);
    assert.ok(Math.abs(gradNorm([a, b]) - 1) < 1e-5);
    scaleGrads([a, b], 2);
    assert.ok(Math.abs(gradNorm([a, b]) - 2) < 1e-5);
  });

  it('gradient accumulation over micro-batches equals one full batch', () => {
    const X = tensor(Array.from({ length: 24 }, (_, i) => Math.cos(i * 0.7)), [8, 3]);
    const tg = Int32Array.from([0, 1, 1, 0, 2, 1, 0, 2]);
    const mk = (): ReturnType<typeof parameter> => parameter(Float32Array.from([0.1, -0.2, 0.3, 0.05, 0.4, -0.1, 0.2, 0.1, -0.3]), [3, 3]);
    const full = mk();
    backward(op.crossEntropy(op.linear(X, full), tg));
    const acc = mk();
    for (let m = 0; m < 2; m++) {
      const xs = op.slice(X, 0, m * 4, m * 4 + 4);
      backward(op.scale(op.crossEntropy(op.linear(xs, acc), tg.subarray(m * 4, m * 4 + 4)), 0.5));
    }
    assert.ok(relErr(acc.grad!, full.grad!) < 1e-6);
  });

  it('trains a small regression to near zero loss', () => {
    const X = tensor(Array.from({ length: 40 }, (_, i) => Math.sin(i)), [20, 2]);
    const wTrue = tensor([1.5, -2], [1, 2]);
    const y = op.linear(X, wTrue);
    const w = parameter(new Float32Array(2), [1, 2]);
    const opt = new AdamW([w], { lr: 0.05, weightDecay: 0 });
    let loss = Infinity;
    for (let s = 0; s < 300; s++) {
      opt.zeroGrad();
      const l = op.mean(op.square(op.sub(op.linear(X, w), y)));
      backward(l);
      opt.step();
      loss = l.item();
    }
    assert.ok(loss < 1e-4, `loss ${loss}`);
  });
});

describe('learning-rate schedules', () => {
  it('constant with warm-up', () => {
    const f = lrSchedule({ kind: 'constant', lr: 1, warmupSteps: 4 });
    assert.deepEqual([0, 1, 2, 3, 4, 100].map(f), [0, 0.25, 0.5, 0.75, 1, 1]);
  });
  it('linear decay to 0 after warm-up (HF get_linear_schedule_with_warmup)', () => {
    const f = lrSchedule({ kind: 'linear', lr: 2, warmupSteps: 2, totalSteps: 12 });
    assert.equal(f(1), 1);
    assert.equal(f(2), 2);
    assert.equal(f(7), 1);
    assert.equal(f(12), 0);
    assert.equal(f(20), 0);
  });
  it('cosine decay (HF get_cosine_schedule_with_warmup) with optional floor', () => {
    const f = lrSchedule({ kind: 'cosine', lr: 1, warmupSteps: 0, totalSteps: 10 });
    assert.equal(f(0), 1);
    assert.ok(Math.abs(f(5) - 0.5) < 1e-12);
    assert.ok(Math.abs(f(10)) < 1e-12);
    const g = lrSchedule({ kind: 'cosine', lr: 1, totalSteps: 10, minLr: 0.1 });
    assert.ok(Math.abs(g(10) - 0.1) < 1e-12);
    assert.throws(() => lrSchedule({ kind: 'cosine', lr: 1 }));
  });
});
