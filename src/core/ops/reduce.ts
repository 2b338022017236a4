/** Reductions: sum and mean, over everything or along one axis. */
import { Tensor, shapeSize } from '../tensor.js';
import { floats } from '../arena.js';
import { record, gradBuffer } from '../autograd.js';

function reduceAxis(x: Tensor, axis: number | undefined, keepDims: boolean, scaleBy: (n: number) => number, op: string): Tensor {
  if (axis === undefined) {
    let s = 0;
    const d = x.data;
    for (let i = 0; i < d.length; i++) s += d[i];
    const f = scaleBy(d.length);
    const out = new Tensor(new Float32Array([s * f]), keepDims ? x.shape.map(() => 1) : []);
    return record(out, op, [x], (g) => {
      const dst = gradBuffer(x);
      const v = g[0] * f;
      for (let i = 0; i < dst.length; i++) dst[i] += v;
    });
  }
  const ax = axis < 0 ? x.ndim + axis : axis;
  if (ax < 0 || ax >= x.ndim) throw new Error(`${op}: axis ${axis} out of range`);
  const outer = shapeSize(x.shape.slice(0, ax));
  const n = x.shape[ax];
  const inner = shapeSize(x.shape.slice(ax + 1));
  const f = scaleBy(n);
  const acc = new Float64Array(outer * inner);
  const d = x.data;
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < n; k++) {
      const src = (o * n + k) * inner;
      const dst = o * inner;
      for (let i = 0; i < inner; i++) acc[dst + i] += d[src + i];
    }
  }
  const out = floats(outer * inner);
  for (let i = 0; i < out.length; i++) out[i] = acc[i] * f;
  const shape = x.shape.slice();
  if (keepDims) shape[ax] = 1;
  else shape.splice(ax, 1);
  return record(new Tensor(out, shape), op, [x], (g) => {
    const dst = gradBuffer(x);
    for (let o = 0; o < outer; o++) {
      for (let k = 0; k < n; k++) {
        const di = (o * n + k) * inner;
        const gi = o * inner;
        for (let i = 0; i < inner; i++) dst[di + i] += g[gi + i] * f;
      }
    }
  });
}

/** Sum of all elements (axis undefined) or along one axis. */
export function sum(x: Tensor, axis?: number, keepDims = false): Tensor {
  return reduceAxis(x, axis, keepDims, () => 1, 'sum');
}

/** Mean of all elements (axis undefined) or along one axis. */
export function mean(x: Tensor, axis?: number, keepDims = false): Tensor {
  return reduceAxis(x, axis, keepDims, (n) => 1 / n, 'mean');
}
