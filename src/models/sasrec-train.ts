/**
 * Training SASRec on the period protocol: every user's sequence up to the end of period t, with loss only
 * on training targets (held-out targets are never labels), binary cross-entropy against one sampled
 * negative per position (the original recipe) or full softmax. Early stopping on validation NDCG@10 over a
 * fixed set of validation users, keeping the best parameters.
 */
import { withDefaults } from '../util/options.js';
import {
  AdamW,
  add,
  backward,
  crossEntropy,
  embedding,
  linear,
  logSigmoid,
  mul,
  neg,
  noGrad,
  reshape,
  scale,
  sum,
  tensor,
  type Tensor,
} from '../core/index.js';
import { existsSync } from 'node:fs';
import { loadCheckpoint, readCheckpoint, saveCheckpoint } from '../core/index.js';
import { CandidateSampler } from '../data/candidates.js';
import type { PeriodSplit, Sample } from '../data/periods.js';
import { drawCumulative, keyedRandom } from '../data/rng.js';
import { evaluate, sampleFilter, type BatchScorer, type EvalResult } from '../eval/evaluate.js';
import type { SASRec } from './sasrec.js';

export interface SASRecTrainOptions {
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  loss: 'bce' | 'softmax';
  /** Negatives for the BCE loss: uniform over the catalogue, or in proportion to training popularity. */
  negatives: 'uniform' | 'popularity';
  /**
   * At least this many optimiser steps between two validations (0: one pass over the sequences). On a
   * small split one pass is a handful of batches (381 MovieLens users are 3 batches of 128), so twenty
   * epochs of one pass train an ID model for 60 steps and early stopping ends it at random level; an
   * epoch then passes over the sequences as often as it takes, each pass in a new order.
   */
  minStepsPerEpoch: number;
  /** Stop after this many evaluations without improvement. */
  patience: number;
  /** Validation users (a fixed, seeded sample of the period's validation targets). */
  validUsers: number;
  seed: number;
  onEpoch?: (info: { epoch: number; loss: number; validNdcg10: number; seconds: number }) => void;
  onStep?: (step: number, steps: number, loss: number) => void;
  /**
   * Early-stopping score (higher is better) in place of NDCG@10 on sampled validation sets, for example
   * NDCG@10 over the full catalogue (`evorec benchmark`).
   */
  validator?: () => Promise<number> | number;
  /**
   * Checkpoint file: written after every epoch (parameters, optimiser moments, best parameters so far);
   * when it exists at the start, training resumes after the last completed epoch.
   */
  checkpoint?: string;
}

export const DEFAULT_SASREC_TRAIN: SASRecTrainOptions = {
  epochs: 30,
  batchSize: 128,
  lr: 1e-3,
  weightDecay: 0,
  loss: 'bce',
  negatives: 'uniform',
  minStepsPerEpoch: 0,
  patience: 3,
  validUsers: 2000,
  seed: 42,
};

/** One user's training sequence: inputs and, per position, the next item to predict or -1. */
export interface TrainingSequence {
  user: number;
  items: Int32Array;
  labels: Int32Array;
}

/**
 * Training sequences at the end of period t: each user's items up to t without the test target; the
 * label of position i is item i+1 when that is a training target, otherwise -1 (validation targets).
 */
export function sasrecSequences(split: PeriodSplit, t: number): TrainingSequence[] {
  const out: TrainingSequence[] = [];
  const items = split.dataset.items;
  for (let u = 0; u < split.userRows.length; u++) {
    const n = split.rowsUpTo(u, t);
    if (n < 3) continue; // needs at least one training target besides the held-out ones
    const { test, valid } = split.heldOut(u, t);
    const rows = split.userRows[u];
    const L = test; // inputs: positions 0..test-1
    const seq = new Int32Array(L);
    const labels = new Int32Array(L).fill(-1);
    for (let i = 0; i < L; i++) {
      seq[i] = items[rows[i]];
      const next = i + 1;
      if (next < test && next !== valid) labels[i] = items[rows[next]];
    }
    if (labels.some((x) => x >= 0)) out.push({ user: u, items: seq, labels });
  }
  return out;
}

/**
 * A batch scorer for `evaluate`: the history window before each sample's target, of the model's maxLen
 * items, or of `history` (at most maxLen) to read as few items as an LLMRec prompt does.
 */
