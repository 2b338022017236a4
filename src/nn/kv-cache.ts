/**
 * Key/value cache for incremental decoding and shared-prefix scoring.
 *
 * Per layer it keeps the keys (after RoPE) and values of every position seen so far, plus the key
 * padding mask [B, S] and, per row, the number of real tokens seen (the next RoPE position). Cached
 * entries are plain data: no gradient flows into them (new tokens still get gradients in a forward that
 * uses the cache).
 *
 * Storage is in two parts: an optional shared **prefix** (arrays [Bp, S0, Hkv*Dh] of another cache,
 * read by row index `prefix.rows[b]`, never copied) and the cache's **own** positions [B, S1, Hkv*Dh]
 * (`keys` / `values`), S = S0 + S1. `select` makes a cache whose prefix is this cache's positions, so
 * repeating a prompt for 20 candidates costs no copy, and attention reads the prompt keys once per
 * user (see `attention`'s `prefix` option). Cached arrays are never written after they are stored
 * (`extend` builds new ones), which is what makes the sharing safe.
 */
import { concat, Tensor, type AttentionPrefix } from '../core/index.js';

export interface SharedPrefix {
  keys: readonly (Float32Array | null)[];
  values: readonly (Float32Array | null)[];
  /** Prefix positions S0. */
  length: number;
  /** Rows of the prefix arrays. */
  batch: number;
  /** [B]: prefix row of each row of this cache. */
  rows: Int32Array;
}

export class KVCache {
  /** Positions cached (S = prefix + own), the same for every row (padding included). */
  length = 0;
  /** Own positions per layer, [B, S - prefixLength, W] (the shared prefix is in `prefix`). */
  readonly keys: (Float32Array | null)[];
  readonly values: (Float32Array | null)[];
  /** Shared prefix read by row index (null: every position is own). */
  prefix: SharedPrefix | null = null;
  /** [B * S]: 1 = real token, 0 = padding (prefix positions included). */
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

  /** Positions held by the shared prefix (S0). */
  get prefixLength(): number {
    return this.prefix ? this.prefix.length : 0;
  }

  /**
   * Own keys and values of layer `l` for [own cached ; new] positions (the new part keeps its
   * gradient), stored as the new own part, plus the shared prefix to pass to `attention` (null when
   * there is none). This is what the decoder uses: the prefix is never materialised per row.
   */
  extendShared(l: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor; prefix: AttentionPrefix | null } {
    const B = this.batch, W = this.width;
    const S1 = this.length - this.prefixLength;
    const T = k.size / (B * W);
    if (!Number.isInteger(T)) throw new Error(`KVCache: new keys [${k.shape}] do not fit batch ${B} x width ${W}`);
    const oldK = this.keys[l], oldV = this.values[l];
    let kAll = k, vAll = v;
    if (S1 > 0 && oldK && oldV) {
      kAll = concat([new Tensor(oldK, [B, S1, W]), k.ndim === 3 ? k : new Tensor(k.data, [B, T, W])], 1);
      vAll = concat([new Tensor(oldV, [B, S1, W]), v.ndim === 3 ? v : new Tensor(v.data, [B, T, W])], 1);
    }
    this.keys[l] = kAll.data;
    this.values[l] = vAll.data;
    const p = this.prefix;
    const pk = p?.keys[l], pv = p?.values[l];
    const prefix = p && p.length > 0 && pk && pv ? { k: pk, v: pv, rows: p.rows, length: p.length } : null;
    return { k: kAll, v: vAll, prefix };
  }

  /** Keys and values of layer `l` for [cached ; new] positions, materialised [B, S + T, W] (the new part keeps its gradient). */
  extend(l: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const r = this.extendShared(l, k, v);
    if (!r.prefix) return { k: r.k, v: r.v };
    const B = this.batch, W = this.width, S0 = r.prefix.length;
    const T = r.k.size / (B * W);
    const gather = (src: Float32Array): Tensor => {
      const d = new Float32Array(B * S0 * W);
      for (let b = 0; b < B; b++) d.set(src.subarray(r.prefix!.rows[b] * S0 * W, (r.prefix!.rows[b] + 1) * S0 * W), b * S0 * W);
      return new Tensor(d, [B, S0, W]);
    };
    return {
      k: concat([gather(r.prefix.k), r.k.ndim === 3 ? r.k : new Tensor(r.k.data, [B, T, W])], 1),
      v: concat([gather(r.prefix.v), r.v.ndim === 3 ? r.v : new Tensor(r.v.data, [B, T, W])], 1),
    };
  }

