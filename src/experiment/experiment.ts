/**
 * The evolution experiment as one library call: `runExperiment(options)` prepares the split, loads (or
 * pretrains) the backbone, trains the base LLMRec adapter on P0 (or starts from `baseModel`) and a SASRec
 * per period once, runs every strategy period by period on the same candidate sets, once per training
 * seed, and writes `results.json`, `results.md` and `report.html` after each seed. Every stage saves its
 * output in `out`; calling it again with the same options resumes where it stopped. `evorec experiment`
 * is this call behind command-line options.
 *
 * Layer: above `report` (it writes the reports) and below `serve` and `cli`.
 *
 * Errors name an option by its command-line flag (`--update-lr`), the one vocabulary of the run's
 * `options.json` and of `evorec experiment`; every option below says its flag.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NEGATIVE_SAMPLERS, type NegativeSampler } from '../data/candidates.js';
import type { CleanOptions, CleanReport } from '../data/clean.js';
import { checkCandidateSize } from '../data/errors.js';
import type { PeriodSplit } from '../data/periods.js';
import { loadSplit } from '../data/prepare.js';
import { DEFAULT_INTERACTION_COLUMNS, DEFAULT_ITEM_COLUMNS } from '../data/records.js';
import { DEFAULT_BACKBONE, DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL_HISTORY, type DataSourceOptions } from '../data/source.js';
import { trainSasrecUpTo } from '../evolve/period.js';
import { runStrategies, type ExperimentResults, type ExperimentView } from '../evolve/runner.js';
import type { UpdateBudget } from '../evolve/period.js';
import { DEFAULT_STRATEGIES, strategyRegistry } from '../evolve/strategies.js';
import type { Strategy } from '../evolve/strategy.js';
import type { DecoderPresetName } from '../io/hf-config.js';
import { LLMRec, p0Validator } from '../models/llmrec.js';
import { isLLMRecFolder, loadLLMRec, saveLLMRec } from '../models/llmrec-io.js';
import { trainLLMRec, type LLMRecTrainOptions } from '../models/llmrec-train.js';
import { PromptBuilder } from '../models/prompt.js';
import { SASRec } from '../models/sasrec.js';
import { loadSASRec, saveSASRec } from '../models/sasrec-io.js';
import { loadModelFolder } from '../nn/checkpoint-folder.js';
import type { LoraSettings } from '../nn/lora.js';
import { writeExperimentReports, type SeedsResults } from '../report/experiment-files.js';
import { pretrain } from '../train/pretrain.js';
import { replaceDirAtomic, sweepStaleTemps, writeFileAtomic } from '../util/fs.js';

/** Options of `runExperiment`. Every field but `out` is optional; the defaults are `EXPERIMENT_DEFAULTS`. */
export interface ExperimentOptions {
  /** Output folder (`--out`): seed folders, SASRec per period, results.json, results.md, report.html. Resumed when it exists. */
  out: string;

  // The data and the period protocol.
  /** The dataset (`--data` and its column options): a preset (`beauty`, `movielens`), a folder or an interactions file, or full source options. Default `'beauty'`. */
  data?: string | DataSourceOptions;
  /** Cleaning (`--kcore`, `--min-rating`, `--no-dedupe`, `--untitled`). Default: no k-core, every rating, first of repeated pairs, placeholder titles. */
  clean?: Omit<CleanOptions, 'sampleUsers' | 'sampleSeed'>;
  /** A fixed random sample of this many users, drawn with `seed` (`--users`; 0 = all). Default 250. */
  users?: number;
  /** Incremental periods T after P0 (`--periods`). Default 3. */
  periods?: number;
  /** Share of all interactions in P0 (`--base`). Default 0.6. */
  baseShare?: number;
  /** Cut periods by interaction count or equal time intervals (`--cut`). Default 'count'. */
  cut?: 'count' | 'time';
  /** History window H (`--history`). Default 10. */
  history?: number;
  /**
   * At most this many training targets per user and period, each user's latest (`--max-train-per-user`,
   * `PeriodOptions.maxTrainPerUser`). Default 0: all. Every strategy then trains on the capped periods.
   */
  maxTrainPerUser?: number;
  /** Candidate set size: 1 positive + N-1 negatives (`--candidates`). Default 20. */
  candidates?: number;
  /** Seed of the data side: user sample, candidate sets, evaluation and validation samples (`--seed`). Default 42. */
  seed?: number;

  // What is compared.
  /**
   * Strategies (`--strategies`): names from `strategyRegistry()` and `Strategy` objects of your own, in
   * the order they run and are reported. Default `DEFAULT_STRATEGIES` (static, retrain, finetune, replay,
   * lsat, evorec). May grow on a resume.
   */
  strategies?: readonly (string | Strategy)[];
  /**
   * Views (`--samplers`): candidate samplers ('matched', 'uniform', 'popularity') and 'two-stage' (the
   * full catalogue, SASRec retrieving 50 items); the first is the headline and the validation view.
   * Default ['matched', 'uniform'].
   */
  samplers?: readonly ExperimentView[];
  /** Cap on active test users per period, as many inactive ones, new and short users up to it (`--eval-users`; 0 = all). Default 500. */
  evalUsers?: number;
  /** Validation users for early stopping (`--valid-users`). Default 30. */
  validUsers?: number;
  /**
   * Add as many inactive users' held-out validation targets to each update's validation, so early stopping
   * sees forgetting (`--valid-inactive`). Default false (the paper validates on the new period's targets).
   */
  validInactive?: boolean;

