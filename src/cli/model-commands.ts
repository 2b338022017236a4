/** `evorec inspect` (run a checkpoint folder on tokens or text) and `evorec pretrain` (train the backbone). */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { noGrad, setThreads } from '../core/index.js';
import { ConfigError, DECODER_PRESETS, type DecoderPresetName, SafetensorsError } from '../io/index.js';
import { loadModelFolder } from '../nn/checkpoint-folder.js';
import { DEFAULT_PRETRAIN_STEPS, pretrain } from '../train/pretrain.js';
import { addDataOptions, sourceFrom } from './data-commands.js';
import { parseFloatArg, parseIntArg } from './main.js';
import { progressBar } from './progress.js';

const parseTokens = (v: string): number[] => {
  const ids = v.split(/[,\s]+/).filter(Boolean).map(Number);
  if (ids.length === 0 || ids.some((n) => !Number.isInteger(n) || n < 0)) throw new InvalidArgumentError(`--tokens must be comma-separated non-negative integers, got "${v}"`);
  return ids;
};

/** File-format errors (config.json, safetensors, adapters) become the CLI's one-line errors (RangeError). */
function oneLineErrors<A extends unknown[]>(fn: (...a: A) => Promise<void>): (...a: A) => Promise<void> {
  return async (...a: A) => {
    try {
      await fn(...a);
    } catch (e) {
      if (e instanceof ConfigError || e instanceof SafetensorsError) throw new RangeError(e.message);
      throw e;
    }
  };
}

