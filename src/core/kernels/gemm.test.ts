/**
 * The native GEMMs (built-in AVX-512 and AVX2 where the CPU has them, built-in portable C, OpenBLAS
 * when compiled in) against a float64 reference: odd and unit sizes, K = 0, both transposes,
 * alpha/beta, padded leading dimensions, beta = 0 over NaN, at 1 and 2 threads. Sizes cross the
 * blocking of gemm-builtin.c (KC 320, NC 4096, tiles 12 x 32 and 6 x 16), the serial/threaded
 * threshold (2^20 multiply-adds) and both thread splits (rows; columns when M is small).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadNativeKernels } from './native.js';
import { Rng } from '../random.js';

const native = loadNativeKernels();

interface Case { tA: boolean; tB: boolean; M: number; N: number; K: number; alpha: number; beta: number; pad: number; nanC?: boolean }

const cases: Case[] = [];
const sizes: [number, number, number][] = [
  [1, 1, 1], [1, 17, 5], [7, 1, 3], [5, 13, 0], [6, 16, 1], [13, 33, 7], [37, 29, 300], [64, 64, 48],
  [130, 150, 70], [97, 203, 257], [7, 4100, 40], [200, 35, 513], [1, 300, 4000], [300, 1, 600],
  // the skinny path (N <= 32, or M <= 16 through the transpose): LoRA rank-16 shapes, partial row blocks, threaded
  [301, 16, 192], [37, 32, 70], [25, 20, 9], [1100, 16, 192], [600, 24, 100], [16, 150, 900], [13, 70, 50],
  // ... with op(A) = A^T and K over several pieces of 256 (g^T u for a wide g)
  [520, 16, 1100], [40, 32, 600],
];
for (const [M, N, K] of sizes) {
  for (const tA of [false, true]) {
    for (const tB of [false, true]) {
      cases.push({ tA, tB, M, N, K, alpha: 1, beta: 0, pad: 0, nanC: true });
      cases.push({ tA, tB, M, N, K, alpha: -0.7, beta: 0.5, pad: 3 });
    }
  }
}
cases.push({ tA: false, tB: false, M: 50, N: 40, K: 30, alpha: 0, beta: 2, pad: 1 });
cases.push({ tA: true, tB: false, M: 50, N: 40, K: 30, alpha: 0, beta: 0, pad: 0, nanC: true });
cases.push({ tA: false, tB: true, M: 120, N: 90, K: 200, alpha: 1.5, beta: 1, pad: 5 });

function check(c: Case, rng: Rng): string | null {
  const k = native!;
  const { tA, tB, M, N, K, alpha, beta, pad } = c;
  // stored shapes: A is M x K (or K x M), B is K x N (or N x K); leading dimension = cols + pad
  const [ar, ac] = tA ? [K, M] : [M, K];
  const [br, bc] = tB ? [N, K] : [K, N];
  const lda = ac + pad, ldb = bc + pad, ldc = N + pad;
  const offA = 2, offB = 1, offC = 3;
  const A = rng.fillNormal(new Float32Array(offA + ar * lda + 1));
  const B = rng.fillNormal(new Float32Array(offB + br * ldb + 1));
  const C = rng.fillNormal(new Float32Array(offC + M * ldc + 1));
  if (c.nanC) for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) C[offC + i * ldc + j] = NaN;
  const C0 = C.slice();
  k.gemm(tA, tB, M, N, K, alpha, A, offA, lda, 0, B, offB, ldb, 0, beta, C, offC, ldc, 0, 1);
  const a = (i: number, p: number): number => (tA ? A[offA + p * lda + i] : A[offA + i * lda + p]);
  const b = (p: number, j: number): number => (tB ? B[offB + j * ldb + p] : B[offB + p * ldb + j]);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0, mag = 0;
      for (let p = 0; p < K; p++) {
        s += a(i, p) * b(p, j);
        mag += Math.abs(a(i, p) * b(p, j));
      }
      const old = C0[offC + i * ldc + j];
      const want = alpha * s + (beta === 0 ? 0 : beta * old);
      const got = C[offC + i * ldc + j];
      const tol = 1e-5 * (Math.abs(alpha) * mag + Math.abs(beta * (beta === 0 ? 0 : old))) + 1e-6;
      if (!(Math.abs(got - want) <= tol)) return `C[${i},${j}] = ${got}, want ${want}`;
    }
  }
  // nothing outside the M x N window of C is touched (padding columns, before and after)
  for (let i = 0; i < C.length; i++) {
    const r = Math.floor((i - offC) / ldc), col = (i - offC) % ldc;
    const inside = i >= offC && r < M && col >= 0 && col < N;
    if (!inside && !Object.is(C[i], C0[i])) return `C[${i}] outside the result changed`;
  }
  return null;
}

describe('native GEMM backends against a float64 reference', { skip: native ? false : 'native addon not built' }, () => {
  const backends = native ? native.gemmBackends() : [];

  it('lists the built-in GEMMs', () => {
    assert.ok(backends.includes('builtin-c'), backends.join(','));
    assert.ok(['builtin-avx512', 'builtin-avx2', 'builtin-c', 'openblas', 'cblas'].includes(native!.blas));
  });

  for (const backend of backends) {
    for (const threads of [1, 2]) {
      it(`${backend}, ${threads} thread${threads > 1 ? 's' : ''}: ${cases.length} shapes`, () => {
        const k = native!;
        const prevName = k.blas, prevThreads = k.threads();
        k.setGemm(backend === 'openblas' || backend === 'cblas' ? 'blas' : backend);
        k.setThreads(threads);
        try {
          assert.equal(k.blas, backend);
          const rng = new Rng(11);
          for (const c of cases) {
            const err = check(c, rng);
            assert.equal(err, null, `${JSON.stringify(c)}: ${err}`);
          }
        } finally {
          k.setGemm(prevName === 'openblas' || prevName === 'cblas' ? 'blas' : prevName);
          k.setThreads(prevThreads);
        }
      });
    }
  }

  it('setGemm rejects an unknown name and keeps the current GEMM', () => {
    const k = native!;
    const before = k.blas;
    assert.throws(() => k.setGemm('cuda'), /not available/);
    assert.equal(k.blas, before);
  });

  it('EVOREC_GEMM selects the GEMM at load; an unknown value is an error', () => {
    const mod = fileURLToPath(new URL('./index.ts', import.meta.url));
    const probe = (gemm: string): ReturnType<typeof spawnSync> =>
      spawnSync(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(mod)}).then((m) => console.log(JSON.stringify(m.kernelInfo())))`], {
        env: { ...process.env, EVOREC_KERNELS: 'native', EVOREC_GEMM: gemm },
        encoding: 'utf8',
      });
    const r = probe('builtin-c');
    assert.equal(r.status, 0, String(r.stderr));
    assert.equal(JSON.parse(String(r.stdout).trim()).blas, 'builtin-c');
    if (backends.includes('openblas')) assert.equal(JSON.parse(String(probe('blas').stdout).trim()).blas, 'openblas');
    const bad = probe('cuda');
    assert.notEqual(bad.status, 0);
    assert.match(String(bad.stderr), /EVOREC_GEMM=cuda/);
  });
});
