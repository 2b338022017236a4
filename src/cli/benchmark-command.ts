/**
 * `evorec benchmark`: the literature's leave-one-out protocol, so that SASRec is anchored to published
 * figures before it is used anywhere else. Each user's last item is the test target, the second-last the
 * validation target, everything before them trains; ranking is over the full catalogue (every item the
 * user has not interacted with before the target); all users. SASRec (softmax loss by default: the BCE
 * of the original paper stays below the published range here, docs/evaluation.md) stops early on full-catalogue
 * NDCG@10 of a fixed validation sample. Popularity is printed beside it, and LLMRec as the two-stage form
 * (SASRec retrieves the top 50, LLMRec re-ranks) when `--llmrec` is given.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { setThreads } from '../core/index.js';
import { loadSplit } from '../data/prepare.js';
import { sampleFilter, type EvalResult } from '../eval/evaluate.js';
import { evaluateFull, evaluateTwoStage, popularityFull } from '../eval/full-ranking.js';
import { loadLLMRec } from '../models/llmrec-io.js';
import { llmrecScorer } from '../models/llmrec.js';
import { SASRec } from '../models/sasrec.js';
import { loadSASRec, saveSASRec } from '../models/sasrec-io.js';
import { sasrecFullScorer, trainSASRec } from '../models/sasrec-train.js';
import { writeFileAtomic } from '../util/fs.js';
import { addCleanOptions, addDataOptions, cleanFrom, sourceFrom } from './data-commands.js';
import { parseFloatArg, parseIntArg } from './main.js';
import { formatSeconds, progressBar } from './progress.js';

/**
 * Published SASRec on Amazon Beauty, full ranking, leave-one-out (Kang and McAuley as reproduced in the
 * eSASRec benchmark, arXiv 2508.06450).
 */
export const PUBLISHED_BEAUTY = { 'HR@10': [0.06, 0.093], 'NDCG@10': [0.032, 0.053] } as const;

