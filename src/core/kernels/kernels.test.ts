/**
 * The two kernel implementations agree on random inputs. Tolerance: both compute in float32 with
 * different summation orders and exp implementations (native: polynomial, ~1 ulp), so results may
 * differ by a few ulps per accumulated term; we require max |a - b| <= 1e-5 * max(1, max |b|) for
 * elementwise kernels and 1e-4 for long reductions (gemm with K up to 300).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tsKernels, loadNativeKernels, nativeLoadError, kernelInfo, type Kernels } from './index.js';
import { Rng } from '../random.js';

const native = loadNativeKernels();
const rng = new Rng(11);
const randArr = (n: number, s = 1): Float32Array => rng.fillNormal(new Float32Array(n), s);

function close(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  let maxB = 1;
  let diff = 0;
  for (let i = 0; i < b.length; i++) {
    maxB = Math.max(maxB, Math.abs(b[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  assert.ok(diff <= tol * maxB, `${what}: max diff ${diff} (scale ${maxB})`);
}

/** Run f with each implementation on copies of the same inputs and compare all outputs. */
function agree(what: string, inputs: (Float32Array | Int32Array | Uint8Array | null)[], f: (k: Kernels, a: (Float32Array | Int32Array | Uint8Array | null)[]) => void, tol = 1e-5): void {
  const run = (k: Kernels): (Float32Array | Int32Array | Uint8Array | null)[] => {
    const copies = inputs.map((x) => (x ? (x.slice() as typeof x) : null));
    f(k, copies);
    return copies;
  };
  const a = run(native!);
  const b = run(tsKernels);
  a.forEach((x, i) => {
    if (x instanceof Float32Array) close(x, b[i] as Float32Array, tol, `${what} (buffer ${i})`);
  });
}