  // The models.
  /**
   * Start every seed from this LLMRec folder (`evorec train-base`) instead of a base adapter per seed
   * (`--base-model`); `null` (`--base-model none`) trains a base adapter per seed on P0 from `backbone`.
   * Default: the shipped `data/base-deep` (the deep backbone fully tuned on all users' P0) for the embedded
   * Beauty data at the default history of 10, none otherwise (its titles and history are Beauty's).
   */
  baseModel?: string | null;
  /** Pretrained backbone folder, pretrained there first when it does not exist (`--backbone`). Default the shipped `data/backbone-small`. */
  backbone?: string;
  /** Backbone preset when pretraining (`--preset`). Default 'small'. */
  preset?: DecoderPresetName;
  /** Pretraining steps when the backbone must be pretrained (`--pretrain-steps`). Default: the preset's. */
  pretrainSteps?: number;
  /** LoRA rank (`--lora-rank`). Default 16. */
  loraRank?: number;
  /** LoRA alpha (`--lora-alpha`). Default 32. */
  loraAlpha?: number;
  /** LLMRec ranking score: prior-calibrated or the plain likelihood (`--calibration`). Default 'prior'. */
  calibration?: 'prior' | 'none';
  /** Epochs of the base adapter on P0, and of retrain (`--base-epochs`). Default 1. */
  baseEpochs?: number;
  /** Learning rate of the base adapter (`--base-lr`). Default 1e-3. */
  baseLr?: number;
  /** Epochs of each incremental update (`--update-epochs`). Default 2. */
  updateEpochs?: number;
  /** Learning rate of the updates, cosine schedule (`--update-lr`). Default 4e-4. */
  updateLr?: number;
  /**
   * Budgets each update chooses from on validation (`--update-budgets 0,4e-4:1,1e-3:2`; epochs 0 keeps
   * the adapter of t-1), in place of the fixed `updateEpochs` and `updateLr`. Default none.
   */
  updateBudgets?: readonly UpdateBudget[];
  /** Examples per step (`--batch`). Default 16. */
  batch?: number;
  /** SASRec epochs on P0; each later period continues for a third as many (`--sasrec-epochs`). Default 20. */
  sasrecEpochs?: number;
  /**
   * Whose interactions the per-period SASRec (EvoRec's Forget filter, the two-stage retriever, the SASRec
   * row) trains on (`--sasrec-users`): 'sample', the run's user sample (default), or 'all', every user of
   * the data (the periods are shared dates, and each user's held-out targets are the same in both splits),
   * then restricted to the sample's items. An ID model needs far more interactions than a 3,000-user
   * sample has: there the sample's SASRec ranks at random level (docs/results/README.md).
   */
  sasrecUsers?: 'sample' | 'all';
  /**
   * The per-period SASRec's loss (`--sasrec-loss`): 'bce' with popularity-sampled negatives (default, as
   * the Forget filter was trained so far) or 'softmax' over the whole catalogue, the recipe that learns
   * popularity as well (docs/models.md). On MovieLens both rank at random level at the default epochs, so
   * the loss is not what fails there: the step budget is (`sasrecSteps`, docs/results/README.md).
   */
  sasrecLoss?: 'bce' | 'softmax';
  /**
   * At least this many optimiser steps in each of the per-period SASRec's epochs (`--sasrec-steps`; 0, the
   * default: one pass over the sequences). A few hundred users are a few batches a pass, so without it
   * the SASRec trains for a few dozen steps, early stopping ends it, and it ranks at random level
   * (docs/results/README.md, "MovieLens").
   */
  sasrecSteps?: number;
  /** Training seeds: the whole comparison runs once per seed (`--train-seeds`). Default 1. May grow on a resume. */
  trainSeeds?: number;
  /** The first training seed; the others follow it (`--first-train-seed`). Default 1. */
  firstTrainSeed?: number;

  // Presentation.
  /** Report title. Default: "Evolution experiment: <data>, <n> users, T = <T>, <k> training seed(s)". */
  title?: string;
  /** How the run was started, printed in the report (the CLI passes its command line). */
  command?: string;
  /** Progress: stages, log lines, progress counts, and each finished seed. */
  onEvent?: (event: ExperimentEvent) => void;
}

/** What `runExperiment` reports while it works. */
export type ExperimentEvent =
  /** A stage begins (`seconds` since the call). */
  | { type: 'stage'; stage: string; seconds: number }
  /** A detail line: the data's size, a validation score, one finished update. */
  | { type: 'log'; line: string }
  /** Work done within a stage ('pretrain', 'base', 'updates'). */
  | { type: 'progress'; stage: string; done: number; total: number }
  /** A training seed finished; the reports now include it. */
  | { type: 'seed'; seed: number; results: ExperimentResults };

