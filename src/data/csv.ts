/**
 * CSV and TSV tables with a header row, plain or gzip, read as a stream. Quoted fields (with embedded
 * commas, quotes and newlines) are handled by csv-parse; every row is checked against the header's
 * column count, and every error names the file, the line and the field.
 */
import { CsvError, parse } from 'csv-parse';
import { checkUniqueHeader, DataError, parseNumber, parseTimestamp, requireId } from './errors.js';
import { openDecoded, streamError } from './lines.js';
import {
  DEFAULT_INTERACTION_COLUMNS,
  DEFAULT_ITEM_COLUMNS,
  type InteractionColumns,
  type ItemColumns,
  type RawInteraction,
  type RawItem,
} from './records.js';

export interface CsvOptions {
  /** Field separator. Default: tab for names containing ".tsv", otherwise comma. */
  delimiter?: string;
}

function delimiterFor(file: string, opts: CsvOptions): string {
  return opts.delimiter ?? (/\.tsv(\.gz)?$/i.test(file) ? '\t' : ',');
}

/** Yields rows as arrays with the 1-based line where each row ends, after validating the header. */
async function* csvRows(
  file: string,
  required: Record<string, string | undefined>,
  opts: CsvOptions,
): AsyncGenerator<{ row: string[]; line: number; index: Map<string, number> }> {
  const input = await openDecoded(file);
  // The first record as parsed: an error on a later line of the same chunk can reach the loop below
  // before the header does, and its message names the column.
  let firstRecord: string[] | null = null;
  const parser = parse({
    on_record: (rec: unknown) => {
      firstRecord ??= Array.isArray(rec) ? (rec as string[]) : (rec as { record: string[] }).record;
      return rec as string[];
    },
    delimiter: delimiterFor(file, opts),
    bom: true,
    relax_column_count: true,
    relax_quotes: false,
    info: true,
    skip_empty_lines: true,
  });
  input.on('error', (e) => parser.destroy(e));
  input.pipe(parser);
  let header: string[] | null = null;
  let index = new Map<string, number>();
  let line = 0;
  try {
    for await (const rec of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      line = rec.info.lines;
      if (header === null) {
        header = rec.record.map((h) => h.trim());
        index = checkUniqueHeader(header, file);
        for (const [role, name] of Object.entries(required)) {
          if (name !== undefined && !index.has(name)) {
            throw new DataError(file, `unknown column "${name}" (for ${role}); the header has: ${header.join(', ')}`, {
              line,
              field: name,
            });
          }
        }
        continue;
      }
      if (rec.record.length !== header.length) {
        throw new DataError(
          file,
          `expected ${header.length} columns (${header.join(', ')}), found ${rec.record.length}`,
          { line, field: header[Math.min(rec.record.length, header.length - 1)] },
        );
      }
      yield { row: rec.record, line, index };
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    if (e instanceof CsvError) {
      const l = typeof e.lines === 'number' ? e.lines : line + 1;
      const names = header ?? (firstRecord as string[] | null)?.map((h) => h.trim());
      const field = names && typeof e.index === 'number' && e.lines !== 1 ? names[e.index] : undefined;
      const why = e.code === 'INVALID_OPENING_QUOTE'
        ? `malformed CSV: a quote inside an unquoted field (the field so far is ${JSON.stringify(String(e.field ?? ''))}); quote the whole field and double its quotes, as in "a ""b"" c"`
        : `malformed CSV (${e.message})`;
      throw new DataError(file, why, { line: l, field, cause: e });
    }
    throw streamError(file, line + 1, e);
  }
  if (header === null) throw new DataError(file, 'empty file: expected a header row', { line: 1 });
}

/** Streams interactions from a CSV/TSV file with configurable column names. */
export async function* readCsvInteractions(
  file: string,
  columns: Partial<InteractionColumns> = {},
  opts: CsvOptions = {},
): AsyncGenerator<RawInteraction> {
  const cols = { ...DEFAULT_INTERACTION_COLUMNS, ...columns };
  // The default rating column is optional: only a rating column the user named must exist.
  const ratingRequired = columns.rating !== undefined;
  const required = { user: cols.user, item: cols.item, timestamp: cols.timestamp, rating: ratingRequired ? cols.rating : undefined };
  for await (const { row, line, index } of csvRows(file, required, opts)) {
    const ri = cols.rating !== undefined ? index.get(cols.rating) : undefined;
    const out: RawInteraction = {
      user: requireId(row[index.get(cols.user)!], file, line, cols.user),
      item: requireId(row[index.get(cols.item)!], file, line, cols.item),
      timestamp: parseTimestamp(row[index.get(cols.timestamp)!], file, line, cols.timestamp),
    };
    if (ri !== undefined) out.rating = parseNumber(row[ri], file, line, cols.rating!);
    yield out;
  }
}

/** Streams catalogue entries (item id and title) from a CSV/TSV file. */
export async function* readCsvItems(
  file: string,
  columns: Partial<ItemColumns> = {},
  opts: CsvOptions = {},
): AsyncGenerator<RawItem> {
  const cols = { ...DEFAULT_ITEM_COLUMNS, ...columns };
  for await (const { row, line, index } of csvRows(file, { item: cols.item, title: cols.title }, opts)) {
    yield { item: requireId(row[index.get(cols.item)!], file, line, cols.item), title: row[index.get(cols.title)!].trim() };
  }
}
