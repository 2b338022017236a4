/**
 * Kernel selection. The native addon is used when built, unless EVOREC_KERNELS=ts forces the
 * TypeScript fallback (EVOREC_KERNELS=native makes a missing addon an error). EVOREC_THREADS=n
 * sets the matrix-product threads (built-in GEMM and OpenBLAS; OPENBLAS_NUM_THREADS works too for
 * the default). EVOREC_GEMM=builtin|blas chooses the native GEMM (native.ts).
 */
import type { Kernels } from './interface.js';
import { tsKernels } from './ts.js';
import { loadNativeKernels, nativeLoadError } from './native.js';

export type { Kernels } from './interface.js';
export { tsKernels } from './ts.js';
export { loadNativeKernels, nativeLoadError } from './native.js';

function initial(): Kernels {
  const want = (process.env.EVOREC_KERNELS ?? '').toLowerCase();
  if (want === 'ts' || want === 'typescript') return tsKernels;
  const native = loadNativeKernels();
  if (want === 'native' && !native) throw new Error(`EVOREC_KERNELS=native but ${nativeLoadError()}`);
  return native ?? tsKernels;
}

let current: Kernels = initial();
if (process.env.EVOREC_THREADS) {
  const n = Number(process.env.EVOREC_THREADS);
  if (Number.isInteger(n) && n > 0) current.setThreads(n);
}

/** The kernels all ops currently use. */
export function getKernels(): Kernels {
  return current;
}

/** Switch implementation ('ts' | 'native' or a Kernels object); returns the previous one. */
export function setKernels(k: Kernels | 'ts' | 'native'): Kernels {
  const prev = current;
  if (k === 'ts') current = tsKernels;
  else if (k === 'native') {
    const n = loadNativeKernels();
    if (!n) throw new Error(`native kernels unavailable: ${nativeLoadError()}`);
    current = n;
  } else current = k;
  return prev;
}

/** Every implementation that can run here (the TypeScript one always). */
export function availableKernels(): Kernels[] {
  const n = loadNativeKernels();
  return n ? [n, tsKernels] : [tsKernels];
}

export interface KernelInfo {
  /** 'native' (N-API addon) or 'ts' (TypeScript fallback). */
  implementation: 'native' | 'ts';
  /** The GEMM in use: 'builtin-avx512', 'builtin-avx2', 'builtin-c' (portable loop), 'openblas', 'cblas' or 'typescript'. */
  blas: string;
  /** Every GEMM this installation can select (EVOREC_GEMM / setGemm). */
  gemmAvailable: string[];
  /** OpenBLAS's CPU kernels, when the addon has OpenBLAS (OPENBLAS_CORETYPE overrides its detection). */
  openblasCore?: string;
  /** Threads used by matrix products. */
  threads: number;
  /** Why the addon is not in use, when it is not. */
  note?: string;
}

/** Which kernels are in use, with which BLAS and how many threads (for `evorec doctor`). */
export function kernelInfo(): KernelInfo {
  const native = loadNativeKernels();
  const info: KernelInfo = {
    implementation: current.implementation,
    blas: current.blas,
    gemmAvailable: native ? [...native.gemmBackends(), 'typescript'] : ['typescript'],
    threads: current.threads(),
  };
  if (native?.blasCore()) info.openblasCore = native.blasCore();
  if (current.implementation === 'ts') {
    const err = nativeLoadError();
    info.note = err ?? 'EVOREC_KERNELS=ts (native addon available but not selected)';
  } else if (current.blas === 'builtin-c') {
    info.note = 'portable C GEMM (no AVX2/FMA on this CPU, or EVOREC_GEMM=builtin-c): slow matrix products';
  }
  return info;
}

/** Set matrix-product threads (built-in GEMM and OpenBLAS); no-op for the TypeScript kernels. */
export function setThreads(n: number): void {
  current.setThreads(n);
}
