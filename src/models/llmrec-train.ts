/**
 * Supervised training of LLMRec: each sample becomes prompt + answer ids with the loss on the answer only.
 * Examples are batched by length (little padding), batches are shuffled per epoch with a seed, and an
 * optional validation function (higher is better, e.g. NDCG@3 on a fixed validation sample) drives early
 * stopping and best-checkpoint selection: the best trainable parameters are restored at the end.
 * A validator returns null when it has no samples (e.g. `--valid-users 0`): that validation compares
 * nothing, so without any score there is no early stopping and the final parameters are kept. A NaN
 * score is a broken validator and throws.
 *
 * Which parameters train is the model's business (frozen base, LoRA masks); this loop trains whatever
 * requires gradients, so full fine-tuning, all-LoRA and located-layer updates share it.
 */
import { existsSync } from 'node:fs';
import { add, backward, clipGradNorm, type Tensor, withArena } from '../core/index.js';
import type { Sample } from '../data/periods.js';
import { Fnv1a, hashString, keyedRandom } from '../data/rng.js';
import { padBatch } from '../nn/batch.js';
import { LmTrainer, type LmBatch, type StepResult } from '../train/lm-trainer.js';
import { withDefaults } from '../util/options.js';
import type { LLMRec } from './llmrec.js';

export interface LLMRecTrainOptions {
  epochs: number;
  lr: number;
  /** Examples per optimiser step. */
  batchSize: number;
  /** Share of steps for linear warm-up. */
  warmup: number;
  schedule: 'cosine' | 'linear' | 'constant';
  weightDecay: number;
  clipNorm: number;
  /** Validations per epoch (1 = at each epoch's end). */
  evalsPerEpoch: number;
  /** Stop after this many validations without improvement. */
  patience: number;
  seed: number;
  /** Resume file (parameters, optimiser, progress), written after each validation. */
  checkpoint?: string;
  onStep?: (step: number, steps: number, loss: number) => void;
  onEval?: (info: { step: number; epoch: number; score: number; loss: number; seconds: number }) => void;
  /**
   * An extra loss added to each step's next-item loss (e.g. EvoRec's consistency term on inactive users'
   * prompts, already multiplied by its weight). Called once per step, inside gradient recording.
   */
  extraLoss?: (step: number) => Tensor | null;
}

export const DEFAULT_LLMREC_TRAIN: LLMRecTrainOptions = {
  epochs: 1,
  lr: 3e-4,
  batchSize: 16,
  warmup: 0.05,
  schedule: 'cosine',
  weightDecay: 0,
  clipNorm: 1,
  evalsPerEpoch: 1,
  patience: 2,
  seed: 42,
};

export interface LLMRecTrainResult {
  steps: number;
  samplesSeen: number;
  /** Best validation score; undefined when no validation returned one (the validator had no samples). */
  bestScore?: number;
  /** Step of the parameters kept: the best validation's, or the last step's when there was no score. */
  bestStep: number;
  seconds: number;
  trainableParameters: number;
}

/** A training example: prompt + answer ids, labels -100 on the prompt (`PromptBuilder.example`). */
export interface TrainingExample {
  ids: number[];
  labels: number[];
}

/** Batches of examples of similar length, right-padded; labels -100 on prompt and padding. */
export function exampleBatches(examples: readonly TrainingExample[], batchSize: number, padId: number): LmBatch[] {
  const ex = examples;
  const order = ex.map((_, i) => i).sort((a, b) => ex[a].ids.length - ex[b].ids.length || a - b);
  const out: LmBatch[] = [];
  for (let i = 0; i < order.length; i += batchSize) {
    const rows = order.slice(i, i + batchSize).map((k) => ex[k]);
    const p = padBatch(rows.map((r) => r.ids), { padId, side: 'right' });
    const labels = new Int32Array(p.ids.length).fill(-100);
    rows.forEach((r, b) => labels.set(r.labels, b * p.seqLen));
    out.push({ ids: p.ids, labels, batch: p.batch, seqLen: p.seqLen, attentionMask: p.attentionMask });
  }
  return out;
}

