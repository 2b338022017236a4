/** `evorec prepare` and `evorec stats`. */
import { NEGATIVE_SAMPLERS, type NegativeSampler } from '../data/candidates.js';
import { type Command, Option } from 'commander';
import type { CleanOptions } from '../data/clean.js';
import { prepare } from '../data/prepare.js';
import { loadDataset, PRESETS, type DataSourceOptions } from '../data/source.js';
import { datasetStats, datasetStatsMarkdown } from '../data/stats.js';
import { parseFloatArg, parseIntArg } from './main.js';

/** The largest --candidates: 1 positive and 999 negatives (each set is drawn, stored and scored per user). */
export const MAX_CANDIDATES = 1000;
import { progressBar } from './progress.js';

/** Options shared by every command that reads a dataset. */
export function addDataOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--data <preset|dir|file>', `dataset: a preset (${Object.keys(PRESETS).join(', ')}), a folder, or an interactions file`, 'beauty')
    .addOption(new Option('--format <format>', 'input format (default: detected from file names)').choices(['csv', 'amazon', 'recbole']))
    .option('--interactions <file>', 'interactions file (overrides detection)')
    .option('--items <file>', 'items file with titles (overrides detection)')
    .option('--user-col <name>', 'user id column', 'user_id')
    .option('--item-col <name>', 'item id column', 'item_id')
    .option('--time-col <name>', 'timestamp column (Unix seconds)', 'timestamp')
    .option('--rating-col <name>', 'rating column (optional)')
    .option('--title-col <name>', 'title column of the items file', 'title')
    .option('--delimiter <char>', 'CSV field separator (default: tab for .tsv, else comma)');
}

export function addCleanOptions(cmd: Command, defaults: { users?: number } = {}): Command {
  return cmd
    .option('--kcore <k>', 'k-core filter (0 = off)', parseIntArg('--kcore', 0), 0)
    .option('--min-rating <r>', 'drop interactions rated below r', parseFloatArg('--min-rating'))
    .option('--no-dedupe', 'keep repeated (user, item) pairs (default: keep only the first)')
    .addOption(new Option('--untitled <mode>', 'items without a title').choices(['placeholder', 'drop']).default('placeholder'))
    .option('--users <n>', 'keep a fixed random sample of n users (0 = all)', parseIntArg('--users', 0), defaults.users ?? 0);
}

interface DataOpts {
  data: string;
  format?: 'csv' | 'amazon' | 'recbole';
  interactions?: string;
  items?: string;
  userCol: string;
  itemCol: string;
  timeCol: string;
  ratingCol?: string;
  titleCol: string;
  delimiter?: string;
}

export function sourceFrom(o: DataOpts): DataSourceOptions {
  return {
    data: o.data,
    format: o.format,
    interactions: o.interactions,
    items: o.items,
    columns: { user: o.userCol, item: o.itemCol, timestamp: o.timeCol, ...(o.ratingCol ? { rating: o.ratingCol } : {}) },
    itemColumns: { title: o.titleCol, item: o.itemCol },
    delimiter: o.delimiter === '\\t' ? '\t' : o.delimiter,
  };
}

export function cleanFrom(o: { kcore: number; minRating?: number; dedupe: boolean; untitled: 'placeholder' | 'drop'; users?: number; seed?: number }): CleanOptions {
  return { kcore: o.kcore, minRating: o.minRating, dedupe: o.dedupe, untitled: o.untitled, sampleUsers: o.users, sampleSeed: o.seed };
}

export function addPeriodOptions(cmd: Command): Command {
  return cmd
    .option('--periods <T>', 'incremental periods after the base period', parseIntArg('--periods', 0), 3)
    .option('--base <share>', 'share of interactions in the base period P0', parseFloatArg('--base'), 0.6)
    .addOption(new Option('--cut <by>', 'cut periods by interaction count or by equal time intervals').choices(['count', 'time']).default('count'))
    .option('--history <H>', 'history window: the last H items before a target', parseIntArg('--history', 1), 10)
    .option('--max-train-per-user <K>', "at most K training targets per user and period, each user's latest (0 = all); for data where a few users rate hundreds of items at once (MovieLens)", parseIntArg('--max-train-per-user', 0), 0)
    .option('--candidates <N>', `candidate set size: 1 positive + N-1 negatives (2 to ${MAX_CANDIDATES})`, parseIntArg('--candidates', 2, MAX_CANDIDATES), 20)
    .option('--seed <n>', 'seed of the negative samplers', parseIntArg('--seed'), 42);
}

export interface PeriodOpts {
  periods: number;
  base: number;
  cut: 'count' | 'time';
  history: number;
  maxTrainPerUser: number;
  candidates: number;
  seed: number;
}

export const periodsFrom = (o: PeriodOpts) => ({ periods: o.periods, base: o.base, cut: o.cut, history: o.history, maxTrainPerUser: o.maxTrainPerUser });

export function registerDataCommands(program: Command): void {
  const prep = program
    .command('prepare')
    .description('split a dataset into periods and write samples, candidate sets and statistics');
  addDataOptions(prep);
  addCleanOptions(prep);
  addPeriodOptions(prep);
  prep
    .option('--out <dir>', 'output folder', 'runs/prepared')
    .option('--json', 'print the statistics as JSON on stdout')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const bar = progressBar(o.quiet);
      const t0 = Date.now();
      const r = await prepare({
        source: sourceFrom(o),
        clean: cleanFrom(o),
        periods: periodsFrom(o),
        candidates: { size: o.candidates, seed: o.seed },
        out: o.out,
        onProgress: bar.update,
      });
      bar.stop();
      if (o.json) {
        process.stdout.write(JSON.stringify({ out: r.out, hash: r.hash, stats: r.stats }, null, 2) + '\n');
        return;
      }
      const { readFileSync } = await import('node:fs');
      process.stdout.write(readFileSync(`${r.out}/stats.md`, 'utf8'));
      process.stdout.write(`\nWrote ${r.out} in ${((Date.now() - t0) / 1000).toFixed(1)} s\ncontent hash ${r.hash}\n`);
    });

  const stats = program.command('stats').description('print statistics of a dataset (any supported input)');
  addDataOptions(stats);
  stats.option('--json', 'print JSON').action(async (o) => {
    const { dataset, source } = await loadDataset(sourceFrom(o));
    const s = datasetStats(dataset);
    if (o.json) process.stdout.write(JSON.stringify({ dataset: source.name, format: source.format, ...s }, null, 2) + '\n');
    else process.stdout.write(`format: ${source.format}; interactions: ${source.interactions}${source.items ? `; items: ${source.items}` : ''}\n\n${datasetStatsMarkdown(source.name, s)}\n`);
  });
}

/** Parses a comma-separated `--samplers` list, refusing unknown names and an empty list. */
export function parseSamplers(list: string): NegativeSampler[] {
  const samplers = String(list).split(',').map((x) => x.trim()).filter(Boolean) as NegativeSampler[];
  for (const x of samplers) if (!NEGATIVE_SAMPLERS.includes(x)) throw new RangeError(`--samplers: unknown sampler "${x}" (${NEGATIVE_SAMPLERS.join(', ')})`);
  if (samplers.length === 0) throw new RangeError('--samplers: at least one sampler');
  return samplers;
}