/** The defaults of `runExperiment` (and of `evorec experiment`), sized to finish within about 15 minutes on two cores (docs/evolution.md). */
export const EXPERIMENT_DEFAULTS = {
  data: 'beauty',
  users: 250,
  periods: 3,
  baseShare: 0.6,
  cut: 'count' as const,
  history: 10,
  maxTrainPerUser: 0,
  sasrecUsers: 'sample' as 'sample' | 'all',
  sasrecLoss: 'bce' as 'bce' | 'softmax',
  sasrecSteps: 0,
  candidates: 20,
  seed: 42,
  strategies: DEFAULT_STRATEGIES,
  samplers: ['matched', 'uniform'] as ExperimentView[],
  evalUsers: 500,
  validUsers: 30,
  validInactive: false,
  backbone: DEFAULT_BACKBONE,
  preset: 'small' as DecoderPresetName,
  loraRank: 16,
  loraAlpha: 32,
  calibration: 'prior' as const,
  baseEpochs: 1,
  baseLr: 1e-3,
  updateEpochs: 2,
  updateLr: 4e-4,
  batch: 16,
  sasrecEpochs: 20,
  trainSeeds: 1,
  firstTrainSeed: 1,
};

/** LoRA dropout of every adapter the experiment makes. */
export const EXPERIMENT_LORA_DROPOUT = 0.05;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Turns a list of strategy names (from `strategyRegistry()`) and `Strategy` objects into strategies,
 * refusing unknown names, names that cannot be folder names, and two strategies of one name. `label`
 * names the option in errors.
 */
export function resolveStrategies(list: readonly (string | Strategy)[], label = '--strategies'): Strategy[] {
  const registry = strategyRegistry();
  const out: Strategy[] = [];
  for (const x of list) {
    if (typeof x === 'string') {
      const s = registry[x];
      if (!s) throw new RangeError(`${label}: unknown strategy "${x}" (known: ${Object.keys(registry).join(', ')})`);
      out.push(s);
      continue;
    }
    if (!x || typeof x.name !== 'string' || typeof x.update !== 'function') throw new RangeError(`${label}: a strategy must be a name or an object with a name and an update(ctx) method`);
    if (!NAME.test(x.name)) throw new RangeError(`${label}: strategy name ${JSON.stringify(x.name)} must start with a letter or digit and hold only letters, digits, '.', '_' and '-' (it names the strategy's adapter folder)`);
    out.push(x);
  }
  if (out.length === 0) throw new RangeError(`${label}: at least one strategy`);
  const seen = new Set<string>();
  for (const s of out) {
    if (seen.has(s.name)) throw new RangeError(`${label}: two strategies named "${s.name}"`);
    seen.add(s.name);
  }
  return out;
}

/** Checks a list of views: known names, a candidate sampler first (the headline and the validation view). */
export function checkViews(views: readonly ExperimentView[], label = '--samplers'): ExperimentView[] {
  if (views.length === 0) throw new RangeError(`${label}: at least one sampler`);
  for (const v of views) if (v !== 'two-stage' && !NEGATIVE_SAMPLERS.includes(v)) throw new RangeError(`${label}: unknown sampler "${v}" (${NEGATIVE_SAMPLERS.join(', ')}, two-stage)`);
  if (views[0] === 'two-stage') throw new RangeError(`${label}: the first view is the headline and the validation view, so it must be a candidate sampler, not two-stage`);
  return [...views];
}

/** `ExperimentOptions` with every default filled in and the strategies resolved. */
export type ResolvedExperimentOptions = Omit<Required<ExperimentOptions>, 'data' | 'clean' | 'baseModel' | 'pretrainSteps' | 'title' | 'command' | 'onEvent' | 'strategies' | 'samplers' | 'updateBudgets'> & {
  updateBudgets?: readonly UpdateBudget[];
  source: DataSourceOptions;
  clean: Omit<CleanOptions, 'sampleUsers' | 'sampleSeed'>;
  baseModel?: string;
  pretrainSteps?: number;
  strategies: Strategy[];
  samplers: ExperimentView[];
};

/** One option of a run's identity: its key in options.json, its flag in messages, its value. */
export interface RunOption {
  key: string;
  flag: string;
  value: unknown;
}

/**
 * The options a resumed run must share with the run it continues: everything that changes what is
 * trained or measured, under the keys and flags of `evorec experiment` (so runs started from the command
 * line and from the library resume each other). Strategies and the number of seeds may grow (they add
 * work, they change none); threads, progress and the output folder change nothing.
 */
