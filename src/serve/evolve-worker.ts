/**
 * The evolution job, run in a child process of the service (so that training never blocks requests, and
 * a crash or a kill of the job cannot take the service down). It receives one `WorkerJob` message over
 * IPC, reports progress, and ends with a `done` or `error` message:
 *
 * 1. reads the interaction log up to `toSeq` from the database (read-only) and builds a Dataset whose row
 *    order is the log's order (seq);
 * 2. cuts a PeriodSplit with one incremental period: P0 = rows up to the active model's cut-off
 *    (`fromSeq`), P1 = the new interactions;
 * 3. trains a small SASRec on the data up to P1 (the Forget filter; `trainSasrecUpTo`);
 * 4. scores the active model on the gate slice, runs the EvoRec update (Locate, Forget, Update) on its
 *    adapter through the experiment's period step (`updateForPeriod`, src/evolve/period.ts), and scores again;
 * 5. writes the new LLMRec folder beside the target and renames it into place (the backbone files are
 *    hard-linked from the base version's folder: the backbone is frozen, only the adapter changes), with
 *    the SASRec of step 3 in `sasrec/`: the new version's retriever for full-catalogue recommendations.
 *
 * The job exits as soon as its parent goes away, so a killed service leaves no orphan: on the IPC
 * disconnect when its event loop is free, and through a watchdog thread (lifetime.ts) while it computes.
 */
import { copyFileSync, linkSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CandidateSampler } from '../data/candidates.js';
import { Dataset } from '../data/dataset.js';
import { PeriodSplit, type Sample } from '../data/periods.js';
import type { RawInteraction, RawItem } from '../data/records.js';
import { keyedRandom } from '../data/rng.js';
import { trainSasrecUpTo, updateForPeriod } from '../evolve/period.js';
import { evorecStrategy } from '../evolve/strategies.js';
import { MetricAccumulator } from '../eval/metrics.js';
import { validationNdcg3, type LLMRec } from '../models/llmrec.js';
import { LLMREC_FILE, loadLLMRec } from '../models/llmrec-io.js';
import { saveSASRec } from '../models/sasrec-io.js';
import { RETRIEVER_FOLDER } from './version-scorer.js';
import { saveModelAdapter } from '../nn/checkpoint-folder.js';
import { tempName, writeFileAtomic } from '../util/fs.js';
import { exitWithParent, parentFromArgs, WORKER_FLAG } from './lifetime.js';
import { openStorage } from './open-storage.js';
import { EVOLUTION_NICE, lowerProcessPriority } from './priority.js';

export interface EvolveOptions {
  /** Epochs of the EvoRec update. */
  epochs: number;
  lr: number;
  batchSize: number;
  /** SASRec epochs (the Forget filter; a few are enough). */
  sasrecEpochs: number;
  /** Share of decoder layers Locate keeps. */
  share: number;
  /** Forget on/off and its removal ratio. */
  forget: boolean;
  forgetRatio: number;
  /** Candidate set size of the validation and gate slices. */
  candidates: number;
  /** Users in the validation (early stopping) and gate slices. */
  validUsers: number;
  seed: number;
}

export const DEFAULT_EVOLVE: EvolveOptions = {
  epochs: 2,
  lr: 4e-4,
  batchSize: 16,
  sasrecEpochs: 3,
  share: 0.3,
  forget: true,
  forgetRatio: 0.2,
  candidates: 20,
  validUsers: 200,
  seed: 42,
};

export interface WorkerJob {
  type: 'job';
  /** The storage as the service opened it (a SQLite path or a PostgreSQL URL; never on the command line). */
  db: string;
  /** The base version's LLMRec folder. */
  folder: string;
  /** Where the new version's folder goes (must not exist). */
  out: string;
  fromSeq: number;
  toSeq: number;
  options: EvolveOptions;
}

export interface GateScores {
  /** Which held-out targets: the new period's test targets of users active in it (never trained on). */
  slice: string;
  samples: number;
  /** NDCG@3 of the base version and of the evolved one, on the same samples and candidates, plain histories. */
  before: number;
  after: number;
  /** The same per user group of the slice (active, new, ...): NDCG@3 before and after, and the group's targets. */
  groups?: Record<string, { before: number; after: number; samples: number }>;
}

export interface WorkerResult {
  gate: GateScores;
  /** Early-stopping score (validation targets, filtered histories). */
  bestValid: number | null;
  steps: number;
  trainSamples: number;
  trainableParameters: number;
  loraParameters: number;
  layers: number[] | null;
  forgotten: { users: number; items: number; considered: number } | null;
  interactions: { base: number; new: number };
  seconds: number;
}

export type WorkerMessage =
  | { type: 'progress'; stage: string; done: number; total: number }
  | { type: 'log'; line: string }
  | { type: 'done'; result: WorkerResult }
  | { type: 'error'; message: string };

