/**
 * `evorec experiment`: the main job. Prepares the split, loads (or pretrains) the backbone, trains the base
 * LLMRec adapter on P0 and a SASRec per period once, then runs every strategy period by period on the same
 * candidate sets and writes results.json, results.md and report.html. Every stage saves its output in
 * `--out`; running the same command again resumes where it stopped.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { setThreads } from '../core/index.js';
import { CandidateSampler, type NegativeSampler } from '../data/candidates.js';
import { loadSplit } from '../data/prepare.js';
import { checkCandidateSize } from '../data/errors.js';
import { DEFAULT_BACKBONE } from '../data/source.js';
import type { PeriodSplit } from '../data/periods.js';
import { sampleFilter } from '../eval/evaluate.js';
import { runExperiment, type ExperimentResults, type ExperimentView } from '../evolve/runner.js';
import { DEFAULT_STRATEGIES, strategyRegistry } from '../evolve/strategies.js';
import { LLMRec, validationNdcg3 } from '../models/llmrec.js';
import { isLLMRecFolder, loadLLMRec, saveLLMRec } from '../models/llmrec-io.js';
import { trainLLMRec, type LLMRecTrainOptions } from '../models/llmrec-train.js';
import { PromptBuilder } from '../models/prompt.js';
import { SASRec } from '../models/sasrec.js';
import { loadSASRec, saveSASRec } from '../models/sasrec-io.js';
import { trainSASRec } from '../models/sasrec-train.js';
import { loadModelFolder } from '../nn/checkpoint-folder.js';
import { experimentHtml, experimentMarkdown, probeCells } from '../report/experiment-report.js';
import { pretrain } from '../train/pretrain.js';
import { writeFileAtomic } from '../util/fs.js';
import { addCleanOptions, addDataOptions, addPeriodOptions, cleanFrom, parseSamplers, periodsFrom, sourceFrom } from './data-commands.js';
import { parseFloatArg, parseIntArg } from './main.js';
import { formatSeconds, progressBar } from './progress.js';

/** NDCG@3 on a fixed sample of P0 validation targets: the base model's early-stopping signal. */
export function p0Validator(model: LLMRec, split: PeriodSplit, n: number, size: number, seed: number, sampler: NegativeSampler = 'matched'): () => number {
  const valid = split.periods[0].valid.filter(sampleFilter(split.periods[0].valid, n, seed, 'base-valid'));
  const cs = new CandidateSampler(split);
  const cands = valid.map((s) => cs.candidates(s, 0, 'valid', { sampler, size, seed }));
  const H = model.prompts.options.history;
  return () => validationNdcg3(model, valid, cands, (s) => split.history(s, H));
}

/**
 * Defaults of `evorec experiment`, sized so that the whole comparison (six strategies, three periods)
 * finishes within 15 minutes on a 2-core machine (measured in docs/evolution.md). One training seed is a
 * demonstration: claims need `--train-seeds 3` or more (docs/results/).
 */
export const DEFAULTS = { users: 250, trainSeeds: 1, evalUsers: 500, validUsers: 30 };

/** What `evorec experiment` writes to `<out>/results.json`: every seed's results and how to report them. */
export interface SeedsResults {
  format: 'evorec-experiment-seeds/1';
  title?: string;
  command?: string;
  samplers?: ExperimentView[];
  /** The LLMRec folder every seed started from (`--base-model`); absent when each seed trained its own base adapter. */
  baseModel?: string;
  seeds: number[];
  runs: ExperimentResults[];
}

/** Writes results.json, results.md (one section per sampler) and report.html; returns the Markdown. */
export function writeExperimentReports(out: string, r: SeedsResults): string {
  const title = r.title ?? `Evolution experiment, ${r.runs.length} training seed${r.runs.length > 1 ? 's' : ''}`;
  // Results written before the samplers were recorded used the first protocol.
  const samplers = r.samplers ?? ['popularity'];
  // Only `evorec experiment` (which records a command) knows how its base model was made.
  const baseNote = !r.command
    ? ''
    : r.baseModel
    ? `Base model: ${r.baseModel}, shared by every seed (the seeds vary the updates only, so static has no spread).`
    : 'Base model: a LoRA adapter trained on P0 in each seed.';
  const md = samplers.map((x, i) => experimentMarkdown(r.runs, x, i === 0 ? title : null, baseNote)).join('\n');
  writeFileAtomic(join(out, 'results.md'), md);
  writeFileAtomic(join(out, 'report.html'), experimentHtml(r.runs, samplers[0], title, [r.command ? `Command: ${r.command}` : '', baseNote]));
  writeFileAtomic(join(out, 'results.json'), JSON.stringify(r, null, 2) + '\n');
  return md;
}

