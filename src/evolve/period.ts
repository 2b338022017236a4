/**
 * One period of evolution, the pieces the experiment runner and the service's evolution job share:
 *
 * - `trainSasrecUpTo`: the Forget filter, a SASRec trained on the data up to period t (continuing the model
 *   of t-1 when given one);
 * - `updateForPeriod`: one strategy's update of its adapter at period t: the `PeriodContext` the strategy
 *   sees (validation, fresh and replaced adapters), timed, with the process's peak memory, and the adapter
 *   kept under one name afterwards.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { PeriodSplit } from '../data/periods.js';
import type { LLMRec } from '../models/llmrec.js';
import type { LLMRecTrainOptions } from '../models/llmrec-train.js';
import { SASRec } from '../models/sasrec.js';
import { trainSASRec, type SASRecTrainOptions, type SASRecTrainResult } from '../models/sasrec-train.js';
import type { LoraAdapter, LoraSettings } from '../nn/lora.js';
import type { PeriodContext, Strategy, UpdateReport } from './strategy.js';

export interface SasrecUpToOptions {
  /** The model to continue (SASRec of t-1); default a fresh SASRec over the split's catalogue. */
  model?: SASRec;
  epochs: number;
  /** Seed of a fresh model's initialisation (default: SASRec's own default). */
  initSeed?: number;
  /** Further training options (negatives default to 'popularity', as the Forget filter is trained). */
  train?: Partial<SASRecTrainOptions>;
}

/** Trains (or continues) a SASRec on every training target up to period t: the Forget filter of t. */
export async function trainSasrecUpTo(split: PeriodSplit, t: number, o: SasrecUpToOptions): Promise<{ model: SASRec; result: SASRecTrainResult }> {
  const model = o.model ?? new SASRec({ numItems: split.dataset.numItems, ...(o.initSeed !== undefined ? { seed: o.initSeed } : {}) });
  const result = await trainSASRec(model, split, t, { negatives: 'popularity', ...o.train, epochs: o.epochs });
  return { model, result };
}

export interface PeriodUpdateOptions {
  split: PeriodSplit;
  /** The incremental period (>= 1). */
  t: number;
  model: LLMRec;
  strategy: Strategy;
  /** The strategy's adapter as of t-1, attached to `model.decoder`. */
  adapter: LoraAdapter;
  /** The name the adapter carries after the update (default: the adapter's current name). */
  keepName?: string;
  /** Settings of fresh adapters (retrain, LSAT's short-term adapter). */
  lora: LoraSettings;
  /** SASRec up to t, for strategies with `usesSasrec`. */
  sasrec?: SASRec;
  update: Partial<LLMRecTrainOptions>;
  base: Partial<LLMRecTrainOptions>;
  history: number;
  /** Training seed. */
  seed: number;
  validate: PeriodContext['validate'];
  log?: (line: string) => void;
}

/**
 * Peak resident memory of one stretch of work, not of the process's whole life: on Linux, writing 5 to
 * /proc/self/clear_refs resets the high-water mark (VmHWM) to the current resident size. Elsewhere (or
 * where the file cannot be written) the process's high-water mark stands in, and `perUpdate` says so.
 */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** The resident high-water mark in MB (VmHWM; since the last `resetPeakRss` where that worked). */
export function peakRssMb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch {
    /* not Linux */
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

export interface PeriodUpdate {
  /** The adapter after the update, attached, frozen and active, named `keepName`. */
  adapter: LoraAdapter;
  report: UpdateReport;
  /** Wall time of the strategy's update. */
  seconds: number;
  /** Peak resident memory during the update (MB; the process's high-water mark where it cannot be reset: `peakPerUpdate` false). */
  peakRssMb: number;
  peakPerUpdate: boolean;
}

/**
 * Runs one strategy's update at period t: its adapter becomes the only active one, the strategy trains it
 * (or replaces it by a fresh or combined one: fresh adapters are seeded from the training seed, t and a
 * counter), and the result is renamed to `keepName`, frozen and left active.
 */
export async function updateForPeriod(o: PeriodUpdateOptions): Promise<PeriodUpdate> {
  if (o.strategy.usesSasrec && !o.sasrec) throw new RangeError(`strategy "${o.strategy.name}" needs the period's SASRec (the Forget filter), and none was given`);
  const dec = o.model.decoder;
  const keepName = o.keepName ?? o.adapter.name;
  let adapter = o.adapter;
  dec.setActiveAdapters(adapter.name);
  let fresh = 0;
  const peakPerUpdate = resetPeakRss();
  const t0 = performance.now();
  const report = await o.strategy.update({
    split: o.split,
    t: o.t,
    model: o.model,
    adapter,
    lora: o.lora,
    sasrec: o.sasrec as SASRec,
    update: o.update,
    base: o.base,
    history: o.history,
    seed: o.seed,
    validate: o.validate,
    replaceAdapter: (next) => {
      if (next.name !== adapter.name) dec.deleteAdapter(adapter.name);
      adapter = next;
      dec.setActiveAdapters(next.name);
    },
    freshAdapter: (name) => dec.addAdapter(name, o.lora, { seed: o.seed + o.t + 1000 * ++fresh, freezeBase: true }),
    log: o.log ?? (() => {}),
  });
  const seconds = (performance.now() - t0) / 1000;
  const peak = peakRssMb();
  if (adapter.name !== keepName) {
    const renamed = adapter.clone(keepName);
    dec.deleteAdapter(adapter.name);
    dec.attachAdapter(renamed, { freezeBase: true });
    adapter = renamed;
  }
  adapter.freeze();
  dec.setActiveAdapters(adapter.name);
  return { adapter, report, seconds, peakRssMb: peak, peakPerUpdate };
}
