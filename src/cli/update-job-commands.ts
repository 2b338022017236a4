/**
 * `evorec export-update`, `evorec train-job` and `evorec import-adapter`: EvoRec's Update step of one
 * period as a job for LLaMA-Factory, evorec's own trainer on such a job, and the evaluation (and saving)
 * of the adapter that comes back. Library: src/experiment/update-job.ts; files: docs/formats.md.
 */
import { type Command } from 'commander';
import { setThreads } from '../core/index.js';
import type { EvalResult } from '../eval/evaluate.js';
import { exportUpdateJob, importUpdatedAdapter, JOB_YAML, trainUpdateJob } from '../experiment/update-job.js';
import { parseIntArg } from './main.js';
import { formatSeconds, progressBar } from './progress.js';

function hooks(quiet: boolean) {
  const bar = progressBar(quiet);
  const t0 = performance.now();
  const say = (line: string) => {
    bar.stop();
    if (!quiet) process.stderr.write(`${line}\n`);
  };
  return {
    bar,
    hooks: {
      stage: (name: string) => say(`[${formatSeconds((performance.now() - t0) / 1000)}] ${name}`),
      log: (line: string) => say(`  ${line}`),
      progress: bar.update,
    },
  };
}

const GROUPS = ['active', 'inactive', 'all'] as const;
const cell = (r: EvalResult | undefined, g: string, m: string) => {
  const v = r?.groups[g as 'all']?.metrics[m];
  return v === undefined ? '–' : v.toFixed(4);
};

/** The import's table: the run's strategies at the period and the imported adapter, in the headline view. */
function importTable(r: Awaited<ReturnType<typeof importUpdatedAdapter>>): string {
  const v = r.headline;
  const rows = [...r.strategies.map((s) => ({ name: s.strategy, e: s.eval[v] })), { name: `**${r.strategy} (imported)**`, e: r.eval[v] }];
  const head = `| strategy | ${GROUPS.map((g) => `${g} HR@1 | ${g} NDCG@3`).join(' | ')} | users (active / inactive / all) |`;
  const sep = `|---|${GROUPS.map(() => '---:|---:').join('|')}|---:|`;
  const lines = rows.map(({ name, e }) => `| ${name} | ${GROUPS.map((g) => `${cell(e, g, 'HR@1')} | ${cell(e, g, 'NDCG@3')}`).join(' | ')} | ${GROUPS.map((g) => e?.groups[g]?.users ?? 0).join(' / ')} |`);
  return [`## P${r.period}, ${v} view: the imported adapter beside the run's strategies (training seed ${r.trainSeed})`, '', head, sep, ...lines, ''].join('\n');
}