/** Reads `<out>/results.json` of `evorec experiment` (several seeds) or of one runner (one seed). */
export function readExperimentResults(out: string): SeedsResults {
  const file = join(out, 'results.json');
  if (!existsSync(file)) throw new RangeError(`${file}: not found (run evorec experiment first)`);
  const j = JSON.parse(readFileSync(file, 'utf8')) as SeedsResults | ExperimentResults;
  if (j.format === 'evorec-experiment-seeds/1') return j;
  if (j.format === 'evorec-experiment/1') return { format: 'evorec-experiment-seeds/1', seeds: [0], runs: [j] };
  throw new RangeError(`${file}: field "format": expected evorec-experiment-seeds/1 or evorec-experiment/1, got ${JSON.stringify((j as { format?: unknown }).format)}`);
}

/**
 * Options that a resumed run must share with the run it continues: everything that changes what is
 * trained or measured. Strategies and the number of seeds may grow (they add work, they change none);
 * threads, progress and the output folder change nothing.
 */
const FREE_OPTIONS = new Set(['strategies', 'trainSeeds', 'threads', 'quiet', 'out', 'json']);

/**
 * Records the run's options in `<out>/options.json` on the first run, and refuses a resume whose options
 * differ, naming the option (a resumed run would otherwise reuse old state under new options' names).
 */