/** NDCG@3 on the gate slice, over all its targets (what `validationNdcg3` gives) and per user group, from one scoring pass. */
function gateNdcg3(model: LLMRec, samples: readonly Sample[], candidates: readonly number[][], historyOf: (s: Sample) => number[]): { all: number; groups: Record<string, { ndcg3: number; samples: number }> } {
  if (!samples.length) return { all: NaN, groups: {} };
  const scores = model.score(samples.map(historyOf), candidates);
  const all = new MetricAccumulator([3]);
  const byGroup = new Map<string, { acc: MetricAccumulator; n: number }>();
  samples.forEach((s, i) => {
    const positive = candidates[i].indexOf(s.item);
    all.add(scores[i], positive);
    const name = s.group ?? 'other';
    let g = byGroup.get(name);
    if (!g) byGroup.set(name, (g = { acc: new MetricAccumulator([3]), n: 0 }));
    g.acc.add(scores[i], positive);
    g.n++;
  });
  const groups = Object.fromEntries([...byGroup].sort(([a], [b]) => a.localeCompare(b)).map(([k, g]) => [k, { ndcg3: g.acc.mean()['NDCG@3'], samples: g.n }]));
  return { all: all.mean()['NDCG@3'], groups };
}

async function* iterate<T>(xs: readonly T[]): AsyncIterable<T> {
  yield* xs;
}

/** Hard-links (or copies) the backbone files of an LLMRec folder: everything but the adapter and manifest. */
function linkBackbone(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    if (name === LLMREC_FILE || name === 'adapter' || name === 'results.json') continue;
    const src = join(from, name);
    if (!statSync(src).isFile()) continue;
    try {
      linkSync(src, join(to, name));
    } catch {
      copyFileSync(src, join(to, name));
    }
  }
}

