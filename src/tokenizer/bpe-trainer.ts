/**
 * Byte-level BPE trainer (GPT-2 / Qwen2 style) with incremental pair-count updates.
 *
 * Algorithm (as in Hugging Face `tokenizers`' BpeTrainer):
 *  1. split every text around special tokens, pre-split with the regex, map to byte-level
 *     symbols and count distinct words;
 *  2. count adjacent symbol pairs over all words (weighted by word count) and remember, for each
 *     pair, which words contain it;
 *  3. repeatedly take the most frequent pair (ties: smallest (left id, right id)), merge it in the
 *     words that contain it, and update only the counts of the pairs of those words.
 *     A lazy max-heap holds the candidates; stale entries are corrected when popped.
 *
 * Ids: special tokens first (0..k-1, in the given order), then the 256 byte-level symbols sorted
 * by code point, then one id per merge in merge order.
 */

import { BYTE_LEVEL_ALPHABET, toByteLevel } from "./byte-level.js";
import { type PreSplitName, PRE_SPLIT_PATTERNS, type PreSplitPattern, preSplit, splitSpecial } from "./pretokenize.js";

export interface BpeTrainOptions {
  /** Target vocabulary size, special tokens and the 256 byte symbols included. */
  vocabSize: number;
  /**
   * Reserved special tokens, in id order (ids 0..k-1). Default: eos, pad (and bos when given),
   * i.e. `["<|endoftext|>", "<|pad|>"]`. eos/pad/bos are added when missing from this list.
   */
  specialTokens?: string[];
  /** End-of-sequence token. Default "<|endoftext|>". */
  eosToken?: string;
  /** Padding token. Default "<|pad|>". */
  padToken?: string;
  /** Optional beginning-of-sequence token (none by default, as Qwen2). */
  bosToken?: string;
  /** A pair must occur at least this often (weighted) to be merged. Default 2. */
  minFrequency?: number;
  /** Pre-split regex preset. Default "qwen2". */
  pattern?: PreSplitName;
  /** Skip merges whose result would be longer than this many byte-level symbols. Default: no limit. */
  maxTokenLength?: number;
}

/** A trained byte-level BPE model, independent of any tokenizer.json library. */
export interface BpeModel {
  /** id -> token (byte-level string; special tokens as their literal text). */
  vocab: string[];
  /** Merge rules in rank order, as [left, right] token strings. */
  merges: [string, string][];
  /** Special tokens with their ids. */
  specialTokens: { id: number; content: string }[];
  eosToken: string;
  padToken: string;
  bosToken?: string;
  pattern: PreSplitPattern;
}

export interface BpeTrainStats {
  texts: number;
  distinctWords: number;
  merges: number;
  seconds: number;
}

const KEY_BASE = 2 ** 21; // pair key = left * KEY_BASE + right; supports vocabularies up to 2M

/** Count distinct byte-level pre-tokens of a corpus. */
export function countWords(
  corpus: Iterable<string>,
  specials: readonly string[],
  pattern: PreSplitPattern,
): { words: Map<string, number>; texts: number } {
  // Count raw pre-tokens first and map only the distinct ones to byte-level symbols.
  const raw = new Map<string, number>();
  let texts = 0;
  for (const text of corpus) {
    texts++;
    for (const piece of splitSpecial(text, specials)) {
      if (piece.special) continue;
      for (const w of preSplit(piece.text, pattern)) raw.set(w, (raw.get(w) ?? 0) + 1);
    }
  }
  const words = new Map<string, number>();
  for (const [w, c] of raw) {
    const bl = toByteLevel(w);
    words.set(bl, (words.get(bl) ?? 0) + c);
  }
  return { words, texts };
}

/** Max-heap of (count, key) ordered by count desc, then key asc. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size(): number {
    return this.counts.length;
  }
  private better(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }
  private swap(i: number, j: number): void {
    const c = this.counts[i];
    this.counts[i] = this.counts[j];
    this.counts[j] = c;
    const k = this.keys[i];
    this.keys[i] = this.keys[j];
    this.keys[j] = k;
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.better(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  /** Pops the top; returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    const n = this.counts.length;
    if (n > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.better(l, m)) m = l;
        if (r < n && this.better(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

function resolveSpecials(opts: BpeTrainOptions): { list: string[]; eos: string; pad: string; bos?: string } {
  const eos = opts.eosToken ?? "<|endoftext|>";
  const pad = opts.padToken ?? "<|pad|>";
  const bos = opts.bosToken;
  const list = [...(opts.specialTokens ?? [])];
  for (const t of [eos, pad, bos]) if (t !== undefined && !list.includes(t)) list.push(t);
  if (new Set(list).size !== list.length) throw new Error("BPE trainer: duplicate special tokens");
  for (const t of list) if (t.length === 0) throw new Error("BPE trainer: empty special token");
  return { list, eos, pad, bos };
}

/**
 * Train a byte-level BPE model on `corpus` (any iterable of strings, e.g. titles and text lines).
 * Stops at `vocabSize` or when no pair reaches `minFrequency`.
 */
