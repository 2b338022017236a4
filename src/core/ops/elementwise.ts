/** Elementwise ops: broadcasting binary arithmetic and unary activations. */
import { Tensor, sameShape, shapeSize, stridedIndexMap } from '../tensor.js';
import { floats } from '../arena.js';
import { record, needsGrad, gradBuffer, gradAlloc } from '../autograd.js';
import { getKernels } from '../kernels/index.js';

/** NumPy-style broadcast of two shapes. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`cannot broadcast [${a.join(', ')}] with [${b.join(', ')}]`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * For each element of `outShape`, the flat index of the broadcast element of `inShape`
 * (null when no broadcasting is involved, i.e. the shapes are equal).
 */
function broadcastMap(outShape: readonly number[], inShape: readonly number[]): Int32Array | null {
  if (sameShape(outShape, inShape)) return null;
  const n = outShape.length;
  const size = shapeSize(outShape);
  const map = new Int32Array(size);
  const inSize = shapeSize(inShape);
  if (inSize === 1) return map; // all zeros
  // Suffix fast path: inShape (without leading 1s) equals the trailing dims of outShape.
  let lead = 0;
  while (lead < inShape.length && inShape[lead] === 1) lead++;
  const core = inShape.slice(lead);
  if (sameShape(core, outShape.slice(n - core.length))) {
    for (let i = 0; i < size; i++) map[i] = i % inSize;
    return map;
  }
  const strides: number[] = new Array(n).fill(0);
  let s = 1;
  for (let i = inShape.length - 1; i >= 0; i--) {
    const oi = n - inShape.length + i;
    strides[oi] = inShape[i] === 1 ? 0 : s;
    s *= inShape[i];
  }
  return stridedIndexMap(outShape, strides);
}

/** Add `g` (over outShape) into the gradient of `t`, summing over broadcast dims. */
function reduceInto(t: Tensor, g: Float32Array, map: Int32Array | null, factor?: Float32Array, scalar = 1): void {
  if (map === null && !factor && t.grad === null) {
    // First contribution: a copy (or scaled copy) instead of zero-fill + add.
    const c = gradAlloc(t, false);
    c.set(g);
    if (scalar !== 1) for (let i = 0; i < c.length; i++) c[i] *= scalar;
    t.grad = c;
    return;
  }
  const dst = gradBuffer(t);
  if (map === null) {
    if (factor) for (let i = 0; i < g.length; i++) dst[i] += scalar * g[i] * factor[i];
    else getKernels().axpy(g.length, scalar, g, dst);
  } else {
    if (factor) for (let i = 0; i < g.length; i++) dst[map[i]] += scalar * g[i] * factor[i];
    else for (let i = 0; i < g.length; i++) dst[map[i]] += scalar * g[i];
  }
}

type Bin = 'add' | 'sub' | 'mul' | 'div';

function binary(kind: Bin, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(a.shape, b.shape);
  const n = shapeSize(shape);
  const ma = broadcastMap(shape, a.shape);
  const mb = broadcastMap(shape, b.shape);
  const A = a.data, Bd = b.data;
  const out = floats(n, false); // every element written below
  if (ma === null && mb === null) {
    if (kind === 'add') {
      // a copy and a native axpy (1 * b + a rounds exactly as a + b): the residual adds of a decoder
      out.set(A);
      getKernels().axpy(n, 1, Bd, out);
    } else if (kind === 'sub') for (let i = 0; i < n; i++) out[i] = A[i] - Bd[i];
    else if (kind === 'mul') for (let i = 0; i < n; i++) out[i] = A[i] * Bd[i];
    else for (let i = 0; i < n; i++) out[i] = A[i] / Bd[i];
  } else {
    for (let i = 0; i < n; i++) {
      const x = ma ? A[ma[i]] : A[i];
      const y = mb ? Bd[mb[i]] : Bd[i];
      out[i] = kind === 'add' ? x + y : kind === 'sub' ? x - y : kind === 'mul' ? x * y : x / y;
    }
  }
  const res = new Tensor(out, shape);
  if (!needsGrad(a, b)) return res;
  return record(res, kind, [a, b], (g) => {
    const gather = (src: Float32Array, m: Int32Array | null): Float32Array => {
      if (m === null) return src;
      const r = floats(n);
      for (let i = 0; i < n; i++) r[i] = src[m[i]];
      return r;
    };
    if (kind === 'add' || kind === 'sub') {
      if (a.requiresGrad) reduceInto(a, g, ma);
      if (b.requiresGrad) reduceInto(b, g, mb, undefined, kind === 'sub' ? -1 : 1);
    } else if (kind === 'mul') {
      if (a.requiresGrad) reduceInto(a, g, ma, gather(Bd, mb));
      if (b.requiresGrad) reduceInto(b, g, mb, gather(A, ma));
    } else {
      const bb = gather(Bd, mb);
      if (a.requiresGrad) {
        const inv = floats(n);
        for (let i = 0; i < n; i++) inv[i] = 1 / bb[i];
        reduceInto(a, g, ma, inv);
      }
      if (b.requiresGrad) {
        // d(a/b)/db = -a / b^2 = -out / b
        const f = floats(n);
        for (let i = 0; i < n; i++) f[i] = -out[i] / bb[i];
        reduceInto(b, g, mb, f);
      }
    }
  });
}

