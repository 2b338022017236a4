/**
 * SASRec (Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018) on the compute core.
 *
 * Item ids are shifted by one inside the model: 0 is padding, item i is row i + 1 of the embedding.
 * Sequences are left-padded windows of the last `maxLen` items. Each block is the original's
 * pre-norm layout: Q = LN(x); x = Q + Attn(Q, x, x) (causal, padding keys masked); x = x + FFN(LN(x)).
 * Scores are dot products between a position's output and the item embeddings (shared input/output).
 */
import {
  add,
  attention,
  dropout,
  embedding,
  getKernels,
  layerNorm,
  linear,
  mul,
  noGrad,
  parameter,
  relu,
  Rng,
  scale,
  tensor,
  type Tensor,
} from '../core/index.js';
import { withDefaults } from '../util/options.js';

export interface SASRecConfig {
  /** Catalogue size (item indices 0..numItems-1). */
  numItems: number;
  hidden: number;
  blocks: number;
  heads: number;
  /** Window of most recent items the model reads. */
  maxLen: number;
  dropout: number;
  seed: number;
}

export const DEFAULT_SASREC: Omit<SASRecConfig, 'numItems'> = {
  hidden: 64,
  blocks: 2,
  heads: 1,
  maxLen: 50,
  dropout: 0.2,
  seed: 42,
};

export class SASRec {
  readonly config: SASRecConfig;
  readonly params: Record<string, Tensor> = {};
  readonly rng: Rng;

