/**
 * The evolution experiment: every strategy, period by period, on the same candidate sets.
 *
 * Starting point: an LLMRec whose backbone is frozen and whose adapter `base` was trained on P0. Each
 * strategy gets a copy of `base` as its adapter; at period t the strategy updates its adapter, which is
 * then evaluated on period t's test targets (a fixed user sample per group, so comparisons are paired),
 * timed, counted and saved. State lives in `out/`: each (strategy, period) adapter as a PEFT folder and
 * the results so far in results.json, both written atomically, so an interrupted run resumes after the
 * last finished update.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CandidateSampler, type NegativeSampler } from '../data/candidates.js';
import type { PeriodSplit, Sample, UserGroup } from '../data/periods.js';
import { keyedRandom } from '../data/rng.js';
import { evaluate, randomResult, type BatchScorer, type EvalResult } from '../eval/evaluate.js';
import { evaluateFull, evaluateTwoStage, popularityFull, randomFull, retrieve } from '../eval/full-ranking.js';
import { probeResults } from '../eval/probes.js';
import { llmrecScorer, validationNdcg3, type LLMRec } from '../models/llmrec.js';
import type { LLMRecTrainOptions } from '../models/llmrec-train.js';
import type { SASRec } from '../models/sasrec.js';
import { sasrecFullScorer, sasrecScorer } from '../models/sasrec-train.js';
import { readAdapter, saveAdapter, type LoraAdapter, type LoraSettings } from '../nn/lora.js';
import { replaceDirAtomic, writeFileAtomic } from '../util/fs.js';
import { updateWithBudgets, type BudgetChoice, type UpdateBudget } from './period.js';
import type { Strategy, UpdateReport } from './strategy.js';

/** One training seed's run of the strategies (`runStrategies`); `runExperiment` (src/experiment) builds it. */
export interface StrategyRunOptions {
  split: PeriodSplit;
  /** Backbone with the trained base adapter attached under `baseAdapter`. */
  model: LLMRec;
  baseAdapter: string;
  lora: LoraSettings;
  strategies: Strategy[];
  /** SASRec trained on the data up to t (called once per period, only when a strategy needs it). */
  sasrecFor: (t: number) => Promise<SASRec>;
  /**
   * Seconds it took to train the SASRec of t from that of t-1 (undefined when unknown): part of the update
   * time of every strategy that needs it (EvoRec's Forget filter is trained for its update).
   */
  sasrecSeconds?: (t: number) => Promise<number | undefined>;
  update: Partial<LLMRecTrainOptions>;
  base: Partial<LLMRecTrainOptions>;
  /**
   * Update budgets to choose from on validation, per strategy and period (`updateWithBudgets`; epochs 0
   * keeps the adapter of t-1). Absent: every update trains with `update` (and retrain with `base`).
   */
  budgets?: readonly UpdateBudget[];
  history: number;
  /** Cap on the active (and new, short, base) test users evaluated per period; inactive as many as active (`evalSample`); 0 = all. */
  evalUsers: number;
  /** Validation targets used for early stopping in each update. */
  validUsers: number;
  /** Add as many inactive users' held-out validation targets to each period's validation (`inactiveValidation`). */
  validInactive?: boolean;
  candidates: number;
  /**
   * Views to evaluate, the first being the headline and the validation view: candidate samplers, and
   * 'two-stage', the full-catalogue view (popularity and SASRec rank every item exactly; each strategy's
   * LLMRec re-ranks the top `depth` items of SASRec trained up to t, with the retriever's recall beside it).
   */
  samplers: ExperimentView[];
  /** Items the two-stage view's retriever hands to the LLMRec (default 50). */
  depth?: number;
  /** Seed of the data side: candidate sets, evaluation and validation samples (the same for every run). */
  seed: number;
  /** Seed of the training side: fresh adapters, shuffling, dropout, replay and random-layer draws. Default `seed`. */
  trainSeed?: number;
  out: string;
  /**
   * Another training seed's finished run on the same split, views, evaluation users and SASRecs: what
   * depends on no training seed is copied from it instead of computed again (the baselines, and with
   * `sameBase`, the base model at P0 and every update of a strategy that never trains, static). Those
   * are the same numbers bit for bit: evaluation is deterministic and none of them draws from the training seed.
   * `sameBase`: both runs start from the very same base weights (a shared --base-model), not one trained per seed.
   */
  reuse?: { results: ExperimentResults; seed: number; sameBase: boolean };
  log?: (line: string) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface UpdateRecord {
  strategy: string;
  period: number;
  /** Wall time of the update, the Forget filter's training included (`forgetSeconds`) for a strategy that uses it. */
  seconds: number;
  /** Of `seconds`: training the SASRec of t (the Forget filter), for strategies that use it. */
  forgetSeconds?: number;
  /** Peak resident memory during the update (MB), or the process's high-water mark when `peakPerUpdate` is false. */
  peakRssMb: number;
  peakPerUpdate?: boolean;
  /** The budget chosen on validation and every budget's score, when the run chooses one. */
  budget?: BudgetChoice;
  report: Omit<UpdateReport, 'historyOf' | 'training'> & { bestValid?: number };
  /** Evaluation by negative sampler. */
  eval: Record<string, EvalResult>;
  /** The training seed whose identical record this one is a copy of (`StrategyRunOptions.reuse`). */
  copiedFromSeed?: number;
}

export interface ExperimentResults {
  format: 'evorec-experiment/1';
  strategies: string[];
  periods: number;
  /** Random, popularity and the probes per period and sampler (keys `<name>/<sampler>`), and the base model at P0. */
  baselines: Record<string, Record<string, EvalResult>>;
  updates: UpdateRecord[];
}

const GROUPS: UserGroup[] = ['active', 'inactive', 'new', 'short', 'base'];

/** A view of the experiment: a candidate sampler, or the full catalogue through the two-stage form. */
export type ExperimentView = NegativeSampler | 'two-stage';
const isSampler = (v: ExperimentView): v is NegativeSampler => v !== 'two-stage';

/**
 * The test users evaluated at period t: a fixed, seeded sample. Active users up to `cap`, as many
 * inactive users as active ones (all of them when there are fewer; `cap` when no one is active), and new,
 * short and base users up to `cap` each. cap 0 = every test user. Forgetting is measured on the inactive users, so they never
 * get fewer users than the adaptation they are compared with.
 */
export function evalSample(split: PeriodSplit, t: number, cap: number, seed: number): Sample[] {
  const test = split.periods[t].test;
  if (cap <= 0) return test;
  const draw = (g: UserGroup, n: number) => {
    const rand = keyedRandom(seed, 'experiment-eval', t, g);
    return test.filter((s) => s.group === g).map((s) => ({ s, k: rand() })).sort((a, b) => a.k - b.k).slice(0, n).map((x) => x.s);
  };
  const active = draw('active', cap);
  const out = [...active, ...draw('inactive', active.length > 0 ? active.length : cap), ...draw('new', cap), ...draw('short', cap), ...draw('base', cap)];
  return out.sort((a, b) => a.user - b.user);
}

/**
 * Random, popularity and the model-free probes of period t (keys `<name>/<sampler>`), on the very sets the
 * models rank: the evaluation sample of `evalSample` and the candidate sets of every sampler. With `sasrec`
 * (the run's SASRec trained up to t), SASRec too (`sasrec/<view>`), the model the LLMRec must beat.
 */
export async function experimentBaselines(
  split: PeriodSplit,
  t: number,
  o: Pick<StrategyRunOptions, 'evalUsers' | 'seed' | 'samplers' | 'candidates'> & { sasrec?: SASRec },
  cs = new CandidateSampler(split),
): Promise<Record<string, EvalResult>> {
  const chosen = new Set(evalSample(split, t, o.evalUsers, o.seed).map((s) => s.row));
  const filter = (s: Sample) => chosen.has(s.row);
  const b: Record<string, EvalResult> = {};
  if (o.samplers.includes('two-stage')) {
    // The full catalogue, exact: random's expectation, popularity and the retriever itself.
    b['random/two-stage'] = randomFull(split, t, { filter });
    b['popularity/two-stage'] = await evaluateFull(split, t, popularityFull(split, t), { filter, keepSets: true });
    if (o.sasrec) b['sasrec/two-stage'] = await evaluateFull(split, t, sasrecFullScorer(o.sasrec, split), { filter, keepSets: true });
  }
  for (const sampler of o.samplers.filter(isSampler)) {
    const opts = {
      sampler, size: o.candidates, seed: o.seed, filter,
      candidates: (s: Sample) => cs.candidates(s, t, 'test', { sampler, size: o.candidates, seed: o.seed }),
    };
    b[`random/${sampler}`] = randomResult(split, t, opts);
    for (const [name, r] of Object.entries(await probeResults(split, t, opts))) b[`${name}/${sampler}`] = r;
    if (o.sasrec) b[`sasrec/${sampler}`] = await evaluate(split, t, sasrecScorer(o.sasrec, split), { ...opts, keepSets: true });
  }
  return b;
}

/** A full scorer that scores each sample once (the union scoring and the two-stage view both retrieve). */
function remembered(scorer: (samples: Sample[]) => ArrayLike<number>[]): (samples: Sample[]) => ArrayLike<number>[] {
  const memo = new Map<number, ArrayLike<number>>();
  return (samples) => {
    const missing = samples.filter((s) => !memo.has(s.row));
    if (missing.length) scorer(missing).forEach((x, j) => memo.set(missing[j].row, x));
    return samples.map((s) => memo.get(s.row)!);
  };
}

/**
 * Scores, for each sample, the union of the item lists `listsOf` gives it, in one scorer call per chunk:
 * sample row -> item -> score.
 */
async function scoreUnion(scorer: BatchScorer, samples: Sample[], listsOf: (chunk: Sample[]) => Promise<number[][]>): Promise<Map<number, Map<number, number>>> {
  const out = new Map<number, Map<number, number>>();
  const bs = Math.max(1, scorer.batchSize ?? 64);
  for (let start = 0; start < samples.length; start += bs) {
    const chunk = samples.slice(start, start + bs);
    const union = (await listsOf(chunk)).map((l) => [...new Set(l)]);
    const scores = await scorer.batch(chunk, union);
    chunk.forEach((s, j) => out.set(s.row, new Map(union[j].map((i, k) => [i, scores[j][k]]))));
  }
  return out;
}

/**
 * Runs every strategy period by period for one training seed, from the base adapter, evaluating each
 * update on the same candidate sets; resumes from `out` (see the file's header).
 */
/**
 * The validation targets of period t that every update early-stops on: a fixed, seeded sample of
 * `validUsers`, with candidate sets of the headline view (so early stopping optimises what is reported).
 */
export function validationSample(
  split: PeriodSplit,
  t: number,
  o: { validUsers: number; seed: number; candidates: number; sampler: NegativeSampler; inactive?: boolean },
  cs = new CandidateSampler(split),
): { samples: Sample[]; cands: number[][] } {
  const rand = keyedRandom(o.seed, 'experiment-valid', t);
  const samples = split.periods[t].valid.map((s) => ({ s, k: rand() })).sort((a, b) => a.k - b.k).slice(0, o.validUsers).map((x) => x.s);
  if (o.inactive && t > 0) samples.push(...inactiveValidation(split, t, samples.length, o.seed));
  return { samples, cands: samples.map((s) => cs.candidates(s, t, 'valid', { sampler: o.sampler, size: o.candidates, seed: o.seed })) };
}

/**
 * Validation targets of inactive users at period t, as many as `count` (seeded): each user's held-out
 * validation target, which lies in an earlier period and is never trained on (period t's new data and
 * released targets leave it out while the user stays away). Early stopping on these beside the active
 * users' sees forgetting, where the active users' targets alone reward drifting away from them.
 */
export function inactiveValidation(split: PeriodSplit, t: number, count: number, seed: number): Sample[] {
  const rand = keyedRandom(seed, 'experiment-valid-inactive', t);
  const out: { s: Sample; k: number }[] = [];
  for (const x of split.periods[t].test) {
    if (x.group !== 'inactive') continue;
    const k = rand(); // one draw per inactive user, with or without a validation target
    const { valid } = split.heldOut(x.user, t);
    if (valid < 1) continue;
    const row = split.userRows[x.user][valid];
    out.push({ s: { user: x.user, row, pos: valid, item: split.dataset.items[row], timestamp: split.dataset.timestamps[row], group: 'inactive' }, k });
  }
  return out.sort((a, b) => a.k - b.k).slice(0, count).map((x) => x.s);
}

/**
 * How the experiment evaluates a model at period t: on the `evalSample` users, every view's items of a
 * user scored in one call (so the prompt runs once per user, not once per view: a score does not depend
 * on what else is in the call, llmrec.test.ts), then each view's metrics. `historyOf` gives the
 * strategy's prompt histories (EvoRec's filtered ones); default the plain window.
 */
export function strategyEvaluator(
  o: Pick<StrategyRunOptions, 'split' | 'samplers' | 'candidates' | 'evalUsers' | 'seed' | 'depth'> & { sasrecAt: (t: number) => Promise<SASRec> },
  cs = new CandidateSampler(o.split),
): (t: number, model: LLMRec, historyOf?: (s: Sample) => number[]) => Promise<Record<string, EvalResult>> {
  const { split } = o;
  const candidatesOf = (t: number, sampler: NegativeSampler) => (s: Sample) => cs.candidates(s, t, 'test', { sampler, size: o.candidates, seed: o.seed });
  const twoStage = o.samplers.includes('two-stage');
  const depth = o.depth ?? 50;
  return async (t, model, historyOf) => {
    const samples = evalSample(split, t, o.evalUsers, o.seed);
    const chosen = new Set(samples.map((s) => s.row));
    const filter = (s: Sample) => chosen.has(s.row);
    const retriever = twoStage ? remembered(sasrecFullScorer(await o.sasrecAt(t), split)) : null;
    const scored = await scoreUnion(llmrecScorer(model, split, historyOf), samples, async (chunk) => {
      const lists = chunk.map((s) => o.samplers.filter(isSampler).flatMap((v) => candidatesOf(t, v)(s)));
      if (retriever) (await retrieve(split, t, retriever, chunk, depth)).forEach((l, j) => lists[j].push(...l));
      return lists;
    });
    const lookup = (s: Sample, items: number[]) => items.map((i) => scored.get(s.row)!.get(i)!);
    const cached = { batchSize: 64, batch: (ss: Sample[], cands: number[][]) => ss.map((s, j) => lookup(s, cands[j])) };
    const out: Record<string, EvalResult> = {};
    for (const view of o.samplers) {
      if (view === 'two-stage') {
        out[view] = await evaluateTwoStage(split, t, retriever!, cached.batch, { filter, keepSets: true, depth });
      } else {
        out[view] = await evaluate(split, t, cached, { sampler: view, size: o.candidates, seed: o.seed, filter, candidates: candidatesOf(t, view), keepSets: true });
      }
    }
    return out;
  };
}

export async function runStrategies(o: StrategyRunOptions): Promise<ExperimentResults> {
  const { split, model } = o;
  const dec = model.decoder;
  const headline = o.samplers[0];
  if (!headline || !isSampler(headline)) throw new RangeError(`the first view is the headline and the validation view, so it must be a candidate sampler, got ${JSON.stringify(headline ?? null)}`);
  const log = o.log ?? (() => {});
  const resultsFile = join(o.out, 'results.json');
  const results: ExperimentResults = existsSync(resultsFile)
    ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as ExperimentResults)
    : { format: 'evorec-experiment/1', strategies: o.strategies.map((s) => s.name), periods: split.numPeriods - 1, baselines: {}, updates: [] };
  // Strategies added to an existing run are run and reported after the ones already there.
  for (const s of o.strategies) if (!results.strategies.includes(s.name)) results.strategies.push(s.name);
  const save = () => writeFileAtomic(resultsFile, JSON.stringify(results, null, 2) + '\n');
  const cs = new CandidateSampler(split);
  const sasrecs = new Map<number, SASRec>();
  const sasrecAt = async (t: number) => {
    let m = sasrecs.get(t);
    if (!m) sasrecs.set(t, (m = await o.sasrecFor(t)));
    return m;
  };
  const evaluator = strategyEvaluator({ ...o, sasrecAt }, cs);
  const evalAt = (t: number, historyOf?: (s: Sample) => number[]) => evaluator(t, model, historyOf);

