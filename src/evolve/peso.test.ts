import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { backward, Tensor } from '../core/index.js';
import { ProximalTerm } from './peso.js';

interface Fixture {
  weight: number;
  shapes: [number, number][];
  prev: number[][];
  cur: number[][];
  value: number;
  grad: number[][];
}
const fx = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures/peso-penalty.json', import.meta.url)), 'utf8')) as Fixture;

const matrices = (values: number[][]) => values.map((v, i) => new Tensor(Float32Array.from(v), fx.shapes[i], true));

/** The term in float64, written out independently: sum over matrices of mean over rows of KL(prev || cur). */
function reference(prev: number[][], cur: number[][], weight: number): number {
  let total = 0;
  fx.shapes.forEach(([rows, cols], m) => {
    let kl = 0;
    for (let i = 0; i < rows; i++) {
      const row = (x: number[]) => x.slice(i * cols, (i + 1) * cols);
      const lse = (x: number[]) => Math.log(x.reduce((a, v) => a + Math.exp(v), 0));
      const p = row(prev[m]);
      const q = row(cur[m]);
      const lp = lse(p);
      const lq = lse(q);
      for (let j = 0; j < cols; j++) kl += Math.exp(p[j] - lp) * (p[j] - lp - (q[j] - lq));
    }
    total += kl / rows;
  });
  return weight * total;
}

describe('PESO proximal term', () => {
  it('equals PyTorch\'s kl_div(log_softmax(cur), softmax(prev), batchmean) summed and weighted, and an independent float64 sum', () => {
    const params = matrices(fx.prev);
    const term = new ProximalTerm(params, fx.weight);
    params.forEach((p, i) => p.data.set(fx.cur[i]));
    const v = term.loss()!;
    assert.ok(Math.abs(v.item() - fx.value) < 1e-6, `${v.item()} vs torch ${fx.value}`);
    assert.ok(Math.abs(fx.value - reference(fx.prev, fx.cur, fx.weight)) < 1e-6);
    backward(v);
    params.forEach((p, i) => p.grad!.forEach((g, j) => assert.ok(Math.abs(g - fx.grad[i][j]) < 1e-6, `matrix ${i} [${j}]: ${g} vs torch ${fx.grad[i][j]}`)));
  });

  it('is zero at the anchor with a zero gradient, and its gradient matches finite differences elsewhere', () => {
    const params = matrices(fx.prev);
    const term = new ProximalTerm(params, fx.weight);
    const at = term.loss()!;
    assert.ok(Math.abs(at.item()) < 1e-6, `${at.item()}`); // float32 rounding of the two log-softmaxes
    backward(at);
    for (const p of params) for (const g of p.grad!) assert.ok(Math.abs(g) < 1e-6, `${g}`);
    params.forEach((p, i) => {
      p.grad = null;
      p.data.set(fx.cur[i]);
    });
    backward(term.loss()!);
    const h = 1e-3;
    const cur = fx.cur.map((c) => c.slice());
    params.forEach((p, i) => {
      for (let j = 0; j < p.size; j++) {
        const x = cur[i][j];
        cur[i][j] = x + h;
        const up = reference(fx.prev, cur, fx.weight);
        cur[i][j] = x - h;
        const down = reference(fx.prev, cur, fx.weight);
        cur[i][j] = x;
        const fd = (up - down) / (2 * h);
        assert.ok(Math.abs(p.grad![j] - fd) < 1e-4, `matrix ${i} [${j}]: ${p.grad![j]} vs ${fd}`);
      }
    });
  });

  it('anchors to copies: training the matrices does not move the anchor; nothing anchored gives no term', () => {
    const params = matrices(fx.prev);
    const term = new ProximalTerm(params, 2);
    params.forEach((p, i) => p.data.set(fx.cur[i]));
    const moved = term.loss()!.item();
    assert.ok(Math.abs(moved - fx.value) < 1e-6, 'the anchor is the state at construction, not the live matrix');
    assert.equal(new ProximalTerm([], 2).loss(), null);
    assert.equal(new ProximalTerm(params, 0).loss(), null);
    assert.throws(() => new ProximalTerm([new Tensor(new Float32Array(8), [2, 2, 2], true)]), /^RangeError: PESO: expected 2-D LoRA matrices, got shape \[2, 2, 2\]$/);
  });
});
