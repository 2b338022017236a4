/** `evorec sasrec` and `evorec evaluate`: train and evaluate recommenders on a period of the split. */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { setThreads } from '../core/index.js';
import { loadSplit } from '../data/prepare.js';
import { checkCandidateSize } from '../data/errors.js';
import type { PeriodSplit, Sample } from '../data/periods.js';
import { evaluate, randomResult, resultsMarkdown, sampleFilter, validationViews, type BatchScorer, type EvalResult } from '../eval/evaluate.js';
import { probeResults } from '../eval/probes.js';
import { evaluateFull, evaluateTwoStage, popularityFull, type FullScorer, type Reranker } from '../eval/full-ranking.js';
import { CandidateSampler } from '../data/candidates.js';
import { isLLMRecFolder, loadLLMRec } from '../models/llmrec-io.js';
import { choosePriorWeight, llmrecFullScorer, llmrecScorer } from '../models/llmrec.js';
import { chooseFusionWeight, hybridScorer } from '../models/hybrid.js';
import { SASRec } from '../models/sasrec.js';
import { loadSASRec, saveSASRec } from '../models/sasrec-io.js';
import { sasrecFullScorer, sasrecScorer, trainSASRec } from '../models/sasrec-train.js';
import { writeFileAtomic } from '../util/fs.js';
import { addCleanOptions, addDataOptions, addPeriodOptions, cleanFrom, periodsFrom, sourceFrom } from './data-commands.js';
import { parseFloatArg, parseIntArg } from './main.js';
import { progressBar } from './progress.js';

/** A validation curve of a weight chosen on a grid, as "w: NDCG@3, ..." for the progress output. */
export function weightCurve(c: { grid: readonly number[]; ndcg3: readonly number[] }): string {
  return c.ndcg3.map((v, i) => `${c.grid[i]}: ${v.toFixed(4)}`).join(', ');
}

/** Evaluates a scorer on period t's test sets (the matched and uniform views) beside random, popularity and the probes. */
export async function evaluateWithBaselines(
  split: PeriodSplit,
  t: number,
  name: string,
  scorer: BatchScorer,
  o: { candidates: number; seed: number; quiet?: boolean; filter?: (s: Sample) => boolean; full?: FullViews; sampled?: readonly ('matched' | 'uniform')[] },
): Promise<{ results: Record<string, Record<string, EvalResult>>; markdown: string }> {
  const results: Record<string, Record<string, EvalResult>> = {};
  const sections: string[] = [];
  const cs = new CandidateSampler(split);
  for (const sampler of o.sampled ?? (['matched', 'uniform'] as const)) {
    const bar = progressBar(o.quiet);
    const opts = { sampler, size: o.candidates, seed: o.seed, filter: o.filter, candidates: (s: Sample) => cs.candidates(s, t, 'test', { sampler, size: o.candidates, seed: o.seed }) };
    const probes = await probeResults(split, t, opts);
    const r: Record<string, EvalResult> = {
      random: randomResult(split, t, opts),
      ...probes,
      [name]: await evaluate(split, t, scorer, { ...opts, onProgress: (d, n) => bar.update(`eval ${sampler}`, d, n) }),
    };
    bar.stop();
    results[sampler] = r;
    sections.push(`### P${t} test, ${o.candidates} candidates, ${sampler} negatives\n\n${resultsMarkdown(r)}\n`);
  }
  if (o.full) {
    const f = o.full;
    const r: Record<string, EvalResult> = { popularity: await evaluateFull(split, t, popularityFull(split, t), { filter: o.filter }) };
    if (f.exact) {
      const bar = progressBar(o.quiet);
      r[f.exactUsers ? `${name} (${f.exactUsers} users)` : name] = await evaluateFull(split, t, f.exact, {
        filter: f.exactFilter ?? o.filter,
        batchSize: f.exactUsers ? 1 : 256,
        onProgress: (d, n) => bar.update('eval full catalogue', d, n),
      });
      bar.stop();
    }
    if (f.retriever) r[f.retrieverName ?? 'retriever'] = await evaluateFull(split, t, f.retriever, { filter: o.filter });
    if (f.retriever && f.rerank) {
      const bar = progressBar(o.quiet);
      r[`${name} (two-stage)`] = await evaluateTwoStage(split, t, f.retriever, f.rerank, { filter: o.filter, depth: f.depth ?? 50, onProgress: (d, n) => bar.update('eval two-stage', d, n) });
      bar.stop();
    }
    results.full = r;
    sections.push(`### P${t} test, full catalogue (every item the user has not touched)\n\n${resultsMarkdown(r, ['HR@10', 'NDCG@10', 'HR@20', 'NDCG@20', `recall@${f.depth ?? 50}`])}\n`);
  }
  return { results, markdown: sections.join('\n') };
}

