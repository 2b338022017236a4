/**
 * Loader for the N-API addon (build/Release/evorec_native.node, built by `npm install` via node-gyp).
 * Returns null when the addon is missing or fails to load; the TypeScript kernels are used then.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels } from './interface.js';

interface Addon extends Omit<Kernels, 'implementation' | 'blas' | 'threads' | 'setThreads' | 'gemmBackends' | 'setGemm'> {
  gemmSelect(name: string): boolean;
  gemmAvailable(): string;
  blasCore(): string;
  getThreads(): number;
  setThreads(n: number): void;
  blasName(): string;
  setLoopThreads(n: number): void;
  getLoopThreads(): number;
}

class GemmChoiceError extends Error {}

let cached: Kernels | null | undefined;
let loadError: string | null = null;

function findAddon(): string | null {
  // src/core/kernels or dist/core/kernels -> package root
  const here = dirname(fileURLToPath(import.meta.url));
  const root = resolve(here, '..', '..', '..');
  for (const p of [process.env.EVOREC_NATIVE_PATH, resolve(root, 'build/Release/evorec_native.node'), resolve(root, 'build/Debug/evorec_native.node')]) {
    if (p && existsSync(p)) return p;
  }
  return null;
}

/** The native kernels, or null when the addon is not built. */
export function loadNativeKernels(): Kernels | null {
  if (cached !== undefined) return cached;
  const path = findAddon();
  if (!path) {
    loadError = 'addon not built (build/Release/evorec_native.node missing; run `npm install` or `npx node-gyp rebuild`)';
    cached = null;
    return null;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as Addon;
    // EVOREC_GEMM=builtin|blas (also builtin-avx2, builtin-c) chooses the GEMM; unset: the addon's default.
    const wantGemm = process.env.EVOREC_GEMM;
    if (wantGemm && !addon.gemmSelect(wantGemm)) {
      throw new GemmChoiceError(`EVOREC_GEMM=${wantGemm}: not available here (available: ${addon.gemmAvailable()}; 'builtin' or 'blas')`);
    }
    // Threads of the fused C loops alone (setThreads sets both; this is for experiments).
    const lt = Number(process.env.EVOREC_LOOP_THREADS);
    if (Number.isInteger(lt) && lt > 0) addon.setLoopThreads(lt);
    cached = {
      implementation: 'native',
      get blas() {
        return addon.blasName();
      },
      gemmBackends: () => addon.gemmAvailable().split(','),
      blasCore: () => addon.blasCore(),
      setGemm: (name: string) => {
        if (!addon.gemmSelect(name)) throw new Error(`gemm ${JSON.stringify(name)}: not available here (available: ${addon.gemmAvailable()})`);
      },
      threads: () => addon.getThreads(),
      setThreads: (n: number) => addon.setThreads(n),
      gemm: addon.gemm,
      axpy: addon.axpy,
      sumSquares: addon.sumSquares,
      softmax: addon.softmax,
      softmaxBackward: addon.softmaxBackward,
      logSoftmax: addon.logSoftmax,
      logSoftmaxBackward: addon.logSoftmaxBackward,
      crossEntropy: addon.crossEntropy,
      crossEntropyBackward: addon.crossEntropyBackward,
      rmsNorm: addon.rmsNorm,
      rmsNormBackward: addon.rmsNormBackward,
      layerNorm: addon.layerNorm,
      layerNormBackward: addon.layerNormBackward,
      rope: addon.rope,
      attentionSoftmax: addon.attentionSoftmax,
      attentionSoftmaxBackward: addon.attentionSoftmaxBackward,
      attentionForward: addon.attentionForward,
      attentionBackward: addon.attentionBackward,
      attentionInfer: addon.attentionInfer,
      dropoutMask: addon.dropoutMask,
      dropoutBits: addon.dropoutBits,
      dropoutApply: addon.dropoutApply,
      loraDx: addon.loraDx,
      loraDropU: addon.loraDropU,
      loraDropGradA: addon.loraDropGradA,
      linearLogProbs: addon.linearLogProbs,
      swiglu: addon.swiglu,
      swigluBackward: addon.swigluBackward,
      embeddingBackward: addon.embeddingBackward,
      adamw: addon.adamw,
    };
  } catch (e) {
    if (e instanceof GemmChoiceError) throw e; // a wrong setting is an error, not a reason to fall back
    loadError = `addon failed to load: ${(e as Error).message}`;
    cached = null;
  }
  return cached;
}

/** Why the native kernels are unavailable (null when they loaded). */
export function nativeLoadError(): string | null {
  loadNativeKernels();
  return loadError;
}