/** Batches of samples' examples (prompt from `historyOf`, answer the sample's item); see `exampleBatches`. */
export function llmrecBatches(model: LLMRec, samples: readonly Sample[], historyOf: (s: Sample) => number[], batchSize: number): LmBatch[] {
  return exampleBatches(samples.map((s) => model.prompts.example(historyOf(s), s.item)), batchSize, model.padId);
}

export async function trainLLMRec(
  model: LLMRec,
  samples: readonly Sample[],
  historyOf: (s: Sample) => number[],
  options: Partial<LLMRecTrainOptions> = {},
  validate?: () => Promise<number | null> | number | null,
): Promise<LLMRecTrainResult> {
  return trainExamples(model, samples.map((s) => model.prompts.example(historyOf(s), s.item)), options, validate);
}

/**
 * The training loop of `trainLLMRec` on ready examples (token ids and labels): what an update job's
 * files hold (src/experiment/update-job.ts). Only `model.decoder` and `model.padId` are used.
 */
export async function trainExamples(
  model: Pick<LLMRec, 'decoder' | 'padId'>,
  examples: readonly TrainingExample[],
  options: Partial<LLMRecTrainOptions> = {},
  validate?: () => Promise<number | null> | number | null,
): Promise<LLMRecTrainResult> {
  const o = withDefaults(DEFAULT_LLMREC_TRAIN, options);
  const batches = exampleBatches(examples, o.batchSize, model.padId);
  const perEpoch = batches.length;
  const total = Math.max(1, perEpoch * o.epochs);
  const trainer = new LmTrainer(model.decoder, {
    lr: o.lr,
    totalSteps: total,
    warmupSteps: Math.round(o.warmup * total),
    schedule: o.schedule,
    weightDecay: o.weightDecay,
    clipNorm: o.clipNorm,
  });
  const params: Tensor[] = trainer.params;
  const trainableParameters = params.reduce((a, p) => a + p.size, 0);
  const evalEvery = Math.max(1, Math.floor(perEpoch / Math.max(1, o.evalsPerEpoch)));
  let best = -Infinity;
  let bestStep = 0;
  let bestParams: Float32Array[] | null = null;
  let bad = 0;
  let samplesSeen = 0;
  let lossSum = 0;
  let lossN = 0;
  let stopped = false;
  const t0 = performance.now();
  const identity = trainingIdentity(o, examples);
  if (o.checkpoint && existsSync(o.checkpoint)) {
    const meta = trainer.load(o.checkpoint) as { best: number; bestStep: number; bad: number; samplesSeen: number; stopped: boolean; identity?: Record<string, unknown> };
    checkSameTraining(o.checkpoint, meta.identity, identity);
    ({ best, bestStep, bad, samplesSeen, stopped } = meta);
    best ??= -Infinity; // a checkpoint written before any score holds -Infinity, which JSON keeps as null
    // The best parameters are re-derived below only if a later validation beats `best`; otherwise the
    // saved (current) parameters stand, as they were the best when the checkpoint was written.
  }

  const doEval = async (epoch: number): Promise<boolean> => {
    const score = validate ? await validate() : -lossSum / Math.max(1, lossN);
    if (Number.isNaN(score)) throw new RangeError(`the validation score at step ${trainer.step} is NaN: the validator is broken (it returns null when it has no samples)`);
    if (score !== null) o.onEval?.({ step: trainer.step, epoch, score, loss: lossSum / Math.max(1, lossN), seconds: (performance.now() - t0) / 1000 });
    lossSum = 0;
    lossN = 0;
    if (score === null) {
      // No validation samples: nothing to compare, so neither a best state nor a step without improvement.
    } else if (score >= best) {
      best = score;
      bestStep = trainer.step;
      bestParams = params.map((p) => p.data.slice());
      bad = 0;
    } else if (++bad >= o.patience) stopped = true;
    if (o.checkpoint) {
      // Saved parameters are the best ones, so a resumed run continues from its best point.
      const current = params.map((p) => p.data.slice());
      if (bestParams) params.forEach((p, i) => p.data.set(bestParams![i]));
      trainer.save(o.checkpoint, { best, bestStep, bad, samplesSeen, stopped, identity });
      params.forEach((p, i) => p.data.set(current[i]));
    }
    return stopped;
  };

  for (let epoch = Math.floor(trainer.step / perEpoch) + 1; epoch <= o.epochs && !stopped; epoch++) {
    const rand = keyedRandom(o.seed, 'llmrec-epoch', epoch);
    const order = batches.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const skip = trainer.step - (epoch - 1) * perEpoch; // steps of this epoch already done (resume)
    for (let k = Math.max(0, skip); k < order.length; k++) {
      const b = batches[order[k]];
      // Dropout masks from a stream of this run's seed and step alone, not from whatever the decoder drew
      // before: a resumed process (or an update after other strategies' updates) draws the same masks.
      model.decoder.rng.seed(hashString(`${o.seed}|llmrec-dropout|${trainer.step}`));
      const r = o.extraLoss ? withArena(() => stepWithExtra(trainer, b, o.extraLoss!)) : trainer.trainStep(b);
      samplesSeen += b.batch;
      lossSum += r.loss;
      lossN++;
      o.onStep?.(trainer.step, total, r.loss);
      const last = k === order.length - 1;
      if ((trainer.step % evalEvery === 0 && !last) || last) {
        if (await doEval(epoch)) break;
      }
    }
  }
  if (bestParams) params.forEach((p, i) => p.data.set(bestParams![i]));
  const scored = best !== -Infinity;
  return { steps: trainer.step, samplesSeen, bestScore: scored ? best : undefined, bestStep: scored ? bestStep : trainer.step, seconds: (performance.now() - t0) / 1000, trainableParameters };
}

