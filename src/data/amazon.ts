/**
 * The raw Amazon review dumps as users download them (McAuley et al.):
 * - `reviews_<Category>_5.json.gz`: one JSON object a line with reviewerID, asin, unixReviewTime, overall;
 * - `meta_<Category>.json.gz`: one product a line with asin and title, as a Python dict literal in the
 *   2014 release and as JSON in the 2018 release. Both are accepted, line by line.
 */
import { DataError, timestampProblem } from './errors.js';
import { readLines } from './lines.js';
import { parsePythonLiteral, PyLiteralError } from './python-literal.js';
import type { RawInteraction, RawItem } from './records.js';

type Obj = Record<string, unknown>;

function parseLine(text: string, file: string, line: number): Obj {
  let v: unknown;
  const t = text.trim();
  try {
    v = JSON.parse(t);
  } catch {
    try {
      v = parsePythonLiteral(t);
    } catch (e) {
      const why = e instanceof PyLiteralError ? e.message : String(e);
      throw new DataError(file, `not a JSON object or Python dict literal (${why})`, { line });
    }
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new DataError(file, 'expected an object', { line });
  return v as Obj;
}

function stringField(o: Obj, key: string, file: string, line: number): string {
  const v = o[key];
  if (v === undefined || v === null) throw new DataError(file, 'missing', { line, field: key });
  if (typeof v !== 'string' && typeof v !== 'number') throw new DataError(file, `expected a string, got ${typeof v}`, { line, field: key });
  const s = String(v).trim();
  if (s === '') throw new DataError(file, 'empty value', { line, field: key });
  return s;
}

function numberField(o: Obj, key: string, file: string, line: number): number {
  const v = o[key];
  if (v === undefined || v === null) throw new DataError(file, 'missing', { line, field: key });
  const x = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(x)) throw new DataError(file, `not a number (${JSON.stringify(v)})`, { line, field: key });
  return x;
}

/** unixReviewTime: a JSON number (the dumps write integers) or a decimal string, as timestampProblem checks. */
function timeField(o: Obj, key: string, file: string, line: number): number {
  const v = o[key];
  if (v === undefined || v === null) throw new DataError(file, 'missing', { line, field: key });
  if (typeof v !== 'number' && typeof v !== 'string') throw new DataError(file, `not a number (${JSON.stringify(v)})`, { line, field: key });
  const why = timestampProblem(v);
  if (why !== null) throw new DataError(file, why, { line, field: key });
  return typeof v === 'number' ? v : Number(v.trim());
}

/** Streams a reviews file (`reviews_<Category>_5.json.gz`; also the 2018 `<Category>_5.json.gz`). */
export async function* readAmazonReviews(file: string): AsyncGenerator<RawInteraction> {
  let any = false;
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    any = true;
    const o = parseLine(text, file, line);
    // The 2018 release names the fields the same; "overall" is the star rating.
    yield {
      user: stringField(o, 'reviewerID', file, line),
      item: stringField(o, 'asin', file, line),
      timestamp: timeField(o, 'unixReviewTime', file, line),
      rating: o.overall === undefined ? undefined : numberField(o, 'overall', file, line),
    };
  }
  if (!any) throw new DataError(file, 'empty file: expected one review a line', { line: 1 });
}

/** Streams a metadata file (`meta_<Category>.json.gz`), 2014 (Python literals) or 2018 (JSON). */
export async function* readAmazonMeta(file: string): AsyncGenerator<RawItem> {
  let any = false;
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    any = true;
    const o = parseLine(text, file, line);
    const t = o.title;
    yield { item: stringField(o, 'asin', file, line), title: typeof t === 'string' ? t.trim() : '' };
  }
  if (!any) throw new DataError(file, 'empty file: expected one product a line', { line: 1 });
}
