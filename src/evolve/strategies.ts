/**
 * The strategies of the spec: static, retrain, finetune, replay, lsat, evorec, and EvoRec's ablations.
 * Each is a small object behind the `Strategy` interface.
 */
import type { Sample } from '../data/periods.js';
import { keyedRandom } from '../data/rng.js';
import { trainLLMRec } from '../models/llmrec-train.js';
import { ConsistencyTerm, consistencySamples } from './consistency.js';
import { filteredHistory, forget, type ForgetOptions } from './forget.js';
import { applyLocatedLayers, driftPairs, locateByGradient, locateByVotes, locateK, type LocateNormalize, type LocateResult, type LocateSignal } from './locate.js';
import { PESO_WEIGHT, ProximalTerm } from './peso.js';
import type { PeriodContext, Strategy, UpdateReport } from './strategy.js';

const plain = (ctx: PeriodContext) => (s: Sample) => ctx.split.history(s, ctx.history);

/** Trains the context's adapter (within its current trainable mask) on samples; returns the report. */
async function train(ctx: PeriodContext, samples: Sample[], historyOf: (s: Sample) => number[], extra?: Pick<ConsistencyTerm, 'loss'>, settings = ctx.update): Promise<UpdateReport> {
  const a = ctx.adapter;
  // The context's validation is NaN exactly when it has no samples (the mean of no metrics; a NaN score
  // throws in the metrics): the trainer is told there is nothing to validate on, and keeps its final state.
  const validate = () => {
    const score = ctx.validate(historyOf);
    return Number.isNaN(score) ? null : score;
  };
  const training = await trainLLMRec(ctx.model, samples, historyOf, { ...settings, seed: ctx.seed + ctx.t, extraLoss: extra ? (s) => extra.loss(s) : undefined }, validate);
  return {
    samplesSeen: training.samplesSeen,
    trainSamples: samples.length,
    trainableParameters: training.trainableParameters,
    loraParameters: a.numParameters(false),
    steps: training.steps,
    training,
    historyOf,
  };
}

export const staticStrategy: Strategy = {
  name: 'static',
  description: 'the base model, never updated',
  trains: false,
  async update(ctx) {
    return { samplesSeen: 0, trainSamples: 0, trainableParameters: 0, loraParameters: ctx.adapter.numParameters(false), steps: 0 };
  },
};

export const retrainStrategy: Strategy = {
  name: 'retrain',
  description: 'a fresh adapter on the pretrained backbone, trained on all training targets up to t',
  async update(ctx) {
    const next = ctx.freshAdapter(`${this.name}-p${ctx.t}`);
    ctx.replaceAdapter(next);
    next.unfreeze();
    return train(ctx, ctx.split.trainingUpTo(ctx.t), plain(ctx), undefined, ctx.base);
  },
};

export const finetuneStrategy: Strategy = {
  name: 'finetune',
  description: 'the model of t-1, all LoRA trained on the new data of t',
  async update(ctx) {
    ctx.adapter.setTrainableLayers(null);
    return train(ctx, ctx.split.periods[ctx.t].train, plain(ctx));
  },
};

export function replayStrategy(ratio = 0.5): Strategy {
  return {
    name: 'replay',
    description: `the model of t-1, all LoRA trained on the new data plus a ${ratio}x sample of older training data`,
    async update(ctx) {
      ctx.adapter.setTrainableLayers(null);
      const old = ctx.split.trainingUpTo(ctx.t - 1);
      const fresh = ctx.split.periods[ctx.t].train;
      const rand = keyedRandom(ctx.seed, 'replay', ctx.t);
      const pick = old.map((s) => ({ s, k: rand() })).sort((a, b) => a.k - b.k).slice(0, Math.round(ratio * fresh.length)).map((x) => x.s);
      return train(ctx, [...fresh, ...pick], plain(ctx));
    },
  };
}

export function pesoStrategy(weight = PESO_WEIGHT): Strategy {
  return {
    name: 'peso',
    description: `PESO: the model of t-1, all LoRA trained on the new data of t with a proximal KL to the adapter of t-1 (weight ${weight})`,
    async update(ctx) {
      ctx.adapter.setTrainableLayers(null);
      // Anchored to the adapter as it is now, the state of t-1 (frozen: the term holds copies).
      const term = new ProximalTerm(ctx.adapter.parameters(true), weight);
      return train(ctx, ctx.split.periods[ctx.t].train, plain(ctx), { loss: () => term.loss() });
    },
  };
}

