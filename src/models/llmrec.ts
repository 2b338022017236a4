/**
 * LLMRec: a decoder language model (with LoRA adapters) that ranks candidate items by the likelihood of
 * their titles after a prompt built from the user's recent titles.
 *
 * Scoring shares the prompt: each user's prompt runs once into a KV cache, the cache is repeated for the
 * user's candidates, and all candidate titles are scored in one batched forward. A candidate's score is
 * the mean (default, length-normalised) or the sum of the log-probabilities of its answer tokens (title
 * and end-of-sequence). Logits are computed only at real answer positions: the LM head is the largest
 * matrix, and padded positions would otherwise dominate the cost.
 */
import { linearLogProbs, logSoftmax, noGrad, Tensor, withArena } from '../core/index.js';
import { CandidateSampler, type NegativeSampler } from '../data/candidates.js';
import { Fnv1a } from '../data/rng.js';
import type { PeriodSplit, Sample } from '../data/periods.js';
import { sampleFilter, type BatchScorer } from '../eval/evaluate.js';
import { bestWeightByNdcg3, MetricAccumulator } from '../eval/metrics.js';
import type { Decoder } from '../nn/decoder.js';
import { scoreTrie, TokenTrie } from '../nn/trie.js';
import type { PromptBuilder } from './prompt.js';

export type ScoreReduction = 'mean' | 'sum';

export interface ScoreOptions {
  reduction?: ScoreReduction;
  /**
   * 'prior' subtracts each title's score after a history-free prompt (a pointwise-mutual-information
   * score): what the user's history adds, without the title's prior likelihood, which mostly encodes how
   * common and how generic the title is. 'none' (default) is the plain likelihood.
   */
  calibration?: 'none' | 'prior';
  /**
   * With 'prior': the weight of the history-free score subtracted (score = plain - w x prior; default 1,
   * the full pointwise mutual information). Measured on Beauty P0 (docs/models.md): w = 1 is best when
   * the negatives share the positive's popularity (the matched view), about 0.75 when they are uniform,
   * because there the prior carries popularity, which is signal. `choosePriorWeight` picks it on
   * validation.
   */
  priorWeight?: number;
  /** Users whose candidates share one batched forward (default 8). */
  usersPerBatch?: number;
}

/**
 * The default scoring: length-normalised, prior-calibrated. Measured on Beauty P0 (docs/models.md): with
 * popularity-sampled negatives the plain likelihood ranks like popularity (below random), and the
 * calibrated score lifts NDCG@3 from 0.034 to 0.149; with uniform negatives the two are within noise.
 */
export type ScoringSettings = Required<Pick<ScoreOptions, 'reduction' | 'calibration' | 'priorWeight'>>;
export const DEFAULT_SCORING: ScoringSettings = { reduction: 'mean', calibration: 'prior', priorWeight: 1 };

export class LLMRec {
  /** How `score` ranks unless a call says otherwise (saved in the LLMRec folder). */
  scoring: ScoringSettings;

  constructor(
    readonly decoder: Decoder,
    readonly prompts: PromptBuilder,
    scoring: Partial<ScoringSettings> = {},
  ) {
    this.scoring = { ...DEFAULT_SCORING, ...scoring };
  }

  get padId(): number {
    return this.prompts.tokenizer.specialIds.pad;
  }

  /**
   * Scores candidate items for each history (item indices, oldest first). Deterministic: no dropout,
   * no sampling; the same inputs give the same scores whatever the batch composition.
   */
  score(histories: readonly (readonly number[])[], candidates: readonly (readonly number[])[], opts: ScoreOptions = {}): Float32Array[] {
    if (histories.length !== candidates.length) throw new RangeError(`${histories.length} histories for ${candidates.length} candidate sets`);
    const per = Math.max(1, opts.usersPerBatch ?? 8);
    const reduction = opts.reduction ?? this.scoring.reduction;
    const calibration = opts.calibration ?? this.scoring.calibration;
    const w = opts.priorWeight ?? this.scoring.priorWeight;
    const out: Float32Array[] = [];
    noGrad(() => this.decoder.withFrozenWeights(() => {
      for (let s = 0; s < histories.length; s += per) {
        const prompts = histories.slice(s, s + per).map((h) => this.prompts.prompt(h));
        out.push(...withArena(() => this.scoreChunk(prompts, candidates.slice(s, s + per), reduction)));
      }
      if (calibration === 'prior') {
        const prior = this.priorScores(candidates.flat(), reduction);
        out.forEach((sc, u) => candidates[u].forEach((c, j) => (sc[j] -= w * prior.get(c)!)));
      }
    }));
    return out;
  }

