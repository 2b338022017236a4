/**
 * `evorec prepare`: load, clean, split into periods, draw candidate sets, and write the prepared split:
 *
 *   <out>/items.jsonl                 {"item", "title"} for every item, by index
 *   <out>/p<t>/train.jsonl            new data of Pt: {"user", "item", "timestamp", "history"}
 *   <out>/p<t>/released.jsonl         earlier held-out targets that became training targets at t
 *   <out>/p<t>/valid.jsonl            {"user", "item", "timestamp", "group", "history", "candidates", "candidates_uniform"}
 *   <out>/p<t>/test.jsonl             same fields, one row per evaluable user
 *   <out>/stats.json, stats.md        dataset, cleaning and per-period statistics
 *   <out>/manifest.json               options, every file's SHA-256, and the content hash
 *
 * The same inputs and options give byte-identical files, hence the same content hash. The folder is built
 * beside the target and renamed into place, so an interrupted run never leaves a half-written split.
 */
import { withDefaults } from '../util/options.js';
import { join } from 'node:path';
import { AtomicLineWriter, replaceDirAtomic, sha256, writeFileAtomic } from '../util/fs.js';
import { CandidateSampler, DEFAULT_CANDIDATES, type CandidateOptions } from './candidates.js';
import { cleanDataset, DEFAULT_CLEAN, type CleanOptions, type CleanReport } from './clean.js';
import type { Dataset } from './dataset.js';
import { checkCandidateSize } from './errors.js';
import { DEFAULT_PERIODS, PeriodSplit, periodCutDates, SAMPLE_ROLES, type PeriodOptions, type Sample } from './periods.js';
import { loadDataset, type DataSourceOptions, type ResolvedSource } from './source.js';
import {
  cleanReportMarkdown,
  datasetStats,
  datasetStatsMarkdown,
  periodStats,
  periodStatsMarkdown,
  type DatasetStats,
  type PeriodStats,
} from './stats.js';

export const PREPARED_FORMAT = 'evorec-prepared/1';