  // Baselines for every period, and the base model at P0.
  const reused = o.reuse?.results;
  for (let t = 0; t < split.numPeriods; t++) {
    const key = `p${t}`;
    if (!results.baselines[key]) results.baselines[key] = (reused?.baselines[key] && structuredClone(reused.baselines[key])) ?? (await experimentBaselines(split, t, { ...o, sasrec: await sasrecAt(t) }, cs));
  }
  if (!results.baselines.base) {
    const copy = o.reuse?.sameBase ? reused?.baselines.base : undefined;
    if (!copy) dec.setActiveAdapters(o.baseAdapter);
    results.baselines.base = copy ? structuredClone(copy) : await evalAt(0);
    log(`base model at P0: NDCG@3 ${results.baselines.base[o.samplers[0]].groups.all?.metrics['NDCG@3'].toFixed(4)}${copy ? ` (seed ${o.reuse!.seed}'s evaluation: the same base)` : ''}`);
  }
  save();

  // Each strategy's adapter as of its last finished period.
  const current = new Map<string, LoraAdapter>();
  for (const s of o.strategies) {
    const done = results.updates.filter((u) => u.strategy === s.name).map((u) => u.period);
    const last = done.length ? Math.max(...done) : 0;
    const a = last === 0 ? dec.adapter(o.baseAdapter).clone(s.name) : await readAdapter(join(o.out, 'adapters', s.name, `p${last}`), dec.config, s.name);
    a.freeze();
    dec.attachAdapter(a, { freezeBase: true });
    current.set(s.name, a);
  }
  dec.adapter(o.baseAdapter).freeze();

  const validCache = new Map<number, { samples: Sample[]; cands: number[][] }>();
  const validation = (t: number) => {
    let v = validCache.get(t);
    if (!v) validCache.set(t, (v = validationSample(split, t, { validUsers: o.validUsers, seed: o.seed, candidates: o.candidates, sampler: headline, inactive: o.validInactive }, cs)));
    return v;
  };
  const trainSeed = o.trainSeed ?? o.seed;
  const total = (split.numPeriods - 1) * o.strategies.length;
  let step = results.updates.length;
  for (let t = 1; t < split.numPeriods; t++) {
    for (const strategy of o.strategies) {
      if (results.updates.some((u) => u.strategy === strategy.name && u.period === t)) continue;
      o.onProgress?.('updates', step, total);
      const copy = strategy.trains === false && o.reuse?.sameBase ? o.reuse.results.updates.find((u) => u.strategy === strategy.name && u.period === t) : undefined;
      if (copy) {
        // Nothing trains and the base is the same: the other seed's evaluation is this one's.
        await replaceDirAtomic(join(o.out, 'adapters', strategy.name, `p${t}`), (dir) => saveAdapter(dir, current.get(strategy.name)!, { baseModel: null }));
        results.updates.push({ ...structuredClone(copy), copiedFromSeed: copy.copiedFromSeed ?? o.reuse!.seed });
        save();
        log(`P${t} ${strategy.name}: seed ${o.reuse!.seed}'s evaluation (nothing trains, the same base)`);
        o.onProgress?.('updates', ++step, total);
        continue;
      }
      const sasrec = strategy.usesSasrec ? await sasrecAt(t) : undefined;
      for (const a of current.values()) a.freeze();
      const { adapter, report, seconds: updateSeconds, peakRssMb, peakPerUpdate, budget } = await updateWithBudgets({
        split,
        t,
        model,
        strategy,
        adapter: current.get(strategy.name)!,
        // Keep the strategy's adapter under its own name.
        keepName: strategy.name,
        lora: o.lora,
        sasrec,
        update: o.update,
        base: o.base,
        history: o.history,
        seed: trainSeed,
        validate: (historyOf) => validationNdcg3(model, validation(t).samples, validation(t).cands, historyOf),
        log,
      }, o.budgets);
      current.set(strategy.name, adapter);
      const forgetSeconds = strategy.usesSasrec ? await o.sasrecSeconds?.(t) : undefined;
      const seconds = updateSeconds + (forgetSeconds ?? 0);
      const evalResult = await evalAt(t, report.historyOf);
      await replaceDirAtomic(join(o.out, 'adapters', strategy.name, `p${t}`), (dir) => saveAdapter(dir, adapter, { baseModel: null }));
      const { historyOf: _h, training, ...rest } = report;
      void _h;
      results.updates.push({ strategy: strategy.name, period: t, seconds, ...(forgetSeconds !== undefined ? { forgetSeconds } : {}), peakRssMb, peakPerUpdate, ...(budget ? { budget } : {}), report: { ...rest, bestValid: training?.bestScore }, eval: evalResult });
      save();
      const m = evalResult[o.samplers[0]].groups;
      log(
        `P${t} ${strategy.name}: ${seconds.toFixed(1)} s, ${report.trainableParameters.toLocaleString('en-US')} trainable; ` +
          `NDCG@3 active ${(m.active?.metrics['NDCG@3'] ?? NaN).toFixed(4)}, inactive ${(m.inactive?.metrics['NDCG@3'] ?? NaN).toFixed(4)}` +
          (budget ? `; budget ${budget.chosen}` : ''),
      );
      o.onProgress?.('updates', ++step, total);
    }
  }
  return results;
}