export function trainBpe(corpus: Iterable<string>, opts: BpeTrainOptions): { model: BpeModel; stats: BpeTrainStats } {
  const t0 = performance.now();
  const sp = resolveSpecials(opts);
  const pattern = PRE_SPLIT_PATTERNS[opts.pattern ?? "qwen2"];
  if (!pattern) throw new Error(`BPE trainer: unknown pre-split pattern ${String(opts.pattern)}`);
  const minFrequency = Math.max(1, opts.minFrequency ?? 2);
  const maxTokenLength = opts.maxTokenLength ?? Infinity;
  const base = sp.list.length + BYTE_LEVEL_ALPHABET.length;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < base) {
    throw new Error(`BPE trainer: vocabSize must be an integer >= ${base} (specials + 256 bytes), got ${opts.vocabSize}`);
  }
  if (opts.vocabSize > KEY_BASE) throw new Error(`BPE trainer: vocabSize must be <= ${KEY_BASE}`);

  const vocab: string[] = [...sp.list, ...BYTE_LEVEL_ALPHABET];
  const symLen: number[] = vocab.map((t, i) => (i < sp.list.length ? 0 : 1));
  const charId = new Map<string, number>();
  for (let i = sp.list.length; i < vocab.length; i++) charId.set(vocab[i], i);

  const { words: wordCounts, texts } = countWords(corpus, sp.list, pattern);

  // Words as symbol id arrays.
  const nWords = wordCounts.size;
  const words: number[][] = new Array(nWords);
  const counts = new Float64Array(nWords);
  {
    let w = 0;
    for (const [str, c] of wordCounts) {
      const syms: number[] = new Array(str.length);
      for (let i = 0; i < str.length; i++) syms[i] = charId.get(str[i])!;
      words[w] = syms;
      counts[w] = c;
      w++;
    }
  }

  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  for (let w = 0; w < nWords; w++) {
    const s = words[w];
    const c = counts[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const k = s[i] * KEY_BASE + s[i + 1];
      pairCount.set(k, (pairCount.get(k) ?? 0) + c);
      let lst = where.get(k);
      if (!lst) where.set(k, (lst = []));
      if (lst[lst.length - 1] !== w) lst.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const merges: [string, string][] = [];
  const stamp = new Int32Array(nWords).fill(-1);
  const delta = new Map<number, number>();

  while (vocab.length < opts.vocabSize && heap.size > 0) {
    const [cnt, key] = heap.pop();
    const actual = pairCount.get(key) ?? 0;
    if (actual !== cnt) {
      // Stale-high entry: re-queue with the true count. Stale-low entries are redundant (a fresher
      // entry with the higher count was pushed when the count rose).
      if (actual > 0 && actual < cnt) heap.push(actual, key);
      continue;
    }
    if (cnt < minFrequency) break;
    const a = Math.floor(key / KEY_BASE);
    const b = key - a * KEY_BASE;
    if (symLen[a] + symLen[b] > maxTokenLength) {
      pairCount.delete(key);
      continue;
    }
    const z = vocab.length;
    vocab.push(vocab[a] + vocab[b]);
    symLen.push(symLen[a] + symLen[b]);
    merges.push([vocab[a], vocab[b]]);

    const lst = where.get(key) ?? [];
    where.delete(key);
    pairCount.delete(key);
    delta.clear();
    const mergeNo = merges.length;
    for (const w of lst) {
      if (stamp[w] === mergeNo) continue;
      stamp[w] = mergeNo;
      const s = words[w];
      let found = false;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue;
      const c = counts[w];
      // Remove the old pairs, merge, add the new pairs (words are short: this is cheap and exact).
      for (let i = 0; i + 1 < s.length; i++) {
        const k = s[i] * KEY_BASE + s[i + 1];
        if (k !== key) delta.set(k, (delta.get(k) ?? 0) - c);
      }
      const out: number[] = [];
      for (let i = 0; i < s.length; ) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(z);
          i += 2;
        } else {
          out.push(s[i]);
          i++;
        }
      }
      words[w] = out;
      for (let i = 0; i + 1 < out.length; i++) {
        const k = out[i] * KEY_BASE + out[i + 1];
        delta.set(k, (delta.get(k) ?? 0) + c);
        if (out[i] === z || out[i + 1] === z) {
          let l2 = where.get(k);
          if (!l2) where.set(k, (l2 = []));
          if (l2[l2.length - 1] !== w) l2.push(w);
        }
      }
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const nc = (pairCount.get(k) ?? 0) + d;
      if (nc <= 0) {
        pairCount.delete(k);
        where.delete(k);
      } else {
        pairCount.set(k, nc);
        if (d > 0) heap.push(nc, k);
      }
    }
  }

  const model: BpeModel = {
    vocab,
    merges,
    specialTokens: sp.list.map((content, id) => ({ id, content })),
    eosToken: sp.eos,
    padToken: sp.pad,
    bosToken: sp.bos,
    pattern,
  };
  return {
    model,
    stats: { texts, distinctWords: nWords, merges: merges.length, seconds: (performance.now() - t0) / 1000 },
  };
}

