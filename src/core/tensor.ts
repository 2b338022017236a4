/**
 * Float32 tensors: contiguous row-major Float32Array storage plus a shape.
 * Views are never shared: reshape shares storage (same layout), everything else copies.
 */
import type { Rng } from './random.js';
import { getDefaultRng } from './random.js';

/** A recorded operation: its inputs and the closure that pushes the output gradient to them. */
export interface GradNode {
  readonly id: number;
  readonly op: string;
  readonly inputs: Tensor[];
  /** Receives the gradient of the output and accumulates into inputs' `.grad` (only those with requiresGrad). */
  backward(gradOut: Float32Array): void;
}

export class Tensor {
  data: Float32Array;
  readonly shape: readonly number[];
  /** True for trainable leaves (parameters) and for outputs of recorded ops. */
  requiresGrad: boolean;
  /** Accumulated gradient (same length as data), allocated on first use. */
  grad: Float32Array | null = null;
  /** The op that produced this tensor (null for leaves and for outputs of unrecorded ops). */
  node: GradNode | null = null;
  /** Keep `.grad` of a non-leaf after backward (for inspection). */
  retainGrad = false;
  name?: string;

  constructor(data: Float32Array, shape: readonly number[], requiresGrad = false) {
    const n = shapeSize(shape);
    if (data.length !== n) throw new Error(`Tensor: data length ${data.length} does not match shape [${shape.join(', ')}]`);
    this.data = data;
    this.shape = Object.freeze(shape.slice());
    this.requiresGrad = requiresGrad;
  }

  get size(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Size of a dimension; negative indices count from the end. */
  dim(i: number): number {
    return this.shape[i < 0 ? this.shape.length + i : i];
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.data.length !== 1) throw new Error(`item(): tensor has ${this.data.length} elements`);
    return this.data[0];
  }

  /** A new leaf sharing this tensor's storage, outside any graph. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, false);
  }

  /** Independent copy (leaf, requiresGrad false). */
  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape, false);
  }

  /** Mark as a frozen parameter (no gradient is computed for it). */
  freeze(): this {
    this.requiresGrad = false;
    this.grad = null;
    return this;
  }

  unfreeze(): this {
    this.requiresGrad = true;
    return this;
  }

  zeroGrad(): void {
    if (this.grad) this.grad.fill(0);
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  toString(): string {
    return `Tensor([${this.shape.join(', ')}]${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Tensor from numbers or a Float32Array (copied when given as an array). */
export function tensor(data: ArrayLike<number>, shape?: readonly number[], opts: { requiresGrad?: boolean; name?: string } = {}): Tensor {
  const arr = data instanceof Float32Array ? data : Float32Array.from(data);
  const t = new Tensor(arr, shape ?? [arr.length], opts.requiresGrad ?? false);
  if (opts.name) t.name = opts.name;
  return t;
}

export function zeros(shape: readonly number[], requiresGrad = false): Tensor {
  return new Tensor(new Float32Array(shapeSize(shape)), shape, requiresGrad);
}

export function ones(shape: readonly number[], requiresGrad = false): Tensor {
  return full(shape, 1, requiresGrad);
}

export function full(shape: readonly number[], value: number, requiresGrad = false): Tensor {
  return new Tensor(new Float32Array(shapeSize(shape)).fill(value), shape, requiresGrad);
}

/** Normal(0, std) values from the given (or default) seeded generator. */
export function randn(shape: readonly number[], opts: { std?: number; rng?: Rng; requiresGrad?: boolean } = {}): Tensor {
  const rng = opts.rng ?? getDefaultRng();
  const t = new Tensor(new Float32Array(shapeSize(shape)), shape, opts.requiresGrad ?? false);
  rng.fillNormal(t.data, opts.std ?? 1);
  return t;
}

/** Uniform(lo, hi) values from the given (or default) seeded generator. */
export function rand(shape: readonly number[], opts: { lo?: number; hi?: number; rng?: Rng; requiresGrad?: boolean } = {}): Tensor {
  const rng = opts.rng ?? getDefaultRng();
  const t = new Tensor(new Float32Array(shapeSize(shape)), shape, opts.requiresGrad ?? false);
  rng.fillUniform(t.data, opts.lo ?? 0, opts.hi ?? 1);
  return t;
}

/** A trainable leaf (requiresGrad true). */
export function parameter(data: Float32Array | Tensor, shape?: readonly number[], name?: string): Tensor {
  const t = data instanceof Tensor ? new Tensor(data.data, data.shape, true) : new Tensor(data, shape ?? [data.length], true);
  if (name) t.name = name;
  return t;
}

/**
 * For each element of a row-major tensor of shape `outShape` (in order), the flat index it reads from a
 * source whose stride along output dim d is `strides[d]` (0 for a broadcast dim). Serves broadcasting
 * and permutation alike.
 */
export function stridedIndexMap(outShape: readonly number[], strides: readonly number[]): Int32Array {
  const n = outShape.length;
  const size = shapeSize(outShape);
  const map = new Int32Array(size);
  const idx = new Array(n).fill(0);
  let off = 0;
  for (let i = 0; i < size; i++) {
    map[i] = off;
    for (let d = n - 1; d >= 0; d--) {
      idx[d]++;
      off += strides[d];
      if (idx[d] < outShape[d]) break;
      off -= strides[d] * idx[d];
      idx[d] = 0;
    }
  }
  return map;
}
