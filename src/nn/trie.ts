/**
 * Scoring many continuations after one prefix through a trie of their tokens: the prefix goes through
 * the model once into a KV cache, and every trie node (a token given the path above it) goes through
 * it once, however many continuations share that path. Only nodes with children are fed (a leaf's token
 * is scored from its parent's logits), and the LM head and log-softmax run only at those nodes.
 *
 * The fed nodes are cut into chains: runs in depth-first order where each node is the previous one's
 * child (the first branch of a node continues its chain, every other branch starts one). A chain is a
 * plain causal sequence after its ancestors, so it is one row of an ordinary cached forward: the row's
 * cache is the prompt (shared, read in place) followed by the keys and values of the chain's ancestors,
 * taken from a store of the nodes that later chains branch from, and its tokens sit at RoPE position
 * prompt length + depth. Chains go level by level (a chain's ancestors lie in chains of lower levels,
 * already computed), in forwards of a few thousand tokens, sorted by ancestor-path length so that rows
 * of one forward need little padding. No attention mask beyond padding is needed, so the decoder and its
 * kernels are the ones plain cached scoring uses.
 */
import { linear, logSoftmax, noGrad, Tensor } from '../core/index.js';
import type { Decoder } from './decoder.js';
import type { ContinuationScores } from './score.js';

/** A trie of token sequences; nodes numbered in depth-first preorder (children in first-seen order). */
export class TokenTrie {
  /** [M]: each node's token. */
  readonly token: Int32Array;
  /** [M]: each node's parent, -1 for a first token. */
  readonly parent: Int32Array;
  /** [M + 1] and [M - roots]: children of node n are childList[childStart[n] .. childStart[n + 1]). */
  readonly childStart: Int32Array;
  readonly childList: Int32Array;
  /** [sequences]: the node of each sequence's last token. */
  readonly terminal: Int32Array;
  /** [sequences]: tokens in each sequence. */
  readonly lengths: Int32Array;

  constructor(sequences: readonly (readonly number[])[]) {
    // 1. Insert into a map-based trie.
    const kids: Map<number, number>[] = [];
    const tok: number[] = [];
    const rootKids = new Map<number, number>();
    const end = new Int32Array(sequences.length);
    sequences.forEach((seq, i) => {
      if (seq.length === 0) throw new RangeError(`TokenTrie: sequence ${i} is empty`);
      let at = rootKids;
      let node = -1;
      for (const t of seq) {
        if (!Number.isInteger(t) || t < 0) throw new RangeError(`TokenTrie: sequence ${i} has token ${t}`);
        let next = at.get(t);
        if (next === undefined) {
          next = tok.length;
          tok.push(t);
          kids.push(new Map());
          at.set(t, next);
        }
        node = next;
        at = kids[next];
      }
      end[i] = node;
    });
    // 2. Renumber in depth-first preorder.
    const M = tok.length;
    const order = new Int32Array(M); // new -> old
    const renum = new Int32Array(M); // old -> new
    const parent = new Int32Array(M);
    const stack: [number, number][] = [...rootKids.values()].reverse().map((o) => [o, -1]);
    let n = 0;
    while (stack.length) {
      const [old, par] = stack.pop()!;
      order[n] = old;
      renum[old] = n;
      parent[n] = par;
      const me = n++;
      const ch = [...kids[old].values()];
      for (let j = ch.length - 1; j >= 0; j--) stack.push([ch[j], me]);
    }
    this.token = Int32Array.from(order, (o) => tok[o]);
    this.parent = parent;
    const count = new Int32Array(M + 1);
    for (let i = 0; i < M; i++) if (parent[i] >= 0) count[parent[i] + 1]++;
    for (let i = 0; i < M; i++) count[i + 1] += count[i];
    this.childStart = count;
    this.childList = new Int32Array(count[M]);
    const fill = count.slice(0, M);
    for (let i = 0; i < M; i++) if (parent[i] >= 0) this.childList[fill[parent[i]]++] = i; // ascending = preorder
    this.terminal = Int32Array.from(end, (o) => renum[o]);
    this.lengths = Int32Array.from(sequences, (s) => s.length);
  }

