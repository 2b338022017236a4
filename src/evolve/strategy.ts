/**
 * The strategy interface of the evolution experiment. A strategy owns one LoRA adapter on the shared,
 * frozen backbone (named after the strategy); at each incremental period t it turns the adapter of t-1 into
 * the adapter of t, and says which histories its prompts use (EvoRec filters active users' histories).
 *
 * A user adds a strategy by implementing `Strategy` and passing it to the runner; nothing else changes.
 */
import type { PeriodSplit, Sample } from '../data/periods.js';
import type { LLMRec } from '../models/llmrec.js';
import type { LLMRecTrainOptions, LLMRecTrainResult } from '../models/llmrec-train.js';
import type { SASRec } from '../models/sasrec.js';
import type { LoraAdapter, LoraSettings } from '../nn/lora.js';
import type { LocateResult } from './locate.js';

export interface PeriodContext {
  split: PeriodSplit;
  /** The incremental period being adapted to (>= 1). */
  t: number;
  model: LLMRec;
  /** This strategy's adapter as of period t-1 (attached, active, frozen until the strategy trains it). */
  adapter: LoraAdapter;
  /** Settings of a fresh adapter (rank, alpha, dropout) as used for the base model. */
  lora: LoraSettings;
  /** SASRec trained on the data up to t (the Forget filter). */
  sasrec: SASRec;
  /** Training settings of an update (learning rate, epochs, batch). */
  update: Partial<LLMRecTrainOptions>;
  /** Training settings of a from-scratch adapter (retrain), as for the base model. */
  base: Partial<LLMRecTrainOptions>;
  /** History window H. */
  history: number;
  /** Training seed (initialisation, shuffling, dropout, sampled data); candidates never depend on it. */
  seed: number;
  /**
   * Validation score (NDCG@3 on a fixed sample of period t's validation targets) under the active adapters;
   * NaN when the sample is empty (validUsers 0).
   */
  validate: (historyOf: (s: Sample) => number[]) => number;
  /** Swaps in a new adapter for this strategy (e.g. a fresh or combined one); it becomes active. */
  replaceAdapter: (next: LoraAdapter) => void;
  /** A fresh adapter (new initialisation), attached under `name` and not active. */
  freshAdapter: (name: string) => LoraAdapter;
  log: (line: string) => void;
}

export interface UpdateReport {
  /** Training samples the update went through (with repetitions over epochs). */
  samplesSeen: number;
  /** Distinct training samples. */
  trainSamples: number;
  /** Trainable LoRA values during the update. */
  trainableParameters: number;
  /** LoRA values of the adapter the update trains within (the denominator of the trainable share). */
  loraParameters: number;
  /** LoRA values of the adapter kept, when it differs from the one trained (LSAT's combined adapter). */
  storedParameters?: number;
  steps: number;
  located?: LocateResult;
  /** Layers whose LoRA the update trained, when not all (located, drawn at random, or by gradient). */
  layers?: number[];
  forgotten?: { users: number; items: number; considered: number };
  /** For LSAT: the chosen weight of the short-term adapter. */
  weight?: number;
  /** Histories for this strategy's prompts at period t (default: the plain last-H history). */
  historyOf?: (s: Sample) => number[];
  training?: LLMRecTrainResult;
}

export interface Strategy {
  readonly name: string;
  readonly description: string;
  /** Does the strategy need the period's SASRec (Forget)? */
  readonly usesSasrec?: boolean;
  /** False for a strategy that never trains (static): update budgets have nothing to choose there. */
  readonly trains?: boolean;
  update(ctx: PeriodContext): Promise<UpdateReport>;
}
