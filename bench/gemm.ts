/**
 * GFLOP/s of the native GEMMs on the bench shapes, in this process, printed as one JSON line.
 * bench/run.ts runs it in child processes (OpenBLAS picks its CPU kernels when it loads, so a
 * forced OPENBLAS_CORETYPE needs a process of its own) over several rounds. Within a process the
 * GEMMs are interleaved repetition by repetition, so a neighbour's load hits all of them alike;
 * the best repetition of each is kept.
 * Usage: node --import tsx bench/gemm.ts '{"gemms":["builtin","blas"],"threads":[1,2],"budgetMs":150}'
 */
import { loadNativeKernels } from '../src/core/index.js';

export interface Shape { label: string; tA: boolean; tB: boolean; M: number; N: number; K: number }

/** LLMRec `small` preset (hidden 192, 4 heads / 2 kv of 48, intermediate 512, vocabulary 8000) at
 * batch 16 x 128 tokens = 2048 rows; the LM-head products run in chunks of 524 rows (4M logits). */
export const SHAPES: Shape[] = [
  { label: 'square 1024^3', tA: false, tB: false, M: 1024, N: 1024, K: 1024 },
  { label: 'q/o proj x W^T', tA: false, tB: true, M: 2048, N: 192, K: 192 },
  { label: 'k/v proj x W^T', tA: false, tB: true, M: 2048, N: 96, K: 192 },
  { label: 'gate/up x W^T', tA: false, tB: true, M: 2048, N: 512, K: 192 },
  { label: 'down x W^T', tA: false, tB: true, M: 2048, N: 192, K: 512 },
  { label: 'down dX = g W', tA: false, tB: false, M: 2048, N: 512, K: 192 },
  { label: 'gate/up dW = g^T x', tA: true, tB: false, M: 512, N: 192, K: 2048 },
  { label: 'LM head x E^T', tA: false, tB: true, M: 524, N: 8000, K: 192 },
  { label: 'LM head dX = g E', tA: false, tB: false, M: 524, N: 192, K: 8000 },
  { label: 'LM head dE = g^T x', tA: true, tB: false, M: 8000, N: 192, K: 524 },
];

export interface GemmResult { gemm: string; threads: number; label: string; gflops: number }

function main(): void {
  const o = JSON.parse(process.argv[2] ?? '{}') as { gemms?: string[]; threads?: number[]; budgetMs?: number };
  const k = loadNativeKernels();
  if (!k) throw new Error('native addon not built');
  const gemms = (o.gemms ?? ['builtin', 'blas', 'builtin-c']).filter((g) => {
    try {
      k.setGemm(g);
      return true;
    } catch {
      return false;
    }
  });
  const names = gemms.map((g) => (k.setGemm(g), k.blas));
  const out: GemmResult[] = [];
  let seed = 1;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
  for (const th of o.threads ?? [1, 2]) {
    k.setThreads(th);
    for (const s of SHAPES) {
      const A = new Float32Array(s.M * s.K).map(rnd), B = new Float32Array(s.K * s.N).map(rnd), C = new Float32Array(s.M * s.N);
      const lda = s.tA ? s.M : s.K, ldb = s.tB ? s.K : s.N;
      const flop = 2 * s.M * s.N * s.K;
      const best = gemms.map(() => Infinity);
      // about budgetMs of work per GEMM at ~100 GFLOP/s, at least 3 repetitions each
      const reps = Math.max(3, Math.round(((o.budgetMs ?? 150) * 1e8) / flop));
      for (let r = 0; r < reps; r++) {
        gemms.forEach((g, i) => {
          k.setGemm(g);
          const t0 = performance.now();
          k.gemm(s.tA, s.tB, s.M, s.N, s.K, 1, A, 0, lda, 0, B, 0, ldb, 0, 0, C, 0, s.N, 0, 1);
          best[i] = Math.min(best[i], performance.now() - t0);
        });
      }
      gemms.forEach((_, i) => out.push({ gemm: names[i], threads: th, label: s.label, gflops: flop / best[i] / 1e6 }));
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) main();