  /**
   * Rows of a new cache taken from these rows (e.g. [0, 0, 0] repeats a one-row prompt 3 times). No
   * keys are copied: the new cache reads this cache's positions as its shared prefix (only positions
   * this cache itself holds on top of a prefix are copied per row).
   */
  select(rows: readonly number[]): KVCache {
    const c = new KVCache(rows.length, this.numLayers, this.width);
    const S = this.length, W = this.width;
    c.length = S;
    c.keyMask = new Uint8Array(rows.length * S);
    rows.forEach((r, i) => {
      if (!Number.isInteger(r) || r < 0 || r >= this.batch) throw new Error(`KVCache.select: row ${r} out of range [0, ${this.batch})`);
      c.keyMask.set(this.keyMask.subarray(r * S, (r + 1) * S), i * S);
      c.nextPos[i] = this.nextPos[r];
    });
    if (S === 0) return c;
    const S0 = this.prefixLength, S1 = S - S0;
    if (!this.prefix) {
      c.prefix = { keys: this.keys.slice(), values: this.values.slice(), length: S, batch: this.batch, rows: Int32Array.from(rows) };
      return c;
    }
    const p = this.prefix;
    c.prefix = { keys: p.keys, values: p.values, length: S0, batch: p.batch, rows: Int32Array.from(rows, (r) => p.rows[r]) };
    if (S1 > 0) {
      for (let l = 0; l < this.numLayers; l++) {
        const k = this.keys[l], v = this.values[l];
        if (!k || !v) continue;
        const nk = new Float32Array(rows.length * S1 * W);
        const nv = new Float32Array(rows.length * S1 * W);
        rows.forEach((r, i) => {
          nk.set(k.subarray(r * S1 * W, (r + 1) * S1 * W), i * S1 * W);
          nv.set(v.subarray(r * S1 * W, (r + 1) * S1 * W), i * S1 * W);
        });
        c.keys[l] = nk;
        c.values[l] = nv;
      }
    }
    return c;
  }

  /** An independent copy (shares the immutable cached arrays). */
  clone(): KVCache {
    return this.select(Array.from({ length: this.batch }, (_, i) => i));
  }

  /** Materialised keys and values of layer `l`, [B, S, W] (prefix rows gathered; for inspection and tests). */
  layer(l: number): { keys: Float32Array; values: Float32Array } {
    const B = this.batch, W = this.width, S = this.length, S0 = this.prefixLength, S1 = S - S0;
    const keys = new Float32Array(B * S * W), values = new Float32Array(B * S * W);
    const p = this.prefix;
    for (let b = 0; b < B; b++) {
      if (p && S0 > 0) {
        const r = p.rows[b];
        const pk = p.keys[l], pv = p.values[l];
        if (pk && pv) {
          keys.set(pk.subarray(r * S0 * W, (r + 1) * S0 * W), b * S * W);
          values.set(pv.subarray(r * S0 * W, (r + 1) * S0 * W), b * S * W);
        }
      }
      const k = this.keys[l], v = this.values[l];
      if (k && v && S1 > 0) {
        keys.set(k.subarray(b * S1 * W, (b + 1) * S1 * W), (b * S + S0) * W);
        values.set(v.subarray(b * S1 * W, (b + 1) * S1 * W), (b * S + S0) * W);
      }
    }
    return { keys, values };
  }

  /** Bytes held (own arrays plus the shared prefix arrays, which other caches may share). */
  get bytes(): number {
    const own = this.keys.reduce((s, k) => s + (k ? k.byteLength * 2 : 0), 0);
    const pre = this.prefix ? this.prefix.keys.reduce((s, k) => s + (k ? k.byteLength * 2 : 0), 0) : 0;
    return own + pre + this.keyMask.byteLength;
  }
}