/** Registers an LLMRec folder with a running evorec service (POST /v1/versions); its refusal becomes one error line. */
async function registerVersion(url: string, folder: string, o: { token: string; trainedUpTo: number | 'latest'; activate: boolean; note: string }): Promise<unknown> {
  const endpoint = `${url.replace(/\/+$/, '')}/v1/versions`;
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${o.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ folder, trainedUpTo: o.trainedUpTo, activate: o.activate, note: o.note.slice(0, 2000) }),
    });
  } catch (e) {
    throw new RangeError(`--register: ${endpoint}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      const j = JSON.parse(text) as { error?: string; message?: string };
      message = j.error ?? j.message ?? text;
    } catch {
      // not JSON: the body as it came
    }
    throw new RangeError(`--register: ${endpoint} answered ${res.status}: ${message}`);
  }
  return JSON.parse(text) as unknown;
}

export function registerUpdateJobCommands(program: Command): void {
  program
    .command('export-update')
    .description("write EvoRec's Update of one period as a LLaMA-Factory job: filtered prompts (sharegpt), the located layers' PEFT adapter to continue, a training YAML")
    .requiredOption('--run <dir>', 'the experiment folder (evorec experiment --out)')
    .requiredOption('--period <t>', 'the incremental period to update to (the job turns the model of t-1 into the model of t)', parseIntArg('--period', 1))
    .option('--train-seed <k>', "the run's training seed (default its first)", parseIntArg('--train-seed'))
    .option('--strategy <name>', 'the EvoRec strategy to export (evorec, or an ablation without the consistency term)', 'evorec')
    .requiredOption('--job <dir>', 'the job folder to write (must not exist)')
    .option('--threads <n>', 'compute threads', parseIntArg('--threads', 1))
    .option('--json', 'print the job manifest (evorec-job.json) instead of the summary')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      const { bar, hooks: h } = hooks(o.quiet);
      const m = await exportUpdateJob({ run: o.run, period: o.period, trainSeed: o.trainSeed, strategy: o.strategy, job: o.job, hooks: h });
      bar.stop();
      if (o.json) {
        process.stdout.write(JSON.stringify(m, null, 2) + '\n');
        return;
      }
      process.stdout.write(
        [
          `Wrote the ${m.strategy} update P${m.period - 1} -> P${m.period} (training seed ${m.trainSeed}) to ${o.job}:`,
          `  trains layers ${m.layers.join(', ')} of ${m.layers.length + m.frozenLayers.length}${m.frozenLayers.length ? ` (layers ${m.frozenLayers.join(', ')} are merged, not trained)` : ''}`,
          `  ${m.examples.train} training and ${m.examples.valid} validation prompts${m.forgotten ? `; Forget removed ${m.forgotten.items} of ${m.forgotten.considered} history items of ${m.forgotten.users} users` : ''}`,
          `  ${m.train.epochs} epochs, learning rate ${m.train.lr}, batch ${m.train.batchSize}, ${m.train.schedule} schedule, seed ${m.train.seed}`,
          `  text that tokenises whole to evorec's ids: ${m.textMatchesIds.train.prompts} of ${m.examples.train} training prompts, ${m.textMatchesIds.train.answers} answers (docs/formats.md, "Tokenisation")`,
          `Train it: cd ${o.job} && llamafactory-cli train ${JOB_YAML}   (or: evorec train-job --job ${o.job})`,
          `Then: evorec import-adapter --job ${o.job}`,
          '',
        ].join('\n'),
      );
    });

  program
    .command('train-job')
    .description("train an update job with evorec's own trainer, standing in for llamafactory-cli (writes the adapter to the job's output_dir)")
    .requiredOption('--job <dir>', 'the job folder (evorec export-update)')
    .option('--threads <n>', 'compute threads', parseIntArg('--threads', 1))
    .option('--json', 'print {"out", "training"} instead of the summary')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      const r = await trainUpdateJob(o.job);
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else process.stdout.write(`Trained ${r.training.steps} steps (${r.training.samplesSeen} samples, ${r.training.trainableParameters.toLocaleString('en-US')} trainable values) in ${r.training.seconds.toFixed(1)} s; wrote ${r.out}\n`);
    });

  program
    .command('import-adapter')
    .description("evaluate the adapter an update job's trainer returned on the period's test sets, beside the run's strategies; optionally save it as an LLMRec folder (a service version)")
    .requiredOption('--job <dir>', 'the job folder the adapter was trained from')
    .option('--adapter <dir>', "the trained PEFT adapter folder (default: the job's output/)")
    .option('--save <dir>', 'also write an LLMRec folder (backbone + adapter + llmrec.json) to register with the service (POST /v1/versions, or evorec serve --model)')
    .option('--register <url>', 'register the --save folder as a version of the evorec service at this URL (POST /v1/versions; write token from $EVOREC_TOKEN; the folder must lie inside the service\'s --models-root)')
    .option('--trained-up-to <seq|latest>', "with --register: the service log's seq the version stands for", 'latest')
    .option('--activate', 'with --register: activate the version at once')
    .option('--threads <n>', 'compute threads', parseIntArg('--threads', 1))
    .option('--json', 'print {"job", "adapter", "run", "trainSeed", "period", "strategy", "headline", "eval", "strategies", "saved"?, "registered"?} instead of the table')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      if (o.register && !o.save) throw new RangeError('--register: give --save <dir> too (the LLMRec folder the service registers)');
      const trainedUpTo = o.trainedUpTo === 'latest' ? 'latest' : Number(o.trainedUpTo);
      if (trainedUpTo !== 'latest' && !(Number.isInteger(trainedUpTo) && trainedUpTo >= 0)) throw new RangeError(`--trained-up-to: a seq (integer >= 0) or latest, got ${JSON.stringify(o.trainedUpTo)}`);
      const token = (process.env.EVOREC_TOKEN ?? '').split(',')[0].trim();
      if (o.register && !token) throw new RangeError('--register: set EVOREC_TOKEN to a write token of the service');
      const { bar, hooks: h } = hooks(o.quiet);
      const r = await importUpdatedAdapter({ job: o.job, adapter: o.adapter, save: o.save, hooks: h });
      bar.stop();
      const registered = o.register ? await registerVersion(o.register, r.saved!, { token, trainedUpTo, activate: !!o.activate, note: `imported from ${r.job} (${r.strategy}, P${r.period})` }) : undefined;
      if (o.json) {
        process.stdout.write(JSON.stringify({ ...r, ...(registered ? { registered } : {}) }, null, 2) + '\n');
        return;
      }
      process.stdout.write(
        importTable(r) +
          (r.saved ? `\nSaved an LLMRec folder to ${r.saved}${registered ? '' : ' (register it: POST /v1/versions {"folder": ..., "trainedUpTo": ...}, or --register <url>)'}.\n` : '') +
          (registered ? `Registered as version ${String((registered as { id?: unknown }).id)} (${String((registered as { status?: unknown }).status)}) at ${o.register}.\n` : ''),
      );
    });
}