  /** Nodes (distinct token paths). */
  get size(): number {
    return this.token.length;
  }

  /** Tokens over all sequences (what scoring them one by one would feed). */
  get totalTokens(): number {
    return this.lengths.reduce((a, b) => a + b, 0);
  }

  /** Nodes with children: the ones a forward must compute (a leaf is scored from its parent). */
  inner(): Int32Array {
    const out: number[] = [];
    for (let i = 0; i < this.size; i++) if (this.childStart[i + 1] > this.childStart[i]) out.push(i);
    return Int32Array.from(out);
  }
}

export interface TrieScoreOptions {
  /** Tokens per forward (default 4096; at least one chain). */
  chunk?: number;
  /** LM-head rows per product (default 1024; bounds the [rows, vocab] logits held at once). */
  headRows?: number;
}

interface Chain {
  /** Index of the chain's first node in the fed nodes' list, and its length. */
  start: number;
  length: number;
  /** Depth of its first node = ancestors above the chain. */
  above: number;
  level: number;
}

/**
 * Scores every sequence of `trie` as a continuation of `prefix`: the same sums and means as
 * `scoreContinuations` (log-softmax in single precision, as LLMRec.score, summed in double).
 */
export function scoreTrie(model: Decoder, prefix: readonly number[], trie: TokenTrie, opts: TrieScoreOptions = {}): ContinuationScores {
  if (prefix.length === 0) throw new Error('scoreTrie: the prefix must have at least one token');
  const budget = Math.max(1, Math.floor(opts.chunk ?? 4096));
  const headRows = Math.max(1, Math.floor(opts.headRows ?? 1024));
  const V = model.config.vocabSize;
  const M = trie.size;
  const { token, parent, childStart, childList } = trie;
  for (let i = 0; i < M; i++) if (token[i] >= V) throw new RangeError(`scoreTrie: token ${token[i]} out of range [0, ${V})`);
  const depth = new Int32Array(M);
  for (let i = 0; i < M; i++) depth[i] = parent[i] < 0 ? 0 : depth[parent[i]] + 1;

  // Chains of the fed nodes, their levels, and the nodes later chains need as ancestors.
  const fed = trie.inner();
  const chains: Chain[] = [];
  const chainOf = new Int32Array(M).fill(-1);
  for (let i = 0; i < fed.length; i++) {
    const x = fed[i];
    if (i === 0 || parent[x] !== fed[i - 1]) {
      const up = parent[x] < 0 ? -1 : chains[chainOf[parent[x]]].level;
      chains.push({ start: i, length: 0, above: depth[x], level: up + 1 });
    }
    chains[chains.length - 1].length++;
    chainOf[x] = chains.length - 1;
  }
  const slot = new Int32Array(M).fill(-1);
  let slots = 0;
  for (const c of chains) for (let x = parent[fed[c.start]]; x >= 0 && slot[x] < 0; x = parent[x]) slot[x] = slots++;
  const L = model.numLayers;
  const W = model.config.numKeyValueHeads * model.config.headDim;
  const storeK = Array.from({ length: L }, () => new Float32Array(slots * W));
  const storeV = Array.from({ length: L }, () => new Float32Array(slots * W));

  const lp = new Float64Array(M); // log p(node's token | prefix, path above it)
  noGrad(() => {
    const promptCache = model.newCache(1);
    const first = logSoftmax(model.forward([prefix as number[]], { cache: promptCache, logits: 'last' }).logits!).data;
    for (let i = 0; i < M; i++) if (parent[i] < 0) lp[i] = first[token[i]];
    const S0 = promptCache.length, P0 = promptCache.nextPos[0];
    const headW = model.headWeight;
    const byLevel: Chain[][] = [];
    for (const c of chains) (byLevel[c.level] ??= []).push(c);
    for (const level of byLevel) {
      level.sort((a, b) => a.above - b.above || a.length - b.length);
      for (let s = 0; s < level.length; ) {
        // One forward: rows while the padded tokens stay within the budget.
        let e = s + 1, A = level[s].above, T = level[s].length;
        while (e < level.length) {
          const A2 = Math.max(A, level[e].above), T2 = Math.max(T, level[e].length);
          if ((e + 1 - s) * T2 > budget) break;
          A = A2, T = T2, e++;
        }
        const rows = level.slice(s, e);
        s = e;
        const R = rows.length;
        // The rows' cache: the prompt (shared), then each chain's ancestors, left-padded to A.
        const cache = promptCache.select(new Array(R).fill(0));
        const keyMask = new Uint8Array(R * (S0 + A));
        const path = new Int32Array(R * A).fill(-1);
        rows.forEach((c, r) => {
          keyMask.set(promptCache.keyMask.subarray(0, S0), r * (S0 + A));
          let k = A - 1;
          for (let x = parent[fed[c.start]]; x >= 0; x = parent[x]) {
            path[r * A + k] = slot[x];
            keyMask[r * (S0 + A) + S0 + k--] = 1;
          }
        });
        if (A > 0) {
          for (let l = 0; l < L; l++) {
            const k = new Float32Array(R * A * W), v = new Float32Array(R * A * W);
            for (let i = 0; i < R * A; i++) {
              const sl = path[i];
              if (sl < 0) continue;
              k.set(storeK[l].subarray(sl * W, (sl + 1) * W), i * W);
              v.set(storeV[l].subarray(sl * W, (sl + 1) * W), i * W);
            }
            cache.keys[l] = k;
            cache.values[l] = v;
          }
          cache.length = S0 + A;
        }
        cache.keyMask = keyMask;
        // The chains, right-padded, at position prompt + depth.
        const ids = new Int32Array(R * T), mask = new Uint8Array(R * T), positions = new Int32Array(R * T);
        let real = 0;
        rows.forEach((c, r) => {
          for (let t = 0; t < c.length; t++) {
            ids[r * T + t] = token[fed[c.start + t]];
            mask[r * T + t] = 1;
            positions[r * T + t] = P0 + c.above + t;
          }
          real += c.length;
        });
        const h = model.forward(ids, { batch: R, attentionMask: mask, positions, cache, logits: 'none' }).lastHiddenState.data;
        const D = h.length / (R * T);
        // Keys and values of the nodes later chains branch from.
        for (let l = 0; l < L; l++) {
          const k = cache.keys[l]!, v = cache.values[l]!;
          rows.forEach((c, r) => {
            for (let t = 0; t < c.length; t++) {
              const sl = slot[fed[c.start + t]];
              if (sl < 0) continue;
              const o = (r * (A + T) + A + t) * W;
              storeK[l].set(k.subarray(o, o + W), sl * W);
              storeV[l].set(v.subarray(o, o + W), sl * W);
            }
          });
        }
        // LM head and log-softmax at the fed nodes only.
        const at = new Int32Array(real); // row of h
        const nodes = new Int32Array(real);
        let n = 0;
        rows.forEach((c, r) => {
          for (let t = 0; t < c.length; t++) {
            at[n] = r * T + t;
            nodes[n++] = fed[c.start + t];
          }
        });
        for (let r0 = 0; r0 < real; r0 += headRows) {
          const r1 = Math.min(real, r0 + headRows);
          const x = new Float32Array((r1 - r0) * D);
          for (let i = r0; i < r1; i++) x.set(h.subarray(at[i] * D, (at[i] + 1) * D), (i - r0) * D);
          const logp = logSoftmax(linear(new Tensor(x, [r1 - r0, D]), headW)).data;
          for (let i = r0; i < r1; i++) {
            const node = nodes[i];
            for (let c = childStart[node]; c < childStart[node + 1]; c++) lp[childList[c]] = logp[(i - r0) * V + token[childList[c]]];
          }
        }
      }
    }
  });
  // Sum along each path: preorder puts every parent before its children.
  const cum = new Float64Array(M);
  for (let i = 0; i < M; i++) cum[i] = (parent[i] < 0 ? 0 : cum[parent[i]]) + lp[i];
  const logProb = Float64Array.from(trie.terminal, (t) => cum[t]);
  const tokens = trie.lengths.slice();
  const mean = Float64Array.from(logProb, (x, i) => x / tokens[i]);
  return { logProb, tokens, mean };
}