describe('native and TypeScript kernels agree', { skip: native ? false : `native addon not built: ${nativeLoadError()}` }, () => {
  it('gemm: all transpose flags, strides, batches, alpha/beta', () => {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const M = 37, N = 29, K = 300, batch = 3;
      const A = randArr(batch * M * K), B = randArr(batch * K * N), C = randArr(batch * M * N);
      agree(`gemm ${tA} ${tB}`, [A, B, C], (k, [a, b, c]) =>
        k.gemm(tA, tB, M, N, K, 0.7, a as Float32Array, 0, tA ? M : K, M * K, b as Float32Array, 0, tB ? K : N, K * N, 0.5, c as Float32Array, 0, N, M * N, batch), 1e-4);
    }
  });

  it('linearLogProbs (fused LM head + log-softmax): row blocks and vocabulary tiles, bias, ignored rows, threads', () => {
    // 450 rows = 3 row blocks of the native kernel (192), V = 1300 = 3 tiles (512), a partial one last
    const rows = 450, V = 1300, D = 40;
    const x = randArr(rows * D), W = randArr(V * D, 0.5), bias = randArr(V);
    const tg = Int32Array.from({ length: rows }, (_, r) => (r % 17 === 3 ? -100 : (r * 37) % V));
    tg[0] = 0; tg[1] = V - 1; tg[2] = 511; tg[4] = 512;
    for (const b of [bias, null]) {
      const out = new Float32Array(rows);
      agree(`linearLogProbs bias ${!!b}`, [x, W, b, out], (k, [a, w, bb, o]) =>
        k.linearLogProbs(a as Float32Array, w as Float32Array, bb as Float32Array | null, tg, o as Float32Array, rows, V, D, -100), 1e-5);
      // and against the reference: log-softmax of the materialised logits
      const logits = new Float32Array(rows * V);
      if (b) for (let r = 0; r < rows; r++) logits.set(b, r * V);
      tsKernels.gemm(false, true, rows, V, D, 1, x, 0, D, 0, W, 0, D, 0, b ? 1 : 0, logits, 0, V, 0, 1);
      const ls = new Float32Array(rows * V);
      tsKernels.logSoftmax(logits, ls, rows, V);
      native!.linearLogProbs(x, W, b, tg, out, rows, V, D, -100);
      for (let r = 0; r < rows; r++) assert.ok(Math.abs(out[r] - (tg[r] === -100 ? 0 : ls[r * V + tg[r]])) < 1e-4, `row ${r}`);
    }
    const bad = tg.slice();
    bad[5] = V;
    for (const k of [native!, tsKernels]) assert.throws(() => k.linearLogProbs(x, W, null, bad, new Float32Array(rows), rows, V, D, -100), /out of range/);
  });

  it('linearLogProbs with every GEMM backend (packed operands or per-tile GEMM), k split in blocks, 1 and 2 threads', () => {
    // D = 700: three k blocks of the packed path (at most 320 each); V = 1037: a partial NR sliver last
    const rows = 341, V = 1037, D = 700;
    const x = randArr(rows * D, 0.2), W = randArr(V * D, 0.2), bias = randArr(V);
    const tg = Int32Array.from({ length: rows }, (_, r) => (r % 13 === 5 ? -100 : (r * 53) % V));
    tg[0] = V - 1;
    const logits = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) logits.set(bias, r * V);
    tsKernels.gemm(false, true, rows, V, D, 1, x, 0, D, 0, W, 0, D, 0, 1, logits, 0, V, 0, 1);
    const ls = new Float32Array(rows * V);
    tsKernels.logSoftmax(logits, ls, rows, V);
    const k = native!;
    const before = k.blas;
    const threads = k.threads();
    try {
      for (const name of k.gemmBackends()) {
        k.setGemm(name === 'openblas' || name === 'cblas' ? 'blas' : name);
        for (const th of [1, 2]) {
          k.setThreads(th);
          const out = new Float32Array(rows);
          k.linearLogProbs(x, W, bias, tg, out, rows, V, D, -100);
          for (let r = 0; r < rows; r++) assert.ok(Math.abs(out[r] - (tg[r] === -100 ? 0 : ls[r * V + tg[r]])) < 2e-4, `${name}, ${th} threads, row ${r}: ${out[r]}`);
        }
      }
    } finally {
      k.setGemm(before === 'openblas' || before === 'cblas' ? 'blas' : before);
      k.setThreads(threads);
    }
  });

  it('softmax, logSoftmax and their backward; cross-entropy forward and backward', () => {
    const R = 7, C = 1000;
    const x = randArr(R * C, 3), gy = randArr(R * C), out = new Float32Array(R * C), gx = new Float32Array(R * C);
    agree('softmax', [x, out], (k, [a, o]) => k.softmax(a as Float32Array, o as Float32Array, R, C));
    agree('logSoftmax', [x, out], (k, [a, o]) => k.logSoftmax(a as Float32Array, o as Float32Array, R, C));
    const y = new Float32Array(R * C);
    tsKernels.softmax(x, y, R, C);
    agree('softmaxBackward', [y, gy, gx], (k, [a, g, o]) => k.softmaxBackward(a as Float32Array, g as Float32Array, o as Float32Array, R, C));
    tsKernels.logSoftmax(x, y, R, C);
    agree('logSoftmaxBackward', [y, gy, gx], (k, [a, g, o]) => k.logSoftmaxBackward(a as Float32Array, g as Float32Array, o as Float32Array, R, C));
    const tg = Int32Array.from([0, 5, -100, 999, 3, -100, 17]);
    const lseN = new Float32Array(R), lseT = new Float32Array(R);
    const lN = native!.crossEntropy(x, tg, R, C, -100, lseN);
    const lT = tsKernels.crossEntropy(x, tg, R, C, -100, lseT);
    assert.ok(Math.abs(lN - lT) < 1e-4 * Math.abs(lT));
    close(lseN, lseT, 1e-6, 'lse');
    agree('crossEntropyBackward', [x, lseT, gx], (k, [a, l, o]) => k.crossEntropyBackward(a as Float32Array, tg, l as Float32Array, R, C, -100, 0.25, o as Float32Array));
    assert.throws(() => native!.crossEntropy(x, Int32Array.from([0, 1, 2, 3, 4, 5, C]), R, C, -100, lseN), /out of range/);
    // Large enough for the native loop to split rows across threads.
    const R2 = 600, C2 = 4000;
    const x2 = randArr(R2 * C2, 2);
    const tg2 = new Int32Array(R2).map((_, i) => (i % 7 === 0 ? -100 : (i * 31) % C2));
    const l2N = new Float32Array(R2), l2T = new Float32Array(R2);
    const sN = native!.crossEntropy(x2, tg2, R2, C2, -100, l2N);
    const sT = tsKernels.crossEntropy(x2, tg2, R2, C2, -100, l2T);
    assert.ok(Math.abs(sN - sT) < 1e-5 * Math.abs(sT));
    agree('crossEntropyBackward (threaded)', [new Float32Array(R2 * C2)], (k, [o]) => k.crossEntropyBackward(x2, tg2, l2T, R2, C2, -100, 0.5, o as Float32Array));
    const n2 = 1 << 21;
    agree('adamw (threaded)', [randArr(n2), randArr(n2), new Float32Array(n2).fill(0.02)], (k, [pp, m, v]) =>
      k.adamw(pp as Float32Array, randArrBig, m as Float32Array, v as Float32Array, n2, 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.001));
  });

  it('rmsNorm, layerNorm and their backward', () => {
    const R = 9, D = 64;
    const x = randArr(R * D), w = randArr(D), b = randArr(D), gy = randArr(R * D);
    const out = new Float32Array(R * D), r1 = new Float32Array(R), r2 = new Float32Array(R);
    agree('rmsNorm', [x, w, out, r1], (k, [a, ww, o, rs]) => k.rmsNorm(a as Float32Array, ww as Float32Array, o as Float32Array, rs as Float32Array, R, D, 1e-6));
    tsKernels.rmsNorm(x, w, out, r1, R, D, 1e-6);
    agree('rmsNormBackward', [new Float32Array(R * D), randArr(D)], (k, [gx, gw]) => k.rmsNormBackward(x, w, r1, gy, gx as Float32Array, gw as Float32Array, R, D));
    agree('layerNorm', [out, r1, r2], (k, [o, mu, rs]) => k.layerNorm(x, w, b, o as Float32Array, mu as Float32Array, rs as Float32Array, R, D, 1e-5));
    tsKernels.layerNorm(x, w, b, out, r1, r2, R, D, 1e-5);
    agree('layerNormBackward', [new Float32Array(R * D), randArr(D), randArr(D)], (k, [gx, gw, gb]) => k.layerNormBackward(x, w, r1, r2, gy, gx as Float32Array, gw as Float32Array, gb as Float32Array, R, D));
  });

  it('fused attention forward and backward (GQA, causal with S > T, key padding)', () => {
    const B = 2, T = 5, S = 7, Hq = 4, Hkv = 2, Dh = 8;
    const q = randArr(B * T * Hq * Dh), k = randArr(B * S * Hkv * Dh), v = randArr(B * S * Hkv * Dh), g = randArr(B * T * Hq * Dh);
    const mask = Uint8Array.from([0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1]);
    for (const causal of [true, false]) {
      for (const km of [null, mask]) {
        const P = new Float32Array(B * Hq * T * S);
        agree(`attentionForward causal=${causal} mask=${!!km}`, [new Float32Array(q.length), P], (kk, [o, p]) =>
          kk.attentionForward(q, k, v, o as Float32Array, p as Float32Array, B, T, S, Hq, Hkv, Dh, 0.3, causal, km));
        tsKernels.attentionForward(q, k, v, new Float32Array(q.length), P, B, T, S, Hq, Hkv, Dh, 0.3, causal, km);
        agree(`attentionBackward causal=${causal} mask=${!!km}`, [randArr(q.length), randArr(k.length), randArr(v.length)], (kk, [gq, gk, gv]) =>
          kk.attentionBackward(q, k, v, P, g, new Float32Array(P.length), gq as Float32Array, gk as Float32Array, gv as Float32Array, B, T, S, Hq, Hkv, Dh, 0.3, causal));
      }
    }
  });

  it('fused attention over several query blocks (T > 32), causal with S > T, right and left padding', () => {
    const B = 3, T = 70, S = 75, Hq = 4, Hkv = 2, Dh = 8;
    const q = randArr(B * T * Hq * Dh), k = randArr(B * S * Hkv * Dh), v = randArr(B * S * Hkv * Dh), g = randArr(B * T * Hq * Dh);
    const mask = new Uint8Array(B * S).fill(1);
    mask.fill(0, 50, S); // row 0 right-padded
    mask.fill(0, S, S + 9); // row 1 left-padded
    for (const causal of [true, false]) {
      for (const km of [null, mask]) {
        const P = new Float32Array(B * Hq * T * S);
        agree(`attentionForward blocks causal=${causal} mask=${!!km}`, [new Float32Array(q.length), P], (kk, [o, p]) =>
          kk.attentionForward(q, k, v, o as Float32Array, p as Float32Array, B, T, S, Hq, Hkv, Dh, 0.3, causal, km));
        tsKernels.attentionForward(q, k, v, new Float32Array(q.length), P, B, T, S, Hq, Hkv, Dh, 0.3, causal, km);
        agree(`attentionBackward blocks causal=${causal} mask=${!!km}`, [randArr(q.length), randArr(k.length), randArr(v.length)], (kk, [gq, gk, gv]) =>
          kk.attentionBackward(q, k, v, P, g, new Float32Array(P.length).fill(NaN), gq as Float32Array, gk as Float32Array, gv as Float32Array, B, T, S, Hq, Hkv, Dh, 0.3, causal), 1e-4);
      }
    }
  });

  it('dropout mask: both kernels follow Rng.uniform() exactly (the native one split over threads by jump-ahead above 2^16)', () => {
    for (const n of [1003, 200_003]) dropoutStream(n);
  });
  function dropoutStream(n: number): void {
    const x = randArr(n);
    const r = new Rng(5);
    const expect = Float32Array.from({ length: n }, () => (r.uniform() >= 0.1 ? 1 / 0.9 : 0));
    for (const kk of native ? [native, tsKernels] : [tsKernels]) {
      const g = new Rng(5);
      const st = g.getState();
      const mask = new Float32Array(n), xa = new Float32Array(n);
      kk.dropoutMask(st, x, xa, mask, n, 0.1, 1 / 0.9);
      g.setState(st);
      assert.deepEqual(Array.from(mask), Array.from(expect), kk.implementation);
      for (let i = 0; i < n; i++) assert.equal(xa[i], Math.fround(x[i] * mask[i]));
      assert.equal(g.nextU32(), r.nextU32());
      r.setState(new Rng(5).getState()); for (let i = 0; i < n; i++) r.uniform();
    }
  }

  it('dropout bits: the draws of dropoutMask as bits, with every SIMD width, one and two threads, and the TypeScript kernel', () => {
    for (const n of [31, 1003, 40_000, 200_003]) {
      const x = randArr(n);
      const r = new Rng(7);
      const expect = Float32Array.from({ length: n }, () => (r.uniform() >= 0.1 ? 1 / 0.9 : 0));
      const after = r.nextU32();
      const runs: [string, (st: Uint32Array, xa: Float32Array | null, bits: Uint32Array) => void][] = [
        ['ts', (st, xa, bits) => tsKernels.dropoutBits(st, x, xa, bits, n, 0.1, 1 / 0.9)],
      ];
      if (native) {
        // the addon's dropoutBits takes the SIMD width as an optional last argument (0 none, 1 AVX2, 2
        // AVX-512; lowered to what the CPU has)
        const bitsIsa = native.dropoutBits as (...a: unknown[]) => void;
        for (const isa of [0, 1, 2]) runs.push([`native isa ${isa}`, (st, xa, bits) => bitsIsa(st, x, xa, bits, n, 0.1, 1 / 0.9, isa)]);
      }
      for (const [what, run] of runs) {
        for (const withXa of [true, false]) {
          const g = new Rng(7);
          const st = g.getState();
          const bits = new Uint32Array((n + 31) >>> 5), xa = withXa ? new Float32Array(n) : null;
          run(st, xa, bits);
          g.setState(st);
          for (let i = 0; i < n; i++) {
            const kept = ((bits[i >>> 5] >>> (i & 31)) & 1) === 1;
            if (kept !== (expect[i] !== 0)) assert.fail(`${what}, n ${n}: bit ${i}`);
            if (xa && xa[i] !== Math.fround(x[i] * expect[i])) assert.fail(`${what}, n ${n}: xa[${i}]`);
          }
          if (n % 32) assert.equal(bits[bits.length - 1] >>> (n % 32), 0, `${what}: bits past n`);
          assert.equal(g.nextU32(), after, `${what}: state after the draws`);
          const again = new Float32Array(n);
          (native ?? tsKernels).dropoutApply(bits, x, again, n, 1 / 0.9);
          for (let i = 0; i < n; i++) if (again[i] !== Math.fround(x[i] * expect[i])) assert.fail(`${what}: dropoutApply[${i}]`);
        }
      }
    }
  });

  it('loraDropU and loraDropGradA equal dropoutApply then gemm, bit for bit, with every built-in GEMM', () => {
    const gemms = native ? native.gemmBackends().filter((g) => g.startsWith('builtin')) : [];
    const prev = native?.blas;
    for (const kk of native ? [native, tsKernels] : [tsKernels]) {
      for (const gemm of kk === native ? gemms : ['typescript']) {
        if (kk === native) native.setGemm(gemm);
        for (const [rows, I, R] of [[5, 24, 16], [17, 192, 16], [300, 512, 16], [230, 37, 8], [100, 130, 4], [64, 40, 16]]) {
          const x = randArr(rows * I), A = randArr(R * I), gu = randArr(rows * R), gA0 = randArr(R * I);
          const bits = Uint32Array.from({ length: (rows * I + 31) >>> 5 }, () => rng.nextU32());
          const keep = Math.fround(1 / 0.95);
          const xa = new Float32Array(rows * I);
          kk.dropoutApply(bits, x, xa, rows * I, keep);
          const u1 = new Float32Array(rows * R), u2 = new Float32Array(rows * R);
          kk.gemm(false, true, rows, R, I, 1, xa, 0, I, 0, A, 0, I, 0, 0, u1, 0, R, 0, 1);
          kk.loraDropU(x, bits, keep, A, u2, rows, I, R);
          const g1 = gA0.slice(), g2 = gA0.slice();
          kk.gemm(true, false, R, I, rows, 1, gu, 0, R, 0, xa, 0, I, 0, 1, g1, 0, I, 0, 1);
          kk.loraDropGradA(gu, x, bits, keep, g2, rows, I, R);
          const what = `${gemm} ${rows}x${I}x${R}`;
          for (let i = 0; i < u1.length; i++) if (!Object.is(u1[i], u2[i])) assert.fail(`${what}: u[${i}] ${u2[i]} vs ${u1[i]}`);
          for (let i = 0; i < g1.length; i++) if (!Object.is(g1[i], g2[i])) assert.fail(`${what}: gA[${i}] ${g2[i]} vs ${g1[i]}`);
        }
      }
    }
    if (native && prev) native.setGemm(prev);
  });

  it('loraDx equals the product into a temporary and gx += t * mask in JavaScript (bit for bit with the same GEMM)', () => {
    for (const [rows, I, R] of [[5, 24, 16], [17, 192, 16], [100, 192, 16], [230, 37, 8], [64, 512, 16]]) {
      const gu = randArr(rows * R), A = randArr(R * I), gx0 = randArr(rows * I);
      const bits = Uint32Array.from({ length: (rows * I + 31) >>> 5 }, () => rng.nextU32());
      const keep = Math.fround(1 / 0.95); // the float mask's value
      for (const kk of native ? [native, tsKernels] : [tsKernels]) {
        const t = new Float32Array(rows * I);
        kk.gemm(false, false, rows, I, R, 1, gu, 0, R, 0, A, 0, I, 0, 0, t, 0, I, 0, 1);
        const want = gx0.slice();
        for (let i = 0; i < want.length; i++) want[i] += t[i] * ((bits[i >>> 5] >>> (i & 31)) & 1 ? keep : 0);
        const got = gx0.slice();
        kk.loraDx(gu, A, bits, keep, got, rows, I, R);
        for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) assert.fail(`${kk.implementation} ${rows}x${I}x${R}: [${i}] ${got[i]} vs ${want[i]}`);
      }
    }
  });

  it('inference attention with a shared prefix equals attentionForward on the materialised keys', () => {
    const Bp = 2, S0 = 6, B = 5, T = 3, S1 = 4, Hq = 4, Hkv = 2, Dh = 8, W = Hkv * Dh, S = S0 + S1;
    const rows = Int32Array.from([1, 1, 0, 0, 1]);
    const kPre = randArr(Bp * S0 * W), vPre = randArr(Bp * S0 * W);
    const q = randArr(B * T * Hq * Dh), k = randArr(B * S1 * W), v = randArr(B * S1 * W);
    const mask = new Uint8Array(B * S).fill(1);
    mask[0] = 0; mask[S] = 0; mask[S + 1] = 0; mask[2 * S + S0 + 3] = 0; mask.fill(0, 3 * S, 3 * S + S0); mask.fill(0, 4 * S, 4 * S + S0 + 1); // left-padded prefix keys, padded own key
    const kAll = new Float32Array(B * S * W), vAll = new Float32Array(B * S * W);
    for (let b = 0; b < B; b++) {
      kAll.set(kPre.subarray(rows[b] * S0 * W, (rows[b] + 1) * S0 * W), b * S * W);
      kAll.set(k.subarray(b * S1 * W, (b + 1) * S1 * W), b * S * W + S0 * W);
      vAll.set(vPre.subarray(rows[b] * S0 * W, (rows[b] + 1) * S0 * W), b * S * W);
      vAll.set(v.subarray(b * S1 * W, (b + 1) * S1 * W), b * S * W + S0 * W);
    }
    for (const causal of [true, false]) {
      for (const km of [null, mask]) {
        const ref = new Float32Array(q.length);
        tsKernels.attentionForward(q, kAll, vAll, ref, new Float32Array(B * Hq * T * S), B, T, S, Hq, Hkv, Dh, 0.3, causal, km);
        for (const kk of native ? [native, tsKernels] : [tsKernels]) {
          const o = new Float32Array(q.length);
          kk.attentionInfer(q, k, v, o, B, T, S1, Hq, Hkv, Dh, 0.3, causal, km, kPre, vPre, rows, S0, null);
          close(o, ref, 1e-5, `attentionInfer prefix ${kk.implementation} causal=${causal} mask=${!!km}`);
          // no prefix: the same as attentionForward over k/v alone
          const o2 = new Float32Array(q.length), ref2 = new Float32Array(q.length);
          const km2 = km ? Uint8Array.from({ length: B * S1 }, (_, i) => km[Math.floor(i / S1) * S + S0 + (i % S1)]) : null;
          tsKernels.attentionForward(q, k, v, ref2, new Float32Array(B * Hq * T * S1), B, T, S1, Hq, Hkv, Dh, 0.3, causal, km2);
          kk.attentionInfer(q, k, v, o2, B, T, S1, Hq, Hkv, Dh, 0.3, causal, km2, null, null, null, 0, null);
          close(o2, ref2, 1e-5, `attentionInfer ${kk.implementation} causal=${causal} mask=${!!km}`);
          // query mask: skipped rows are zeros, the others unchanged
          const qm = Uint8Array.from({ length: B * T }, (_, i) => (i % 3 === 1 ? 0 : 1));
          const o3 = new Float32Array(q.length);
          kk.attentionInfer(q, k, v, o3, B, T, S1, Hq, Hkv, Dh, 0.3, causal, km, kPre, vPre, rows, S0, qm);
          const ref3 = ref.slice();
          for (let r = 0; r < B * T; r++) if (!qm[r]) ref3.fill(0, r * Hq * Dh, (r + 1) * Hq * Dh);
          close(o3, ref3, 1e-5, `attentionInfer queryMask ${kk.implementation} causal=${causal} mask=${!!km}`);
        }
      }
    }
  });

  it('rope, attention softmax (causal, padded, S > T), swiglu, embedding backward, adamw, axpy, sumSquares', () => {
    const rows = 6, H = 3, Dh = 8, maxPos = 20;
    const cos = randArr(maxPos * Dh / 2), sin = randArr(maxPos * Dh / 2);
    const pos = Int32Array.from([0, 3, 19, 7, 7, 1]);
    const x = randArr(rows * H * Dh);
    for (const sign of [1, -1]) agree('rope', [new Float32Array(x.length)], (k, [o]) => k.rope(x, o as Float32Array, cos, sin, pos, rows, H, Dh, sign));
    const B = 2, Hh = 2, T = 5, S = 7;
    const mask = Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1]);
    for (const causal of [true, false]) {
      for (const km of [null, mask]) {
        agree(`attentionSoftmax causal=${causal} mask=${!!km}`, [randArr(B * Hh * T * S, 2)], (k, [s]) => k.attentionSoftmax(s as Float32Array, B, Hh, T, S, 0.35, causal, km));
      }
    }
    const p = new Float32Array(B * Hh * T * S);
    p.set(randArr(p.length, 2));
    tsKernels.attentionSoftmax(p, B, Hh, T, S, 1, true, mask);
    agree('attentionSoftmaxBackward', [randArr(p.length)], (k, [dp]) => k.attentionSoftmaxBackward(p, dp as Float32Array, B * Hh * T, S, 0.35));
    const n = 1000;
    const g = randArr(n, 4), u = randArr(n), gy = randArr(n);
    agree('swiglu', [new Float32Array(n)], (k, [o]) => k.swiglu(g, u, o as Float32Array, n));
    agree('swigluBackward', [randArr(n), randArr(n)], (k, [gg, gu]) => k.swigluBackward(g, u, gy, gg as Float32Array, gu as Float32Array, n));
    const ids = Int32Array.from([2, 0, 2, -1, 4]);
    agree('embeddingBackward', [randArr(5 * 16)], (k, [gw]) => k.embeddingBackward(ids, randArrFixed, gw as Float32Array, 5, 16));
    agree('adamw', [randArr(n), randArr(n), new Float32Array(n).fill(0.01)], (k, [pp, m, v]) =>
      k.adamw(pp as Float32Array, gy, m as Float32Array, v as Float32Array, n, 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.001));
    agree('axpy', [randArr(n)], (k, [y]) => k.axpy(n, 0.3, gy, y as Float32Array));
    assert.ok(Math.abs(native!.sumSquares(gy) - tsKernels.sumSquares(gy)) < 1e-4 * tsKernels.sumSquares(gy));
  });
});
const randArrFixed = new Rng(3).fillNormal(new Float32Array(5 * 16));
const randArrBig = new Rng(4).fillNormal(new Float32Array(1 << 21));

describe('kernel selection', () => {
  it('kernelInfo reports implementation, BLAS and threads', () => {
    const info = kernelInfo();
    assert.ok(info.implementation === 'native' || info.implementation === 'ts');
    assert.equal(typeof info.blas, 'string');
    assert.ok(info.threads >= 1);
  });

  it('EVOREC_KERNELS=ts forces the TypeScript fallback', () => {
    const mod = fileURLToPath(new URL('./index.ts', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(mod)}).then((m) => console.log(JSON.stringify(m.kernelInfo())))`], {
      env: { ...process.env, EVOREC_KERNELS: 'ts' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout.trim()) as { implementation: string; blas: string };
    assert.equal(info.implementation, 'ts');
    assert.equal(info.blas, 'typescript');
  });
});
