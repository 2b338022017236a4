import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { arenaStats, clearArena, floats, inArena, releaseFloats, withArena } from './arena.js';
import { backward, linear, mean, parameter, randn, rmsNorm, Rng, silu, square, add, attention, reshape } from './index.js';

/** A small graph with shared inputs, reshapes, broadcasting and attention: loss and parameter grads. */
function step(W: ReturnType<typeof parameter>, n: ReturnType<typeof parameter>, x: ReturnType<typeof randn>): { loss: number; gW: Float32Array; gn: Float32Array } {
  W.grad = null;
  n.grad = null;
  const h = rmsNorm(x, n);
  const q = linear(h, W);
  const a = attention(q, q, q, { numHeads: 2 });
  const y = add(silu(a), reshape(h, [2, 40, 64]));
  const loss = mean(square(y));
  backward(loss);
  return { loss: loss.item(), gW: W.grad!.slice(), gn: n.grad!.slice() };
}

describe('arena', () => {
  it('reuses buffers across scopes, zero-filled, and plain arrays outside', () => {
    clearArena();
    assert.equal(inArena(), false);
    let first: ArrayBufferLike | null = null;
    withArena(() => {
      assert.equal(inArena(), true);
      const a = floats(10000);
      a.fill(7);
      first = a.buffer;
      withArena(() => assert.equal(inArena(), true)); // nested: joins the outer scope
    });
    assert.ok(arenaStats().freeBytes >= 40000);
    withArena(() => {
      const b = floats(9000); // same size class as 10000 floats
      assert.equal(b.buffer, first);
      assert.equal(b.length, 9000);
      assert.ok(b.every((v) => v === 0));
      releaseFloats(b);
      const c = floats(9500, false);
      assert.equal(c.buffer, first); // released early: available again within the scope
    });
    const d = floats(10000);
    assert.notEqual(d.buffer, first);
    clearArena();
    assert.equal(arenaStats().freeBytes, 0);
  });

  it('gives the same loss and gradients inside a scope as outside, step after step', () => {
    const rng = new Rng(3);
    const W = parameter(randn([64, 64], { rng, std: 0.2 }));
    const n = parameter(randn([64], { rng, std: 0.1 }));
    const x = randn([2, 40, 64], { rng });
    const ref = step(W, n, x);
    for (let r = 0; r < 3; r++) {
      const got = withArena(() => step(W, n, x));
      assert.equal(got.loss, ref.loss);
      assert.deepEqual(got.gW, ref.gW);
      assert.deepEqual(got.gn, ref.gn);
      // parameter gradients are plain arrays that survive the scope
      assert.ok(W.grad && W.grad.every((v, i) => v === ref.gW[i]));
    }
  });
});