export function experimentIdentity(o: ResolvedExperimentOptions): RunOption[] {
  const s = o.source;
  const c = o.clean;
  const entries: [string, string, unknown][] = [
    ['data', '--data', s.data],
    ['format', '--format', s.format],
    ['interactions', '--interactions', s.interactions],
    ['items', '--items', s.items],
    ['userCol', '--user-col', s.columns?.user ?? DEFAULT_INTERACTION_COLUMNS.user],
    ['itemCol', '--item-col', s.columns?.item ?? DEFAULT_INTERACTION_COLUMNS.item],
    ['timeCol', '--time-col', s.columns?.timestamp ?? DEFAULT_INTERACTION_COLUMNS.timestamp],
    ['ratingCol', '--rating-col', s.columns?.rating],
    ['titleCol', '--title-col', s.itemColumns?.title ?? DEFAULT_ITEM_COLUMNS.title],
    ['delimiter', '--delimiter', s.delimiter],
    ['kcore', '--kcore', c.kcore ?? 0],
    ['minRating', '--min-rating', c.minRating],
    ['dedupe', '--dedupe', c.dedupe ?? true],
    ['untitled', '--untitled', c.untitled ?? 'placeholder'],
    ['users', '--users', o.users],
    ['periods', '--periods', o.periods],
    ['base', '--base', o.baseShare],
    ['cut', '--cut', o.cut],
    ['history', '--history', o.history],
    // Recorded only when set, as --valid-inactive below.
    ['maxTrainPerUser', '--max-train-per-user', o.maxTrainPerUser || null],
    ['candidates', '--candidates', o.candidates],
    ['seed', '--seed', o.seed],
    ['baseModel', '--base-model', o.baseModel],
    ['backbone', '--backbone', o.backbone],
    ['preset', '--preset', o.preset],
    ['pretrainSteps', '--pretrain-steps', o.pretrainSteps],
    ['loraRank', '--lora-rank', o.loraRank],
    ['calibration', '--calibration', o.calibration],
    ['loraAlpha', '--lora-alpha', o.loraAlpha],
    ['baseEpochs', '--base-epochs', o.baseEpochs],
    ['baseLr', '--base-lr', o.baseLr],
    ['updateEpochs', '--update-epochs', o.updateEpochs],
    ['updateLr', '--update-lr', o.updateLr],
    ['updateBudgets', '--update-budgets', o.updateBudgets?.length ? o.updateBudgets.map((b) => (b.lr === undefined ? { epochs: b.epochs } : { lr: b.lr, epochs: b.epochs })) : null],
    ['batch', '--batch', o.batch],
    ['sasrecEpochs', '--sasrec-epochs', o.sasrecEpochs],
    // Recorded only when not the default, as --valid-inactive below.
    ['sasrecUsers', '--sasrec-users', o.sasrecUsers === 'all' ? 'all' : null],
    ['sasrecLoss', '--sasrec-loss', o.sasrecLoss === 'softmax' ? 'softmax' : null],
    ['sasrecSteps', '--sasrec-steps', o.sasrecSteps ? o.sasrecSteps : null],
    ['firstTrainSeed', '--first-train-seed', o.firstTrainSeed],
    ['samplers', '--samplers', o.samplers.join(',')],
    ['evalUsers', '--eval-users', o.evalUsers],
    ['validUsers', '--valid-users', o.validUsers],
    // Recorded only when on, so that the runs made before the option resume as they were.
    ['validInactive', '--valid-inactive', o.validInactive || null],
  ];
  return entries.map(([key, flag, value]) => ({ key, flag, value: value ?? null }));
}

/**
 * The options of the run in `out`, read back from its options.json (the inverse of
 * `experimentIdentity`): what the export and import of an update job use to rebuild the run's split,
 * models and yardstick. Strategies and seeds are not recorded there; the defaults stand in.
 */
export function runOptionsOf(out: string): ExperimentOptions {
  const file = join(out, 'options.json');
  if (!existsSync(file)) throw new RangeError(`${file}: not found (not an experiment folder; run evorec experiment --out ${out} first)`);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new RangeError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new RangeError(`${file}: expected a JSON object of options`);
  const v = <T>(key: string, type: 'string' | 'number' | 'boolean'): T | undefined => {
    const x = j[key];
    if (x === null || x === undefined) return undefined;
    if (typeof x !== type) throw new RangeError(`${file}: field "${key}": expected a ${type}, got ${JSON.stringify(x)}`);
    return x as T;
  };
  const data = v<string>('data', 'string');
  if (data === undefined) throw new RangeError(`${file}: field "data": missing`);
  const rating = v<string>('ratingCol', 'string');
  const columns = { user: v<string>('userCol', 'string'), item: v<string>('itemCol', 'string'), timestamp: v<string>('timeCol', 'string'), ...(rating ? { rating } : {}) };
  const samplers = v<string>('samplers', 'string');
  return {
    out,
    data: {
      data,
      format: v('format', 'string'),
      interactions: v('interactions', 'string'),
      items: v('items', 'string'),
      columns: columns as DataSourceOptions['columns'],
      itemColumns: { title: v<string>('titleCol', 'string') ?? DEFAULT_ITEM_COLUMNS.title, item: columns.item ?? DEFAULT_ITEM_COLUMNS.item },
      delimiter: v('delimiter', 'string'),
    },
    clean: { kcore: v('kcore', 'number'), minRating: v('minRating', 'number'), dedupe: v('dedupe', 'boolean'), untitled: v('untitled', 'string') },
    users: v('users', 'number'),
    periods: v('periods', 'number'),
    baseShare: v('base', 'number'),
    cut: v('cut', 'string'),
    history: v('history', 'number'),
    maxTrainPerUser: v('maxTrainPerUser', 'number'),
    candidates: v('candidates', 'number'),
    seed: v('seed', 'number'),
    // null: the run trained its own base adapter (not the default base).
    baseModel: j.baseModel === null ? null : v('baseModel', 'string'),
    backbone: v('backbone', 'string'),
    preset: v('preset', 'string'),
    pretrainSteps: v('pretrainSteps', 'number'),
    loraRank: v('loraRank', 'number'),
    calibration: v('calibration', 'string'),
    loraAlpha: v('loraAlpha', 'number'),
    baseEpochs: v('baseEpochs', 'number'),
    baseLr: v('baseLr', 'number'),
    updateEpochs: v('updateEpochs', 'number'),
    updateLr: v('updateLr', 'number'),
    updateBudgets: budgetsField(j.updateBudgets, file),
    batch: v('batch', 'number'),
    sasrecEpochs: v('sasrecEpochs', 'number'),
    sasrecUsers: v('sasrecUsers', 'string') as 'sample' | 'all' | undefined,
    sasrecLoss: v('sasrecLoss', 'string') as 'bce' | 'softmax' | undefined,
    sasrecSteps: v('sasrecSteps', 'number'),
    firstTrainSeed: v('firstTrainSeed', 'number'),
    samplers: samplers === undefined ? undefined : (samplers.split(',') as ExperimentView[]),
    evalUsers: v('evalUsers', 'number'),
    validUsers: v('validUsers', 'number'),
    validInactive: v('validInactive', 'boolean'),
  };
}

