/**
 * `npm run bench`: one training step (forward, backward, AdamW) of a 2-layer Llama-style model
 * (d_model 128, 4 heads, seq 64, batch 16, vocab 8000), full training and LoRA rank 8, on the native
 * kernels and the TypeScript fallback, beside the same step in PyTorch when it is importable
 * ($PYTHON, else /usr/bin/python3). Also: GFLOP/s of a 1024^3 matmul and peak RSS per configuration.
 * Each configuration runs in its own child process; ours and PyTorch's runs are interleaved over
 * BENCH_ROUNDS rounds (default 3) and the median of the per-round medians is reported, because the
 * machine is shared and noisy. Env: BENCH_STEPS (default 20), BENCH_TS=0 skips the fallback step.
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { getKernels, kernelInfo, setKernels, tsKernels, loadNativeKernels, type Kernels } from '../src/core/index.js';
import { BENCH } from './config.js';

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

function findPython(): string | null {
  for (const py of [process.env.PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean) as string[]) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return null;
}

function runTorch(py: string, mode: 'full' | 'lora', threads: number): StepResult | null {
  const r = spawnSync(py, [join(here, 'torch_step.py'), JSON.stringify(BENCH), mode, String(steps), '3', String(threads)], {
    cwd: root, env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: String(threads) }, encoding: 'utf8',
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

console.log(`evorec bench — ${cpus().length} x ${cpus()[0]?.model ?? '?'}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`kernels: ${JSON.stringify(kernelInfo())}`);
console.log(`model: ${JSON.stringify(BENCH)}`);

const native = loadNativeKernels();
if (native) {
  const prev = setKernels(native);
  for (const th of [1, 2]) {
    native.setThreads(th);
    console.log(`matmul 1024^3 native (${native.blas}, ${th} thread${th > 1 ? 's' : ''}): ${f1(gflops(native, 1024, 5))} GFLOP/s`);
  }
  native.setThreads(Number(process.env.EVOREC_THREADS ?? 2));
  setKernels(prev);
}
console.log(`matmul 1024^3 typescript: ${f1(gflops(tsKernels, 1024, 2))} GFLOP/s`);
void getKernels;

const py = findPython();
if (!py) console.log('PyTorch: not importable ($PYTHON or /usr/bin/python3): no ratio');

type Key = string;
const results = new Map<Key, StepResult[]>();
const add = (k: Key, r: StepResult | null): void => {
  if (!r) return;
  if (!results.has(k)) results.set(k, []);
  results.get(k)!.push(r);
};
const threadsOurs = process.env.EVOREC_THREADS ?? '2';
for (let round = 0; round < rounds; round++) {
  for (const mode of ['full', 'lora'] as const) {
    if (native) {
      add(`ours ${mode} native ${threadsOurs}t`, runOurs(mode, { EVOREC_KERNELS: 'native', EVOREC_THREADS: threadsOurs }));
      if (process.env.BENCH_THREADS_SWEEP !== '0') add(`ours ${mode} native ${threadsOurs === '1' ? 2 : 1}t`, runOurs(mode, { EVOREC_KERNELS: 'native', EVOREC_THREADS: threadsOurs === '1' ? '2' : '1' }));
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

console.log('\nconfiguration                     ms/step (median of rounds)   min     peak RSS MB   trainable');
const summary = new Map<Key, number>();
for (const [k, rs] of results) {
  const m = median(rs.map((r) => r.median_ms));
  summary.set(k, m);
  const mn = Math.min(...rs.map((r) => r.min_ms));
  const rss = Math.max(...rs.map((r) => r.peak_rss_mb));
  console.log(`${k.padEnd(34)}${f1(m).padStart(10)}${' '.repeat(20)}${f1(mn).padStart(7)}${f1(rss).padStart(12)}${String(rs[0].trainable).padStart(13)}`);
}
for (const mode of ['full', 'lora'] as const) {
  const ours = [...summary].filter(([k]) => k.startsWith(`ours ${mode} native`)).sort((a, b) => a[1] - b[1])[0];
  const torch = [...summary].filter(([k]) => k.startsWith(`torch ${mode}`)).sort((a, b) => a[1] - b[1])[0];
  if (ours && torch) {
    console.log(`ratio ours/PyTorch (${mode}): ${(ours[1] / torch[1]).toFixed(2)}  [best ours: ${ours[0]} ${f1(ours[1])} ms; best PyTorch: ${torch[0]} ${f1(torch[1])} ms]`);
  }
  const ph = results.get(ours?.[0] ?? '')?.[0]?.phases_ms;
  if (ph) console.log(`  ${mode} phases (ms, one run): forward ${f1(ph.forward)}, backward ${f1(ph.backward)}, AdamW ${f1(ph.optimizer)}`);
}
