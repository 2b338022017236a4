/**
 * `evorec experiment`: the main job, a thin shell over `runExperiment` (src/experiment/experiment.ts):
 * parses the options, prints the library's progress events on stderr, and prints the report (or
 * results.json with --json) on stdout. `evorec report` rewrites the reports from results.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { setThreads } from '../core/index.js';
import { DECODER_PRESETS } from '../io/hf-config.js';
import { parseBudgets } from '../evolve/period.js';
import { mergeSeeds } from '../experiment/merge.js';
import type { ExperimentView } from '../evolve/runner.js';
import { strategyRegistry } from '../evolve/strategies.js';
import { EXPERIMENT_DEFAULTS, resolveStrategies, runExperiment } from '../experiment/experiment.js';
import { readExperimentResults, writeExperimentReports } from '../report/experiment-files.js';
import { probeCells } from '../report/experiment-report.js';
import { addCleanOptions, addDataOptions, addPeriodOptions, cleanFrom, parseSamplers, sourceFrom } from './data-commands.js';
import { parseFloatArg, parseIntArg } from './main.js';
import { formatSeconds, progressBar } from './progress.js';

/**
 * The defaults of `evorec experiment` that the docs quote (all of them: `EXPERIMENT_DEFAULTS`), sized so
 * that the whole comparison (six strategies, three periods) finishes within 15 minutes on a 2-core machine
 * (measured in docs/evolution.md). One training seed is a demonstration: claims need `--train-seeds 3` or
 * more (docs/results/).
 */
export const DEFAULTS = {
  users: EXPERIMENT_DEFAULTS.users,
  trainSeeds: EXPERIMENT_DEFAULTS.trainSeeds,
  evalUsers: EXPERIMENT_DEFAULTS.evalUsers,
  validUsers: EXPERIMENT_DEFAULTS.validUsers,
};

/** `--samplers` of the experiment: candidate samplers, and 'two-stage' (the full catalogue) after the first. */
export function parseViews(list: string): ExperimentView[] {
  const names = String(list).split(',').map((x) => x.trim()).filter(Boolean);
  if (names[0] === 'two-stage') throw new RangeError('--samplers: the first view is the headline and the validation view, so it must be a candidate sampler, not two-stage');
  return [...parseSamplers(names.filter((x) => x !== 'two-stage').join(',')), ...(names.includes('two-stage') ? ['two-stage' as const] : [])];
}

