/** `evorec sasrec` and `evorec evaluate`: train and evaluate recommenders on a period of the split. */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { setThreads } from '../core/index.js';
import { loadSplit } from '../data/prepare.js';
import type { PeriodSplit, Sample } from '../data/periods.js';
import { evaluate, randomResult, resultsMarkdown, sampleFilter, type BatchScorer, type EvalResult } from '../eval/evaluate.js';
import { probeResults } from '../eval/probes.js';
import { CandidateSampler } from '../data/candidates.js';
import { isLLMRecFolder, loadLLMRec } from '../models/llmrec-io.js';
import { llmrecScorer } from '../models/llmrec.js';
import { SASRec } from '../models/sasrec.js';
import { loadSASRec, saveSASRec } from '../models/sasrec-io.js';
import { sasrecScorer, trainSASRec } from '../models/sasrec-train.js';
import { writeFileAtomic } from '../util/fs.js';
import { addCleanOptions, addDataOptions, addPeriodOptions, cleanFrom, periodsFrom, sourceFrom } from './data-commands.js';
import { parseFloatArg, parseIntArg } from './main.js';
import { progressBar } from './progress.js';

/** Evaluates a scorer on period t's test sets (the matched and uniform views) beside random, popularity and the probes. */
export async function evaluateWithBaselines(
  split: PeriodSplit,
  t: number,
  name: string,
  scorer: BatchScorer,
  o: { candidates: number; seed: number; quiet?: boolean; filter?: (s: Sample) => boolean },
): Promise<{ results: Record<string, Record<string, EvalResult>>; markdown: string }> {
  const results: Record<string, Record<string, EvalResult>> = {};
  const sections: string[] = [];
  const cs = new CandidateSampler(split);
  for (const sampler of ['matched', 'uniform'] as const) {
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
  return { results, markdown: sections.join('\n') };
}

export function registerRecCommands(program: Command): void {
  const cmd = program.command('sasrec').description('train SASRec on the data up to a period, save it, and evaluate it on that period');
  addDataOptions(cmd);
  addCleanOptions(cmd);
  addPeriodOptions(cmd);
  cmd
    .option('--period <t>', 'train on all training targets up to period t', parseIntArg('--period'), 0)
    .option('--init <dir>', 'continue from a saved SASRec folder (for example the previous period)')
    .option('--epochs <n>', 'maximum epochs', parseIntArg('--epochs'), 30)
    .option('--batch <n>', 'sequences per batch', parseIntArg('--batch'), 128)
    .option('--lr <x>', 'learning rate', parseFloatArg('--lr'), 1e-3)
    .addOption(new Option('--loss <kind>', 'training loss').choices(['bce', 'softmax']).default('bce'))
    .addOption(new Option('--negatives <kind>', 'BCE negatives').choices(['uniform', 'popularity']).default('popularity'))
    .option('--hidden <d>', 'hidden size', parseIntArg('--hidden'), 64)
    .option('--blocks <n>', 'attention blocks', parseIntArg('--blocks'), 2)
    .option('--max-len <n>', 'window of most recent items', parseIntArg('--max-len'), 50)
    .option('--dropout <p>', 'dropout', parseFloatArg('--dropout'), 0.2)
    .option('--patience <n>', 'epochs without validation gain before stopping', parseIntArg('--patience'), 3)
    .option('--threads <n>', 'compute threads', parseIntArg('--threads'))
    .option('--out <dir>', 'output folder', 'runs/sasrec')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      const { split } = await loadSplit(sourceFrom(o), cleanFrom(o), periodsFrom(o));
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
      const { results, markdown } = await evaluateWithBaselines(split, o.period, 'sasrec', sasrecScorer(model, split), o);
      writeFileAtomic(join(o.out, 'results.json'), JSON.stringify({ training: train, results }, null, 2) + '\n');
      writeFileAtomic(join(o.out, 'results.md'), markdown);
      process.stdout.write(`${markdown}\nSASRec trained ${train.epochs} epochs (best ${train.bestEpoch}) in ${train.seconds.toFixed(0)} s; saved to ${o.out}\n`);
    });

  const ev = program.command('evaluate').description('evaluate a saved model on the test sets of a period, beside random and popularity');
  addDataOptions(ev);
  addCleanOptions(ev);
  addPeriodOptions(ev);
  ev.requiredOption('--model <dir>', 'a saved model folder (SASRec or LLMRec)')
    .option('--period <t>', 'period whose test sets to use', parseIntArg('--period'), 0)
    .option('--eval-users <n>', 'test users to evaluate on (fixed sample; 0 = all)', parseIntArg('--eval-users'), 0)
    .addOption(new Option('--calibration <how>', 'LLMRec ranking score (default: the folder\'s setting)').choices(['prior', 'none']))
    .option('--out <file>', 'also write the results as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const cfgFile = join(o.model, 'config.json');
      if (!existsSync(cfgFile)) throw new RangeError(`${cfgFile}: not found`);
      const type = JSON.parse(readFileSync(cfgFile, 'utf8')).model_type;
      const { split } = await loadSplit(sourceFrom(o), cleanFrom(o), periodsFrom(o));
      if (o.period < 0 || o.period >= split.numPeriods) throw new RangeError(`--period must be in [0, ${split.numPeriods - 1}], got ${o.period}`);
      let scorer: BatchScorer;
      if (type === 'sasrec') {
        const { model, itemIds } = await loadSASRec(o.model);
        if (itemIds.length !== split.dataset.numItems || itemIds.some((id, i) => id !== split.dataset.itemIds[i])) {
          throw new RangeError(`${o.model}: the model's items do not match the data's (train and evaluate on the same --data and cleaning)`);
        }
        scorer = sasrecScorer(model, split);
      } else if (isLLMRecFolder(o.model)) {
        const { model } = await loadLLMRec(o.model, split.dataset.titles);
        if (o.calibration) model.scoring.calibration = o.calibration;
        scorer = llmrecScorer(model, split);
      } else throw new RangeError(`${o.model}: neither a SASRec folder nor an LLMRec folder (llmrec.json); model_type ${JSON.stringify(type)}`);
      const filter = sampleFilter(split.periods[o.period].test, o.evalUsers, o.seed, 'test');
      const { results, markdown } = await evaluateWithBaselines(split, o.period, type === 'sasrec' ? 'sasrec' : 'llmrec', scorer, { ...o, filter });
      if (o.out) writeFileAtomic(o.out, JSON.stringify(results, null, 2) + '\n');
      process.stdout.write(markdown);
    });
}
