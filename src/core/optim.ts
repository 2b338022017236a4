/** AdamW with parameter groups, gradient clipping by global norm, and gradient helpers. */
import type { Tensor } from './tensor.js';
import { getKernels } from './kernels/index.js';

export interface ParamGroup {
  params: Tensor[];
  /** Multiplies the optimiser's learning rate for this group (default 1). */
  lrScale?: number;
  /** Decoupled weight decay for this group (default: the optimiser's). */
  weightDecay?: number;
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Optimiser moments for one parameter. */
export interface AdamState {
  m: Float32Array;
  v: Float32Array;
}

/**
 * AdamW (PyTorch semantics: p *= 1 - lr*wd; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)).
 * Parameters whose `.grad` is null (or that are frozen) are skipped in a step.
 */
export class AdamW {
  readonly groups: Required<ParamGroup>[];
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Number of completed steps (drives bias correction). */
  stepCount = 0;
  readonly state = new Map<Tensor, AdamState>();

  constructor(params: Tensor[] | ParamGroup[], opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    const wd = opts.weightDecay ?? 0.01;
    const groups: ParamGroup[] = params.length > 0 && !isGroup(params[0]) ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    this.groups = groups.map((g) => ({ params: g.params, lrScale: g.lrScale ?? 1, weightDecay: g.weightDecay ?? wd }));
  }

  /** Every parameter, in group order. */
  params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  stateOf(p: Tensor): AdamState {
    let s = this.state.get(p);
    if (!s) {
      s = { m: new Float32Array(p.size), v: new Float32Array(p.size) };
      this.state.set(p, s);
    }
    return s;
  }

  /** One update with the current gradients; `lr` overrides the optimiser's rate for this step. */
  step(lr = this.lr): void {
    this.stepCount++;
    const t = this.stepCount;
    const bc1 = 1 - Math.pow(this.beta1, t);
    const bc2 = 1 - Math.pow(this.beta2, t);
    const k = getKernels();
    for (const g of this.groups) {
      for (const p of g.params) {
        if (!p.requiresGrad || p.grad === null) continue;
        const s = this.stateOf(p);
        k.adamw(p.data, p.grad, s.m, s.v, p.size, lr * g.lrScale, this.beta1, this.beta2, this.eps, g.weightDecay, bc1, bc2);
      }
    }
  }

  /** Zero the gradients of all parameters (keeps the buffers). */
  zeroGrad(): void {
    for (const p of this.params()) if (p.grad) p.grad.fill(0);
  }
}

function isGroup(x: unknown): x is ParamGroup {
  return typeof x === 'object' && x !== null && 'params' in x;
}

/**
 * Split named parameters into a decayed group and a non-decayed group. By default tensors with
 * fewer than 2 dims (norm weights, biases) and names matching /norm|bias/ get no weight decay.
 * Frozen parameters are left out.
 */
export function weightDecayGroups(
  named: Record<string, Tensor> | [string, Tensor][],
  weightDecay: number,
  noDecay: (name: string, t: Tensor) => boolean = (name, t) => t.ndim < 2 || /norm|bias/i.test(name),
): ParamGroup[] {
  const entries = Array.isArray(named) ? named : Object.entries(named);
  const decay: Tensor[] = [];
  const plain: Tensor[] = [];
  for (const [name, t] of entries) {
    if (!t.requiresGrad) continue;
    (noDecay(name, t) ? plain : decay).push(t);
  }
  return [
    { params: decay, weightDecay },
    { params: plain, weightDecay: 0 },
  ];
}

/** Global L2 norm of the gradients (parameters without a gradient count as zero). */
export function gradNorm(params: Tensor[]): number {
  const k = getKernels();
  let ss = 0;
  for (const p of params) if (p.grad) ss += k.sumSquares(p.grad);
  return Math.sqrt(ss);
}

/**
 * Scale all gradients so their global L2 norm is at most maxNorm (as torch.nn.utils.clip_grad_norm_).
 * Returns the norm before clipping.
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  const norm = gradNorm(params);
  if (norm > maxNorm && norm > 0) {
    const c = maxNorm / (norm + 1e-6);
    for (const p of params) {
      const g = p.grad;
      if (!g) continue;
      for (let i = 0; i < g.length; i++) g[i] *= c;
    }
  }
  return norm;
}

/** Multiply all gradients by s (e.g. 1/accumulationSteps when losses were summed). */
export function scaleGrads(params: Tensor[], s: number): void {
  for (const p of params) {
    const g = p.grad;
    if (g) for (let i = 0; i < g.length; i++) g[i] *= s;
  }
}
