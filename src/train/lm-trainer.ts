/**
 * A generic causal-LM training loop over a Decoder: AdamW, warm-up + cosine (or linear/constant)
 * schedule, gradient clipping by global norm, gradient accumulation, evaluation (token-weighted loss
 * and perplexity), and resumable checkpoints (parameters + AdamW moments + step + caller metadata in
 * one atomic file, src/core/checkpoint.ts).
 *
 * Batches are token ids [B*T] with labels [B*T] in the Hugging Face convention (position t predicts
 * labels[t + 1]; -100 = no loss), optionally an attention mask. Pretraining passes labels = ids; the
 * LLMRec trainer passes -100 over the prompt so that only the target title is learned.
 */
import { AdamW, backward, recycleGrad, withArena, clipGradNorm, lrSchedule, noGrad, loadCheckpoint, saveCheckpoint, type Schedule, type Tensor, weightDecayGroups } from '../core/index.js';
import type { Decoder } from '../nn/decoder.js';

export interface LmBatch {
  ids: Int32Array;
  /** HF convention (shifted inside the model); -100 = ignored. */
  labels: Int32Array;
  batch: number;
  seqLen: number;
  attentionMask?: Uint8Array;
}

export interface LmTrainerOptions {
  /** Peak learning rate. */
  lr: number;
  /** Total optimiser steps (for the schedule). */
  totalSteps: number;
  /** Linear warm-up steps (default 0). */
  warmupSteps?: number;
  /** Floor of the decayed rate (default 0.1 * lr for cosine). */
  minLr?: number;
  schedule?: 'cosine' | 'linear' | 'constant';
  /** Decoupled weight decay on matrices (default 0.01; norms and biases get none). */
  weightDecay?: number;
  /** AdamW betas (default [0.9, 0.999], transformers' default). */
  betas?: [number, number];
  /** Clip the global gradient norm (default 1; 0 = off). */
  clipNorm?: number;
  /** Parameters to train (default: the model's trainable tensors, named). */
  params?: [string, Tensor][];
}

export interface StepResult {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
}

export interface EvalResult {
  loss: number;
  perplexity: number;
  tokens: number;
}

export class LmTrainer {
  readonly optimizer: AdamW;
  readonly schedule: Schedule;
  readonly named: [string, Tensor][];
  /** Completed optimiser steps. */
  step = 0;
  private readonly clip: number;

  constructor(
    readonly model: Decoder,
    readonly options: LmTrainerOptions,
  ) {
    this.named = options.params ?? model.namedParameters().filter(([, t]) => t.requiresGrad);
    if (this.named.length === 0) throw new Error('LmTrainer: nothing to train (every parameter is frozen)');
    this.optimizer = new AdamW(weightDecayGroups(this.named, options.weightDecay ?? 0.01), { lr: options.lr, betas: options.betas ?? [0.9, 0.999] });
    const kind = options.schedule ?? 'cosine';
    this.schedule = lrSchedule({
      kind,
      lr: options.lr,
      warmupSteps: options.warmupSteps ?? 0,
      totalSteps: Math.max(1, options.totalSteps),
      minLr: options.minLr ?? (kind === 'constant' ? options.lr : 0.1 * options.lr),
    });
    this.clip = options.clipNorm ?? 1;
  }

  get params(): Tensor[] {
    return this.named.map(([, t]) => t);
  }

  /**
   * One optimiser step over one batch or several (gradient accumulation: the loss is the
   * token-weighted mean over all of them).
   */
  trainStep(batches: LmBatch | LmBatch[]): StepResult {
    // Activations and intermediate gradients live in the arena for the step (no fresh memory, no GC)
    return withArena(() => this.step1(batches));
  }

  private step1(batches: LmBatch | LmBatch[]): StepResult {
    const list = Array.isArray(batches) ? batches : [batches];
    const params = this.params;
    for (const p of params) recycleGrad(p); // this step's gradients reuse the last step's buffers
    const counts = list.map((b) => countTargets(b));
    const total = counts.reduce((a, c) => a + c, 0);
    let lossSum = 0;
    list.forEach((b, i) => {
      if (counts[i] === 0) return;
      const out = this.model.forward(b.ids, { batch: b.batch, attentionMask: b.attentionMask ?? null, labels: b.labels, training: true });
      lossSum += out.loss!.item() * counts[i];
      // mean over this batch's tokens, weighted to the mean over all accumulated tokens
      backward(out.loss!, new Float32Array([counts[i] / Math.max(total, 1)]));
    });
    const gradNorm = this.clip > 0 ? clipGradNorm(params, this.clip) : 0;
    const lr = this.schedule(this.step);
    this.optimizer.step(lr);
    this.step++;
    return { step: this.step, loss: lossSum / Math.max(total, 1), lr, gradNorm, tokens: total };
  }

  /** Token-weighted mean loss and perplexity over batches (no gradients). */
  evaluate(batches: Iterable<LmBatch>): EvalResult {
    let sum = 0, tokens = 0;
    noGrad(() => {
      for (const b of batches) {
        const n = countTargets(b);
        if (n === 0) continue;
        const out = this.model.forward(b.ids, { batch: b.batch, attentionMask: b.attentionMask ?? null, labels: b.labels });
        sum += out.loss!.item() * n;
        tokens += n;
      }
    });
    const loss = tokens ? sum / tokens : NaN;
    return { loss, perplexity: Math.exp(loss), tokens };
  }

  /** Save parameters, AdamW moments, step and `meta` atomically to one file. */
  save(file: string, meta: Record<string, unknown> = {}): void {
    saveCheckpoint(file, { params: Object.fromEntries(this.named), optimizer: this.optimizer, step: this.step, meta });
  }

  /** Restore a checkpoint written by `save`; returns its meta. */
  load(file: string): Record<string, unknown> {
    const { step, meta } = loadCheckpoint(file, { params: Object.fromEntries(this.named), optimizer: this.optimizer });
    this.step = step;
    return meta;
  }
}

/** Tokens that carry a loss (labels shifted by one, -100 ignored). */
export function countTargets(b: LmBatch): number {
  let n = 0;
  const T = b.seqLen;
  for (let r = 0; r < b.batch; r++) for (let t = 1; t < T; t++) if (b.labels[r * T + t] !== -100) n++;
  return n;
}