  constructor(config: Partial<SASRecConfig> & { numItems: number }) {
    this.config = { ...withDefaults(DEFAULT_SASREC, config), numItems: config.numItems };
    const { numItems, hidden: d, blocks, maxLen, seed } = this.config;
    if (d % this.config.heads !== 0) throw new RangeError(`hidden ${d} is not a multiple of heads ${this.config.heads}`);
    this.rng = new Rng(seed);
    const normal = (shape: number[], std: number, name: string) => {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      this.rng.fillNormal(data, std);
      this.params[name] = parameter(data, shape, name);
    };
    const fill = (shape: number[], v: number, name: string) => {
      this.params[name] = parameter(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v), shape, name);
    };
    const xavier = Math.sqrt(2 / (d + d));
    normal([numItems + 1, d], Math.sqrt(1 / d), 'item_emb');
    this.params.item_emb.data.fill(0, 0, d); // padding row
    normal([maxLen, d], Math.sqrt(1 / d), 'pos_emb');
    for (let b = 0; b < blocks; b++) {
      for (const n of ['ln_attn', 'ln_ffn']) {
        fill([d], 1, `blocks.${b}.${n}.weight`);
        fill([d], 0, `blocks.${b}.${n}.bias`);
      }
      for (const p of ['q', 'k', 'v', 'o', 'ffn1', 'ffn2']) {
        normal([d, d], xavier, `blocks.${b}.${p}.weight`);
        fill([d], 0, `blocks.${b}.${p}.bias`);
      }
    }
    fill([d], 1, 'ln_final.weight');
    fill([d], 0, 'ln_final.bias');
  }

  parameters(): Tensor[] {
    return Object.values(this.params);
  }

  /**
   * The same model over a part of its catalogue: item j of the new model is item `items[j]` of this one
   * (its embedding row copied; every other weight shared by value). Scores of the kept items after
   * histories of kept items are exactly this model's, because a score is a dot product with the item's own
   * row. For a SASRec trained on a whole dataset and used on a user sample, whose items are re-indexed.
   */
  restrictedTo(items: ArrayLike<number>): SASRec {
    const { numItems, hidden: d } = this.config;
    const out = new SASRec({ ...this.config, numItems: items.length });
    for (const [name, t] of Object.entries(this.params)) if (name !== 'item_emb') out.params[name].data.set(t.data);
    const src = this.params.item_emb.data, dst = out.params.item_emb.data;
    dst.fill(0, 0, d); // padding row
    for (let j = 0; j < items.length; j++) {
      const i = items[j];
      if (!Number.isInteger(i) || i < 0 || i >= numItems) throw new RangeError(`restrictedTo: item ${j} is ${i}, outside this model's catalogue [0, ${numItems})`);
      dst.set(src.subarray((i + 1) * d, (i + 2) * d), (j + 1) * d);
    }
    return out;
  }

  /**
   * Left-pads (or truncates to the most recent) item sequences into a [B, L] id batch and its key mask.
   * L is the longest sequence in the batch, capped at maxLen: short sequences cost no padding compute.
   */
  batch(seqs: ReadonlyArray<ArrayLike<number>>): { ids: Int32Array; mask: Uint8Array; L: number } {
    let L = 1;
    for (const s of seqs) L = Math.max(L, Math.min(s.length, this.config.maxLen));
    const ids = new Int32Array(seqs.length * L);
    const mask = new Uint8Array(seqs.length * L);
    seqs.forEach((s, b) => {
      const n = Math.min(s.length, L);
      for (let j = 0; j < n; j++) {
        const item = s[s.length - n + j];
        ids[b * L + L - n + j] = item + 1;
        mask[b * L + L - n + j] = 1;
      }
    });
    return { ids, mask, L };
  }

  /**
   * Output representations [B, L, d] of padded id batches. Positions count from the right, so the most
   * recent item always has position maxLen - 1 whatever the batch's L.
   */
  encode(ids: Int32Array, mask: Uint8Array, B: number, training: boolean): Tensor {
    const { hidden: d, blocks, heads, dropout: p, maxLen } = this.config;
    const L = ids.length / B;
    const P = this.params;
    const drop = (x: Tensor) => dropout(x, p, { training, rng: this.rng });
    const posIds = new Int32Array(B * L);
    for (let i = 0; i < posIds.length; i++) posIds[i] = maxLen - L + (i % L);
    let x = add(scale(embedding(P.item_emb, ids, [B, L]), Math.sqrt(d)), embedding(P.pos_emb, posIds, [B, L]));
    x = drop(x);
    const keep = new Float32Array(B * L);
    for (let i = 0; i < keep.length; i++) keep[i] = mask[i];
    // [B, L, 1]: zeroes padded positions, broadcast over the hidden dimension.
    const maskTensor = tensor(keep, [B, L, 1]);
    x = mul(x, maskTensor);
    for (let b = 0; b < blocks; b++) {
      const q = layerNorm(x, P[`blocks.${b}.ln_attn.weight`], P[`blocks.${b}.ln_attn.bias`]);
      const Q = linear(q, P[`blocks.${b}.q.weight`], P[`blocks.${b}.q.bias`]);
      const K = linear(x, P[`blocks.${b}.k.weight`], P[`blocks.${b}.k.bias`]);
      const V = linear(x, P[`blocks.${b}.v.weight`], P[`blocks.${b}.v.bias`]);
      const a = attention(Q, K, V, { numHeads: heads, causal: true, keyMask: mask });
      x = add(q, drop(linear(a, P[`blocks.${b}.o.weight`], P[`blocks.${b}.o.bias`])));
      const h = layerNorm(x, P[`blocks.${b}.ln_ffn.weight`], P[`blocks.${b}.ln_ffn.bias`]);
      const f = linear(drop(relu(linear(h, P[`blocks.${b}.ffn1.weight`], P[`blocks.${b}.ffn1.bias`]))), P[`blocks.${b}.ffn2.weight`], P[`blocks.${b}.ffn2.bias`]);
      x = mul(add(h, drop(f)), maskTensor);
    }
    return layerNorm(x, P['ln_final.weight'], P['ln_final.bias']);
  }

  /**
   * Users' current representations: the output at the last position of each history. Histories are
   * grouped by length internally so that a batch carries little padding.
   */
  representations(histories: ReadonlyArray<ArrayLike<number>>, chunk = 128): Float32Array[] {
    const d = this.config.hidden;
    const out = new Array<Float32Array>(histories.length);
    const len = (i: number) => Math.min(histories[i].length, this.config.maxLen);
    const order = histories.map((_, i) => i).sort((a, b) => len(a) - len(b) || a - b);
    noGrad(() => {
      for (let start = 0; start < order.length; start += chunk) {
        const idx = order.slice(start, start + chunk);
        const { ids, mask, L } = this.batch(idx.map((i) => histories[i]));
        const h = this.encode(ids, mask, idx.length, false);
        idx.forEach((i, b) => (out[i] = h.data.slice((b * L + L - 1) * d, (b * L + L) * d)));
      }
    });
    return out;
  }

  /** Dot-product scores of items against a representation. */
  scoreItems(rep: Float32Array, items: ArrayLike<number>): Float32Array {
    const E = this.params.item_emb.data;
    const d = this.config.hidden;
    const out = new Float32Array(items.length);
    for (let j = 0; j < items.length; j++) {
      const off = (items[j] + 1) * d;
      let s = 0;
      for (let k = 0; k < d; k++) s += rep[k] * E[off + k];
      out[j] = s;
    }
    return out;
  }

  /**
   * Scores of every item (index i at position i) for each history: one matrix product of the
   * representations with the item embeddings (the full-catalogue view).
   */
  scoreAll(histories: ReadonlyArray<ArrayLike<number>>): Float32Array[] {
    const reps = this.representations(histories);
    const d = this.config.hidden;
    const n = this.config.numItems;
    const R = new Float32Array(reps.length * d);
    reps.forEach((r, b) => R.set(r, b * d));
    const out = new Float32Array(reps.length * n);
    // Row 0 of item_emb is padding: items start at row 1.
    getKernels().gemm(false, true, reps.length, n, d, 1, R, 0, d, 0, this.params.item_emb.data, d, d, 0, 0, out, 0, n, 0, 1);
    return reps.map((_, b) => out.subarray(b * n, (b + 1) * n));
  }

  /** Scores candidate sets for a batch of histories. */
  score(histories: ReadonlyArray<ArrayLike<number>>, candidates: ReadonlyArray<ArrayLike<number>>): Float32Array[] {
    const reps = this.representations(histories);
    return reps.map((r, b) => this.scoreItems(r, candidates[b]));
  }

  /**
   * The Forget step's view: every item of `history` scored against the representation of the user's whole
   * current sequence `current` (history plus newer items). Low scores mark items that no longer fit.
   */
  historyScores(current: ArrayLike<number>, history: ArrayLike<number>): Float32Array {
    const [rep] = this.representations([current]);
    return this.scoreItems(rep, history);
  }
}
