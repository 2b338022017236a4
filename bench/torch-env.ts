/**
 * The PyTorch side of the benches (bench/run.ts, bench/llmrec-twin.ts): which Python has torch, which
 * BLAS its torch runs on (bench/torch_blas.py), and the OPENBLAS_CORETYPE to force when OpenBLAS picked
 * kernels older than the CPU. Python is only for benches: no test depends on it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The first of $PYTHON, /usr/bin/python3, python3 that imports torch, or null. */
export function findPython(): string | null {
  for (const py of [process.env.PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean) as string[]) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return null;
}

/** What bench/torch_blas.py reports. */
export interface TorchBlas {
  kind: 'openblas' | 'mkl' | 'blis' | 'reference' | 'unknown';
  /** torch's BLAS_INFO build setting ('generic': whatever libblas.so.3 points at). */
  build: string;
  /** Resolved paths of the BLAS libraries mapped into the process. */
  libs: string[];
  openblas: { config: string; core: string; threads: number } | null;
  torch: string;
  torch_threads: number;
  /** A 512^3 product at 1 thread. */
  gflops_512: number;
  describe: string;
}

/** The BLAS torch runs on under this environment (null when the check fails). */
export function torchBlas(py: string, env: Record<string, string> = {}): TorchBlas | null {
  const r = spawnSync(py, [join(here, 'torch_blas.py')], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) {
    console.error('torch BLAS check failed:', r.stderr.slice(-1000));
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchBlas;
}

/** Why a ratio against this PyTorch means little (null when it is fine). */
export function torchBlasCaveat(b: TorchBlas | null): string | null {
  if (!b) return 'the BLAS of PyTorch could not be determined';
  if (b.kind === 'reference') return `PyTorch runs on the reference BLAS (${b.libs.join(', ')}; ${b.gflops_512.toFixed(1)} GFLOP/s on 512^3): install libopenblas0 so that libblas.so.3 points at OpenBLAS`;
  return null;
}

/** OPENBLAS_CORETYPE to time besides OpenBLAS's own choice, or null when its choice fits the CPU. */
export function forcedCoretype(detected: string): string | null {
  const env = process.env.BENCH_OPENBLAS_CORETYPE;
  if (env) return env === 'none' ? null : env;
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '';
  } catch { /* not Linux */ }
  const avx512 = ['SkylakeX', 'Cooperlake', 'SapphireRapids'];
  if (/\bavx512f\b/.test(flags)) return avx512.includes(detected) ? null : 'SkylakeX';
  if (/\bavx2\b/.test(flags)) return ['Haswell', 'Zen', ...avx512].includes(detected) ? null : 'Haswell';
  return null;
}