export function sasrecScorer(model: SASRec, split: PeriodSplit, batchSize = 256, history = model.config.maxLen): BatchScorer {
  const h = Math.min(history, model.config.maxLen);
  return {
    batchSize,
    batch: (samples: Sample[], cands: number[][]) => model.score(samples.map((s) => split.history(s, h)), cands),
  };
}

/** A full-catalogue scorer: every item's score for each sample's history window (one matrix product). */
export function sasrecFullScorer(model: SASRec, split: PeriodSplit, history = model.config.maxLen): (samples: Sample[]) => Float32Array[] {
  const h = Math.min(history, model.config.maxLen);
  return (samples) => model.scoreAll(samples.map((s) => split.history(s, h)));
}

export interface SASRecTrainResult {
  epochs: number;
  bestEpoch: number;
  bestValidNdcg10: number;
  seconds: number;
  samples: number;
}

export async function trainSASRec(
  model: SASRec,
  split: PeriodSplit,
  t: number,
  options: Partial<SASRecTrainOptions> = {},
): Promise<SASRecTrainResult> {
  const o = withDefaults(DEFAULT_SASREC_TRAIN, options);
  const seqs = sasrecSequences(split, t);
  const params = model.parameters();
  const opt = new AdamW(params, { lr: o.lr, weightDecay: o.weightDecay, betas: [0.9, 0.98] });
  const numItems = model.config.numItems;
  // Fixed validation users: a seeded sample of this period's validation targets (P0's when t has none).
  const pool = split.periods[t].valid.length > 0 ? split.periods[t].valid : split.periods[0].valid;
  const inValid = sampleFilter(pool, o.validUsers, o.seed, `sasrec-valid-${t}`);
  const validPeriod = split.periods[t].valid.length > 0 ? t : 0;
  const scorer = sasrecScorer(model, split);
  const cs = new CandidateSampler(split);
  const validate = async (): Promise<EvalResult> =>
    evaluate(split, validPeriod, scorer, {
      role: 'valid',
      filter: inValid,
      candidates: (s) => cs.candidates(s, validPeriod, 'valid'),
    });

  let best = -Infinity;
  let bestEpoch = 0;
  let bestParams = params.map((p) => p.data.slice());
  let bad = 0;
  const t0 = performance.now();
  let epoch = 0;
  let samples = 0;
  let firstEpoch = 1;
  const named = model.params;
  const bestNamed = () => Object.fromEntries(Object.keys(named).map((k, i) => [`best.${k}`, tensor(bestParams[i], named[k].shape)]));
  if (o.checkpoint && existsSync(o.checkpoint)) {
    const { meta } = loadCheckpoint(o.checkpoint, { params: named, optimizer: opt });
    const saved = readCheckpoint(o.checkpoint).data;
    bestParams = Object.keys(named).map((k) => saved.get(`param:best.${k}`)!.slice());
    ({ best, bestEpoch, bad, samples } = meta as { best: number; bestEpoch: number; bad: number; samples: number });
    firstEpoch = (meta.epoch as number) + 1;
    if (meta.stopped) firstEpoch = o.epochs + 1; // early stopping had ended it
  }
  // Batches of similar length (so little padding), in a new random order every epoch.
  const pop = split.popularity(t);
  const cum = new Float64Array(numItems);
  for (let i = 0, acc = 0; i < numItems; i++) cum[i] = acc += pop[i] + 1; // +1: every item can be drawn
  const drawNegative = (r: number): number => {
    if (o.negatives === 'uniform') return Math.floor(r * numItems);
    return drawCumulative(cum, r);
  };
  const byLength = seqs.map((_, i) => i).sort((a, b) => Math.min(seqs[a].items.length, model.config.maxLen) - Math.min(seqs[b].items.length, model.config.maxLen) || a - b);
  // One pass: shuffle within runs of equal length, then cut into batches and shuffle the batches.
  const onePass = (shuffle: () => number): number[][] => {
    const batches: number[][] = [];
    const order = byLength.slice();
    for (let i = 0; i < order.length; ) {
      let j = i;
      const len = Math.min(seqs[order[i]].items.length, model.config.maxLen);
      while (j < order.length && Math.min(seqs[order[j]].items.length, model.config.maxLen) === len) j++;
      for (let k = j - 1; k > i; k--) {
        const r = i + Math.floor(shuffle() * (k - i + 1));
        [order[k], order[r]] = [order[r], order[k]];
      }
      i = j;
    }
    for (let start = 0; start < order.length; start += o.batchSize) batches.push(order.slice(start, start + o.batchSize));
    for (let i = batches.length - 1; i > 0; i--) {
      const j = Math.floor(shuffle() * (i + 1));
      [batches[i], batches[j]] = [batches[j], batches[i]];
    }
    return batches;
  };
  for (epoch = firstEpoch; epoch <= o.epochs; epoch++) {
    const shuffle = keyedRandom(o.seed, 'sasrec-epoch', t, epoch);
    const batches = onePass(shuffle);
    // Further passes until the epoch has its minimum of steps (none when minStepsPerEpoch is 0).
    if (batches.length > 0) while (batches.length < o.minStepsPerEpoch) batches.push(...onePass(shuffle));
    let lossSum = 0;
    let done = 0;
    const steps = batches.length;
    for (const idx of batches) {
      const batch = idx.map((i) => seqs[i]);
      const B = batch.length;
      const { ids, mask, L } = model.batch(batch.map((s) => s.items));
      // Labels aligned with the left-padded window (internal ids: item + 1; 0 = no label).
      const pos = new Int32Array(B * L);
      const negs = new Int32Array(B * L);
      const w = new Float32Array(B * L);
      let count = 0;
      batch.forEach((s, b) => {
        const n = Math.min(s.items.length, L);
        const seen = new Set(s.items);
        for (let j = 0; j < n; j++) {
          const label = s.labels[s.items.length - n + j];
          if (label < 0) continue;
          const k = b * L + L - n + j;
          pos[k] = label + 1;
          w[k] = 1;
          count++;
          let x: number;
          do x = drawNegative(shuffle());
          while (seen.has(x) || x === label);
          negs[k] = x + 1;
        }
      });
      if (count === 0) continue;
      const h = model.encode(ids, mask, B, true);
      let loss: Tensor;
      if (o.loss === 'bce') {
        const E = model.params.item_emb;
        const posLogit = sum(mul(h, embedding(E, pos, [B, L])), -1);
        const negLogit = sum(mul(h, embedding(E, negs, [B, L])), -1);
        const wt = tensor(w, [B, L]);
        const ll = sum(mul(logSigmoid(posLogit), wt));
        const ln = sum(mul(logSigmoid(neg(negLogit)), wt));
        loss = scale(add(ll, ln), -1 / count);
      } else {
        const logits = linear(reshape(h, [B * L, model.config.hidden]), model.params.item_emb);
        const targets = new Int32Array(B * L);
        for (let k = 0; k < targets.length; k++) targets[k] = w[k] ? pos[k] : -100;
        loss = crossEntropy(logits, targets);
      }
      opt.zeroGrad();
      backward(loss);
      opt.step();
      lossSum += loss.item();
      done++;
      samples += count;
      o.onStep?.(done, steps, lossSum / done);
    }
    const ndcg = o.validator ? await o.validator() : ((await validate()).groups.all?.metrics['NDCG@10'] ?? 0);
    if (Number.isNaN(ndcg)) throw new RangeError(`SASRec validation at epoch ${epoch} is NaN`);
    o.onEpoch?.({ epoch, loss: lossSum / Math.max(1, done), validNdcg10: ndcg, seconds: (performance.now() - t0) / 1000 });
    let stop = false;
    if (ndcg >= best) {
      // Ties go to the later epoch: same validation score, more training.
      best = ndcg;
      bestEpoch = epoch;
      bestParams = params.map((p) => p.data.slice());
      bad = 0;
    } else stop = ++bad >= o.patience;
    if (o.checkpoint) {
      saveCheckpoint(o.checkpoint, {
        params: { ...named, ...bestNamed() },
        optimizer: opt,
        step: epoch,
        meta: { epoch, best, bestEpoch, bad, samples, stopped: stop },
      });
    }
    if (stop) break;
  }
  noGrad(() => params.forEach((p, i) => p.data.set(bestParams[i])));
  return { epochs: Math.min(epoch, o.epochs), bestEpoch, bestValidNdcg10: best, seconds: (performance.now() - t0) / 1000, samples };
}
