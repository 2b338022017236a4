/**
 * Reverse-mode autograd. Each op that has at least one input requiring grad (while grad mode is on)
 * attaches a GradNode to its output; `backward(loss)` walks the recorded nodes in reverse creation order.
 * Ops whose inputs need no grad record nothing, so a frozen lower network costs no backward work.
 */
import { Tensor, type GradNode } from './tensor.js';
import { getKernels } from './kernels/index.js';
import { floats, releaseFloats } from './arena.js';

let gradEnabled = true;
let nextId = 1;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` with gradient recording off (inference mode). Nests; restores the previous mode. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Run `fn` with gradient recording on (inside a noGrad block). */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op over these inputs should be recorded. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/**
 * Attach a backward closure to `out` when any input requires grad. The closure receives dL/dout
 * and must accumulate into the `.grad` of the inputs that require grad (see gradBuffer/addGrad).
 */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: (g: Float32Array) => void): Tensor {
  if (!needsGrad(...inputs)) return out;
  const node: GradNode = { id: nextId++, op, inputs, backward };
  out.node = node;
  out.requiresGrad = true;
  return out;
}

/** The gradient buffer of `t`, allocated (zeroed) if absent. Kernels may accumulate into it (beta = 1). */
export function gradBuffer(t: Tensor): Float32Array {
  if (t.grad === null) t.grad = gradAlloc(t, true);
  return t.grad;
}

/**
 * Storage for the gradient of `t`: arena memory (see arena.ts) for intermediate tensors, a plain
 * array for leaves (parameter gradients outlive the scope: the optimiser and the caller read them).
 */
export function gradAlloc(t: Tensor, zero: boolean): Float32Array {
  if (t.node !== null) return floats(t.data.length, zero);
  const spare = spareGrads.get(t);
  if (spare !== undefined) {
    spareGrads.delete(t);
    if (spare.length === t.data.length) return zero ? spare.fill(0) : spare;
  }
  return new Float32Array(t.data.length);
}

/** Leaf gradient buffers handed back by recycleGrad, reused by the leaf's next gradAlloc. */
const spareGrads = new WeakMap<Tensor, Float32Array>();

/**
 * Drop `t.grad` (as `t.grad = null`) but keep its buffer for t's next gradient: a training loop that
 * drops every parameter's gradient at the start of a step then allocates no fresh memory for them
 * (a fresh Float32Array per parameter per step is ~13 MB of new external memory a step for the small
 * preset, page faults plus the major GCs V8 starts for external memory pressure). The previous step's
 * gradient arrays are overwritten by the next step's, so only call this where nothing keeps them.
 */
export function recycleGrad(t: Tensor): void {
  if (t.grad !== null && t.node === null) spareGrads.set(t, t.grad);
  t.grad = null;
}

/**
 * Accumulate a gradient produced by an overwrite-style kernel: `fill` writes the gradient into the
 * buffer it receives. When `t` has no gradient yet the kernel writes straight into a fresh buffer.
 */
export function addGrad(t: Tensor, fill: (buf: Float32Array) => void): void {
  if (t.grad === null) {
    const b = gradAlloc(t, true);
    fill(b);
    t.grad = b;
  } else {
    const tmp = floats(t.data.length);
    fill(tmp);
    accumulate(t.grad, tmp);
    releaseFloats(tmp);
  }
}

/** dst += src (vectorised through the current kernels). */
export function accumulate(dst: Float32Array, src: Float32Array): void {
  getKernels().axpy(dst.length, 1, src, dst);
}

/**
 * Backpropagate from `root` (a scalar unless `gradient` is given). Gradients accumulate into the
 * `.grad` of leaves with requiresGrad (call zeroGrad between optimiser steps). Intermediate
 * gradients and the graph are released afterwards unless `retainGraph` is set.
 */
export function backward(root: Tensor, gradient?: Float32Array, opts: { retainGraph?: boolean } = {}): void {
  if (!root.requiresGrad) throw new Error('backward(): tensor does not require grad (all inputs frozen, or built under noGrad)');
  if (!gradient && root.size !== 1) throw new Error('backward(): non-scalar root needs an explicit gradient');
  // Collect tensors with nodes reachable from the root.
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: Tensor[] = [root];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (t.node) {
      order.push(t);
      for (const inp of t.node.inputs) if (inp.requiresGrad && !seen.has(inp)) stack.push(inp);
    }
  }
  order.sort((a, b) => b.node!.id - a.node!.id);
  const g0 = gradient ? Float32Array.from(gradient) : new Float32Array([1]);
  if (root.grad) {
    for (let i = 0; i < g0.length; i++) root.grad[i] += g0[i];
  } else root.grad = g0;
  for (const t of order) {
    const node = t.node!;
    const g = t.grad;
    if (g !== null) {
      noGradInner(() => node.backward(g));
    }
    if (!opts.retainGraph) {
      t.node = null;
      if (!t.retainGrad && t !== root) {
        releaseFloats(t.grad);
        t.grad = null;
      } else if (!t.retainGrad) t.grad = null;
    }
  }
}

function noGradInner(fn: () => void): void {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    fn();
  } finally {
    gradEnabled = prev;
  }
}
