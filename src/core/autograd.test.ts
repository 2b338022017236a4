import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, parameter, zeros } from './tensor.js';
import { backward, noGrad, enableGrad, isGradEnabled, recycleGrad } from './autograd.js';
import * as op from './ops/index.js';

describe('autograd', () => {
  it('accumulates gradients over several backward calls (gradient accumulation)', () => {
    const w = parameter(Float32Array.from([1, 2, 3]));
    for (let i = 0; i < 3; i++) backward(op.sum(op.mul(w, w)));
    assert.deepEqual(Array.from(w.grad!), [6, 12, 18]);
  });

  it('recycleGrad drops a gradient but hands its buffer, zeroed, to the next one (no accumulation across it)', () => {
    const w = parameter(Float32Array.from([1, 2, 3]));
    backward(op.sum(op.mul(w, w)));
    const first = w.grad!;
    recycleGrad(w);
    assert.equal(w.grad, null);
    backward(op.sum(op.mul(w, w)));
    assert.equal(w.grad, first); // the same array
    assert.deepEqual(Array.from(w.grad!), [2, 4, 6]); // this backward's gradient only
  });

  it('handles a tensor used twice (diamond) and frees intermediate gradients', () => {
    const x = parameter(Float32Array.from([2]));
    const y = op.mul(x, x);
    const z = op.add(y, op.scale(y, 3)); // 4 x^2
    backward(z);
    assert.equal(x.grad![0], 16);
    assert.equal(y.grad, null);
    assert.equal(y.node, null);
  });

  it('retainGrad keeps a non-leaf gradient', () => {
    const x = parameter(Float32Array.from([1, -1]));
    const y = op.scale(x, 2);
    y.retainGrad = true;
    backward(op.sum(y));
    assert.deepEqual(Array.from(y.grad!), [1, 1]);
  });

  it('records nothing for ops whose inputs need no grad (frozen or constant)', () => {
    const frozen = tensor([1, 2, 3, 4], [2, 2]);
    const x = tensor([1, 1], [1, 2]);
    const y = op.linear(x, frozen);
    assert.equal(y.node, null);
    assert.equal(y.requiresGrad, false);
    const w = parameter(Float32Array.from([1, 2, 3, 4]), [2, 2]);
    w.freeze();
    assert.equal(op.linear(x, w).node, null);
    w.unfreeze();
    assert.notEqual(op.linear(x, w).node, null);
  });

  it('noGrad disables recording and nests; enableGrad re-enables', () => {
    const w = parameter(Float32Array.from([1, 2]));
    const y = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      const inner = enableGrad(() => op.scale(w, 2));
      assert.notEqual(inner.node, null);
      return noGrad(() => op.scale(w, 2));
    });
    assert.equal(y.node, null);
    assert.equal(isGradEnabled(), true);
    assert.throws(() => backward(y), /does not require grad/);
  });

  it('backward of a non-scalar needs an explicit gradient', () => {
    const w = parameter(Float32Array.from([1, 2]));
    const y = op.scale(w, 3);
    assert.throws(() => backward(y), /explicit gradient/);
    backward(y, Float32Array.from([1, 10]));
    assert.deepEqual(Array.from(w.grad!), [3, 30]);
  });

  it('detach cuts the graph; a frozen lower half gets no gradient', () => {
    const a = parameter(Float32Array.from([1, 2]));
    const b = parameter(Float32Array.from([3, 4]));
    const h = op.mul(a, a).detach();
    backward(op.sum(op.mul(h, b)));
    assert.equal(a.grad, null);
    assert.deepEqual(Array.from(b.grad!), [1, 4]);
  });

  it('tensor basics', () => {
    const t = zeros([2, 3]);
    assert.equal(t.size, 6);
    assert.equal(t.dim(-1), 3);
    assert.throws(() => new Tensor(new Float32Array(5), [2, 3]));
    assert.throws(() => t.item());
    assert.equal(tensor([4]).item(), 4);
  });
});