export interface BpeEncoderSpec {
  /** token -> id for the BPE model vocabulary (byte-level symbols). */
  tokenToId: ReadonlyMap<string, number>;
  /** Merge rules in rank order. */
  merges: readonly (readonly [string, string])[];
  pattern: PreSplitPattern;
  /** Added tokens (matched literally in the raw text before pre-splitting) -> id. */
  added: ReadonlyMap<string, number>;
  /** Apply Unicode NFC normalisation to the text first (Qwen2's normalizer). */
  nfc?: boolean;
}

/**
 * Byte-level BPE encoder (independent of @huggingface/tokenizers). Used as the reference encoder
 * in tests and as the fast path of {@link HfTokenizer} for tokenizer.json files of the supported
 * shape. Merges are applied lowest rank first, as in Hugging Face tokenizers.
 */
export class BpeEncoder {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  private readonly addedList: string[];

  constructor(private readonly spec: BpeEncoderSpec) {
    spec.merges.forEach(([l, r], i) => {
      const k = l + " " + r;
      if (!this.ranks.has(k)) this.ranks.set(k, i);
    });
    this.addedList = [...spec.added.keys()];
  }

  static fromModel(model: BpeModel): BpeEncoder {
    const tokenToId = new Map<string, number>();
    model.vocab.forEach((t, i) => tokenToId.set(t, i));
    const added = new Map(model.specialTokens.map((s) => [s.content, s.id] as const));
    return new BpeEncoder({ tokenToId, merges: model.merges, pattern: model.pattern, added });
  }

  encode(text: string): number[] {
    if (this.spec.nfc) text = text.normalize("NFC");
    const out: number[] = [];
    for (const piece of splitSpecial(text, this.addedList)) {
      if (piece.special) {
        out.push(this.spec.added.get(piece.text)!);
        continue;
      }
      for (const w of preSplit(piece.text, this.spec.pattern)) {
        for (const id of this.word(toByteLevel(w))) out.push(id);
      }
    }
    return out;
  }

  private word(bl: string): number[] {
    const hit = this.cache.get(bl);
    if (hit) return hit;
    let parts = Array.from(bl);
    while (parts.length > 1) {
      let best = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = this.ranks.get(parts[i] + " " + parts[i + 1]);
        if (r !== undefined && r < best) best = r;
      }
      if (best === Infinity) break;
      const [l, r] = this.spec.merges[best];
      const merged = l + r;
      const next: string[] = [];
      for (let i = 0; i < parts.length; ) {
        if (i + 1 < parts.length && parts[i] === l && parts[i + 1] === r) {
          next.push(merged);
          i += 2;
        } else {
          next.push(parts[i]);
          i++;
        }
      }
      parts = next;
    }
    const ids = parts.map((p) => {
      const id = this.spec.tokenToId.get(p);
      if (id === undefined) throw new Error(`BpeEncoder: symbol ${JSON.stringify(p)} not in vocabulary`);
      return id;
    });
    if (this.cache.size < 500_000) this.cache.set(bl, ids);
    return ids;
  }
}