export async function runEvolution(job: WorkerJob, send: (m: WorkerMessage) => void): Promise<WorkerResult> {
  const t0 = performance.now();
  const o = { ...DEFAULT_EVOLVE, ...job.options };
  const progress = (stage: string, done = 0, total = 0) => send({ type: 'progress', stage, done, total });
  const log = (line: string) => send({ type: 'log', line });

  progress('read the log');
  // The service's own storage string: a SQLite file read-only (WAL lets it read while the service
  // appends), or the PostgreSQL URL with read-only sessions.
  const storage = await openStorage(job.db, { readonly: true });
  let rows;
  let items;
  try {
    rows = await storage.interactions(0, job.toSeq);
    items = await storage.items();
  } finally {
    await storage.close();
  }
  const nBase = rows.filter((r) => r.seq <= job.fromSeq).length;
  const nNew = rows.length - nBase;
  if (nBase === 0) throw new RangeError(`the base version was trained up to seq ${job.fromSeq}, which leaves no interactions before its cut-off; register a version trained on the log (POST /v1/versions with trainedUpTo)`);
  if (nNew === 0) throw new RangeError(`no interactions after seq ${job.fromSeq}`);
  // The log's order is the period order: seq stands for time.
  const raw: RawInteraction[] = rows.map((r) => ({ user: r.user, item: r.item, timestamp: r.seq }));
  const dataset = await Dataset.fromStreams('service-log', iterate(raw), iterate(items.map((it): RawItem => ({ item: it.id, title: it.title }))));

  progress('load the model');
  const { model, manifest } = await loadLLMRec(job.folder, dataset.titles);
  const H = manifest.prompt.history;
  const split = new PeriodSplit(dataset, { periods: 1, base: nBase / rows.length, history: H });
  if (split.boundaries[1] !== nBase) throw new Error(`period cut at row ${split.boundaries[1]}, expected ${nBase}`);
  const p1 = split.periods[1];
  log(`${nBase} base and ${nNew} new interactions; ${p1.train.length} training, ${p1.valid.length} validation and ${p1.test.filter((s) => s.group !== 'inactive').length} gate targets`);
  if (p1.train.length === 0) throw new RangeError(`the ${nNew} new interactions give no training targets (each user needs at least three interactions, two of them new)`);

  const dec = model.decoder;
  const adapterName = manifest.adapter ? 'default' : null;
  if (!adapterName) throw new RangeError(`${job.folder}: the model has no LoRA adapter to evolve`);
  const adapter = dec.adapter(adapterName);
  adapter.freeze();
  dec.freezeBase();
  dec.setActiveAdapters(adapterName);

  // Fixed slices: validation targets for early stopping, held-out test targets of the period's users for the gate.
  const cs = new CandidateSampler(split);
  const pick = (samples: Sample[], purpose: string) => {
    const rand = keyedRandom(o.seed, 'serve', purpose);
    return samples.map((s) => ({ s, k: rand() })).sort((a, b) => a.k - b.k).slice(0, o.validUsers).map((x) => x.s);
  };
  const gateSamples = pick(p1.test.filter((s) => s.group !== 'inactive'), 'gate');
  const validSamples = p1.valid.length > 0 ? pick(p1.valid, 'valid') : gateSamples;
  const gateCands = gateSamples.map((s) => cs.candidates(s, 1, 'test', { size: o.candidates, seed: o.seed }));
  const validCands = validSamples.map((s) => cs.candidates(s, 1, 'valid', { size: o.candidates, seed: o.seed }));
  const plain = (s: Sample) => split.history(s, H);
  const beforeScores = gateNdcg3(model, gateSamples, gateCands, plain);
  const before = beforeScores.all;
  log(`gate before: NDCG@3 ${before.toFixed(4)} on ${gateSamples.length} targets`);

  progress('train SASRec', 0, o.sasrecEpochs);
  const { model: sasrec } = await trainSasrecUpTo(split, 1, {
    epochs: o.sasrecEpochs,
    initSeed: o.seed,
    train: { validUsers: o.validUsers, seed: o.seed, onEpoch: (e) => progress('train SASRec', e.epoch + 1, o.sasrecEpochs) },
  });

  progress('EvoRec update', 0, 1);
  let lastSent = 0;
  // The experiment's own period step (evolve/period.ts), with the service's slices and settings.
  const { report } = await updateForPeriod({
    split,
    t: 1,
    model,
    strategy: evorecStrategy('evorec', { share: o.share, forget: o.forget, forgetOptions: { ratio: o.forgetRatio } }),
    adapter,
    lora: {},
    sasrec,
    update: {
      epochs: o.epochs,
      lr: o.lr,
      batchSize: o.batchSize,
      evalsPerEpoch: 1,
      patience: 2,
      onStep: (step, steps) => {
        const now = performance.now();
        if (now - lastSent > 200 || step === steps) {
          lastSent = now;
          progress('EvoRec update', step, steps);
        }
      },
    },
    base: {},
    history: H,
    seed: o.seed,
    validate: (historyOf) => (validSamples.length ? validationNdcg3(model, validSamples, validCands, historyOf) : 0),
    log,
  });
  const afterScores = gateNdcg3(model, gateSamples, gateCands, plain);
  const after = afterScores.all;
  const groups = Object.fromEntries(
    Object.entries(afterScores.groups).map(([g, a]) => [g, { before: beforeScores.groups[g].ndcg3, after: a.ndcg3, samples: a.samples }]),
  );
  log(`gate after: NDCG@3 ${after.toFixed(4)}`);

  progress('save the version');
  const result: WorkerResult = {
    gate: { slice: 'test targets of the new period (users with new interactions)', samples: gateSamples.length, before, after, groups },
    bestValid: report.training?.bestScore ?? null,
    steps: report.steps,
    trainSamples: report.trainSamples,
    trainableParameters: report.trainableParameters,
    loraParameters: report.loraParameters,
    layers: report.located?.layers ?? null,
    forgotten: report.forgotten ?? null,
    interactions: { base: nBase, new: nNew },
    seconds: (performance.now() - t0) / 1000,
  };
  const tmp = tempName(job.out);
  rmSync(tmp, { recursive: true, force: true });
  try {
    linkBackbone(job.folder, tmp);
    await saveModelAdapter(join(tmp, 'adapter'), dec, adapterName, { baseModel: '.' });
    // The Forget filter's SASRec is the new version's retriever (full-catalogue recommendations).
    await saveSASRec(join(tmp, RETRIEVER_FOLDER), sasrec, dataset.itemIds, { trained_up_to_seq: job.toSeq, role: 'retriever of the evolved LLMRec (trained as its Forget filter)' });
    // The parent's prompt and scoring settings: the new version ranks as its parent did.
    const { format, prompt } = manifest;
    writeFileAtomic(join(tmp, LLMREC_FILE), JSON.stringify({ format, prompt, scoring: model.scoring, adapter: 'adapter', evolved_from: job.folder, trained_up_to_seq: job.toSeq, evolution: result }, null, 2) + '\n');
    renameSync(tmp, job.out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return result;
}

// Entry point when forked by the service.
if (process.send && process.argv[2] === WORKER_FLAG) {
  // The parent went away while the job computes (the event loop is busy and sees no disconnect): a thread kills the process.
  exitWithParent(parentFromArgs(process.argv) ?? process.ppid);
  // An evolution is background work: the service's event loop, then scoring, come first on busy cores.
  lowerProcessPriority(EVOLUTION_NICE);
  let finished = false;
  // The parent went away (killed, or it stopped the job): stop at once.
  process.on('disconnect', () => process.exit(finished ? 0 : 3));
  const finish = (m: WorkerMessage) => {
    finished = true;
    process.send!(m, undefined, undefined, () => process.disconnect());
  };
  process.once('message', (m: WorkerJob) => {
    runEvolution(m, (msg) => process.send!(msg)).then(
      (result) => finish({ type: 'done', result }),
      (e: unknown) => finish({ type: 'error', message: e instanceof Error ? e.message : String(e) }),
    );
  });
}
