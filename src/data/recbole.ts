/**
 * RecBole atomic files: tab-separated, a header of `name:type` fields (token, token_seq, float, ...).
 * `.inter` holds interactions, `.item` the catalogue. Field names are configurable; the defaults are
 * RecBole's own (user_id, item_id, timestamp, rating, title).
 */
import { checkUniqueHeader, DataError, parseNumber, parseTimestamp, requireId } from './errors.js';
import { readLines } from './lines.js';
import type { InteractionColumns, ItemColumns, RawInteraction, RawItem } from './records.js';

interface Header {
  index: Map<string, number>;
  names: string[];
}

function parseHeader(text: string, file: string): Header {
  const names: string[] = [];
  for (const [i, f] of text.split('\t').entries()) {
    const m = /^([^:]+):(token|token_seq|float|float_seq)$/.exec(f.trim());
    if (!m) throw new DataError(file, `header field ${i + 1} is ${JSON.stringify(f)}, expected name:type with type token, token_seq, float or float_seq`, { line: 1, field: f });
    names.push(m[1]);
  }
  return { names, index: checkUniqueHeader(names, file) };
}

async function* atomicRows(file: string, required: Record<string, string | undefined>) {
  let header: Header | null = null;
  for await (const { text, line } of readLines(file)) {
    if (header === null) {
      if (text.trim() === '') throw new DataError(file, 'empty file: expected a name:type header', { line });
      header = parseHeader(text, file);
      for (const [role, name] of Object.entries(required)) {
        if (name !== undefined && !header.index.has(name)) {
          throw new DataError(file, `unknown column "${name}" (for ${role}); the header has: ${header.names.join(', ')}`, { line, field: name });
        }
      }
      continue;
    }
    if (text === '') continue;
    const row = text.split('\t');
    if (row.length !== header.names.length) {
      throw new DataError(file, `expected ${header.names.length} columns (${header.names.join(', ')}), found ${row.length}`, {
        line,
        field: header.names[Math.min(row.length, header.names.length - 1)],
      });
    }
    yield { row, line, index: header.index };
  }
  if (header === null) throw new DataError(file, 'empty file: expected a name:type header', { line: 1 });
}

export async function* readRecboleInter(
  file: string,
  columns: Partial<InteractionColumns> = {},
): AsyncGenerator<RawInteraction> {
  const cols: InteractionColumns = { user: 'user_id', item: 'item_id', timestamp: 'timestamp', ...columns };
  const ratingName = columns.rating ?? 'rating';
  for await (const { row, line, index } of atomicRows(file, { user: cols.user, item: cols.item, timestamp: cols.timestamp, rating: columns.rating })) {
    const ri = index.get(ratingName);
    const out: RawInteraction = {
      user: requireId(row[index.get(cols.user)!], file, line, cols.user),
      item: requireId(row[index.get(cols.item)!], file, line, cols.item),
      timestamp: parseTimestamp(row[index.get(cols.timestamp)!], file, line, cols.timestamp),
    };
    if (ri !== undefined) out.rating = parseNumber(row[ri], file, line, ratingName);
    yield out;
  }
}

export async function* readRecboleItems(file: string, columns: Partial<ItemColumns> = {}): AsyncGenerator<RawItem> {
  const cols: ItemColumns = { item: 'item_id', title: 'title', ...columns };
  for await (const { row, line, index } of atomicRows(file, { item: cols.item, title: cols.title })) {
    yield { item: requireId(row[index.get(cols.item)!], file, line, cols.item), title: row[index.get(cols.title)!].trim() };
  }
}