export interface PrepareOptions {
  source: DataSourceOptions;
  clean?: CleanOptions;
  periods?: PeriodOptions;
  /** Candidate set size and seed; both samplers are always written. */
  candidates?: Omit<CandidateOptions, 'sampler'>;
  out: string;
  /** Called as work advances: stage name, units done, units in total. */
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface PreparedStats {
  dataset: string;
  format: string;
  raw: DatasetStats;
  cleaning: CleanReport;
  cleaned: DatasetStats;
  periods: PeriodStats[];
}

export interface PrepareResult {
  out: string;
  hash: string;
  stats: PreparedStats;
  split: PeriodSplit;
}

/**
 * Loads and cleans a source and splits it into periods (the in-memory part of `prepare`). The cuts are
 * computed once on the whole cleaned data (before any user sample) and applied as dates
 * (`periodCutDates`), so every user sample, and the whole data, share one set of periods.
 */
export async function loadSplit(
  source: DataSourceOptions,
  clean: CleanOptions = {},
  periods: PeriodOptions = {},
): Promise<{ raw: Dataset; dataset: Dataset; report: CleanReport; split: PeriodSplit; resolved: ResolvedSource }> {
  const { dataset: raw, source: resolved } = await loadDataset(source);
  const { dataset, report, population } = cleanDataset(raw, clean);
  const cutDates = periods.cutDates ?? periodCutDates(population.timestamps, periods);
  return { raw, dataset, report, split: new PeriodSplit(dataset, { ...periods, cutDates }), resolved };
}

/** Cut dates in UTC, as days when they fall on midnight (Amazon timestamps are days): "P1 2013-09-28, P2 ...". */
export function cutDatesText(dates: readonly number[]): string {
  return dates.map((d, k) => `P${k + 1} ${!Number.isFinite(d) ? 'never' : new Date(d * 1000).toISOString().slice(0, d % 86400 === 0 ? 10 : 16)}`).join(', ');
}

export async function prepare(options: PrepareOptions): Promise<PrepareResult> {
  const progress = options.onProgress ?? (() => {});
  progress('load', 0, 1);
  const { raw, dataset, report, split, resolved } = await loadSplit(options.source, options.clean, options.periods);
  progress('load', 1, 1);
  const cand = withDefaults(DEFAULT_CANDIDATES, options.candidates);
  checkCandidateSize(cand.size, dataset.numItems);
  const stats: PreparedStats = {
    dataset: resolved.name,
    format: resolved.format,
    raw: datasetStats(raw),
    cleaning: report,
    cleaned: datasetStats(dataset),
    periods: periodStats(split),
  };
  const sampler = new CandidateSampler(split);
  const ids = dataset.itemIds;
  const total = split.periods.reduce((a, p) => a + SAMPLE_ROLES.reduce((b, r) => b + p[r].length, 0), 0);
  let done = 0;

  const hash = await replaceDirAtomic(options.out, (dir) => {
    const files: Record<string, string> = {};
    const items = new AtomicLineWriter(join(dir, 'items.jsonl'));
    for (let i = 0; i < dataset.numItems; i++) items.write(JSON.stringify({ item: ids[i], title: dataset.titles[i] }));
    files['items.jsonl'] = items.close();

    for (const p of split.periods) {
      for (const role of SAMPLE_ROLES) {
        const rel = `p${p.index}/${role}.jsonl`;
        const w = new AtomicLineWriter(join(dir, rel));
        const held = role === 'valid' || role === 'test';
        for (const s of p[role] as Sample[]) {
          const row: Record<string, unknown> = {
            user: dataset.userIds[s.user],
            item: ids[s.item],
            timestamp: s.timestamp,
          };
          if (held) row.group = s.group;
          row.history = split.history(s).map((i) => ids[i]);
          if (held) {
            row.candidates = sampler.candidates(s, p.index, role, { ...cand, sampler: 'matched' }).map((i) => ids[i]);
            row.candidates_uniform = sampler.candidates(s, p.index, role, { ...cand, sampler: 'uniform' }).map((i) => ids[i]);
          }
          w.write(JSON.stringify(row));
          if (++done % 5000 === 0) progress('write', done, total);
        }
        files[rel] = w.close();
      }
    }
    progress('write', total, total);

    const statsJson = JSON.stringify(stats, null, 2) + '\n';
    writeFileAtomic(join(dir, 'stats.json'), statsJson);
    files['stats.json'] = sha256(statsJson);
    const md = [
      `# Prepared split: ${resolved.name}`,
      '',
      '## Raw data',
      '',
      datasetStatsMarkdown(resolved.name, stats.raw),
      '',
      '## Cleaning',
      '',
      cleanReportMarkdown(report),
      '',
      '## Periods',
      '',
      `Base share ${split.options.base}, T = ${split.options.periods}, cut by ${split.options.cut}, history H = ${split.options.history}, ` +
        `${cand.size} candidates (seed ${cand.seed}). Periods start on ${cutDatesText(split.options.cutDates ?? [])}, dates computed once on the whole cleaned data and shared by every user sample.`,
      '',
      periodStatsMarkdown(stats.periods),
      '',
    ].join('\n');
    writeFileAtomic(join(dir, 'stats.md'), md);
    files['stats.md'] = sha256(md);

    // The content hash covers every file's bytes and name, in a fixed order.
    const names = Object.keys(files).sort();
    const contentHash = sha256(names.map((n) => `${n} ${files[n]}\n`).join(''));
    const manifest = {
      format: PREPARED_FORMAT,
      dataset: resolved.name,
      source: { format: resolved.format, interactions: resolved.interactions.split(/[\\/]/).pop(), items: resolved.items?.split(/[\\/]/).pop() ?? null },
      options: {
        clean: withDefaults(DEFAULT_CLEAN, options.clean as Partial<typeof DEFAULT_CLEAN>),
        periods: split.options,
        candidates: cand,
      },
      boundaries: split.boundaries,
      files: Object.fromEntries(names.map((n) => [n, files[n]])),
      hash: contentHash,
    };
    writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    return contentHash;
  });
  return { out: options.out, hash, stats, split };
}
