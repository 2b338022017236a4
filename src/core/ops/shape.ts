/** Shape ops: reshape (shares storage), transpose/permute, slice, concat (copy). */
import { Tensor, shapeSize, stridedIndexMap } from '../tensor.js';
import { floats } from '../arena.js';
import { record, gradBuffer, gradAlloc, accumulate } from '../autograd.js';

function normAxis(axis: number, ndim: number): number {
  const a = axis < 0 ? ndim + axis : axis;
  if (a < 0 || a >= ndim) throw new Error(`axis ${axis} out of range for ${ndim} dims`);
  return a;
}

/** Same data, new shape; one dim may be -1 (inferred). Shares storage with x. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = shape.slice();
  const inf = s.indexOf(-1);
  if (inf >= 0) {
    const known = s.reduce((p, d, i) => (i === inf ? p : p * d), 1);
    s[inf] = x.size / known;
  }
  if (shapeSize(s) !== x.size) throw new Error(`reshape: cannot view [${x.shape}] as [${shape}]`);
  return record(new Tensor(x.data, s), 'reshape', [x], (g) => {
    if (x.grad === null) {
      x.grad = gradAlloc(x, false);
      x.grad.set(g);
    }
    else accumulate(x.grad, g);
  });
}

/** Reorder dims: out.shape[i] = x.shape[perm[i]] (copy). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const n = x.ndim;
  if (perm.length !== n) throw new Error('permute: perm length must equal ndim');
  const inStrides: number[] = new Array(n);
  let s = 1;
  for (let i = n - 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= x.shape[i];
  }
  const outShape = perm.map((p) => x.shape[p]);
  const srcStride = perm.map((p) => inStrides[p]);
  const size = x.size;
  // map[i] = flat input index of output element i
  const map = stridedIndexMap(outShape, srcStride);
  const out = floats(size);
  const src = x.data;
  for (let i = 0; i < size; i++) out[i] = src[map[i]];
  return record(new Tensor(out, outShape), 'permute', [x], (g) => {
    const dst = gradBuffer(x);
    for (let i = 0; i < size; i++) dst[map[i]] += g[i];
  });
}

/** Swap two dims (copy). */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const a = normAxis(dim0, x.ndim), b = normAxis(dim1, x.ndim);
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

/** x[..., start:end, ...] along `axis` (copy). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const ax = normAxis(axis, x.ndim);
  const len = x.shape[ax];
  const s = start < 0 ? len + start : start;
  const e = end === undefined ? len : end < 0 ? len + end : end;
  if (s < 0 || e > len || s > e) throw new Error(`slice: [${start}, ${end}) out of range for size ${len}`);
  const outer = shapeSize(x.shape.slice(0, ax));
  const inner = shapeSize(x.shape.slice(ax + 1));
  const w = e - s;
  const outShape = x.shape.slice();
  outShape[ax] = w;
  const out = floats(outer * w * inner);
  for (let o = 0; o < outer; o++) {
    const src = (o * len + s) * inner;
    out.set(x.data.subarray(src, src + w * inner), o * w * inner);
  }
  return record(new Tensor(out, outShape), 'slice', [x], (g) => {
    const dst = gradBuffer(x);
    for (let o = 0; o < outer; o++) {
      const d0 = (o * len + s) * inner, g0 = o * w * inner;
      for (let i = 0; i < w * inner; i++) dst[d0 + i] += g[g0 + i];
    }
  });
}

/** Join tensors along `axis` (all other dims equal). */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('concat: no tensors');
  const ax = normAxis(axis, xs[0].ndim);
  const base = xs[0].shape;
  for (const t of xs) {
    if (t.ndim !== base.length || t.shape.some((d, i) => i !== ax && d !== base[i])) throw new Error('concat: shapes differ outside the axis');
  }
  const outer = shapeSize(base.slice(0, ax));
  const inner = shapeSize(base.slice(ax + 1));
  const widths = xs.map((t) => t.shape[ax]);
  const total = widths.reduce((p, w) => p + w, 0);
  const outShape = base.slice();
  outShape[ax] = total;
  const out = floats(outer * total * inner);
  let acc = 0;
  const offsets = widths.map((w) => {
    const o = acc;
    acc += w;
    return o;
  });
  xs.forEach((t, k) => {
    const w = widths[k] * inner;
    for (let o = 0; o < outer; o++) out.set(t.data.subarray(o * w, (o + 1) * w), (o * total + offsets[k]) * inner);
  });
  return record(new Tensor(out, outShape), 'concat', xs.slice(), (g) => {
    xs.forEach((t, k) => {
      if (!t.requiresGrad) return;
      const dst = gradBuffer(t);
      const w = widths[k] * inner;
      for (let o = 0; o < outer; o++) {
        const src = (o * total + offsets[k]) * inner;
        for (let i = 0; i < w; i++) dst[o * w + i] += g[src + i];
      }
    });
  });
}
