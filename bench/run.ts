/**
 * `npm run bench`: one training step (forward, backward, AdamW) of a 2-layer Llama-style model
 * (d_model 128, 4 heads, seq 64, batch 16, vocab 8000), full training and LoRA rank 8, on the native
 * kernels (with each GEMM: built-in and OpenBLAS when present) and the TypeScript fallback, beside the
 * same step in PyTorch when it is importable ($PYTHON, else /usr/bin/python3), with peak RSS per
 * configuration. First, GFLOP/s of the native GEMMs (built-in, OpenBLAS, the old portable C loop) on
 * a 1024^3 product and the LLMRec small preset's shapes at 1 and 2 threads (bench/gemm.ts), with the
 * ratio built-in / OpenBLAS. When OpenBLAS picked CPU kernels older than the CPU (e.g. Prescott on a
 * CPU it does not know), it is also timed with OPENBLAS_CORETYPE forced (BENCH_OPENBLAS_CORETYPE, or
 * SkylakeX / Haswell by the CPU's flags; 'none' skips it), and the ratio is taken to the fastest
 * OpenBLAS; on an AVX-512 CPU OpenBLAS's Haswell (AVX2) kernels are timed too, beside our AVX2 kernel. Each configuration runs in its own child process; runs are interleaved over BENCH_ROUNDS
 * rounds (default 3) and the median of the per-round medians (steps) or the best (GEMMs) is
 * reported, because the machine is shared and noisy. Env: BENCH_STEPS (default 20), BENCH_TS=0 skips
 * the fallback step, BENCH_GEMM=0 skips the GEMM table, BENCH_STEP_GEMMS (default: every native GEMM
 * but the portable loop, comma-separated EVOREC_GEMM values).
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { getKernels, kernelInfo, setKernels, tsKernels, loadNativeKernels, type Kernels } from '../src/core/index.js';
import { BENCH } from './config.js';
import { SHAPES, type GemmResult } from './gemm.js';
import { findPython, forcedCoretype, torchBlas, torchBlasCaveat } from './torch-env.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const steps = Number(process.env.BENCH_STEPS ?? 20);

function gflops(k: Kernels, n: number, reps: number): number {
  const a = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const c = new Float32Array(n * n);
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    k.gemm(false, false, n, n, n, 1, a, 0, n, 0, a, 0, n, 0, 0, c, 0, n, 0, 1);
    best = Math.min(best, performance.now() - t0);
  }
  return (2 * n * n * n) / best / 1e6;
}

interface StepResult { median_ms: number; min_ms: number; peak_rss_mb: number; trainable: number; phases_ms?: Record<string, number>; loss: number }

function runOurs(mode: 'full' | 'lora', env: Record<string, string>, n = steps, warm = 3): StepResult | null {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'step.ts'), mode, String(n), String(warm)], {
    cwd: root, env: { ...process.env, ...env }, encoding: 'utf8',
  });
  if (r.status !== 0) {
    console.error(`step ${mode} failed:`, r.stderr.slice(-2000));
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as StepResult;
}

function runTorch(py: string, mode: 'full' | 'lora', threads: number): StepResult | null {
  const r = spawnSync(py, [join(here, 'torch_step.py'), JSON.stringify(BENCH), mode, String(steps), '3', String(threads)], {
    cwd: root, env: { ...process.env, ...torchEnv, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: String(threads) }, encoding: 'utf8',
  });
  if (r.status !== 0) {
    console.error(`torch ${mode} failed:`, r.stderr.slice(-2000));
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as StepResult;
}

const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const f1 = (x: number): string => x.toFixed(1);

function gemmChild(gemms: string[], env: Record<string, string>): GemmResult[] {
  const arg = JSON.stringify({ gemms, threads: [1, 2], budgetMs: Number(process.env.BENCH_GEMM_MS ?? 150) });
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'gemm.ts'), arg], {
    cwd: root, env: { ...process.env, EVOREC_KERNELS: 'native', ...env }, encoding: 'utf8',
  });
  if (r.status !== 0) {
    console.error('gemm bench failed:', r.stderr.slice(-2000));
    return [];
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as GemmResult[];
}

function gemmTable(k: Kernels): void {
  const avail = k.gemmBackends();
  const builtin = avail.find((g) => g.startsWith('builtin-') && g !== 'builtin-c');
  const detected = k.blasCore();
  const forced = avail.includes('openblas') ? forcedCoretype(detected) : null;
  const avx2Peer = avail.includes('openblas') && avail.includes('builtin-avx512') && detected !== 'Haswell' && process.env.BENCH_OPENBLAS_CORETYPE !== 'none' ? 'Haswell' : null;
  // the old loop is slow: time it on the first round only
  const own = [...avail.filter((g) => g !== 'builtin-c'), 'builtin-c'];
  const best = new Map<string, number>();
  const keep = (col: string, r: GemmResult): void => {
    const key = `${col}|${r.threads}|${r.label}`;
    best.set(key, Math.max(best.get(key) ?? 0, r.gflops));
  };
  const col = (g: string, core: string): string => (g === 'openblas' ? `openblas ${core || '?'}` : g);
  for (let round = 0; round < rounds; round++) {
    for (const r of gemmChild(round === 0 ? own : own.filter((g) => g !== 'builtin-c'), {})) keep(col(r.gemm, detected), r);
    if (forced) for (const r of gemmChild([builtin ?? 'builtin', 'blas'], { OPENBLAS_CORETYPE: forced })) keep(col(r.gemm, forced), r);
    // with AVX-512 here, also OpenBLAS's AVX2 kernels beside our AVX2 kernel (what an AVX2-only CPU gets)
    if (avx2Peer) for (const r of gemmChild(['builtin-avx2', 'blas'], { OPENBLAS_CORETYPE: avx2Peer })) keep(col(r.gemm, avx2Peer), r);
  }
  const cols = [...new Set([...best.keys()].map((key) => key.split('|')[0]))];
  cols.sort((a, b) => rank(a) - rank(b));
  const blasCols = cols.filter((c) => c.startsWith('openblas') || c === 'cblas');
  const avx2Col = avx2Peer ? `openblas ${avx2Peer}` : null;
  console.log(`\nGEMM GFLOP/s, best of ${rounds} rounds (GEMMs interleaved within each process); ratio = ${builtin ?? 'built-in'} / ${blasCols.length > 1 ? 'fastest OpenBLAS' : 'OpenBLAS'}${avx2Col ? `; avx2 ratio = builtin-avx2 / ${avx2Col}` : ''}`);
  console.log(`${'product'.padEnd(20)}${'M x N x K'.padEnd(17)}thr${cols.map((c) => c.padStart(Math.max(11, c.length + 2))).join('')}${blasCols.length && builtin ? '   ratio' : ''}${avx2Col ? '  avx2 ratio' : ''}`);
  for (const th of [1, 2]) {
    for (const s of SHAPES) {
      const v = (c: string): number | undefined => best.get(`${c}|${th}|${s.label}`);
      const op = `${s.tA ? 'T' : 'N'}${s.tB ? 'T' : 'N'}`;
      let line = `${s.label.padEnd(20)}${`${s.M}x${s.N}x${s.K} ${op}`.padEnd(17)}${String(th).padStart(3)}`;
      for (const c of cols) line += (v(c) === undefined ? '-' : f1(v(c)!)).padStart(Math.max(11, c.length + 2));
      const ob = Math.max(...blasCols.map((c) => v(c) ?? 0));
      if (builtin && ob > 0) line += (v(builtin)! / ob).toFixed(2).padStart(8);
      if (avx2Col && v(avx2Col) && v('builtin-avx2')) line += (v('builtin-avx2')! / v(avx2Col)!).toFixed(2).padStart(12);
      console.log(line);
    }
  }
  console.log('(builtin-c, the portable loop the addon used before the built-in GEMM, is single-threaded; timed in round 1 only)\n');
}
const rank = (c: string): number => (c === 'builtin-avx512' ? 0 : c === 'builtin-avx2' ? 1 : c === 'builtin-c' ? 9 : c.startsWith('openblas') ? 2 : 3);

console.log(`evorec bench — ${cpus().length} x ${cpus()[0]?.model ?? '?'}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`kernels: ${JSON.stringify(kernelInfo())}`);
console.log(`model: ${JSON.stringify(BENCH)}`);

const native = loadNativeKernels();
if (native && process.env.BENCH_GEMM !== '0') gemmTable(native);
console.log(`matmul 1024^3 typescript: ${f1(gflops(tsKernels, 1024, 2))} GFLOP/s`);
void getKernels;

const py = findPython();
if (!py) console.log('PyTorch: not importable ($PYTHON or /usr/bin/python3): no ratio');
// which BLAS PyTorch runs on: no ratio against the reference BLAS; OpenBLAS's core forced as for ours
let torchEnv: Record<string, string> = {};
let torchCaveat: string | null = null;
if (py) {
  const tb0 = torchBlas(py);
  const forced = tb0?.openblas ? forcedCoretype(tb0.openblas.core) : null;
  if (forced) torchEnv = { OPENBLAS_CORETYPE: forced };
  const tb = forced ? torchBlas(py, torchEnv) : tb0;
  torchCaveat = torchBlasCaveat(tb);
  console.log(`${tb?.describe ?? 'PyTorch BLAS: unknown'}${forced ? ` (OpenBLAS picked ${tb0!.openblas!.core} kernels on this CPU: PyTorch runs with OPENBLAS_CORETYPE=${forced})` : ''}`);
}

type Key = string;
const results = new Map<Key, StepResult[]>();
const add = (k: Key, r: StepResult | null): void => {
  if (!r) return;
  if (!results.has(k)) results.set(k, []);
  results.get(k)!.push(r);
};
const threadsOurs = process.env.EVOREC_THREADS ?? '2';
// each GEMM by EVOREC_GEMM; OpenBLAS also with OPENBLAS_CORETYPE forced when its own choice is older than the CPU
const stepGemms: { label: string; env: Record<string, string> }[] = [];
if (native) {
  for (const g of process.env.BENCH_STEP_GEMMS?.split(',') ?? native.gemmBackends().filter((x) => x !== 'builtin-c' && x !== 'builtin-avx2')) {
    stepGemms.push({ label: g, env: { EVOREC_GEMM: g } });
    const forced = g === 'openblas' ? forcedCoretype(native.blasCore()) : null;
    if (forced) stepGemms.push({ label: `openblas(${forced})`, env: { EVOREC_GEMM: g, OPENBLAS_CORETYPE: forced } });
  }
}
for (let round = 0; round < rounds; round++) {
  for (const mode of ['full', 'lora'] as const) {
    for (const g of stepGemms) {
      const env = { EVOREC_KERNELS: 'native', ...g.env };
      add(`ours ${mode} native ${g.label} ${threadsOurs}t`, runOurs(mode, { ...env, EVOREC_THREADS: threadsOurs }));
      if (process.env.BENCH_THREADS_SWEEP !== '0') add(`ours ${mode} native ${g.label} ${threadsOurs === '1' ? 2 : 1}t`, runOurs(mode, { ...env, EVOREC_THREADS: threadsOurs === '1' ? '2' : '1' }));
    }
    if (py) {
      add(`torch ${mode} 1t`, runTorch(py, mode, 1));
      add(`torch ${mode} 2t`, runTorch(py, mode, 2));
    }
  }
}
if (process.env.BENCH_TS !== '0') {
  for (const mode of ['full', 'lora'] as const) add(`ours ${mode} typescript`, runOurs(mode, { EVOREC_KERNELS: 'ts' }, 2, 1));
}

console.log('\nconfiguration                                 ms/step (median of rounds)   min     peak RSS MB   trainable');
const summary = new Map<Key, number>();
for (const [k, rs] of results) {
  const m = median(rs.map((r) => r.median_ms));
  summary.set(k, m);
  const mn = Math.min(...rs.map((r) => r.min_ms));
  const rss = Math.max(...rs.map((r) => r.peak_rss_mb));
  console.log(`${k.padEnd(46)}${f1(m).padStart(10)}${' '.repeat(20)}${f1(mn).padStart(7)}${f1(rss).padStart(12)}${String(rs[0].trainable).padStart(13)}`);
}
for (const mode of ['full', 'lora'] as const) {
  const ours = [...summary].filter(([k]) => k.startsWith(`ours ${mode} native`)).sort((a, b) => a[1] - b[1])[0];
  const torch = [...summary].filter(([k]) => k.startsWith(`torch ${mode}`)).sort((a, b) => a[1] - b[1])[0];
  if (ours && torch && torchCaveat) console.log(`ratio ours/PyTorch (${mode}): not printed: ${torchCaveat}`);
  else if (ours && torch) {
    console.log(`ratio ours/PyTorch (${mode}): ${(ours[1] / torch[1]).toFixed(2)}  [best ours: ${ours[0]} ${f1(ours[1])} ms; best PyTorch: ${torch[0]} ${f1(torch[1])} ms]`);
  }
  const ph = results.get(ours?.[0] ?? '')?.[0]?.phases_ms;
  if (ph) console.log(`  ${mode} phases (ms, one run): forward ${f1(ph.forward)}, backward ${f1(ph.backward)}, AdamW ${f1(ph.optimizer)}`);
}
