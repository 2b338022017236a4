/** Neural-network ops: embedding, norms, rotary embedding, softmax, SwiGLU, dropout. */
import { Tensor } from '../tensor.js';
import { floats } from '../arena.js';
import { record, needsGrad, gradBuffer, addGrad } from '../autograd.js';
import { getKernels } from '../kernels/index.js';
import { Rng, getDefaultRng } from '../random.js';

/**
 * Rows of W [vocab, dim] for each id; out shape [...shape, dim] (shape defaults to [ids.length]).
 * Negative ids give zero rows (use them for padding). Backward scatter-adds into W.grad.
 */
export function embedding(W: Tensor, ids: Int32Array | readonly number[], shape?: readonly number[]): Tensor {
  const idArr = ids instanceof Int32Array ? ids : Int32Array.from(ids);
  const [V, D] = W.shape;
  const n = idArr.length;
  const out = floats(n * D);
  for (let i = 0; i < n; i++) {
    const id = idArr[i];
    if (id < 0) continue;
    if (id >= V) throw new Error(`embedding: id ${id} out of range [0, ${V})`);
    out.set(W.data.subarray(id * D, id * D + D), i * D);
  }
  return record(new Tensor(out, [...(shape ?? [n]), D]), 'embedding', [W], (g) => {
    getKernels().embeddingBackward(idArr, g, gradBuffer(W), n, D);
  });
}

/** RMSNorm over the last dim: x / sqrt(mean(x^2) + eps) * weight (Llama). */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  const dim = x.dim(-1);
  if (weight.size !== dim) throw new Error('rmsNorm: weight size must equal the last dim');
  const rows = x.size / dim;
  const out = floats(x.size, false);
  const rstd = floats(rows, false);
  getKernels().rmsNorm(x.data, weight.data, out, rstd, rows, dim, eps);
  return record(new Tensor(out, x.shape), 'rmsNorm', [x, weight], (g) => {
    const k = getKernels();
    const gw = weight.requiresGrad ? gradBuffer(weight) : null;
    if (x.requiresGrad) addGrad(x, (gx) => k.rmsNormBackward(x.data, weight.data, rstd, g, gx, gw, rows, dim));
    else k.rmsNormBackward(x.data, weight.data, rstd, g, null, gw, rows, dim);
  });
}

/** LayerNorm over the last dim with affine weight and bias. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const dim = x.dim(-1);
  if (weight.size !== dim || bias.size !== dim) throw new Error('layerNorm: weight/bias size must equal the last dim');
  const rows = x.size / dim;
  const out = floats(x.size);
  const mu = floats(rows);
  const rstd = floats(rows);
  getKernels().layerNorm(x.data, weight.data, bias.data, out, mu, rstd, rows, dim, eps);
  return record(new Tensor(out, x.shape), 'layerNorm', [x, weight, bias], (g) => {
    const k = getKernels();
    const gw = weight.requiresGrad ? gradBuffer(weight) : null;
    const gb = bias.requiresGrad ? gradBuffer(bias) : null;
    if (x.requiresGrad) addGrad(x, (gx) => k.layerNormBackward(x.data, weight.data, mu, rstd, g, gx, gw, gb, rows, dim));
    else k.layerNormBackward(x.data, weight.data, mu, rstd, g, null, gw, gb, rows, dim);
  });
}

interface RopeTable {
  cos: Float32Array;
  sin: Float32Array;
  maxPos: number;
}
const ropeTables = new Map<string, RopeTable>();

/** cos/sin tables [maxPos, headDim/2]: angle = pos * base^(-2i/headDim) (computed in double). */
export function ropeTable(base: number, headDim: number, minPos: number): RopeTable {
  const key = `${base}:${headDim}`;
  const have = ropeTables.get(key);
  if (have && have.maxPos >= minPos) return have;
  const maxPos = Math.max(minPos, have ? have.maxPos * 2 : 256);
  const half = headDim / 2;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let i = 0; i < half; i++) {
    const invFreq = 1 / Math.pow(base, (2 * i) / headDim);
    for (let p = 0; p < maxPos; p++) {
      cos[p * half + i] = Math.cos(p * invFreq);
      sin[p * half + i] = Math.sin(p * invFreq);
    }
  }
  const t = { cos, sin, maxPos };
  ropeTables.set(key, t);
  return t;
}

