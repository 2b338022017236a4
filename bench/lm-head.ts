/**
 * The fused LM head against the bare product: `linearLogProbs` (log-softmax of x W^T at one target per
 * row, without the rows x V logits) and the GEMM x W^T alone, for the LLMRec re-rank's shape (800 answer
 * rows: 50 candidates; `small` preset, V = 8,000, D = 192). Best of 25 wall times, the two interleaved.
 *
 *   node --import tsx bench/lm-head.ts                  # 800 rows, 1 thread
 *   BENCH_ROWS=2500 BENCH_THREADS=2 node --import tsx bench/lm-head.ts
 */
import { loadavg } from 'node:os';
import { getKernels, setThreads } from '../src/core/index.js';

const k = getKernels();
const threads = Number(process.env.BENCH_THREADS ?? 1);
setThreads(threads);
const rows = Number(process.env.BENCH_ROWS ?? 800), V = 8000, D = 192;
const x = Float32Array.from({ length: rows * D }, () => Math.random() - 0.5);
const W = Float32Array.from({ length: V * D }, () => Math.random() - 0.5);
const t = Int32Array.from({ length: rows }, () => Math.floor(Math.random() * V));
const out = new Float32Array(rows);
const C = new Float32Array(rows * V);
const time = (f: () => void): number => {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};
let lp = Infinity, gm = Infinity;
for (let i = 0; i < 25; i++) {
  lp = Math.min(lp, time(() => k.linearLogProbs(x, W, null, t, out, rows, V, D, -100)));
  gm = Math.min(gm, time(() => k.gemm(false, true, rows, V, D, 1, x, 0, D, 0, W, 0, D, 0, 0, C, 0, V, 0, 1)));
}
console.log(
  `${rows} x ${V} x ${D}, ${threads} thread${threads > 1 ? 's' : ''}, ${k.blas}: linearLogProbs ${lp.toFixed(1)} ms, ` +
    `GEMM alone ${gm.toFixed(1)} ms (${((2 * rows * V * D) / gm / 1e6).toFixed(0)} GFLOP/s), ratio ${(lp / gm).toFixed(2)} [load ${loadavg()[0].toFixed(1)}]`,
);
