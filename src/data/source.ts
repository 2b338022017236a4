/**
 * Resolves what a user passes as `--data` (a preset name, a folder, or a file) into loaders, detecting
 * the format from the file names: CSV/TSV tables, raw Amazon dumps, or RecBole atomic files.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAmazonMeta, readAmazonReviews } from './amazon.js';
import { readCsvInteractions, readCsvItems } from './csv.js';
import { Dataset } from './dataset.js';
import { DataError } from './errors.js';
import type { InteractionColumns, ItemColumns } from './records.js';
import { readRecboleInter, readRecboleItems } from './recbole.js';

export type DataFormat = 'csv' | 'amazon' | 'recbole';

export interface DataSourceOptions {
  /** A preset name (see PRESETS), a folder, or an interactions file. */
  data: string;
  /** Overrides the detected format. */
  format?: DataFormat;
  /** Explicit interactions file (overrides detection inside a folder). */
  interactions?: string;
  /** Explicit items file. */
  items?: string;
  columns?: Partial<InteractionColumns>;
  itemColumns?: Partial<ItemColumns>;
  /** CSV field separator; default from the file name (tab for .tsv). */
  delimiter?: string;
}

export interface ResolvedSource {
  name: string;
  format: DataFormat;
  interactions: string;
  items?: string;
}

/** The repository (or installed package) root: src/data and dist/data are both two levels down. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The pretrained backbone shipped with the package (data/backbone-small, see data/NOTICE.md). */
export const DEFAULT_BACKBONE = join(PACKAGE_ROOT, 'data', 'backbone-small');
/**
 * The base LLMRec shipped with the package (data/base-deep, see data/NOTICE.md): the deep backbone fully
 * tuned on all Beauty users' P0, history 10. The evolution experiment on the embedded Beauty data starts
 * from it unless told otherwise.
 */
export const DEFAULT_BASE_MODEL = join(PACKAGE_ROOT, 'data', 'base-deep');
/** The history window the shipped base was trained with. */
export const DEFAULT_BASE_MODEL_HISTORY = 10;

/** Embedded datasets, shipped in the package's data/ folder. */
export const PRESETS: Record<string, { dir: string; description: string }> = {
  beauty: { dir: 'amazon-beauty-2014-5core', description: 'Amazon Beauty 2014, 5-core: 22,363 users, 12,101 items, 198,502 interactions' },
  movielens: { dir: 'movielens-latest-small', description: 'MovieLens latest-small: 610 users, 9,724 movies, 100,836 ratings' },
};

function firstMatch(dir: string, names: string[], re: RegExp): string | undefined {
  const hit = names.filter((n) => re.test(n)).sort()[0];
  return hit === undefined ? undefined : join(dir, hit);
}

export function resolveSource(opts: DataSourceOptions): ResolvedSource {
  let path = opts.data;
  let name = basename(path).replace(/\.(csv|tsv|inter|json)(\.gz)?$/i, '');
  const preset = PRESETS[path];
  if (preset) {
    path = join(PACKAGE_ROOT, 'data', preset.dir);
    name = opts.data;
  }
  if (!existsSync(path)) {
    throw new DataError(path, `not found: expected a preset (${Object.keys(PRESETS).join(', ')}), a folder or a file`);
  }
  if (statSync(path).isFile()) {
    const format = opts.format ?? (/\.inter$/i.test(path) ? 'recbole' : /\.json(\.gz)?$/i.test(path) ? 'amazon' : 'csv');
    return { name, format, interactions: opts.interactions ?? path, items: opts.items };
  }
  const names = readdirSync(path);
  const detect: Array<[DataFormat, RegExp, RegExp]> = [
    ['csv', /^interactions\.(csv|tsv)(\.gz)?$/i, /^items\.(csv|tsv)(\.gz)?$/i],
    ['recbole', /\.inter$/i, /\.item$/i],
    ['amazon', /^(reviews_.*|.*_5)\.json(\.gz)?$/i, /^meta_.*\.json(\.gz)?$/i],
  ];
  for (const [format, interRe, itemRe] of detect) {
    if (opts.format !== undefined && opts.format !== format) continue;
    const inter = opts.interactions ?? firstMatch(path, names, interRe);
    if (inter === undefined) continue;
    return { name, format, interactions: inter, items: opts.items ?? firstMatch(path, names, itemRe) };
  }
  throw new DataError(
    path,
    'no interactions file found: expected interactions.csv[.gz] (+ items.csv[.gz]), a RecBole <name>.inter (+ .item), ' +
      'or Amazon reviews_<Category>_5.json.gz (+ meta_<Category>.json.gz)',
  );
}

/** Loads a data source into a Dataset (file order kept; cleaning and sorting come after). */
export async function loadDataset(opts: DataSourceOptions): Promise<{ dataset: Dataset; source: ResolvedSource }> {
  const source = resolveSource(opts);
  const { interactions, items, format } = source;
  let dataset: Dataset;
  if (format === 'csv') {
    dataset = await Dataset.fromStreams(
      source.name,
      readCsvInteractions(interactions, opts.columns, { delimiter: opts.delimiter }),
      items ? readCsvItems(items, opts.itemColumns, { delimiter: opts.delimiter }) : undefined,
    );
  } else if (format === 'recbole') {
    dataset = await Dataset.fromStreams(
      source.name,
      readRecboleInter(interactions, opts.columns),
      items ? readRecboleItems(items, opts.itemColumns) : undefined,
    );
  } else {
    dataset = await Dataset.fromStreams(source.name, readAmazonReviews(interactions), items ? readAmazonMeta(items) : undefined);
  }
  if (dataset.numInteractions === 0) throw new DataError(interactions, 'no interactions: the file has a header but no rows');
  return { dataset, source };
}