/** The split of an experiment (the data, cleaning and period options), and the cleaning report. */
export async function experimentSplit(o: ResolvedExperimentOptions): Promise<{ split: PeriodSplit; report: CleanReport }> {
  const { split, report } = await loadSplit(o.source, { ...o.clean, sampleUsers: o.users, sampleSeed: o.seed }, { periods: o.periods, base: o.baseShare, cut: o.cut, history: o.history, maxTrainPerUser: o.maxTrainPerUser });
  checkCandidateSize(o.candidates, split.dataset.numItems);
  return { split, report };
}

/** options.json's `updateBudgets`: absent, or a list of { epochs, lr? } (epochs 0 keeps the adapter of t-1). */
function budgetsField(x: unknown, file: string): UpdateBudget[] | undefined {
  if (x === null || x === undefined) return undefined;
  const bad = (why: string): never => {
    throw new RangeError(`${file}: field "updateBudgets": ${why}`);
  };
  if (!Array.isArray(x) || x.length === 0) bad(`expected a non-empty list, got ${JSON.stringify(x)}`);
  return (x as unknown[]).map((b, i) => {
    const o = b as { epochs?: unknown; lr?: unknown };
    if (o === null || typeof o !== 'object' || !Number.isInteger(o.epochs) || (o.epochs as number) < 0) bad(`entry ${i}: expected { "epochs": an integer >= 0, "lr": a number > 0 }, got ${JSON.stringify(b)}`);
    if (o.lr !== undefined && !(typeof o.lr === 'number' && o.lr > 0)) bad(`entry ${i}: "lr" must be a number > 0, got ${JSON.stringify(o.lr)}`);
    return o.lr === undefined ? { epochs: o.epochs as number } : { lr: o.lr as number, epochs: o.epochs as number };
  });
}

/** The identity as options.json holds it: option key -> value. */
const identityRecord = (options: readonly RunOption[]): Record<string, unknown> => Object.fromEntries(options.map((x) => [x.key, x.value]));

/**
 * Records a run's options in `<out>/options.json` on the first run, and refuses a resume whose options
 * differ, naming the option (a resumed run would otherwise reuse old state under new options' names).
 */
export function checkRunOptions(out: string, options: readonly RunOption[]): void {
  const file = join(out, 'options.json');
  const mine = identityRecord(options);
  if (!existsSync(file)) {
    // A folder with results but no options.json predates this check: its options are unknown.
    if (existsSync(join(out, 'results.json'))) throw new RangeError(`${out}: results.json without options.json (made by an older evorec); use a new --out`);
    writeFileAtomic(file, JSON.stringify(mine, null, 2) + '\n');
    return;
  }
  let theirs: Record<string, unknown>;
  try {
    theirs = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new RangeError(`${file}: not valid JSON (${(e as Error).message}); use a new --out`);
  }
  if (theirs === null || typeof theirs !== 'object' || Array.isArray(theirs)) throw new RangeError(`${file}: expected a JSON object of options; use a new --out`);
  for (const x of options) {
    const a = JSON.stringify(theirs[x.key] ?? null);
    const b = JSON.stringify(x.value);
    if (a !== b) throw new RangeError(`${file}: this run was made with ${x.flag} ${a}, not ${b}; resume with the same options or use a new --out`);
  }
}

