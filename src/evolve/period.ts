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
  return { adapter: settle(dec, adapter, keepName), report, seconds, peakRssMb: peak, peakPerUpdate };
}

/** The adapter after an update, renamed to `keepName` (when it is not), frozen and left active. */
function settle(dec: LLMRec['decoder'], adapter: LoraAdapter, keepName: string): LoraAdapter {
  if (adapter.name !== keepName) {
    const renamed = adapter.clone(keepName);
    dec.deleteAdapter(adapter.name);
    dec.attachAdapter(renamed, { freezeBase: true });
    adapter = renamed;
  }
  adapter.freeze();
  dec.setActiveAdapters(adapter.name);
  return adapter;
}

/** One update budget: the learning rate and epochs of an update; epochs 0 keeps the adapter of t-1. */
export interface UpdateBudget {
  epochs: number;
  lr?: number;
}

/** Parses `--update-budgets`: comma-separated `lr:epochs` pairs, or `0` for "keep the adapter of t-1". */
export function parseBudgets(text: string, flag = '--update-budgets'): UpdateBudget[] {
  const out = text.split(',').map((part) => {
    const p = part.trim();
    if (p === '0') return { epochs: 0 };
    const m = /^([0-9.eE+-]+):(\d+)$/.exec(p);
    const lr = m ? Number(m[1]) : NaN;
    if (!m || !(lr > 0) || !Number.isFinite(lr)) throw new RangeError(`${flag}: expected lr:epochs pairs (e.g. 1e-3:1) or 0 (keep the adapter of t-1), got ${JSON.stringify(p)}`);
    return { lr, epochs: Number(m[2]) };
  });
  if (out.length === 0) throw new RangeError(`${flag}: expected at least one budget`);
  return out;
}

export const budgetLabel = (b: UpdateBudget): string => (b.epochs === 0 ? 'keep' : `${b.lr ?? 'default'}:${b.epochs}`);

/** What `updateWithBudgets` tried: each budget's validation score (NaN without validation samples). */
export interface BudgetChoice {
  chosen: string;
  scores: Record<string, number>;
}

/**
 * One strategy's update at period t with its budget chosen on validation: every budget is tried from the
 * adapter of t-1 (epochs 0: that adapter itself, untrained), the one with the best validation score is
 * kept (ties: the earlier budget), the others are dropped. Each trial trains with its learning rate and
 * epochs for both the update and, for strategies that start afresh (retrain), the base settings. The time
 * and the samples seen are those of every trial together: the search is part of the update's cost. A
 * single budget (or none) is exactly `updateForPeriod`.
 */
export async function updateWithBudgets(o: PeriodUpdateOptions, budgets: readonly UpdateBudget[] | undefined): Promise<PeriodUpdate & { budget?: BudgetChoice }> {
  if (!budgets || budgets.length === 0 || o.strategy.trains === false) return updateForPeriod(o);
  const dec = o.model.decoder;
  const keepName = o.keepName ?? o.adapter.name;
  const prev = o.adapter;
  const peakPerUpdate = resetPeakRss();
  const t0 = performance.now();
  let best: { adapter: LoraAdapter; report: UpdateReport; score: number; label: string } | null = null;
  const scores: Record<string, number> = {};
  let samplesSeen = 0;
  let steps = 0;
  let peak = 0; // each trial resets the high-water mark: the update's peak is the largest of theirs
  for (const [i, b] of budgets.entries()) {
    const label = budgetLabel(b);
    let adapter: LoraAdapter;
    let report: UpdateReport;
    if (b.epochs === 0) {
      // The adapter of t-1, bit for bit: nothing trains.
      adapter = prev;
      report = { samplesSeen: 0, trainSamples: 0, trainableParameters: 0, loraParameters: prev.numParameters(false), steps: 0 };
    } else {
      const trial = prev.clone(`${keepName}~budget${i}`);
      trial.freeze();
      dec.attachAdapter(trial, { freezeBase: true });
      const settings = { epochs: b.epochs, ...(b.lr !== undefined ? { lr: b.lr } : {}) };
      const r = await updateForPeriod({ ...o, adapter: trial, keepName: trial.name, update: { ...o.update, ...settings }, base: { ...o.base, ...settings } });
      adapter = r.adapter;
      report = r.report;
      peak = Math.max(peak, r.peakRssMb);
    }
    samplesSeen += report.samplesSeen;
    steps += report.steps;
    dec.setActiveAdapters(adapter.name);
    const score = o.validate(report.historyOf ?? ((s) => o.split.history(s, o.history)));
    scores[label] = score;
    o.log?.(`${o.strategy.name}: budget ${label}: validation NDCG@3 ${score.toFixed(4)}`);
    const better = best === null || score > best.score || (Number.isNaN(best.score) && !Number.isNaN(score));
    if (better) {
      if (best && best.adapter !== prev) dec.deleteAdapter(best.adapter.name);
      best = { adapter, report, score, label };
    } else if (adapter !== prev) dec.deleteAdapter(adapter.name);
  }
  if (best!.adapter !== prev) dec.deleteAdapter(prev.name);
  const adapter = settle(dec, best!.adapter, keepName);
  const seconds = (performance.now() - t0) / 1000;
  return {
    adapter,
    report: { ...best!.report, samplesSeen, steps },
    seconds,
    peakRssMb: Math.max(peak, peakRssMb()),
    peakPerUpdate,
    budget: { chosen: best!.label, scores },
  };
}