/**
 * What a checkpoint must have been trained with to be resumed by this run: every setting that changes
 * the steps, and a digest of the examples (another data sample, history or prompt gives other ids).
 */
function trainingIdentity(o: LLMRecTrainOptions, examples: readonly TrainingExample[]): Record<string, unknown> {
  const fnv = new Fnv1a();
  for (const e of examples) {
    fnv.mix(e.ids.length);
    for (const id of e.ids) fnv.mix(id);
    for (const l of e.labels) fnv.mix(l);
  }
  const { epochs, lr, batchSize, warmup, schedule, weightDecay, clipNorm, evalsPerEpoch, patience, seed } = o;
  return { epochs, lr, batchSize, warmup, schedule, weightDecay, clipNorm, evalsPerEpoch, patience, seed, examples: examples.length, examplesDigest: fnv.value.toString(16).padStart(8, '0'), extraLoss: o.extraLoss !== undefined };
}

/** Refuses to resume a checkpoint of other training settings, naming the first that differs. */
function checkSameTraining(file: string, theirs: Record<string, unknown> | undefined, mine: Record<string, unknown>): void {
  if (!theirs) return; // written before checkpoints recorded their settings: nothing to compare
  for (const [k, v] of Object.entries(mine)) {
    if (JSON.stringify(theirs[k] ?? null) !== JSON.stringify(v)) {
      const what = k === 'examplesDigest' || k === 'examples' ? 'other training examples (data, sample, history or prompt)' : `${k} ${JSON.stringify(theirs[k] ?? null)}`;
      throw new RangeError(`${file}: this checkpoint was trained with ${what}, not ${k.startsWith('examples') ? 'these' : JSON.stringify(v)}; rerun with the same options, or use a new --out (or delete the checkpoint) to start over`);
    }
  }
}

/** One optimiser step of next-item loss plus an extra loss (same clipping and schedule as LmTrainer). */
function stepWithExtra(trainer: LmTrainer, b: LmBatch, extra: (step: number) => Tensor | null): StepResult {
  const params = trainer.params;
  for (const p of params) p.grad = null;
  const out = trainer.model.forward(b.ids, { batch: b.batch, attentionMask: b.attentionMask ?? null, labels: b.labels, training: true });
  const x = extra(trainer.step);
  const loss = x ? add(out.loss!, x) : out.loss!;
  backward(loss);
  const clip = trainer.options.clipNorm ?? 1;
  const gradNorm = clip > 0 ? clipGradNorm(params, clip) : 0;
  const lr = trainer.schedule(trainer.step);
  trainer.optimizer.step(lr);
  trainer.step++;
  return { step: trainer.step, loss: out.loss!.item(), lr, gradNorm, tokens: out.lossTokens };
}