export function checkRunOptions(out: string, cmd: Command, o: Record<string, unknown>): void {
  const file = join(out, 'options.json');
  const mine: Record<string, unknown> = {};
  for (const opt of cmd.options) {
    const key = opt.attributeName();
    if (!FREE_OPTIONS.has(key)) mine[key] = o[key] ?? null;
  }
  if (!existsSync(file)) {
    // A folder with results but no options.json predates this check: its options are unknown.
    if (existsSync(join(out, 'results.json'))) throw new RangeError(`${out}: results.json without options.json (made by an older evorec); use a new --out`);
    writeFileAtomic(file, JSON.stringify(mine, null, 2) + '\n');
    return;
  }
  const theirs = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const opt of cmd.options) {
    const key = opt.attributeName();
    if (FREE_OPTIONS.has(key)) continue;
    const a = JSON.stringify(theirs[key] ?? null);
    const b = JSON.stringify(mine[key]);
    if (a !== b) throw new RangeError(`${file}: this run was made with ${opt.long} ${a}, not ${b}; resume with the same options or use a new --out`);
  }
}

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
  addCleanOptions(cmd, { users: DEFAULTS.users });
  addPeriodOptions(cmd);
  cmd
    .option('--strategies <list>', `comma-separated strategies (${Object.keys(strategyRegistry()).join(', ')})`, DEFAULT_STRATEGIES.join(','))
    .option('--base-model <dir>', 'start every seed from this LLMRec folder (evorec train-base, --tune lora or full) instead of training a base adapter per seed; a fully tuned one gets a zero-initialised LoRA adapter, so updates train LoRA only')
    .option('--backbone <dir>', 'pretrained backbone folder; pretrained here first when it does not exist (default: the one shipped in data/)', DEFAULT_BACKBONE)
    .addOption(new Option('--preset <name>', 'backbone preset when pretraining').choices(['tiny', 'small', 'base']).default('small'))
    .option('--pretrain-steps <n>', 'pretraining steps when the backbone must be pretrained', parseIntArg('--pretrain-steps'))
    .option('--lora-rank <r>', 'LoRA rank', parseIntArg('--lora-rank'), 16)
    .addOption(new Option('--calibration <how>', 'LLMRec ranking score: prior-calibrated or plain likelihood').choices(['prior', 'none']).default('prior'))
    .option('--lora-alpha <a>', 'LoRA alpha', parseFloatArg('--lora-alpha'), 32)
    .option('--base-epochs <n>', 'epochs of the base adapter on P0 (and of retrain)', parseIntArg('--base-epochs'), 1)
    .option('--base-lr <x>', 'learning rate of the base adapter', parseFloatArg('--base-lr'), 1e-3)
    .option('--update-epochs <n>', 'epochs of each incremental update', parseIntArg('--update-epochs'), 2)
    .option('--update-lr <x>', 'learning rate of the updates (cosine)', parseFloatArg('--update-lr'), 4e-4)
    .option('--batch <n>', 'examples per step', parseIntArg('--batch'), 16)
    .option('--sasrec-epochs <n>', 'SASRec epochs for P0 (continued periods use a third)', parseIntArg('--sasrec-epochs'), 20)
    .option('--train-seeds <n>', 'training seeds: the whole comparison (base adapter included) runs once per seed on the same split and candidates; figures are mean ± standard error', parseIntArg('--train-seeds'), DEFAULTS.trainSeeds)
    .option('--first-train-seed <n>', 'the first training seed (the others follow it)', parseIntArg('--first-train-seed'), 1)
    .addOption(new Option('--samplers <list>', 'views to evaluate with (comma-separated: matched, uniform, popularity, two-stage); the first is the headline and the validation view; two-stage ranks the full catalogue (SASRec retrieves 50, each strategy re-ranks); popularity is the old, leaking protocol (docs/evaluation.md)').default('matched,uniform'))
    .option('--eval-users <n>', 'cap on active test users per period (all up to the cap; as many inactive users; new and short users up to the cap; fixed sample; 0 = all)', parseIntArg('--eval-users'), DEFAULTS.evalUsers)
    .option('--valid-users <n>', 'validation users for early stopping', parseIntArg('--valid-users'), DEFAULTS.validUsers)
    .option('--threads <n>', 'compute threads', parseIntArg('--threads'))
    .option('--out <dir>', 'output folder (resumes when it exists)', 'runs/experiment')
    .option('--json', 'print results.json (format evorec-experiment-seeds/1) instead of the tables')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      const registry = strategyRegistry();
      const names: string[] = o.strategies.split(',').map((s: string) => s.trim()).filter(Boolean);
      for (const n of names) if (!registry[n]) throw new RangeError(`--strategies: unknown strategy "${n}" (known: ${Object.keys(registry).join(', ')})`);
      const log = (line: string) => {
        if (!o.quiet) process.stderr.write(`${line}\n`);
      };
      const t0 = performance.now();
      const stage = (name: string) => log(`[${formatSeconds((performance.now() - t0) / 1000)}] ${name}`);
      mkdirSync(o.out, { recursive: true });
      checkRunOptions(o.out, cmd, o);

      stage('prepare the split');
      const { split, report } = await loadSplit(sourceFrom(o), cleanFrom(o), periodsFrom(o));
      checkCandidateSize(o.candidates, split.dataset.numItems);
      log(`  ${report.after.users} users, ${report.after.items} items, ${report.after.interactions} interactions; T = ${split.numPeriods - 1}`);

      if (!existsSync(join(o.backbone, 'config.json'))) {
        stage(`pretrain the backbone (${o.preset}) into ${o.backbone}`);
        const bar = progressBar(o.quiet);
        await pretrain({ source: sourceFrom(o), preset: o.preset, steps: o.pretrainSteps, out: o.backbone, resume: true, onProgress: bar.update, log });
        bar.stop();
      }

      const lora = { r: o.loraRank, alpha: o.loraAlpha, dropout: 0.05 };
      const baseTrain: Partial<LLMRecTrainOptions> = { epochs: o.baseEpochs, lr: o.baseLr, batchSize: o.batch, evalsPerEpoch: 4, patience: 2 };
      const updateTrain: Partial<LLMRecTrainOptions> = { epochs: o.updateEpochs, lr: o.updateLr, batchSize: o.batch, evalsPerEpoch: 1, patience: 2 };
      const samplers = parseViews(o.samplers);
      if (!(o.trainSeeds >= 1)) throw new RangeError('--train-seeds: at least 1');

      const baseModelDir: string | undefined = o.baseModel ? resolve(o.baseModel) : undefined;
      if (baseModelDir && !isLLMRecFolder(baseModelDir)) throw new RangeError(`--base-model: ${baseModelDir} is not an LLMRec folder (no llmrec.json; make one with evorec train-base)`);

      /**
       * The base LLMRec of one training seed: `--base-model` when given (the same for every seed), else
       * loaded from `dir/base` or trained there on P0. A seed folder remembers which, so a resumed run
       * cannot mix two bases.
       */
      const baseModel = async (seed: number, dir: string): Promise<LLMRec> => {
        const baseDir = join(dir, 'base');
        const marker = join(dir, 'base-model.json');
        const recorded = existsSync(marker) ? (JSON.parse(readFileSync(marker, 'utf8')) as { path: string | null }).path : isLLMRecFolder(baseDir) ? null : undefined;
        if (recorded !== undefined && recorded !== (baseModelDir ?? null)) {
          throw new RangeError(`${dir}: this run started from ${recorded ?? 'its own base adapter'}, not ${baseModelDir ?? 'a base adapter of its own'}; resume with the same --base-model or use a new --out`);
        }
        writeFileAtomic(marker, JSON.stringify({ path: baseModelDir ?? null }) + '\n');
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
          stage(`seed ${seed}: train the base adapter on P0`);
          const { model: decoder, tokenizer } = await loadModelFolder(o.backbone);
          if (!tokenizer) throw new RangeError(`${o.backbone}: no tokenizer.json`);
          decoder.addAdapter('default', lora, { seed, freezeBase: true });
          model = new LLMRec(decoder, new PromptBuilder(tokenizer, split.dataset.titles, { history: o.history }), { calibration: o.calibration });
          const bar = progressBar(o.quiet);
          const r = await trainLLMRec(model, split.periods[0].train, (s) => split.history(s, o.history), {
            ...baseTrain,
            seed,
            checkpoint: join(dir, 'base.ckpt'),
            onStep: (s, n) => bar.update('base', s, n),
            onEval: (e) => {
              bar.stop();
              log(`  step ${e.step}: loss ${e.loss.toFixed(4)}, valid NDCG@3 ${e.score.toFixed(4)}`);
            },
          }, p0Validator(model, split, o.validUsers, o.candidates, o.seed, samplers[0] as NegativeSampler));
          bar.stop();
          await saveLLMRec(baseDir, model, { trained_up_to_period: 0, training: r });
        }
        // The runner expects the base adapter under the name "base".
        const dec = model.decoder;
        const base = dec.adapter('default').clone('base');
        dec.deleteAdapter('default');
        dec.attachAdapter(base, { freezeBase: true });
        return model;
      };

      // SASRec does not depend on the LLMRec's training seed: one per period in `out/sasrec`, shared by the
      // seeds. Each call returns an instance of its own (read back from the folder, or just trained), so
      // continuing t-1's model into t never changes a model a run holds.
      const sasrecFor = async (t: number): Promise<SASRec> => {
        const dir = join(o.out, 'sasrec', `p${t}`);
        if (existsSync(join(dir, 'config.json'))) return (await loadSASRec(dir)).model;
        const prev = t > 0 ? await sasrecFor(t - 1) : new SASRec({ numItems: split.dataset.numItems });
        stage(`train SASRec up to P${t}`);
        await trainSASRec(prev, split, t, { epochs: t === 0 ? o.sasrecEpochs : Math.max(1, Math.round(o.sasrecEpochs / 3)), negatives: 'popularity' });
        await saveSASRec(dir, prev, split.dataset.itemIds, { trained_up_to_period: t });
        return prev;
      };

      const seeds = Array.from({ length: o.trainSeeds }, (_, i) => o.firstTrainSeed + i);
      const title = `Evolution experiment: ${split.dataset.name}, ${report.after.users.toLocaleString('en-US')} users, T = ${split.numPeriods - 1}, ${seeds.length} training seed${seeds.length > 1 ? 's' : ''}`;
      const command = `evorec ${process.argv.slice(2).join(' ')}`;
      const runs: ExperimentResults[] = [];
      const writeReports = () =>
        writeExperimentReports(o.out, { format: 'evorec-experiment-seeds/1', title, command, samplers, baseModel: o.baseModel, seeds: seeds.slice(0, runs.length), runs });
      let md = '';
      for (const seed of seeds) {
        const dir = join(o.out, `seed-${seed}`);
        mkdirSync(dir, { recursive: true });
        const model = await baseModel(seed, dir);
        stage(`seed ${seed}: run ${names.length} strategies over ${split.numPeriods - 1} periods`);
        const bar = progressBar(o.quiet);
        const results = await runExperiment({
          split,
          model,
          baseAdapter: 'base',
          lora,
          strategies: names.map((n) => registry[n]),
          sasrecFor,
          update: updateTrain,
          base: baseTrain,
          history: o.history,
          evalUsers: o.evalUsers,
          validUsers: o.validUsers,
          candidates: o.candidates,
          samplers,
          seed: o.seed,
          trainSeed: seed,
          out: dir,
          log: (l) => {
            bar.stop();
            log(`  ${l}`);
          },
          onProgress: bar.update,
        });
        bar.stop();
        runs.push(results);
        md = writeReports();
      }
      if (o.json) process.stdout.write(readFileSync(join(o.out, 'results.json'), 'utf8'));
      else process.stdout.write(md + `\nWrote ${join(o.out, 'results.json')}, results.md and report.html in ${formatSeconds((performance.now() - t0) / 1000)}.\n`);
      // The yardstick before the model: say it loudly when a probe misses the bound beyond its interval.
      const alarms = probeCells(runs[0], samplers[0]).filter((c) => c.check === 'outside');
      for (const c of alarms) process.stderr.write(`evorec: yardstick alarm: P${c.period} ${c.group} ${c.probe} HR@1 ${c.hr1.toFixed(3)} on ${c.users} users misses the probe bound (docs/evaluation.md)\n`);
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