  private trie: { items: number; trie: TokenTrie } | null = null;

  /** The trie of the answers (title tokens and end-of-sequence) of items 0 .. items - 1, built once. */
  answerTrie(items = this.prompts.titles.length): TokenTrie {
    if (!this.trie || this.trie.items !== items) {
      this.trie = { items, trie: new TokenTrie(Array.from({ length: items }, (_, i) => this.prompts.answer(i))) };
    }
    return this.trie.trie;
  }

  /**
   * Exact scores of every item 0 .. items - 1 (default: every title) after each history: the numbers
   * `score` gives for the whole catalogue, computed through the answers' trie (nn/trie.ts): the prompt
   * runs once into a KV cache, and each distinct answer prefix once, however many titles share it. With
   * 'prior' calibration the history-free scores come from the same trie, once while the weights are
   * unchanged. `chunk`: tokens per forward (default 4096).
   */
  scoreAll(histories: readonly (readonly number[])[], opts: Omit<ScoreOptions, 'usersPerBatch'> & { items?: number; chunk?: number } = {}): Float32Array[] {
    const reduction = opts.reduction ?? this.scoring.reduction;
    const calibration = opts.calibration ?? this.scoring.calibration;
    const w = opts.priorWeight ?? this.scoring.priorWeight;
    const trie = this.answerTrie(opts.items);
    const one = (prompt: readonly number[]): Float32Array => {
      const r = scoreTrie(this.decoder, prompt, trie, { chunk: opts.chunk });
      return Float32Array.from(reduction === 'mean' ? r.mean : r.logProb);
    };
    const out = histories.map((h) => one(this.prompts.prompt(h)));
    if (calibration === 'prior') {
      const n = trie.terminal.length;
      let prior = this.cachedPrior(reduction);
      let missing = false;
      for (let i = 0; i < n && !missing; i++) if (!prior.has(i)) missing = true;
      if (missing) {
        const sc = one(this.prompts.prompt([]));
        prior = this.cachedPrior(reduction);
        for (let i = 0; i < n; i++) prior.set(i, sc[i]);
      }
      for (const sc of out) for (let i = 0; i < n; i++) sc[i] -= w * prior.get(i)!;
    }
    return out;
  }

  private priorCache: { key: string; reduction: ScoreReduction; scores: Map<number, number> } | null = null;

  /** The prior-score cache for the current weights and this reduction (emptied when either changed). */
  private cachedPrior(reduction: ScoreReduction): Map<number, number> {
    const key = this.fingerprint();
    if (!this.priorCache || this.priorCache.key !== key || this.priorCache.reduction !== reduction) {
      this.priorCache = { key, reduction, scores: new Map() };
    }
    return this.priorCache.scores;
  }

  /** Scores of items after the history-free prompt, cached while the model's weights are unchanged. */
  priorScores(items: readonly number[], reduction: ScoreReduction = 'mean'): Map<number, number> {
    const cache = this.cachedPrior(reduction);
    const missing = [...new Set(items)].filter((i) => !cache.has(i));
    const neutral = this.prompts.prompt([]);
    noGrad(() => this.decoder.withFrozenWeights(() => {
      for (let s = 0; s < missing.length; s += 160) {
        const chunk = missing.slice(s, s + 160);
        const [sc] = withArena(() => this.scoreChunk([neutral], [chunk], reduction));
        chunk.forEach((item, j) => cache.set(item, sc[j]));
      }
    }));
    return cache;
  }

  /**
   * A cheap fingerprint of the weights the forward uses (active adapters and their weights, and a strided
   * sample of every parameter), so cached prior scores are dropped whenever training changes the model.
   */
  private fingerprint(): string {
    const fnv = new Fnv1a();
    const mix = (x: number) => fnv.mix(x);
    const bits = new Int32Array(1);
    const f32 = new Float32Array(bits.buffer);
    const sample = (data: Float32Array) => {
      const step = Math.max(1, Math.floor(data.length / 64));
      for (let i = 0; i < data.length; i += step) {
        f32[0] = data[i];
        mix(bits[0]);
      }
    };
    const dec = this.decoder;
    for (const [, t] of dec.namedParameters()) sample(t.data);
    const active = dec.activeAdapters();
    for (const { name, weight } of active) {
      for (const c of name) mix(c.charCodeAt(0));
      f32[0] = weight;
      mix(bits[0]);
      for (const t of dec.adapter(name).parameters(true)) sample(t.data);
    }
    return `${active.map((a) => a.name).join(',')}:${fnv.value}`;
  }