export function registerModelCommands(program: Command): void {
  program
    .command('inspect')
    .description('run a Hugging Face checkpoint folder (Llama / Qwen2) on token ids or text and print its logits')
    .requiredOption('--model <folder>', 'model folder: config.json + model.safetensors (or shards), tokenizer.json optional')
    .option('--tokens <ids>', 'comma-separated token ids', parseTokens)
    .option('--text <text>', 'text to encode with the folder\'s tokenizer.json')
    .option('--top <k>', 'without --json: show the k most likely next tokens', parseIntArg('--top', 1), 5)
    .option('--json', 'print {"tokens": [...], "logits": [[...], ...]} (one row of vocabulary logits per position)')
    .option('--threads <n>', 'matrix-product threads', parseIntArg('--threads', 1))
    .action(oneLineErrors(async (o: { model: string; tokens?: number[]; text?: string; top: number; json?: boolean; threads?: number }) => {
      if (o.threads) setThreads(o.threads);
      if (!o.tokens === !o.text) throw new RangeError('inspect: give exactly one of --tokens or --text');
      const { model, tokenizer, files } = await loadModelFolder(o.model, { tokenizer: o.text !== undefined });
      let ids: number[];
      if (o.text !== undefined) {
        if (!tokenizer) throw new RangeError(`${files.dir}: --text needs a tokenizer.json in the model folder (or pass --tokens)`);
        ids = tokenizer.encode(o.text);
        if (ids.length === 0) throw new RangeError('--text encodes to no tokens');
      } else ids = o.tokens!;
      const V = model.config.vocabSize;
      for (const id of ids) if (id >= V) throw new RangeError(`token id ${id} is outside the vocabulary (vocab_size ${V})`);
      if (ids.length > model.config.maxPositionEmbeddings) throw new RangeError(`${ids.length} tokens exceed max_position_embeddings ${model.config.maxPositionEmbeddings}`);
      const logits = noGrad(() => model.forward([ids], { logits: 'all' }).logits!);
      const rows: number[][] = [];
      for (let t = 0; t < ids.length; t++) rows.push(Array.from(logits.data.subarray(t * V, (t + 1) * V)));
      if (o.json) {
        process.stdout.write(JSON.stringify({ tokens: ids, logits: rows }) + '\n');
        return;
      }
      const last = rows[rows.length - 1];
      const top = last.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, o.top);
      process.stdout.write(`${files.dir}: ${model.config.modelType}, ${model.numParameters().toLocaleString('en-US')} parameters; ${ids.length} tokens\n`);
      process.stdout.write(`next-token top ${o.top} after [${ids.join(', ')}]:\n`);
      for (const [v, i] of top) process.stdout.write(`  ${String(i).padStart(6)}  ${v.toFixed(4)}${tokenizer ? `  ${JSON.stringify(tokenizer.decode([i]))}` : ''}\n`);
    }));

  const pre = program
    .command('pretrain')
    .description('pretrain a backbone preset on the catalogue text (item titles + base-period title sequences); writes a Hugging Face folder');
  addDataOptions(pre);
  pre
    .addOption(new Option('--preset <name>', 'decoder preset').choices(Object.keys(DECODER_PRESETS)).default('small'))
    .option('--steps <n>', `optimiser steps (default per preset: ${Object.entries(DEFAULT_PRETRAIN_STEPS).map(([k, v]) => `${k} ${v}`).join(', ')})`, parseIntArg('--steps', 1))
    .option('--epochs <x>', 'passes over the packed training sequences (instead of --steps)', parseFloatArg('--epochs'))
    .option('--batch <n>', 'sequences per step', parseIntArg('--batch', 1), 16)
    .option('--seq-len <n>', 'tokens per packed sequence', parseIntArg('--seq-len', 2), 128)
    .option('--lr <x>', 'peak learning rate (warm-up, then cosine decay to 10%)', parseFloatArg('--lr'), 2e-3)
    .option('--seed <n>', 'seed (initialisation, data order, validation split)', parseIntArg('--seed'), 0)
    .option('--eval-every <n>', 'evaluate validation perplexity every n steps', parseIntArg('--eval-every', 1))
    .option('--checkpoint-every <n>', 'save the model folder and trainer state every n steps', parseIntArg('--checkpoint-every', 1))
    .option('--stop-after <n>', 'stop (with a checkpoint) at this step; continue later with --resume', parseIntArg('--stop-after', 1))
    .option('--max-samples <n>', 'use only the first n base-period samples (quick runs)', parseIntArg('--max-samples', 0))
    .option('--out <dir>', 'output folder (default runs/backbone-<preset>)')
    .option('--resume', 'continue from <out>/trainer-state.ckpt')
    .option('--threads <n>', 'matrix-product threads', parseIntArg('--threads', 1))
    .option('--json', 'print the result as JSON on stdout')
    .option('--quiet', 'no progress output')
    .action(oneLineErrors(async (o) => {
      const bar = progressBar(o.quiet);
      const preset = o.preset as DecoderPresetName;
      const r = await pretrain({
        source: sourceFrom(o),
        preset,
        steps: o.steps,
        epochs: o.epochs,
        batch: o.batch,
        seqLen: o.seqLen,
        lr: o.lr,
        seed: o.seed,
        evalEvery: o.evalEvery,
        checkpointEvery: o.checkpointEvery,
        maxSamples: o.maxSamples,
        stopAfter: o.stopAfter,
        out: o.out ?? `runs/backbone-${preset}`,
        resume: o.resume === true,
        threads: o.threads,
        onProgress: bar.update,
        log: o.quiet
          ? undefined
          : (line) => {
              process.stderr.write(`\n${line}\n`);
            },
      });
      bar.stop();
      if (o.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        return;
      }
      process.stdout.write(
        `Wrote ${r.out}: validation perplexity ${r.valPerplexity.toFixed(2)} (loss ${r.valLoss.toFixed(4)}, ${r.valTokens} tokens) after ${r.completedSteps}/${r.steps} steps; ` +
          `${r.stepsPerSecond.toFixed(2)} steps/s, ${Math.round(r.tokensPerSecond).toLocaleString('en-US')} tokens/s; wall ${r.wallSeconds.toFixed(0)} s\n`,
      );
    }));
}
