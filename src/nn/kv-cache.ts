/**
 * Key/value cache for incremental decoding and shared-prefix scoring.
 *
 * Per layer it keeps the keys (after RoPE) and values of every position seen so far, [B, S, Hkv*Dh],
 * plus the key padding mask [B, S] and, per row, the number of real tokens seen (the next RoPE
 * position). Cached entries are plain data: no gradient flows into them (new tokens still get
 * gradients in a forward that uses the cache).
 */
import { concat, Tensor } from '../core/index.js';

export class KVCache {
  /** Positions cached (S), the same for every row (padding included). */
  length = 0;
  readonly keys: (Float32Array | null)[];
  readonly values: (Float32Array | null)[];
  /** [B * S]: 1 = real token, 0 = padding. */
  keyMask: Uint8Array = new Uint8Array(0);
  /** Real tokens seen per row (= the RoPE position of the row's next real token). */
  nextPos: Int32Array;

  constructor(
    readonly batch: number,
    readonly numLayers: number,
    /** Hkv * headDim. */
    readonly width: number,
  ) {
    this.keys = new Array(numLayers).fill(null);
    this.values = new Array(numLayers).fill(null);
    this.nextPos = new Int32Array(batch);
  }

  /** Keys and values of layer `l` for [cached ; new] positions (the new part keeps its gradient). */
  extend(l: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const S = this.length;
    const B = this.batch;
    const T = k.size / (B * this.width);
    if (!Number.isInteger(T)) throw new Error(`KVCache: new keys [${k.shape}] do not fit batch ${B} x width ${this.width}`);
    const oldK = this.keys[l], oldV = this.values[l];
    let kAll = k, vAll = v;
    if (S > 0 && oldK && oldV) {
      const ck = new Tensor(oldK, [B, S, this.width]);
      const cv = new Tensor(oldV, [B, S, this.width]);
      kAll = concat([ck, k.ndim === 3 ? k : new Tensor(k.data, [B, T, this.width])], 1);
      vAll = concat([cv, v.ndim === 3 ? v : new Tensor(v.data, [B, T, this.width])], 1);
      // concat of plain tensors records only when the new part needs grad; keep data either way
    }
    this.keys[l] = kAll.data;
    this.values[l] = vAll.data;
    return { k: kAll, v: vAll };
  }

  /** Rows of a new cache taken from these rows (e.g. [0, 0, 0] repeats a one-row prompt 3 times). */
  select(rows: readonly number[]): KVCache {
    const c = new KVCache(rows.length, this.numLayers, this.width);
    const S = this.length, W = this.width;
    c.length = S;
    c.keyMask = new Uint8Array(rows.length * S);
    rows.forEach((r, i) => {
      if (r < 0 || r >= this.batch) throw new Error(`KVCache.select: row ${r} out of range [0, ${this.batch})`);
      c.keyMask.set(this.keyMask.subarray(r * S, (r + 1) * S), i * S);
      c.nextPos[i] = this.nextPos[r];
    });
    for (let l = 0; l < this.numLayers; l++) {
      const k = this.keys[l], v = this.values[l];
      if (!k || !v) continue;
      const nk = new Float32Array(rows.length * S * W);
      const nv = new Float32Array(rows.length * S * W);
      rows.forEach((r, i) => {
        nk.set(k.subarray(r * S * W, (r + 1) * S * W), i * S * W);
        nv.set(v.subarray(r * S * W, (r + 1) * S * W), i * S * W);
      });
      c.keys[l] = nk;
      c.values[l] = nv;
    }
    return c;
  }

  /** An independent copy. */
  clone(): KVCache {
    return this.select(Array.from({ length: this.batch }, (_, i) => i));
  }

  /** Bytes held. */
  get bytes(): number {
    return this.keys.reduce((s, k) => s + (k ? k.byteLength * 2 : 0), 0) + this.keyMask.byteLength;
  }
}
