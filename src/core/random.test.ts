import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, manualSeed, getDefaultRng } from './random.js';
import { randn } from './tensor.js';

describe('seeded random numbers', () => {
  it('same seed, same sequence; different seed, different sequence', () => {
    const a = new Rng(42), b = new Rng(42), c = new Rng(43);
    const xa = Array.from({ length: 5 }, () => a.nextU32());
    assert.deepEqual(xa, Array.from({ length: 5 }, () => b.nextU32()));
    assert.notDeepEqual(xa, Array.from({ length: 5 }, () => c.nextU32()));
  });
  it('uniform in [0, 1) and normal with about the right moments', () => {
    const r = new Rng(1);
    let s = 0, ss = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const u = r.uniform();
      assert.ok(u >= 0 && u < 1);
      const z = r.normal();
      s += z;
      ss += z * z;
    }
    assert.ok(Math.abs(s / n) < 0.03);
    assert.ok(Math.abs(ss / n - 1) < 0.05);
  });
  it('manualSeed makes default-generator initialisation reproducible', () => {
    manualSeed(7);
    const a = randn([10]);
    manualSeed(7);
    const b = randn([10]);
    assert.deepEqual(Array.from(a.data), Array.from(b.data));
    assert.ok(getDefaultRng() instanceof Rng);
  });
  it('fillKeepMask consumes the stream exactly like one uniform() per element', () => {
    for (const p of [0.05, 0.5, 0.1]) {
      const a = new Rng(3), b = new Rng(3);
      const m = a.fillKeepMask(new Float32Array(1001), p, 2);
      for (let i = 0; i < m.length; i++) assert.equal(m[i], b.uniform() >= p ? 2 : 0);
      assert.equal(a.nextU32(), b.nextU32());
    }
  });
});