export function registerBenchmarkCommand(program: Command): void {
  const cmd = program.command('benchmark').description('leave-one-out, full-catalogue benchmark of SASRec (and LLMRec two-stage) against published figures');
  addDataOptions(cmd);
  addCleanOptions(cmd);
  cmd
    .option('--epochs <n>', 'maximum SASRec epochs (30 with the softmax loss lands in the published range: docs/evaluation.md)', parseIntArg('--epochs', 1), 30)
    .option('--patience <n>', 'epochs without validation gain before stopping', parseIntArg('--patience', 1), 5)
    .option('--hidden <d>', 'SASRec hidden size (Kang and McAuley: 50)', parseIntArg('--hidden', 1), 50)
    .option('--blocks <n>', 'attention blocks', parseIntArg('--blocks', 1), 2)
    .option('--max-len <n>', 'window of most recent items', parseIntArg('--max-len', 1), 50)
    .option('--dropout <p>', 'dropout (Kang and McAuley on Beauty: 0.5)', parseFloatArg('--dropout'), 0.5)
    .option('--lr <x>', 'learning rate', parseFloatArg('--lr'), 1e-3)
    .option('--batch <n>', 'sequences per batch', parseIntArg('--batch', 1), 128)
    .addOption(new Option('--loss <kind>', 'SASRec training loss: softmax over the whole catalogue (default), or BCE with one uniform negative per position (Kang and McAuley; below the published range here)').choices(['bce', 'softmax']).default('softmax'))
    .option('--valid-users <n>', 'validation users for early stopping (fixed sample)', parseIntArg('--valid-users', 0), 2000)
    .option('--llmrec <dir>', 'also evaluate this LLMRec folder as the two-stage form (SASRec top 50, LLMRec re-ranks)')
    .option('--llmrec-users <n>', 'test users of the two-stage LLMRec (fixed sample; 0 = all)', parseIntArg('--llmrec-users', 0), 0)
    .option('--depth <n>', 'retrieval depth of the two-stage form', parseIntArg('--depth', 1), 50)
    .option('--threads <n>', 'compute threads', parseIntArg('--threads', 1))
    .option('--out <dir>', 'output folder (SASRec is trained once and reused; training resumes)', 'runs/benchmark')
    .option('--json', 'print the results as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.threads) setThreads(o.threads);
      const log = (line: string) => {
        if (!o.quiet) process.stderr.write(`${line}\n`);
      };
      const t0 = performance.now();
      mkdirSync(o.out, { recursive: true });
      const { split, report } = await loadSplit(sourceFrom(o), cleanFrom(o), { periods: 0, base: 1, history: o.maxLen });
      const users = split.periods[0].test.length;
      log(`leave-one-out: ${report.after.users} users, ${report.after.items} items, ${report.after.interactions} interactions; ${users} test users`);

      const dir = join(o.out, 'sasrec');
      let model: SASRec;
      if (existsSync(join(dir, 'config.json'))) {
        model = (await loadSASRec(dir)).model;
        log(`SASRec: loaded ${dir}`);
      } else {
        model = new SASRec({ numItems: split.dataset.numItems, hidden: o.hidden, blocks: o.blocks, maxLen: o.maxLen, dropout: o.dropout });
        const inValid = sampleFilter(split.periods[0].valid, o.validUsers, 42, 'benchmark-valid');
        const bar = progressBar(o.quiet);
        let epoch = 0;
        const train = await trainSASRec(model, split, 0, {
          epochs: o.epochs,
          batchSize: o.batch,
          lr: o.lr,
          negatives: 'uniform',
          loss: o.loss,
          patience: o.patience,
          checkpoint: join(o.out, 'sasrec.ckpt'),
          validator: async () => (await evaluateFull(split, 0, sasrecFullScorer(model, split), { role: 'valid', filter: inValid })).groups.all?.metrics['NDCG@10'] ?? NaN,
          onStep: (s, n) => bar.update(`epoch ${epoch + 1}`, s, n),
          onEpoch: (e) => {
            epoch = e.epoch;
            bar.stop();
            log(`epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, valid NDCG@10 (full) ${e.validNdcg10.toFixed(4)} (${formatSeconds(e.seconds)})`);
          },
        });
        bar.stop();
        await saveSASRec(dir, model, split.dataset.itemIds, { protocol: 'leave-one-out', loss: o.loss, training: train });
        log(`SASRec: ${train.epochs} epochs (best ${train.bestEpoch}) in ${formatSeconds(train.seconds)}`);
      }

      const results: Record<string, EvalResult> = {
        popularity: await evaluateFull(split, 0, popularityFull(split, 0)),
        sasrec: await evaluateFull(split, 0, sasrecFullScorer(model, split)),
        // The second-last items of all users: shows how far the test items (later in time) are from what
        // early stopping saw.
        'sasrec (validation items)': await evaluateFull(split, 0, sasrecFullScorer(model, split), { role: 'valid' }),
      };
      if (o.llmrec) {
        const { model: llm } = await loadLLMRec(o.llmrec, split.dataset.titles);
        const rerank = llmrecScorer(llm, split);
        const bar = progressBar(o.quiet);
        results['llmrec (two-stage)'] = await evaluateTwoStage(split, 0, sasrecFullScorer(model, split), (s, c) => rerank.batch(s, c), {
          depth: o.depth,
          filter: sampleFilter(split.periods[0].test, o.llmrecUsers, 42, 'benchmark-llmrec'),
          onProgress: (d, n) => bar.update('two-stage', d, n),
        });
        bar.stop();
      }
      const sas = results.sasrec.groups.all!.metrics;
      const inRange = split.dataset.name === 'beauty'
        ? Object.fromEntries(Object.entries(PUBLISHED_BEAUTY).map(([k, [lo, hi]]) => [k, sas[k] >= lo && sas[k] <= hi]))
        : null;
      const out = { protocol: 'leave-one-out, full catalogue', data: split.dataset.name, users, items: split.dataset.numItems, published: split.dataset.name === 'beauty' ? PUBLISHED_BEAUTY : null, inPublishedRange: inRange, results, seconds: (performance.now() - t0) / 1000 };
      writeFileAtomic(join(o.out, 'results.json'), JSON.stringify(out, null, 2) + '\n');
      if (o.json) {
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      const cols = ['HR@10', 'NDCG@10', 'HR@20', 'NDCG@20'];
      const lines = [
        `Leave-one-out benchmark on ${split.dataset.name}: ${users.toLocaleString('en-US')} users, ${split.dataset.numItems.toLocaleString('en-US')} items, full-catalogue ranking (items the user touched before the target left out).`,
        '',
        `| model | users | ${cols.join(' | ')} | recall@${o.depth} |`,
        `|---|---:|${cols.map(() => '---:').join('|')}|---:|`,
        ...Object.entries(results).map(([name, r]) => {
          const g = r.groups.all!;
          const rec = g.metrics[`recall@${o.depth}`];
          return `| ${name} | ${g.users.toLocaleString('en-US')} | ${cols.map((c) => g.metrics[c].toFixed(4)).join(' | ')} | ${rec === undefined ? '' : rec.toFixed(4)} |`;
        }),
        '',
      ];
      if (inRange) {
        lines.push(`Published SASRec on Beauty: HR@10 ${PUBLISHED_BEAUTY['HR@10'].join('-')}, NDCG@10 ${PUBLISHED_BEAUTY['NDCG@10'].join('-')}. Ours: HR@10 ${sas['HR@10'].toFixed(4)} (${inRange['HR@10'] ? 'inside' : 'OUTSIDE'}), NDCG@10 ${sas['NDCG@10'].toFixed(4)} (${inRange['NDCG@10'] ? 'inside' : 'OUTSIDE'}).`);
      }
      lines.push(`Wrote ${join(o.out, 'results.json')} in ${formatSeconds(out.seconds)}.`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
