/**
 * Test helpers (used by *.test.ts only): finite-difference gradient checks and the kernel loop.
 *
 * Tolerance: the ops compute in float32, so the probe loss L = sum(f(x) * w) carries a rounding
 * error of about 6e-8 * sum|f(x) * w|. Central differences with step h add a truncation error of
 * h^2/6 |f'''|. With h = 1e-2 (inputs of order 1) both terms stay near 1e-4 relative, so an
 * analytic gradient is accepted when |num - ana| <= atol + rtol * max(|num|, |ana|) with
 * rtol = 1e-2 and atol = 1e-3 * (1 + max |ana| over the tensor). A wrong formula (a missing
 * factor, a dropped term, a transposed index) is off by far more than that.
 */
import { Tensor } from '../tensor.js';
import { backward, noGrad } from '../autograd.js';
import { Rng } from '../random.js';
import { availableKernels, setKernels, getKernels, type Kernels } from '../kernels/index.js';

export interface GradCheckOptions {
  eps?: number;
  rtol?: number;
  atol?: number;
  /** Check at most this many elements per input (random subset). */
  maxElements?: number;
  seed?: number;
}

export function gradCheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradCheckOptions = {}): void {
  const eps = opts.eps ?? 1e-2;
  const rtol = opts.rtol ?? 1e-2;
  const atolBase = opts.atol ?? 1e-3;
  const rng = new Rng(opts.seed ?? 7);
  for (const t of inputs) t.grad = null;
  const out0 = f(...inputs);
  const w = new Float32Array(out0.size);
  rng.fillNormal(w);
  const probe = (): number =>
    noGrad(() => {
      const o = f(...inputs);
      let s = 0;
      for (let i = 0; i < o.size; i++) s += o.data[i] * w[i];
      return s;
    });
  backward(out0, w);
  inputs.forEach((t, ti) => {
    if (!t.requiresGrad) return;
    const ana = t.grad ?? new Float32Array(t.size);
    let maxAbs = 0;
    for (let i = 0; i < ana.length; i++) maxAbs = Math.max(maxAbs, Math.abs(ana[i]));
    const atol = atolBase * (1 + maxAbs);
    const idx = pick(t.size, opts.maxElements ?? 40, rng);
    for (const i of idx) {
      const orig = t.data[i];
      t.data[i] = orig + eps;
      const lp = probe();
      t.data[i] = orig - eps;
      const lm = probe();
      t.data[i] = orig;
      const num = (lp - lm) / (2 * eps);
      const a = ana[i];
      if (!(Math.abs(num - a) <= atol + rtol * Math.max(Math.abs(num), Math.abs(a)))) {
        throw new Error(`gradient mismatch: input ${ti} [${t.shape}] element ${i}: numeric ${num}, analytic ${a} (kernels ${getKernels().implementation})`);
      }
    }
  });
}

function pick(n: number, k: number, rng: Rng): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  const s = new Set<number>();
  while (s.size < k) s.add(rng.int(n));
  return [...s];
}

/** Run `body` once per kernel implementation that can run here (native first when built). */
export function forEachKernels(body: (k: Kernels) => void): void {
  for (const k of availableKernels()) {
    const prev = setKernels(k);
    try {
      body(k);
    } finally {
      setKernels(prev);
    }
  }
}

/** Max |a - b| / max(1e-12, max |b|). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-12);
}
