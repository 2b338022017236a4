import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parameter, randn, type Tensor } from './tensor.js';
import { Rng } from './random.js';
import { backward } from './autograd.js';
import { AdamW } from './optim.js';
import { saveCheckpoint, loadCheckpoint, readCheckpoint } from './checkpoint.js';
import * as op from './ops/index.js';

function model(seed: number): Record<string, Tensor> {
  const rng = new Rng(seed);
  return { w1: parameter(randn([4, 3], { rng })), w2: parameter(randn([2, 4], { rng })) };
}
function step(p: Record<string, Tensor>, opt: AdamW, s: number): void {
  const x = randn([5, 3], { rng: new Rng(100 + s) });
  opt.zeroGrad();
  backward(op.mean(op.square(op.linear(op.tanh(op.linear(x, p.w1)), p.w2))));
  opt.step();
}

describe('checkpoints', () => {
  const dir = mkdtempSync(join(tmpdir(), 'evorec-ckpt-'));

  it('save + resume equals uninterrupted training (params, moments, step)', () => {
    const a = model(1);
    const optA = new AdamW(Object.values(a), { lr: 0.01 });
    for (let s = 0; s < 6; s++) step(a, optA, s);

    const b = model(1);
    const optB = new AdamW(Object.values(b), { lr: 0.01 });
    for (let s = 0; s < 3; s++) step(b, optB, s);
    const path = join(dir, 'ck.bin');
    saveCheckpoint(path, { params: b, optimizer: optB, meta: { note: 'half way' } });
    assert.deepEqual(readdirSync(dir), ['ck.bin'], 'no temporary file left behind');

    const c = model(999);
    const optC = new AdamW(Object.values(c), { lr: 0.5 });
    const { step: st, meta } = loadCheckpoint(path, { params: c, optimizer: optC });
    assert.equal(st, 3);
    assert.deepEqual(meta, { note: 'half way' });
    assert.equal(optC.stepCount, 3);
    assert.equal(optC.lr, 0.01);
    for (let s = 3; s < 6; s++) step(c, optC, s);
    assert.deepEqual(Array.from(c.w1.data), Array.from(a.w1.data));
    assert.deepEqual(Array.from(c.w2.data), Array.from(a.w2.data));
  });

  it('header lists roles and shapes; data starts 64-byte aligned', () => {
    const { header } = readCheckpoint(join(dir, 'ck.bin'));
    assert.equal(header.format, 'evorec-checkpoint');
    assert.deepEqual(header.tensors.map((t) => `${t.role}:${t.name}`), ['param:w1', 'param:w2', 'adam.m:w1', 'adam.v:w1', 'adam.m:w2', 'adam.v:w2']);
    assert.deepEqual(header.tensors[0].shape, [4, 3]);
  });

  it('rejects shape mismatches, missing params (strict) and foreign files', () => {
    const path = join(dir, 'ck.bin');
    assert.throws(() => loadCheckpoint(path, { params: { w1: parameter(new Float32Array(6), [2, 3]) } }), /shape/);
    assert.throws(() => loadCheckpoint(path, { params: { w9: parameter(new Float32Array(1)) } }), /no parameter/);
    loadCheckpoint(path, { params: { w9: parameter(new Float32Array(1)) }, strict: false });
    writeFileSync(join(dir, 'junk'), 'hello world, not a checkpoint');
    // Bad input, not a bug: a RangeError, which the CLI reports in one line with exit code 1.
    assert.throws(() => readCheckpoint(join(dir, 'junk')), (e: unknown) => e instanceof RangeError && /not an evorec checkpoint/.test(e.message));
  });

  it('cleanup', () => {
    rmSync(dir, { recursive: true, force: true });
  });
});