  private scoreChunk(prompts: readonly (readonly number[])[], candidates: readonly (readonly number[])[], reduction: ScoreReduction): Float32Array[] {
    const U = prompts.length;
    const pad = this.padId;
    // 1. Prompts, left-padded so that every prompt ends at the same position.
    const Tp = Math.max(...prompts.map((p) => p.length));
    const ids = new Int32Array(U * Tp).fill(pad);
    const mask = new Uint8Array(U * Tp);
    prompts.forEach((p, u) => {
      ids.set(p, u * Tp + Tp - p.length);
      mask.fill(1, u * Tp + Tp - p.length, (u + 1) * Tp);
    });
    const cache = this.decoder.newCache(U);
    const first = this.decoder.forward(ids, { batch: U, attentionMask: mask, cache, logits: 'last' });
    const firstLp = logSoftmax(first.logits!).data; // [U, V]
    const V = this.decoder.config.vocabSize;

    // 2. Candidate answers: every token but the last is an input; right-padded.
    const rowsUser: number[] = [];
    const answers: number[][] = [];
    candidates.forEach((cs, u) => cs.forEach((c) => {
      rowsUser.push(u);
      answers.push(this.prompts.answer(c));
    }));
    const R = answers.length;
    const La = Math.max(1, ...answers.map((a) => a.length - 1));
    const aIds = new Int32Array(R * La).fill(pad);
    const aMask = new Uint8Array(R * La);
    answers.forEach((a, r) => {
      for (let k = 0; k + 1 < a.length; k++) {
        aIds[r * La + k] = a[k];
        aMask[r * La + k] = 1;
      }
    });
    const rep = cache.select(rowsUser);
    const second = this.decoder.forward(aIds, { batch: R, attentionMask: aMask, cache: rep, logits: 'none' });
    const h = second.lastHiddenState; // [R, La, D]
    const D = h.shape[2];

    // 3. Log-probabilities only where a real answer token is predicted, through the fused LM head
    // (no [rows, V] logits array).
    let real = 0;
    for (let i = 0; i < aMask.length; i++) real += aMask[i];
    const rows = new Float32Array(real * D);
    const targets = new Int32Array(real);
    let k = 0;
    for (let i = 0; i < aMask.length; i++) {
      if (!aMask[i]) continue;
      rows.set(h.data.subarray(i * D, (i + 1) * D), D * k);
      const r = Math.floor(i / La);
      targets[k++] = answers[r][i - r * La + 1];
    }
    const lp = real > 0 ? linearLogProbs(new Tensor(rows, [real, D]), this.decoder.headWeight, targets) : new Float32Array(0);

    const scores = candidates.map((cs) => new Float32Array(cs.length));
    let r = 0;
    let row = 0;
    candidates.forEach((cs, u) => {
      cs.forEach((_, j) => {
        const a = answers[r];
        let sum = firstLp[u * V + a[0]];
        for (let t = 1; t < a.length; t++) sum += lp[row++];
        scores[u][j] = reduction === 'mean' ? sum / a.length : sum;
        r++;
      });
    });
    return scores;
  }

  /**
   * The same scores by full recomputation (prompt + answer as one sequence, no cache, no batching):
   * slow, and kept as the reference the cached path is tested against.
   */
  scoreReference(history: readonly number[], candidates: readonly number[], reduction: ScoreReduction = 'mean'): Float32Array {
    return noGrad(() => {
      const p = this.prompts.prompt(history);
      return Float32Array.from(candidates, (c) => {
        const a = this.prompts.answer(c);
        const logits = this.decoder.forward([...p, ...a], { logits: 'all' }).logits!;
        const V = this.decoder.config.vocabSize;
        const lp = logSoftmax(logits).data;
        let sum = 0;
        for (let t = 0; t < a.length; t++) sum += lp[(p.length - 1 + t) * V + a[t]];
        return reduction === 'mean' ? sum / a.length : sum;
      });
    });
  }
}

/** A batch scorer for `evaluate`: LLMRec over each sample's history window (or a filtered history). */
export function llmrecScorer(model: LLMRec, split: PeriodSplit, historyOf?: (s: Sample) => number[]): BatchScorer {
  const H = model.prompts.options.history;
  const hist = historyOf ?? ((s: Sample) => split.history(s, H));
  return { batchSize: 8, batch: (samples, cands) => model.score(samples.map(hist), cands) };
}

/**
 * Mean NDCG@3 of the model on fixed samples and candidate sets: the validation signal of training and of
 * every update (the spec's headline metric, ties taken in expectation).
 */