const atLeast = (flag: string, v: number, min = 1) => {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${flag}: expected an integer of at least ${min}, got ${v}`);
};

/** Fills in the defaults of `ExperimentOptions` and checks every value, naming the option. */
export function resolveExperimentOptions(options: ExperimentOptions): ResolvedExperimentOptions {
  if (!options || typeof options.out !== 'string' || options.out === '') throw new RangeError('--out: the output folder is required');
  const d = EXPERIMENT_DEFAULTS;
  const pick = <K extends keyof typeof d>(k: K): (typeof d)[K] => (options[k as keyof ExperimentOptions] ?? d[k]) as (typeof d)[K];
  const source: DataSourceOptions = typeof options.data === 'object' ? options.data : { data: options.data ?? d.data };
  const r: ResolvedExperimentOptions = {
    out: options.out,
    source,
    clean: options.clean ?? {},
    users: pick('users'),
    periods: pick('periods'),
    baseShare: pick('baseShare'),
    cut: pick('cut'),
    history: pick('history'),
    maxTrainPerUser: pick('maxTrainPerUser'),
    candidates: pick('candidates'),
    seed: pick('seed'),
    strategies: resolveStrategies(options.strategies ?? d.strategies),
    samplers: checkViews(options.samplers ?? d.samplers),
    evalUsers: pick('evalUsers'),
    validUsers: pick('validUsers'),
    validInactive: pick('validInactive'),
    baseModel: options.baseModel === null ? undefined : options.baseModel ?? defaultBaseModel(source, options.history ?? d.history),
    backbone: pick('backbone'),
    preset: pick('preset'),
    pretrainSteps: options.pretrainSteps,
    loraRank: pick('loraRank'),
    loraAlpha: pick('loraAlpha'),
    calibration: pick('calibration'),
    baseEpochs: pick('baseEpochs'),
    baseLr: pick('baseLr'),
    updateEpochs: pick('updateEpochs'),
    updateLr: pick('updateLr'),
    updateBudgets: options.updateBudgets,
    batch: pick('batch'),
    sasrecEpochs: pick('sasrecEpochs'),
    sasrecUsers: pick('sasrecUsers'),
    sasrecLoss: pick('sasrecLoss'),
    sasrecSteps: pick('sasrecSteps'),
    trainSeeds: pick('trainSeeds'),
    firstTrainSeed: pick('firstTrainSeed'),
  };
  if (!Number.isInteger(r.trainSeeds) || r.trainSeeds < 1) throw new RangeError('--train-seeds: at least 1');
  if (r.sasrecUsers !== 'sample' && r.sasrecUsers !== 'all') throw new RangeError(`--sasrec-users: expected sample or all, got ${JSON.stringify(r.sasrecUsers)}`);
  if (r.sasrecLoss !== 'bce' && r.sasrecLoss !== 'softmax') throw new RangeError(`--sasrec-loss: expected bce or softmax, got ${JSON.stringify(r.sasrecLoss)}`);
  for (const [flag, v] of [['--history', r.history], ['--lora-rank', r.loraRank], ['--batch', r.batch]] as const) atLeast(flag, v);
  for (const [flag, v] of [['--users', r.users], ['--max-train-per-user', r.maxTrainPerUser], ['--periods', r.periods], ['--eval-users', r.evalUsers], ['--valid-users', r.validUsers], ['--base-epochs', r.baseEpochs], ['--update-epochs', r.updateEpochs], ['--sasrec-epochs', r.sasrecEpochs], ['--sasrec-steps', r.sasrecSteps]] as const) atLeast(flag, v, 0);
  atLeast('--candidates', r.candidates, 2);
  for (const [flag, v] of [['--base-lr', r.baseLr], ['--update-lr', r.updateLr], ['--lora-alpha', r.loraAlpha], ['--base', r.baseShare]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${flag}: expected a number, got ${String(v)}`);
  }
  return r;
}

/** The shipped base for the embedded Beauty data at its history; none for other data (see `ExperimentOptions.baseModel`). */
function defaultBaseModel(source: DataSourceOptions, history: number): string | undefined {
  const plain = source.data === 'beauty' && !source.format && !source.interactions && !source.items;
  return plain && history === DEFAULT_BASE_MODEL_HISTORY ? DEFAULT_BASE_MODEL : undefined;
}

/** LoRA settings and the base and update training settings of an experiment. */
export function trainingSettings(o: ResolvedExperimentOptions): { lora: LoraSettings; baseTrain: Partial<LLMRecTrainOptions>; updateTrain: Partial<LLMRecTrainOptions> } {
  return {
    lora: { r: o.loraRank, alpha: o.loraAlpha, dropout: EXPERIMENT_LORA_DROPOUT },
    baseTrain: { epochs: o.baseEpochs, lr: o.baseLr, batchSize: o.batch, evalsPerEpoch: 4, patience: 2 },
    updateTrain: { epochs: o.updateEpochs, lr: o.updateLr, batchSize: o.batch, evalsPerEpoch: 1, patience: 2 },
  };
}

function checkBaseModel(o: ResolvedExperimentOptions): string | undefined {
  const baseModelDir = o.baseModel ? resolve(o.baseModel) : undefined;
  if (baseModelDir && !isLLMRecFolder(baseModelDir)) throw new RangeError(`--base-model: ${baseModelDir} is not an LLMRec folder (no llmrec.json; make one with evorec train-base)`);
  return baseModelDir;
}

/** Stage, log and progress callbacks of the experiment's pieces. */
export interface ExperimentHooks {
  stage: (name: string) => void;
  log: (line: string) => void;
  progress: (stage: string, done: number, total: number) => void;
}

const NO_HOOKS: ExperimentHooks = { stage: () => {}, log: () => {}, progress: () => {} };

/**
 * The base LLMRec of one training seed: `baseModel` when given (the same for every seed), else loaded
 * from `dir/base` or trained there on P0 (`train: false` refuses to train: the folder must hold it). A
 * seed folder remembers which, so a resumed run cannot mix two bases. The adapter comes back under the
 * name "base", as the runner expects.
 */