/** a + b with broadcasting (b may be a number). */
export function add(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === 'number' ? addScalar(a, b) : binary('add', a, b);
}
/** a - b with broadcasting. */
export function sub(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === 'number' ? addScalar(a, -b) : binary('sub', a, b);
}
/** a * b with broadcasting. */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === 'number' ? scale(a, b) : binary('mul', a, b);
}
/** a / b with broadcasting. */
export function div(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === 'number' ? scale(a, 1 / b) : binary('div', a, b);
}

/** x * s for a number s. */
export function scale(x: Tensor, s: number): Tensor {
  const out = floats(x.size);
  const d = x.data;
  for (let i = 0; i < out.length; i++) out[i] = d[i] * s;
  return record(new Tensor(out, x.shape), 'scale', [x], (g) => {
    const dst = gradBuffer(x);
    for (let i = 0; i < g.length; i++) dst[i] += s * g[i];
  });
}

/** x + c for a number c. */
export function addScalar(x: Tensor, c: number): Tensor {
  const out = floats(x.size);
  const d = x.data;
  for (let i = 0; i < out.length; i++) out[i] = d[i] + c;
  return record(new Tensor(out, x.shape), 'addScalar', [x], (g) => {
    const dst = gradBuffer(x);
    for (let i = 0; i < g.length; i++) dst[i] += g[i];
  });
}

export function neg(x: Tensor): Tensor {
  return scale(x, -1);
}

/**
 * Unary op from a forward function and its derivative (given x and y = f(x)).
 */
function unary(op: string, x: Tensor, f: (v: number) => number, df: (v: number, y: number) => number): Tensor {
  const n = x.size;
  const out = floats(n);
  const d = x.data;
  for (let i = 0; i < n; i++) out[i] = f(d[i]);
  return record(new Tensor(out, x.shape), op, [x], (g) => {
    const dst = gradBuffer(x);
    for (let i = 0; i < n; i++) dst[i] += g[i] * df(d[i], out[i]);
  });
}

export const exp = (x: Tensor): Tensor => unary('exp', x, Math.exp, (_v, y) => y);
export const log = (x: Tensor): Tensor => unary('log', x, Math.log, (v) => 1 / v);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x, Math.sqrt, (_v, y) => 0.5 / y);
export const square = (x: Tensor): Tensor => unary('square', x, (v) => v * v, (v) => 2 * v);
export const tanh = (x: Tensor): Tensor => unary('tanh', x, Math.tanh, (_v, y) => 1 - y * y);
export const relu = (x: Tensor): Tensor => unary('relu', x, (v) => (v > 0 ? v : 0), (v) => (v > 0 ? 1 : 0));
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x, sigm, (_v, y) => y * (1 - y));
/** log(sigmoid(x)), computed stably. */
export const logSigmoid = (x: Tensor): Tensor =>
  unary('logSigmoid', x, (v) => (v >= 0 ? -Math.log1p(Math.exp(-v)) : v - Math.log1p(Math.exp(v))), (v) => 1 - sigm(v));
/** SiLU (swish): x * sigmoid(x). */
export const silu = (x: Tensor): Tensor =>
  unary('silu', x, (v) => v * sigm(v), (v) => {
    const s = sigm(v);
    return s * (1 + v * (1 - s));
  });
/** GELU, exact (erf) form as torch.nn.functional.gelu's default. */
export const gelu = (x: Tensor): Tensor =>
  unary('gelu', x, (v) => 0.5 * v * (1 + erf(v * Math.SQRT1_2)), (v) => 0.5 * (1 + erf(v * Math.SQRT1_2)) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI));

function sigm(v: number): number {
  return v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v));
}

/** erf(x), relative error below 1.2e-7 (Numerical Recipes erfc, Chebyshev fit). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}