export function validationNdcg3(model: LLMRec, samples: readonly Sample[], candidates: readonly number[][], historyOf: (s: Sample) => number[]): number {
  const scores = model.score(samples.map(historyOf), candidates);
  const acc = new MetricAccumulator([3]);
  samples.forEach((s, i) => acc.add(scores[i], candidates[i].indexOf(s.item)));
  return acc.mean()['NDCG@3'];
}

/** The prior weights `choosePriorWeight` tries: 0 (plain likelihood) to 1 (full PMI) in eighths. */
export const PRIOR_WEIGHT_GRID: readonly number[] = [0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1];

/** One validation set's raw scores: plain likelihood and history-free prior per candidate, and where the positive is. */
export interface PriorSet {
  plain: ArrayLike<number>;
  prior: ArrayLike<number>;
  positive: number;
}

/**
 * The prior weight with the best validation NDCG@3, averaged over views (each view's sets weigh as one,
 * whatever its size): a pure function of the raw scores, so every weight of the grid costs no forward.
 * Ties go to the first weight of the grid (the smaller one).
 */
export function bestPriorWeight(views: readonly (readonly PriorSet[])[], grid: readonly number[] = PRIOR_WEIGHT_GRID): { weight: number; ndcg3: number[] } {
  return bestWeightByNdcg3(views, grid, (s, w) => Float32Array.from(s.plain, (x, j) => x - w * s.prior[j]), 'bestPriorWeight');
}

/**
 * Picks `model.scoring.priorWeight` on validation sets of one or more views (for example matched and
 * uniform negatives), with one scoring pass per set: sets the model's calibration to 'prior' with the
 * best weight (0 is the plain likelihood) and returns the curve.
 */
export function choosePriorWeight(
  model: LLMRec,
  views: readonly { samples: readonly Sample[]; candidates: readonly number[][] }[],
  historyOf: (s: Sample) => number[],
  grid: readonly number[] = PRIOR_WEIGHT_GRID,
): { weight: number; grid: readonly number[]; ndcg3: number[] } {
  const reduction = model.scoring.reduction;
  const raw = views.map(({ samples, candidates }) => {
    const plain = model.score(samples.map(historyOf), candidates, { calibration: 'none' });
    const prior = model.priorScores(candidates.flat(), reduction);
    return samples.map((s, i) => ({ plain: plain[i], prior: candidates[i].map((c) => prior.get(c)!), positive: candidates[i].indexOf(s.item) }));
  });
  const { weight, ndcg3 } = bestPriorWeight(raw, grid);
  model.scoring = { ...model.scoring, calibration: 'prior', priorWeight: weight };
  return { weight, grid, ndcg3 };
}

/**
 * NDCG@3 on a fixed sample of `n` P0 validation targets (candidate sets of `size`, drawn with `seed`):
 * the base model's early-stopping signal (`evorec train-base`, the experiment's base adapter).
 */
export function p0Validator(model: LLMRec, split: PeriodSplit, n: number, size: number, seed: number, sampler: NegativeSampler = 'matched'): () => number {
  const valid = split.periods[0].valid.filter(sampleFilter(split.periods[0].valid, n, seed, 'base-valid'));
  const cs = new CandidateSampler(split);
  const cands = valid.map((s) => cs.candidates(s, 0, 'valid', { sampler, size, seed }));
  const H = model.prompts.options.history;
  return () => validationNdcg3(model, valid, cands, (s) => split.history(s, H));
}

/**
 * The full-catalogue view for LLMRec: every item's title scored exactly after the user's prompt, the
 * numbers `model.score` would give for the whole catalogue (`LLMRec.scoreAll`): the prompt runs once per
 * user into a KV cache, and the answers' trie is scored after it (nn/trie.ts) in forwards of about
 * `chunk` tokens, so tokens that titles share as a common prefix are computed once. Still costly (every
 * distinct title prefix is a token of forward and LM head per user), so it is used on a fixed user
 * sample; the two-stage form (full-ranking.ts) is the one for all users.
 */
export function llmrecFullScorer(model: LLMRec, split: PeriodSplit, historyOf?: (s: Sample) => number[], chunk = 4096): (samples: Sample[]) => Float32Array[] {
  const H = model.prompts.options.history;
  const hist = historyOf ?? ((s: Sample) => split.history(s, H));
  const n = split.dataset.numItems;
  if (n > model.prompts.titles.length) throw new RangeError(`llmrecFullScorer: ${n} items but ${model.prompts.titles.length} titles`);
  return (samples) => samples.map((s) => model.scoreAll([hist(s)], { items: n, chunk })[0]);
}
