/** `evorec train-base`: LLMRec on the base period P0, from a pretrained backbone. */
import { closeSync, existsSync, mkdirSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { setThreads } from '../core/index.js';
import type { CheckpointHeader } from '../core/checkpoint.js';
import type { Decoder } from '../nn/decoder.js';
import { loadSplit } from '../data/prepare.js';
import { checkCandidateSize } from '../data/errors.js';
import { DEFAULT_BACKBONE } from '../data/source.js';
import { sampleFilter, validationViews } from '../eval/evaluate.js';
import { loadModelFolder } from '../nn/checkpoint-folder.js';
import { choosePriorWeight, LLMRec, llmrecScorer, p0Validator } from '../models/llmrec.js';
import { saveLLMRec } from '../models/llmrec-io.js';
import { trainLLMRec } from '../models/llmrec-train.js';
import { PromptBuilder } from '../models/prompt.js';
import { writeFileAtomic } from '../util/fs.js';
import { addCleanOptions, addDataOptions, addPeriodOptions, cleanFrom, periodsFrom, sourceFrom } from './data-commands.js';
import { parseFloatArg, parseIntArg } from './main.js';
import { progressBar } from './progress.js';
import { evaluateWithBaselines, weightCurve } from './rec-commands.js';


/** The trainable parameters (name and shape) recorded in an evorec checkpoint, read from its header only. */
function checkpointParams(file: string): Map<string, number[]> {
  const fd = openSync(file, 'r');
  try {
    const pre = Buffer.alloc(16);
    readSync(fd, pre, 0, 16, 0);
    if (pre.toString('ascii', 0, 8) !== 'EVORECK1') throw new RangeError(`${file}: not an evorec checkpoint; use a new --out, or delete it to start over`);
    const json = Buffer.alloc(pre.readUInt32LE(8));
    readSync(fd, json, 0, json.length, 16);
    const header = JSON.parse(json.toString('utf8')) as CheckpointHeader;
    return new Map(header.tensors.filter((e) => e.role === 'param').map((e) => [e.name, e.shape]));
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuses to resume a checkpoint in --out that trains other parameters than this run (say a full
 * tuning, resumed with --tune lora): the trainer would fail on the first missing tensor.
 */
function checkResumable(file: string, decoder: Decoder, tune: string): void {
  if (!existsSync(file)) return;
  const theirs = checkpointParams(file);
  const mine = new Map(decoder.namedParameters().filter(([, t]) => t.requiresGrad).map(([n, t]) => [n, t.shape]));
  const kind = (names: Iterable<string>) => ([...names].some((n) => n.includes('lora_')) ? 'LoRA adapters' : 'the whole backbone');
  const advice = 'use a new --out, or delete the checkpoint to start over';
  if (kind(theirs.keys()) !== kind(mine.keys())) {
    throw new RangeError(`${file}: this --out holds the checkpoint of a run that trains ${kind(theirs.keys())}, not ${kind(mine.keys())} (--tune ${tune}); ${advice}`);
  }
  for (const [name, shape] of mine) {
    const t = theirs.get(name);
    if (!t || t.length !== shape.length || t.some((d, i) => d !== shape[i])) {
      throw new RangeError(
        `${file}: this --out holds the checkpoint of a run with other trainable weights (${name}: ${t ? `[${t.join(', ')}] there, [${shape.join(', ')}] here` : 'not there'}; another backbone or --lora-rank); ${advice}`,
      );
    }
  }
}

export function registerLLMRecCommands(program: Command): void {
  const cmd = program.command('train-base').description('train LLMRec on the base period P0 from a pretrained backbone, save it, evaluate it');
  addDataOptions(cmd);
  addCleanOptions(cmd);
  addPeriodOptions(cmd);
  cmd
    .option('--backbone <dir>', 'pretrained backbone folder (config.json, model.safetensors, tokenizer.json)', DEFAULT_BACKBONE)
    .addOption(new Option('--tune <what>', 'train the whole backbone or LoRA adapters only').choices(['full', 'lora']).default('full'))
    .option('--lora-rank <r>', 'LoRA rank', parseIntArg('--lora-rank', 1), 16)
    .option('--lora-alpha <a>', 'LoRA alpha', parseFloatArg('--lora-alpha'), 32)
    .option('--lora-dropout <p>', 'LoRA dropout', parseFloatArg('--lora-dropout'), 0.05)
    .addOption(new Option('--calibration <how>', 'ranking score: auto (score minus w x the history-free score, w chosen on validation of the matched and uniform views), prior (w = 1: title score after the history minus after a history-free prompt) or none (the plain likelihood)').choices(['auto', 'prior', 'none']).default('auto'))
    .option('--epochs <n>', 'epochs over the P0 training samples', parseIntArg('--epochs', 1), 1)
    .option('--lr <x>', 'peak learning rate (cosine schedule, 5% warm-up)', parseFloatArg('--lr'))
    .option('--batch <n>', 'examples per step', parseIntArg('--batch', 1), 16)
    .option('--max-samples <n>', 'train on a fixed sample of at most n P0 training samples', parseIntArg('--max-samples', 0), 0)
    .option('--valid-users <n>', 'validation users for early stopping (NDCG@3)', parseIntArg('--valid-users', 0), 300)
    .option('--evals-per-epoch <n>', 'validations per epoch', parseIntArg('--evals-per-epoch', 1), 4)
    .option('--eval-users <n>', 'test users to evaluate on (fixed sample; 0 = all)', parseIntArg('--eval-users', 0), 2000)
    .option('--threads <n>', 'compute threads', parseIntArg('--threads', 1))
    .option('--out <dir>', 'output folder', 'runs/llmrec-base')
    .option('--json', 'print {"out", "training", "evalSeconds", "results"} (results.json with the folder) instead of the tables')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      if (!existsSync(join(o.backbone, 'config.json'))) {
        throw new RangeError(`${o.backbone}: no config.json; pretrain a backbone first (npx evorec pretrain --out ${o.backbone}) or pass --backbone <HF folder>`);
      }
      const { split } = await loadSplit(sourceFrom(o), cleanFrom(o), periodsFrom(o));
      checkCandidateSize(o.candidates, split.dataset.numItems);
      const { model: decoder, tokenizer } = await loadModelFolder(o.backbone);
      if (!tokenizer) throw new RangeError(`${o.backbone}: no tokenizer.json`);
      if (o.tune === 'lora') decoder.addAdapter('default', { r: o.loraRank, alpha: o.loraAlpha, dropout: o.loraDropout }, { seed: o.seed, freezeBase: true });
      const model = new LLMRec(decoder, new PromptBuilder(tokenizer, split.dataset.titles, { history: o.history }), { calibration: o.calibration === 'none' ? 'none' : 'prior' });
      const lr = o.lr ?? (o.tune === 'lora' ? 3e-4 : 1e-4);

      const train = split.periods[0].train.filter(sampleFilter(split.periods[0].train, o.maxSamples, o.seed, 'train-base'));
      const validate = p0Validator(model, split, o.validUsers, o.candidates, o.seed);
      const H = o.history;

      mkdirSync(o.out, { recursive: true });
      checkResumable(join(o.out, 'train.ckpt'), decoder, o.tune);
      const bar = progressBar(o.quiet);
      const result = await trainLLMRec(model, train, (s) => split.history(s, H), {
        epochs: o.epochs,
        lr,
        batchSize: o.batch,
        evalsPerEpoch: o.evalsPerEpoch,
        seed: o.seed,
        checkpoint: join(o.out, 'train.ckpt'),
        onStep: (s, n) => bar.update('train', s, n),
        onEval: (e) => {
          bar.stop();
          if (!o.quiet) process.stderr.write(`step ${e.step}: train loss ${e.loss.toFixed(4)}, valid NDCG@3 ${e.score.toFixed(4)} (${e.seconds.toFixed(0)} s)\n`);
        },
      }, validate);
      bar.stop();
      // The calibration is chosen after training, on the same validation users, in both sampled views.
      let calibration: ReturnType<typeof choosePriorWeight> | undefined;
      if (o.calibration === 'auto') {
        calibration = choosePriorWeight(model, validationViews(split, o.validUsers, o.candidates, o.seed), (s) => split.history(s, H));
        if (!o.quiet) process.stderr.write(`calibration: prior weight ${calibration.weight} (validation NDCG@3, mean of matched and uniform: ${weightCurve(calibration)})\n`);
      }
      const record = { tune: o.tune, lr, epochs: o.epochs, trainSamples: train.length, validUsers: o.validUsers, backbone: o.backbone, training: result, ...(calibration ? { calibration } : {}) };
      await saveLLMRec(o.out, model, { trained_up_to_period: 0, train: record });
      const filter = sampleFilter(split.periods[0].test, o.evalUsers, o.seed, 'test');
      const scorer = llmrecScorer(model, split);
      const t0 = performance.now();
      const { results, markdown } = await evaluateWithBaselines(split, 0, 'llmrec', scorer, { ...o, filter });
      const evalSeconds = (performance.now() - t0) / 1000;
      writeFileAtomic(join(o.out, 'results.json'), JSON.stringify({ training: record, evalSeconds, results }, null, 2) + '\n');
      writeFileAtomic(join(o.out, 'results.md'), markdown);
      if (o.json) {
        process.stdout.write(JSON.stringify({ out: o.out, training: record, evalSeconds, results }, null, 2) + '\n');
        return;
      }
      process.stdout.write(
        `${markdown}\nLLMRec (${o.tune}) trained ${result.steps} steps on ${train.length} samples in ${result.seconds.toFixed(0)} s ` +
          `(${result.bestScore === undefined ? 'no validation samples: the final state is kept' : `best validation NDCG@3 ${result.bestScore.toFixed(4)} at step ${result.bestStep}`}); saved to ${o.out}\n`,
      );
    });
}