export function registerExperimentCommand(program: Command): void {
  const cmd = program.command('experiment').description('compare evolution strategies period by period (the main job)');
  addDataOptions(cmd);
  // The defaults fit 15 minutes on two cores (docs/evolution.md); --users 0 --train-seeds 3 is the full comparison.
  addCleanOptions(cmd, { users: EXPERIMENT_DEFAULTS.users });
  addPeriodOptions(cmd);
  cmd
    .option('--strategies <list>', `comma-separated strategies (${Object.keys(strategyRegistry()).join(', ')})`, EXPERIMENT_DEFAULTS.strategies.join(','))
    .option('--base-model <dir>', 'start every seed from this LLMRec folder (evorec train-base, --tune lora or full); a fully tuned one gets a zero-initialised LoRA adapter, so updates train LoRA only. Default: the shipped data/base-deep for the embedded Beauty data at --history 10; none (train a base adapter per seed on P0 from --backbone) otherwise or with --base-model none')
    .option('--backbone <dir>', 'pretrained backbone folder; pretrained here first when it does not exist (default: the one shipped in data/)', EXPERIMENT_DEFAULTS.backbone)
    .addOption(new Option('--preset <name>', 'backbone preset when pretraining').choices(Object.keys(DECODER_PRESETS)).default(EXPERIMENT_DEFAULTS.preset))
    .option('--pretrain-steps <n>', 'pretraining steps when the backbone must be pretrained', parseIntArg('--pretrain-steps'))
    .option('--lora-rank <r>', 'LoRA rank', parseIntArg('--lora-rank', 1), EXPERIMENT_DEFAULTS.loraRank)
    .addOption(new Option('--calibration <how>', 'LLMRec ranking score: prior-calibrated or plain likelihood').choices(['prior', 'none']).default(EXPERIMENT_DEFAULTS.calibration))
    .option('--lora-alpha <a>', 'LoRA alpha', parseFloatArg('--lora-alpha'), EXPERIMENT_DEFAULTS.loraAlpha)
    .option('--base-epochs <n>', 'epochs of the base adapter on P0 (and of retrain)', parseIntArg('--base-epochs', 0), EXPERIMENT_DEFAULTS.baseEpochs)
    .option('--base-lr <x>', 'learning rate of the base adapter', parseFloatArg('--base-lr'), EXPERIMENT_DEFAULTS.baseLr)
    .option('--update-epochs <n>', 'epochs of each incremental update', parseIntArg('--update-epochs', 0), EXPERIMENT_DEFAULTS.updateEpochs)
    .option('--update-lr <x>', 'learning rate of the updates (cosine)', parseFloatArg('--update-lr'), EXPERIMENT_DEFAULTS.updateLr)
    .option('--update-budgets <list>', 'choose each update\'s lr:epochs on validation from this list, 0 = keep the adapter of t-1 (e.g. 0,4e-4:1,1e-3:2)', (v: string) => parseBudgets(v))
    .option('--batch <n>', 'examples per step', parseIntArg('--batch', 1), EXPERIMENT_DEFAULTS.batch)
    .addOption(new Option('--sasrec-users <who>', "whose interactions the per-period SASRec (EvoRec's Forget filter, the two-stage retriever) trains on: the run's user sample, or every user of the data, restricted to the sample's items").choices(['sample', 'all']).default(EXPERIMENT_DEFAULTS.sasrecUsers))
    .option('--sasrec-steps <n>', 'at least this many optimiser steps in each SASRec epoch (0: one pass over the sequences; a few hundred users are a few batches a pass)', parseIntArg('--sasrec-steps', 0), EXPERIMENT_DEFAULTS.sasrecSteps)
    .addOption(new Option('--sasrec-loss <loss>', 'the per-period SASRec\'s loss: BCE with popularity negatives, or softmax over the catalogue').choices(['bce', 'softmax']).default(EXPERIMENT_DEFAULTS.sasrecLoss))
    .option('--sasrec-epochs <n>', 'SASRec epochs for P0 (continued periods use a third)', parseIntArg('--sasrec-epochs', 0), EXPERIMENT_DEFAULTS.sasrecEpochs)
    .option('--train-seeds <n>', 'training seeds: the whole comparison (base adapter included) runs once per seed on the same split and candidates; figures are mean ± standard error', parseIntArg('--train-seeds', 1), EXPERIMENT_DEFAULTS.trainSeeds)
    .option('--first-train-seed <n>', 'the first training seed (the others follow it)', parseIntArg('--first-train-seed'), EXPERIMENT_DEFAULTS.firstTrainSeed)
    .addOption(new Option('--samplers <list>', 'views to evaluate with (comma-separated: matched, uniform, popularity, two-stage); the first is the headline and the validation view; two-stage ranks the full catalogue (SASRec retrieves 50, each strategy re-ranks); popularity is the old, leaking protocol (docs/evaluation.md)').default(EXPERIMENT_DEFAULTS.samplers.join(',')))
    .option('--eval-users <n>', 'cap on active test users per period (all up to the cap; as many inactive users; new and short users up to the cap; fixed sample; 0 = all)', parseIntArg('--eval-users', 0), EXPERIMENT_DEFAULTS.evalUsers)
    .option('--valid-users <n>', 'validation users for early stopping', parseIntArg('--valid-users', 0), EXPERIMENT_DEFAULTS.validUsers)
    .option('--valid-inactive', 'validate each update on as many inactive users\' held-out targets besides the active users\' (early stopping sees forgetting)')
    .option('--threads <n>', 'compute threads', parseIntArg('--threads'))
    .option('--out <dir>', 'output folder (resumes when it exists)', 'runs/experiment')
    .option('--json', 'print results.json (format evorec-experiment-seeds/1) instead of the tables')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      const strategies = resolveStrategies(String(o.strategies).split(',').map((x) => x.trim()).filter(Boolean));
      const samplers = parseViews(o.samplers);
      const bar = progressBar(o.quiet);
      const t0 = performance.now();
      const say = (line: string) => {
        bar.stop();
        if (!o.quiet) process.stderr.write(`${line}\n`);
      };
      const results = await runExperiment({
        out: o.out,
        data: sourceFrom(o),
        clean: cleanFrom(o),
        users: o.users,
        periods: o.periods,
        baseShare: o.base,
        cut: o.cut,
        history: o.history,
        maxTrainPerUser: o.maxTrainPerUser,
        sasrecUsers: o.sasrecUsers,
        sasrecLoss: o.sasrecLoss,
        sasrecSteps: o.sasrecSteps,
        candidates: o.candidates,
        seed: o.seed,
        strategies,
        samplers,
        evalUsers: o.evalUsers,
        validUsers: o.validUsers,
        validInactive: o.validInactive === true,
        baseModel: o.baseModel === 'none' ? null : o.baseModel,
        backbone: o.backbone,
        preset: o.preset,
        pretrainSteps: o.pretrainSteps,
        loraRank: o.loraRank,
        loraAlpha: o.loraAlpha,
        calibration: o.calibration,
        baseEpochs: o.baseEpochs,
        baseLr: o.baseLr,
        updateEpochs: o.updateEpochs,
        updateLr: o.updateLr,
        updateBudgets: o.updateBudgets,
        batch: o.batch,
        sasrecEpochs: o.sasrecEpochs,
        trainSeeds: o.trainSeeds,
        firstTrainSeed: o.firstTrainSeed,
        command: `evorec ${process.argv.slice(2).join(' ')}`,
        onEvent: (e) => {
          if (e.type === 'stage') say(`[${formatSeconds(e.seconds)}] ${e.stage}`);
          else if (e.type === 'log') say(`  ${e.line}`);
          else if (e.type === 'progress') bar.update(e.stage, e.done, e.total);
        },
      });
      bar.stop();
      if (o.json) process.stdout.write(readFileSync(join(o.out, 'results.json'), 'utf8'));
      else process.stdout.write(readFileSync(join(o.out, 'results.md'), 'utf8') + `\nWrote ${join(o.out, 'results.json')}, results.md and report.html in ${formatSeconds((performance.now() - t0) / 1000)}.\n`);
      // The yardstick before the model: say it loudly when a probe misses the bound beyond its interval.
      const alarms = probeCells(results.runs[0], samplers[0]).filter((c) => c.check === 'outside');
      for (const c of alarms) process.stderr.write(`evorec: yardstick alarm: P${c.period} ${c.group} ${c.probe} HR@1 ${c.hr1.toFixed(3)} on ${c.users} users misses the probe bound (docs/evaluation.md)\n`);
    });

  program
    .command('merge-seeds')
    .description('merge the finished seeds of experiment folders run apart (same options, other --first-train-seed) into one results.json, results.md and report.html')
    .argument('<folders...>', 'experiment folders (each with options.json and seed-<k>/ folders)')
    .requiredOption('--out <dir>', 'folder for the merged reports (the models stay in the source folders)')
    .option('--title <text>', 'report title (default: the first folder\'s, with the seed count)')
    .option('--allow-unfinished', 'leave out seeds whose updates are not all done (default: refuse)')
    .option('--json', 'print the merged results.json instead of the tables')
    .action((folders: string[], o) => {
      const merged = mergeSeeds(o.out, folders, { title: o.title, command: `evorec merge-seeds --out ${o.out} ${folders.join(' ')}`, allowUnfinished: o.allowUnfinished === true });
      if (o.json) process.stdout.write(readFileSync(join(o.out, 'results.json'), 'utf8'));
      else process.stdout.write(readFileSync(join(o.out, 'results.md'), 'utf8') + `\nMerged seeds ${merged.seeds.join(', ')} into ${o.out} (results.json, results.md, report.html, merged-from.json).\n`);
    });
  program
    .command('report')
    .description('rewrite results.md and report.html of an experiment folder from its results.json (no model needed)')
    .option('--out <dir>', 'the experiment folder', 'runs/experiment')
    .option('--title <text>', 'report title (default: the one stored in results.json)')
    .option('--json', 'print results.json (format evorec-experiment-seeds/1) instead of the tables')
    .action((o) => {
      const r = readExperimentResults(o.out);
      if (o.title) r.title = o.title;
      const md = writeExperimentReports(o.out, r);
      if (o.json) process.stdout.write(readFileSync(join(o.out, 'results.json'), 'utf8'));
      else process.stdout.write(md + `\nWrote ${join(o.out, 'results.md')} and report.html.\n`);
    });
}
