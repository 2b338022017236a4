/**
 * Errors about input data. Every message names the file, and where known the line and the field,
 * so a user can open the file at the right place: `data/x.csv:17: field "timestamp": not a number ("abc")`.
 */
export class DataError extends Error {
  readonly file: string;
  readonly line?: number;
  readonly field?: string;

  constructor(file: string, message: string, opts: { line?: number; field?: string; cause?: unknown } = {}) {
    const where = opts.line !== undefined ? `${file}:${opts.line}` : file;
    const what = opts.field !== undefined ? `field "${opts.field}": ` : '';
    super(`${where}: ${what}${message}`, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'DataError';
    this.file = file;
    this.line = opts.line;
    this.field = opts.field;
  }
}

/** Parses a timestamp field: Unix seconds (integer or decimal). */
export function parseTimestamp(raw: string, file: string, line: number, field: string): number {
  const s = raw.trim();
  const v = s === '' ? NaN : Number(s);
  if (!Number.isFinite(v)) throw new DataError(file, `not a number (${JSON.stringify(raw)})`, { line, field });
  return v;
}

/** Parses an optional numeric field such as a rating. */
export function parseNumber(raw: string, file: string, line: number, field: string): number {
  const s = raw.trim();
  const v = s === '' ? NaN : Number(s);
  if (!Number.isFinite(v)) throw new DataError(file, `not a number (${JSON.stringify(raw)})`, { line, field });
  return v;
}

/** Checks that a required identifier field is not empty. */
export function requireId(raw: string | undefined, file: string, line: number, field: string): string {
  const s = (raw ?? '').trim();
  if (s === '') throw new DataError(file, 'empty value', { line, field });
  return s;
}