export function lsatStrategy(weights = [0.25, 0.5, 0.75]): Strategy {
  return {
    name: 'lsat',
    description: 'long-term adapter (model of t-1) plus a short-term adapter trained on new data, merged with the weight best on validation',
    async update(ctx) {
      const dec = ctx.model.decoder;
      const long = ctx.adapter;
      const short = ctx.freshAdapter(`lsat-short-p${ctx.t}`);
      dec.setActiveAdapters(short.name);
      short.unfreeze();
      const report = await train({ ...ctx, adapter: short }, ctx.split.periods[ctx.t].train, plain(ctx));
      short.freeze();
      let best = -Infinity;
      let bestW = weights[0];
      for (const w of weights) {
        dec.setActiveAdapters({ [long.name]: 1 - w, [short.name]: w });
        const score = ctx.validate(plain(ctx));
        if (score > best) {
          best = score;
          bestW = w;
        }
      }
      const combined = dec.combineAdapters({ [long.name]: 1 - bestW, [short.name]: bestW }, `lsat-p${ctx.t}`);
      dec.deleteAdapter(short.name);
      ctx.replaceAdapter(combined);
      ctx.log(`lsat: short-term weight ${bestW} (validation NDCG@3 ${best.toFixed(4)})`);
      // LSAT trains a whole short-term adapter of the run's rank, as finetune trains its one adapter: its
      // share is of that adapter (100%), not of the combined one it keeps, whose ranks add up each period.
      return { ...report, weight: bestW, loraParameters: short.numParameters(false), trainableParameters: short.numParameters(false), storedParameters: combined.numParameters(false) };
    },
  };
}

export interface EvoRecOptions {
  /** Locate: 'votes' (the method), 'gradient' (ablation), 'random' k layers (ablation), or 'none' (all layers). */
  locate: 'votes' | 'gradient' | 'random' | 'none';
  /** What the vote locator compares per layer: its output (the paper) or its own contribution (LocateSignal). */
  signal: LocateSignal;
  /** How a similarity becomes a vote: the least similar layer (the paper), or relative to how far users lie apart there (LocateNormalize). */
  normalize: LocateNormalize;
  /** Share of layers to locate (k = round(share * layers), at least 1). */
  share: number;
  /** Forget step on/off and its options. */
  forget: boolean;
  forgetOptions: Partial<ForgetOptions>;
  /** Weight of the consistency term on inactive users' prompts (0 = off). */
  lambda: number;
  /** Inactive users' prompts sampled for the consistency term. */
  consistencyPrompts: number;
}

export const DEFAULT_EVOREC: EvoRecOptions = {
  locate: 'votes',
  signal: 'output',
  normalize: 'none',
  share: 0.3,
  forget: true,
  forgetOptions: {},
  lambda: 0,
  consistencyPrompts: 256,
};

/** What EvoRec decides before it trains at period t: Forget's filter and the layers to update. */
export interface EvoRecPlan {
  /** Forget's result (null when Forget is off). */
  forgotten: ReturnType<typeof forget> | null;
  /** Histories of EvoRec's prompts at t: active users' filtered, everyone else's plain. */
  historyOf: (s: Sample) => number[];
  /** Layers whose LoRA the update trains (null: all). */
  layers: number[] | null;
  located?: LocateResult;
}

type PlanContext = Pick<PeriodContext, 'split' | 't' | 'model' | 'adapter' | 'sasrec' | 'history' | 'seed'>;

/** EvoRec's Forget step at t: the filter and the histories it gives (plain when Forget is off). */
export function evorecForget(options: Partial<EvoRecOptions>, ctx: Pick<PlanContext, 'split' | 't' | 'sasrec' | 'history'> & { seed?: number }): Pick<EvoRecPlan, 'forgotten' | 'historyOf'> {
  const o = { ...DEFAULT_EVOREC, ...options };
  const { split, t } = ctx;
  const f = o.forget ? forget(split, t, ctx.sasrec ?? null, { seed: ctx.seed ?? 0, ...o.forgetOptions }) : null;
  return { forgotten: f, historyOf: (s: Sample) => filteredHistory(split, f, s, ctx.history) };
}

/** EvoRec's Forget and Locate steps at t, as the strategy runs them before its update (`evorecStrategy`). */
export function planEvorecUpdate(options: Partial<EvoRecOptions>, ctx: PlanContext): EvoRecPlan {
  const o = { ...DEFAULT_EVOREC, ...options };
  const { split, t } = ctx;
  const { forgotten, historyOf } = evorecForget(o, ctx);
  const L = ctx.model.decoder.config.numHiddenLayers;
  const k = locateK(L, { share: o.share });
  let located: LocateResult | undefined;
  let layers: number[] | null = null;
  if (o.locate === 'votes') {
    const pairs = driftPairs(split, t, ctx.history);
    located = locateByVotes(ctx.model, pairs, { k, signal: o.signal, normalize: o.normalize });
    layers = located.layers;
  } else if (o.locate === 'gradient') {
    const rand = keyedRandom(ctx.seed, 'grad-locate', t);
    const sample = split.periods[t].train.map((s) => ({ s, k: rand() })).sort((a, b) => a.k - b.k).slice(0, 256).map((x) => x.s);
    located = locateByGradient(ctx.model, sample, historyOf, { k, adapter: ctx.adapter.name });
    layers = located.layers;
  } else if (o.locate === 'random') {
    const rand = keyedRandom(ctx.seed, 'random-locate', t);
    layers = Array.from({ length: L }, (_, l) => ({ l, k: rand() })).sort((a, b) => a.k - b.k).slice(0, k).map((x) => x.l).sort((a, b) => a - b);
  }
  return { forgotten, historyOf, layers, located };
}