export async function seedBaseModel(
  o: ResolvedExperimentOptions,
  split: PeriodSplit,
  seed: number,
  dir: string,
  hooks: ExperimentHooks = NO_HOOKS,
  opts: { train?: boolean } = {},
): Promise<LLMRec> {
  const { stage, log, progress } = hooks;
  const { lora, baseTrain } = trainingSettings(o);
  const baseModelDir = checkBaseModel(o);
  const baseDir = join(dir, 'base');
  const marker = join(dir, 'base-model.json');
  const recorded = existsSync(marker) ? (JSON.parse(readFileSync(marker, 'utf8')) as { path: string | null }).path : isLLMRecFolder(baseDir) ? null : undefined;
  if (recorded !== undefined && recorded !== (baseModelDir ?? null)) {
    throw new RangeError(`${dir}: this run started from ${recorded ?? 'its own base adapter'}, not ${baseModelDir ?? 'a base adapter of its own'}; resume with the same --base-model or use a new --out`);
  }
  if (opts.train !== false) writeFileAtomic(marker, JSON.stringify({ path: baseModelDir ?? null }) + '\n');
  let model: LLMRec;
  if (baseModelDir) {
    stage(`seed ${seed}: load the base model ${baseModelDir}`);
    const loaded = await loadLLMRec(baseModelDir, split.dataset.titles);
    model = loaded.model;
    if (model.prompts.options.history !== o.history) {
      throw new RangeError(`--base-model: ${baseModelDir} was trained with a history of ${model.prompts.options.history} items, not --history ${o.history}`);
    }
    model.scoring.calibration = o.calibration;
    // A fully tuned backbone: the updates train LoRA on top of it, starting from B = 0 (the same outputs).
    if (!loaded.manifest.adapter) model.decoder.addAdapter('default', lora, { seed, freezeBase: true });
  } else if (isLLMRecFolder(baseDir)) {
    stage(`seed ${seed}: load the base model`);
    model = (await loadLLMRec(baseDir, split.dataset.titles)).model;
  } else {
    if (opts.train === false) throw new RangeError(`${baseDir}: no base model (llmrec.json); run evorec experiment on this folder first`);
    stage(`seed ${seed}: train the base adapter on P0`);
    const { model: decoder, tokenizer } = await loadModelFolder(o.backbone);
    if (!tokenizer) throw new RangeError(`${o.backbone}: no tokenizer.json`);
    decoder.addAdapter('default', lora, { seed, freezeBase: true });
    model = new LLMRec(decoder, new PromptBuilder(tokenizer, split.dataset.titles, { history: o.history }), { calibration: o.calibration });
    const r = await trainLLMRec(model, split.periods[0].train, (s) => split.history(s, o.history), {
      ...baseTrain,
      seed,
      checkpoint: join(dir, 'base.ckpt'),
      onStep: (s, n) => progress('base', s, n),
      onEval: (e) => log(`step ${e.step}: loss ${e.loss.toFixed(4)}, valid NDCG@3 ${e.score.toFixed(4)}`),
    }, p0Validator(model, split, o.validUsers, o.candidates, o.seed, o.samplers[0] as NegativeSampler));
    await replaceDirAtomic(baseDir, (tmp) => saveLLMRec(tmp, model, { trained_up_to_period: 0, training: r }));
  }
  const dec = model.decoder;
  const base = dec.adapter('default').clone('base');
  dec.deleteAdapter('default');
  dec.attachAdapter(base, { freezeBase: true });
  return model;
}

/** SASRec per period in `<out>/sasrec/p<t>` (shared by the seeds: it does not depend on the LLMRec's training seed). */
export function sasrecPerPeriod(o: ResolvedExperimentOptions, split: PeriodSplit, stage: (name: string) => void): ((t: number) => Promise<SASRec>) & { trainSeconds: (t: number) => Promise<number | undefined> } {
  // Each call returns an instance of its own (read back from the folder, or just trained), so continuing
  // t-1's model into t never changes a model a run holds.
  // softmax needs no negatives; bce keeps the Forget filter's popularity negatives (trainSasrecUpTo's default)
  const train = { ...(o.sasrecLoss === 'softmax' ? { loss: 'softmax' as const } : {}), minStepsPerEpoch: o.sasrecSteps };
  const epochsAt = (t: number) => (t === 0 ? o.sasrecEpochs : Math.max(1, Math.round(o.sasrecEpochs / 3)));
  // With --sasrec-users all (on a user sample): SASRec trains on every user's split in <out>/sasrec/all-p<t>,
  // and the run's p<t> is that model restricted to the sample's items.
  const everyone = o.sasrecUsers === 'all' && o.users > 0;
  // The whole split, and each of the sample's items as an item of it, made once.
  let whole: Promise<{ split: PeriodSplit; sampleItems: number[] }> | null = null;
  const wholeSplit = () =>
    (whole ??= experimentSplit({ ...o, users: 0 }).then(({ split: all }) => {
      const index = new Map(all.dataset.itemIds.map((id, i) => [id, i]));
      return { split: all, sampleItems: split.dataset.itemIds.map((id) => index.get(id)!) };
    }));
  const wholeFor = async (t: number): Promise<{ model: SASRec; seconds: number }> => {
    const dir = join(o.out, 'sasrec', `all-p${t}`);
    if (existsSync(join(dir, 'config.json'))) {
      // Finished before (a run killed before the sample's folder was written): its training time still counts.
      const { model, config } = await loadSASRec(dir);
      return { model, seconds: typeof config.train_seconds === 'number' ? config.train_seconds : 0 };
    }
    const prev = t > 0 ? (await wholeFor(t - 1)).model : undefined;
    const { split: all } = await wholeSplit();
    stage(`train SASRec up to P${t} on all ${all.dataset.numUsers.toLocaleString('en-US')} users`);
    const t0 = performance.now();
    const { model } = await trainSasrecUpTo(all, t, { model: prev, epochs: epochsAt(t), train });
    const seconds = (performance.now() - t0) / 1000;
    await replaceDirAtomic(dir, (tmp) => saveSASRec(tmp, model, all.dataset.itemIds, { trained_up_to_period: t, train_seconds: seconds, users: 'all', loss: o.sasrecLoss, min_steps_per_epoch: o.sasrecSteps }));
    return { model, seconds };
  };
  const sasrecFor = async (t: number): Promise<SASRec> => {
    const dir = join(o.out, 'sasrec', `p${t}`);
    if (existsSync(join(dir, 'config.json'))) return (await loadSASRec(dir)).model;
    let model: SASRec;
    let train_seconds: number;
    if (everyone) {
      const { model: all, seconds } = await wholeFor(t);
      model = all.restrictedTo((await wholeSplit()).sampleItems);
      train_seconds = seconds;
    } else {
      const prev = t > 0 ? await sasrecFor(t - 1) : undefined;
      stage(`train SASRec up to P${t}`);
      const t0 = performance.now();
      ({ model } = await trainSasrecUpTo(split, t, { model: prev, epochs: epochsAt(t), train }));
      // How long continuing t-1's model into t took: part of the update time of the strategies that use it.
      train_seconds = (performance.now() - t0) / 1000;
    }
    // The folder appears whole or not at all: a kill mid-save leaves no folder that looks finished.
    await replaceDirAtomic(dir, (tmp) => saveSASRec(tmp, model, split.dataset.itemIds, { trained_up_to_period: t, train_seconds, loss: o.sasrecLoss, min_steps_per_epoch: o.sasrecSteps }));
    return model;
  };
  const trainSeconds = async (t: number): Promise<number | undefined> => {
    const config = join(o.out, 'sasrec', `p${t}`, 'config.json');
    if (!existsSync(config)) await sasrecFor(t); // trains it; a finished folder is not loaded again just to read its time
    const v = (JSON.parse(readFileSync(config, 'utf8')) as { train_seconds?: unknown }).train_seconds;
    return typeof v === 'number' ? v : undefined; // folders of older runs did not record it
  };
  return Object.assign(sasrecFor, { trainSeconds });
}