export interface RopeOptions {
  /** Size of one head; the last dim of x is heads * headDim (or x is [B, T, H, headDim]). */
  headDim: number;
  /** Rotary base (theta): 10000 for Llama 2, 1e6 for Qwen2. */
  base?: number;
  /** Positions per (batch, time) row, length B*T; default offset + t. */
  positions?: Int32Array;
  /** First position when `positions` is not given (KV-cache decoding). */
  offset?: number;
}

/**
 * Rotary position embedding, Hugging Face Llama "rotate_half" convention:
 * out = x * cos + rotate_half(x) * sin per head, with x [B, T, H*headDim] or [B, T, H, headDim].
 */
export function rope(x: Tensor, opts: RopeOptions): Tensor {
  const { headDim } = opts;
  const base = opts.base ?? 10000;
  if (headDim % 2 !== 0) throw new Error('rope: headDim must be even');
  const B = x.shape[0], T = x.shape[1];
  const width = x.size / (B * T);
  const heads = width / headDim;
  if (!Number.isInteger(heads)) throw new Error('rope: last dims are not a multiple of headDim');
  let pos = opts.positions;
  if (!pos) {
    pos = new Int32Array(B * T);
    const off = opts.offset ?? 0;
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) pos[b * T + t] = off + t;
  } else if (pos.length !== B * T) throw new Error('rope: positions must have B*T entries');
  let maxP = 0;
  for (let i = 0; i < pos.length; i++) {
    if (pos[i] < 0) throw new Error('rope: negative position');
    if (pos[i] > maxP) maxP = pos[i];
  }
  const tab = ropeTable(base, headDim, maxP + 1);
  const out = floats(x.size, false);
  const p = pos;
  getKernels().rope(x.data, out, tab.cos, tab.sin, p, B * T, heads, headDim, 1);
  return record(new Tensor(out, x.shape), 'rope', [x], (g) => {
    addGrad(x, (gx) => getKernels().rope(g, gx, tab.cos, tab.sin, p, B * T, heads, headDim, -1));
  });
}

/** Softmax over the last dim. */
export function softmax(x: Tensor): Tensor {
  const cols = x.dim(-1);
  const rows = x.size / cols;
  const out = floats(x.size);
  getKernels().softmax(x.data, out, rows, cols);
  return record(new Tensor(out, x.shape), 'softmax', [x], (g) => {
    addGrad(x, (gx) => getKernels().softmaxBackward(out, g, gx, rows, cols));
  });
}

/** Log-softmax over the last dim. */
export function logSoftmax(x: Tensor): Tensor {
  const cols = x.dim(-1);
  const rows = x.size / cols;
  const out = floats(x.size);
  getKernels().logSoftmax(x.data, out, rows, cols);
  return record(new Tensor(out, x.shape), 'logSoftmax', [x], (g) => {
    addGrad(x, (gx) => getKernels().logSoftmaxBackward(out, g, gx, rows, cols));
  });
}

/** SwiGLU gate: silu(gate) * up, fused (Llama MLP: down(swiglu(gate(x), up(x)))). */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (gate.size !== up.size) throw new Error('swiglu: gate and up must have the same shape');
  const out = floats(gate.size, false);
  getKernels().swiglu(gate.data, up.data, out, gate.size);
  return record(new Tensor(out, gate.shape), 'swiglu', [gate, up], (g) => {
    const gg = gate.requiresGrad ? gradBuffer(gate) : null;
    const gu = up.requiresGrad ? gradBuffer(up) : null;
    getKernels().swigluBackward(gate.data, up.data, g, gg, gu, gate.size);
  });
}

export interface DropoutOptions {
  /** Seeded generator (default: the global one, see manualSeed). */
  rng?: Rng;
  /** When false, dropout is the identity (evaluation). Default true. */
  training?: boolean;
}

/** Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p). */
export function dropout(x: Tensor, p: number, opts: DropoutOptions = {}): Tensor {
  if (opts.training === false || p <= 0) return x;
  if (p >= 1) throw new Error('dropout: p must be < 1');
  const rng = opts.rng ?? getDefaultRng();
  const keep = 1 / (1 - p);
  const mask = floats(x.size);
  const out = floats(x.size);
  const st = rng.getState();
  getKernels().dropoutMask(st, x.data, out, mask, mask.length, p, keep);
  rng.setState(st);
  if (!needsGrad(x)) return new Tensor(out, x.shape);
  return record(new Tensor(out, x.shape), 'dropout', [x], (g) => {
    const dst = gradBuffer(x);
    for (let i = 0; i < g.length; i++) dst[i] += g[i] * mask[i];
  });
}