/** The full-catalogue view of `evaluateWithBaselines`: exact scores of every item, and/or retrieve-then-rerank. */
export interface FullViews {
  /** The model's exact scores of every item (SASRec: all evaluated users; LLMRec: a fixed sample). */
  exact?: FullScorer;
  exactFilter?: (s: Sample) => boolean;
  exactUsers?: number;
  /** A retriever over the whole catalogue (SASRec) and the model as re-ranker of its top `depth`. */
  retriever?: FullScorer;
  retrieverName?: string;
  rerank?: Reranker;
  depth?: number;
}

export function registerRecCommands(program: Command): void {
  const cmd = program.command('sasrec').description('train SASRec on the data up to a period, save it, and evaluate it on that period');
  addDataOptions(cmd);
  addCleanOptions(cmd);
  addPeriodOptions(cmd);
  cmd
    .option('--period <t>', 'train on all training targets up to period t', parseIntArg('--period', 0), 0)
    .option('--init <dir>', 'continue from a saved SASRec folder (for example the previous period)')
    .option('--epochs <n>', 'maximum epochs', parseIntArg('--epochs', 1), 30)
    .option('--batch <n>', 'sequences per batch', parseIntArg('--batch', 1), 128)
    .option('--lr <x>', 'learning rate', parseFloatArg('--lr'), 1e-3)
    .addOption(new Option('--loss <kind>', 'training loss').choices(['bce', 'softmax']).default('bce'))
    .addOption(new Option('--negatives <kind>', 'BCE negatives').choices(['uniform', 'popularity']).default('popularity'))
    .option('--hidden <d>', 'hidden size', parseIntArg('--hidden', 1), 64)
    .option('--blocks <n>', 'attention blocks', parseIntArg('--blocks', 1), 2)
    .option('--max-len <n>', 'window of most recent items', parseIntArg('--max-len', 1), 50)
    .option('--dropout <p>', 'dropout', parseFloatArg('--dropout'), 0.2)
    .option('--patience <n>', 'epochs without validation gain before stopping', parseIntArg('--patience', 1), 3)
    .option('--threads <n>', 'compute threads', parseIntArg('--threads', 1))
    .option('--out <dir>', 'output folder', 'runs/sasrec')
    .option('--json', 'print {"out", "training", "results"} (results.json with the folder) instead of the tables')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      const { split } = await loadSplit(sourceFrom(o), cleanFrom(o), periodsFrom(o));
      checkCandidateSize(o.candidates, split.dataset.numItems);
      if (o.period < 0 || o.period >= split.numPeriods) throw new RangeError(`--period must be in [0, ${split.numPeriods - 1}], got ${o.period}`);
      const model = o.init
        ? (await loadSASRec(o.init)).model
        : new SASRec({ numItems: split.dataset.numItems, hidden: o.hidden, blocks: o.blocks, maxLen: o.maxLen, dropout: o.dropout });
      if (model.config.numItems !== split.dataset.numItems) throw new RangeError(`${o.init}: model has ${model.config.numItems} items, the data ${split.dataset.numItems}`);
      mkdirSync(o.out, { recursive: true });
      const bar = progressBar(o.quiet);
      let epoch = 0;
      const train = await trainSASRec(model, split, o.period, {
        epochs: o.epochs,
        batchSize: o.batch,
        lr: o.lr,
        loss: o.loss,
        negatives: o.negatives,
        patience: o.patience,
        checkpoint: join(o.out, 'train.ckpt'),
        onStep: (s, n) => bar.update(`epoch ${epoch + 1}`, s, n),
        onEpoch: (e) => {
          epoch = e.epoch;
          bar.stop();
          if (!o.quiet) process.stderr.write(`epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, valid NDCG@10 ${e.validNdcg10.toFixed(4)} (${e.seconds.toFixed(0)} s)\n`);
        },
      });
      bar.stop();
      await saveSASRec(o.out, model, split.dataset.itemIds, { trained_up_to_period: o.period, training: train });
      const { results, markdown } = await evaluateWithBaselines(split, o.period, 'sasrec', sasrecScorer(model, split), { ...o, full: { exact: sasrecFullScorer(model, split) } });
      writeFileAtomic(join(o.out, 'results.json'), JSON.stringify({ training: train, results }, null, 2) + '\n');
      writeFileAtomic(join(o.out, 'results.md'), markdown);
      if (o.json) {
        process.stdout.write(JSON.stringify({ out: o.out, training: train, results }, null, 2) + '\n');
        return;
      }
      process.stdout.write(`${markdown}\nSASRec trained ${train.epochs} epochs (best ${train.bestEpoch}) in ${train.seconds.toFixed(0)} s; saved to ${o.out}\n`);
    });

  const ev = program.command('evaluate').description('evaluate a saved model on the test sets of a period, beside random and popularity');
  addDataOptions(ev);
  addCleanOptions(ev);
  addPeriodOptions(ev);
  ev.requiredOption('--model <dir>', 'a saved model folder (SASRec or LLMRec)')
    .option('--period <t>', 'period whose test sets to use', parseIntArg('--period', 0), 0)
    .option('--eval-users <n>', 'test users to evaluate on (fixed sample; 0 = all)', parseIntArg('--eval-users', 0), 0)
    .addOption(new Option('--calibration <how>', 'LLMRec ranking score (default: the folder\'s setting)').choices(['prior', 'none']))
    .option('--prior-weight <w>', 'LLMRec: with prior calibration, the weight of the history-free score in [0, 1], or auto (chosen on P0 validation, matched and uniform views; sets prior calibration) (default: the folder\'s setting)', (v: string) => (v === 'auto' ? 'auto' : parseFloatArg('--prior-weight', 0, 1)(v)))
    .option('--fuse <dir>', 'LLMRec: rank with the score-level hybrid of this SASRec folder and the LLMRec ((1 - lambda) z(SASRec) + lambda z(LLMRec) within each set; docs/models.md)')
    .option('--fuse-weight <lambda>', 'the hybrid\'s LLMRec weight in [0, 1] (default: chosen on P0 validation, matched and uniform views)', parseFloatArg('--fuse-weight', 0, 1))
    .option('--valid-users <n>', 'validation users that choose --fuse-weight and --prior-weight auto', parseIntArg('--valid-users', 1), 300)
    .option('--sasrec-history <n>', 'SASRec (--model): read only the last n items of each history, as an LLMRec prompt of n titles does (default: the model\'s maxLen)', parseIntArg('--sasrec-history', 1))
    .option('--retriever <dir>', 'a SASRec folder: adds the two-stage full-catalogue view (it retrieves the top --depth, the model re-ranks) and its own full ranking')
    .option('--depth <n>', 'retrieval depth of the two-stage view', parseIntArg('--depth', 1), 50)
    .option('--full-users <n>', 'LLMRec: also score every title exactly for this many test users (fixed sample; slow)', parseIntArg('--full-users', 0), 0)
    .option('--threads <n>', 'compute threads', parseIntArg('--threads', 1))
    .option('--views <list>', 'views to evaluate (comma-separated: matched, uniform, full; full needs --retriever or --full-users, or a SASRec model)', 'matched,uniform,full')
    .option('--out <file>', 'also write the results as JSON')
    .option('--json', 'print {"model", "period", "results"} instead of the tables (results as --out writes them)')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      const cfgFile = join(o.model, 'config.json');
      if (!existsSync(cfgFile)) throw new RangeError(`${cfgFile}: not found`);
      const type = JSON.parse(readFileSync(cfgFile, 'utf8')).model_type;
      const { split } = await loadSplit(sourceFrom(o), cleanFrom(o), periodsFrom(o));
      checkCandidateSize(o.candidates, split.dataset.numItems);
      if (o.period < 0 || o.period >= split.numPeriods) throw new RangeError(`--period must be in [0, ${split.numPeriods - 1}], got ${o.period}`);
      let scorer: BatchScorer;
      const views = String(o.views).split(',').map((v) => v.trim()).filter(Boolean);
      const unknown = views.filter((v) => !['matched', 'uniform', 'full'].includes(v));
      if (unknown.length || !views.length) throw new RangeError(`--views: expected a list of matched, uniform, full, got "${o.views}"`);
      const sampled = (['matched', 'uniform'] as const).filter((v) => views.includes(v));
      const full: FullViews = {};
      let hybridName: string | undefined;
      // The P0 validation sets that --prior-weight auto and --fuse choose on, drawn once.
      let validSets: ReturnType<typeof validationViews> | undefined;
      const valid = () => (validSets ??= validationViews(split, o.validUsers, o.candidates, o.seed));
      if (o.retriever) {
        const r = await loadSASRec(o.retriever);
        checkItems(o.retriever, r.itemIds, split);
        full.retriever = sasrecFullScorer(r.model, split);
        full.retrieverName = 'sasrec (retriever)';
        full.depth = o.depth;
      }
      if (type === 'sasrec') {
        const { model, itemIds } = await loadSASRec(o.model);
        checkItems(o.model, itemIds, split);
        scorer = sasrecScorer(model, split, 256, o.sasrecHistory);
        full.exact = sasrecFullScorer(model, split, o.sasrecHistory);
      } else if (isLLMRecFolder(o.model)) {
        if (o.sasrecHistory) throw new RangeError(`--sasrec-history: ${o.model} is an LLMRec folder; the option applies to a SASRec --model`);
        const { model } = await loadLLMRec(o.model, split.dataset.titles);
        if (o.calibration) model.scoring.calibration = o.calibration;
        if (o.priorWeight === 'auto') {
          const sets = valid();
          const c = choosePriorWeight(model, sets, (s) => split.history(s, model.prompts.options.history));
          if (!o.quiet) process.stderr.write(`calibration: prior weight ${c.weight} on ${sets[0].samples.length} P0 validation users (NDCG@3, mean of matched and uniform: ${weightCurve(c)})\n`);
        } else if (o.priorWeight !== undefined) model.scoring.priorWeight = o.priorWeight;
        scorer = llmrecScorer(model, split);
        if (o.fuse) {
          const { model: sas, itemIds } = await loadSASRec(o.fuse);
          checkItems(o.fuse, itemIds, split);
          let lambda = o.fuseWeight;
          if (lambda === undefined) {
            const sets = valid();
            const c = chooseFusionWeight(model, sas, split, sets);
            lambda = c.weight;
            if (!o.quiet) process.stderr.write(`hybrid: LLMRec weight ${lambda} on ${sets[0].samples.length} P0 validation users (NDCG@3, mean of matched and uniform: ${weightCurve(c)})\n`);
          }
          scorer = hybridScorer(model, sas, split, lambda!);
          hybridName = `hybrid (LLMRec weight ${lambda})`;
        }
        const rerank = scorer;
        full.rerank = (samples, lists) => rerank.batch(samples, lists);
        if (o.fullUsers > 0) {
          full.exact = llmrecFullScorer(model, split);
          full.exactUsers = o.fullUsers;
          full.exactFilter = sampleFilter(split.periods[o.period].test, o.fullUsers, o.seed, 'full-catalogue');
        }
      } else throw new RangeError(`${o.model}: neither a SASRec folder nor an LLMRec folder (llmrec.json); model_type ${JSON.stringify(type)}`);
      const filter = sampleFilter(split.periods[o.period].test, o.evalUsers, o.seed, 'test');
      const name = type === 'sasrec' ? (o.sasrecHistory ? `sasrec (last ${o.sasrecHistory} items)` : 'sasrec') : hybridName ?? 'llmrec';
      const { results, markdown } = await evaluateWithBaselines(split, o.period, name, scorer, { ...o, filter, full: views.includes('full') ? full : undefined, sampled });
      if (o.out) writeFileAtomic(o.out, JSON.stringify(results, null, 2) + '\n');
      if (o.json) process.stdout.write(JSON.stringify({ model: o.model, period: o.period, results }, null, 2) + '\n');
      else process.stdout.write(markdown);
    });
}

function checkItems(dir: string, itemIds: readonly string[], split: PeriodSplit): void {
  if (itemIds.length !== split.dataset.numItems || itemIds.some((id, i) => id !== split.dataset.itemIds[i])) {
    throw new RangeError(`${dir}: the model's items do not match the data's (train and evaluate on the same --data and cleaning)`);
  }
}