/**
 * Runs the evolution experiment (see the file's header) and returns what `<out>/results.json` holds:
 * every seed's results (format `evorec-experiment-seeds/1`).
 */
export async function runExperiment(options: ExperimentOptions): Promise<SeedsResults> {
  const o = resolveExperimentOptions(options);
  const emit = options.onEvent ?? (() => {});
  const t0 = performance.now();
  const stage = (name: string) => emit({ type: 'stage', stage: name, seconds: (performance.now() - t0) / 1000 });
  const log = (line: string) => emit({ type: 'log', line });
  const progress = (name: string, done: number, total: number) => emit({ type: 'progress', stage: name, done, total });
  mkdirSync(o.out, { recursive: true });
  checkRunOptions(o.out, experimentIdentity(o));
  // A run killed mid-write left temporary files (or a folder moved aside): remove them, restore the last good state.
  for (const p of sweepStaleTemps(o.out)) log(`cleaned up ${p} (left by a killed run)`);

  stage('prepare the split');
  const { split, report } = await experimentSplit(o);
  log(`${report.after.users} users, ${report.after.items} items, ${report.after.interactions} interactions; T = ${split.numPeriods - 1}`);

  if (!existsSync(join(o.backbone, 'config.json'))) {
    stage(`pretrain the backbone (${o.preset}) into ${o.backbone}`);
    await pretrain({ source: o.source, preset: o.preset, steps: o.pretrainSteps, out: o.backbone, resume: true, onProgress: progress, log });
  }

  const { lora, baseTrain, updateTrain } = trainingSettings(o);
  checkBaseModel(o);

  const hooks = { stage, log, progress };
  const sasrecFor = sasrecPerPeriod(o, split, stage);
  const seeds = Array.from({ length: o.trainSeeds }, (_, i) => o.firstTrainSeed + i);
  const title = options.title ?? `Evolution experiment: ${split.dataset.name}, ${report.after.users.toLocaleString('en-US')} users, T = ${split.numPeriods - 1}, ${seeds.length} training seed${seeds.length > 1 ? 's' : ''}`;
  const runs: ExperimentResults[] = [];
  const results = (): SeedsResults => ({ format: 'evorec-experiment-seeds/1', title, command: options.command, samplers: o.samplers, baseModel: o.baseModel, seeds: seeds.slice(0, runs.length), runs });
  for (const seed of seeds) {
    const dir = join(o.out, `seed-${seed}`);
    mkdirSync(dir, { recursive: true });
    // The seed's own record of its options, so that seeds run apart can be merged (evorec merge-seeds).
    writeFileAtomic(join(dir, 'options.json'), JSON.stringify({ ...identityRecord(experimentIdentity(o)), trainSeed: seed }, null, 2) + '\n');
    const model = await seedBaseModel(o, split, seed, dir, hooks);
    stage(`seed ${seed}: run ${o.strategies.length} strategies over ${split.numPeriods - 1} periods`);
    const r = await runStrategies({
      split,
      model,
      baseAdapter: 'base',
      lora,
      strategies: o.strategies,
      sasrecFor,
      sasrecSeconds: sasrecFor.trainSeconds,
      update: updateTrain,
      base: baseTrain,
      budgets: o.updateBudgets,
      history: o.history,
      evalUsers: o.evalUsers,
      validUsers: o.validUsers,
      validInactive: o.validInactive,
      candidates: o.candidates,
      samplers: o.samplers,
      seed: o.seed,
      trainSeed: seed,
      out: dir,
      // The first seed's run, for what no training seed changes (a shared --base-model: the base and static too).
      reuse: runs.length > 0 ? { results: runs[0], seed: seeds[0], sameBase: o.baseModel != null } : undefined,
      log,
      onProgress: progress,
    });
    runs.push(r);
    writeExperimentReports(o.out, results());
    emit({ type: 'seed', seed, results: r });
  }
  return results();
}