/** A strategy of the EvoRec family: `evorec` holds its options (read by the update-job export). */
export interface EvoRecStrategy extends Strategy {
  readonly evorec: EvoRecOptions;
}

export function evorecStrategy(name = 'evorec', options: Partial<EvoRecOptions> = {}): EvoRecStrategy {
  const o = { ...DEFAULT_EVOREC, ...options };
  const parts = [
    o.locate === 'votes'
      ? `layers located by ${o.signal === 'contribution' ? 'their own contribution' : 'their output'}${o.normalize === 'unrelated' ? ' relative to how far users lie apart there' : ''}`
      : o.locate === 'none' ? 'all layers' : `${o.locate} layers`,
    o.forget ? ((o.forgetOptions.select ?? 'sasrec') === 'sasrec' ? 'filtered new data' : `new data with ${o.forgetOptions.select === 'random' ? 'random' : 'the oldest'} pre-period items removed`) : 'unfiltered new data',
    o.lambda > 0 ? `consistency lambda ${o.lambda}` : '',
  ].filter(Boolean);
  return {
    name,
    usesSasrec: o.forget && (o.forgetOptions.select ?? 'sasrec') === 'sasrec',
    evorec: o,
    description: `EvoRec: the model of t-1, ${parts.join(', ')}`,
    async update(ctx) {
      const { split, t } = ctx;
      const { forgotten: f, historyOf, layers, located } = planEvorecUpdate(o, ctx);
      applyLocatedLayers(ctx.model, layers, ctx.adapter.name);
      if (layers) ctx.log(`${name}: layers ${layers.join(', ')}${located?.votes.some((v) => v > 0) ? ` (votes ${located.votes.join('/')})` : ''}`);
      let term: ConsistencyTerm | undefined;
      if (o.lambda > 0) {
        const rand = keyedRandom(ctx.seed, 'consistency', t);
        const prompts = consistencySamples(split, t, o.consistencyPrompts, rand).map((s) => ctx.model.prompts.prompt(historyOf(s)));
        term = new ConsistencyTerm(ctx.model, prompts, { lambda: o.lambda, batch: 8 });
      }
      const report = await train(ctx, split.periods[t].train, historyOf, term);
      ctx.adapter.setTrainableLayers(null);
      ctx.adapter.freeze();
      return {
        ...report,
        located,
        layers: layers ?? undefined,
        forgotten: f ? { users: f.usersFiltered, items: f.itemsRemoved, considered: f.itemsConsidered } : undefined,
      };
    },
  };
}

/** Is this strategy of the EvoRec family (made by `evorecStrategy`)? */
export const isEvorecStrategy = (s: Strategy): s is EvoRecStrategy => typeof (s as Partial<EvoRecStrategy>).evorec === 'object';

/** Every strategy the CLI knows, by name. */
export function strategyRegistry(): Record<string, Strategy> {
  return {
    static: staticStrategy,
    retrain: retrainStrategy,
    finetune: finetuneStrategy,
    replay: replayStrategy(),
    lsat: lsatStrategy(),
    peso: pesoStrategy(),
    evorec: evorecStrategy(),
    'evorec-no-locate': evorecStrategy('evorec-no-locate', { locate: 'none' }),
    'evorec-no-forget': evorecStrategy('evorec-no-forget', { forget: false }),
    'evorec-random': evorecStrategy('evorec-random', { locate: 'random' }),
    'evorec-contribution': evorecStrategy('evorec-contribution', { signal: 'contribution' }),
    'evorec-drift': evorecStrategy('evorec-drift', { signal: 'contribution', normalize: 'unrelated' }),
    'evorec-forget-random': evorecStrategy('evorec-forget-random', { forgetOptions: { select: 'random' } }),
    'evorec-forget-oldest': evorecStrategy('evorec-forget-oldest', { forgetOptions: { select: 'oldest' } }),
    'evorec-gradient': evorecStrategy('evorec-gradient', { locate: 'gradient' }),
    'evorec-kl': evorecStrategy('evorec-kl', { lambda: 1 }),
  };
}

export const DEFAULT_STRATEGIES = ['static', 'retrain', 'finetune', 'replay', 'lsat', 'evorec'];
