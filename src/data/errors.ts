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

/** The latest timestamp accepted: 9999-12-31T23:59:59Z, in Unix seconds. */
export const MAX_TIMESTAMP = 253402300799;

const DECIMAL = /^\d+(\.\d+)?$/;

/**
 * Why a timestamp is not valid Unix seconds, or null when it is. Strings must be non-negative decimal
 * numbers (digits, an optional fraction: no sign, exponent, hex or padding inside), numbers (Amazon's
 * JSON) finite and non-negative; both at most MAX_TIMESTAMP.
 */
export function timestampProblem(v: string | number): string | null {
  const shown = typeof v === 'number' ? String(v) : JSON.stringify(v);
  let x: number;
  if (typeof v === 'number') x = v;
  else {
    const s = v.trim();
    x = s === '' ? NaN : Number(s);
    if (!DECIMAL.test(s)) {
      if (/^-\d+(\.\d+)?$/.test(s)) x = -1;
      else if (!Number.isFinite(x)) return `not a number (${shown})`;
      else return `not a decimal number (${shown}): timestamps are Unix seconds, written as digits with an optional fraction (1388534400 or 1388534400.5)`;
    }
  }
  if (Number.isNaN(x)) return `not a number (${shown})`;
  if (x < 0) return `negative (${shown}): timestamps are Unix seconds since 1970-01-01`;
  if (!(x <= MAX_TIMESTAMP)) return `out of range (${shown}): timestamps are Unix seconds up to ${MAX_TIMESTAMP} (9999-12-31); milliseconds must be divided by 1000`;
  return null;
}

/** Parses a timestamp field: Unix seconds, a non-negative decimal (integer or with a fraction). */
export function parseTimestamp(raw: string, file: string, line: number, field: string): number {
  const why = timestampProblem(raw);
  if (why !== null) throw new DataError(file, why, { line, field });
  return Number(raw.trim());
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

/** Refuses a header that names a column twice (a row could be read under either), on line 1. */
export function checkUniqueHeader(names: readonly string[], file: string): Map<string, number> {
  const index = new Map<string, number>();
  names.forEach((n, i) => {
    const first = index.get(n);
    if (first !== undefined) throw new DataError(file, `duplicate column name (columns ${first + 1} and ${i + 1})`, { line: 1, field: n });
    index.set(n, i);
  });
  return index;
}

/** A candidate set holds the positive and size-1 other items, so it cannot be larger than the catalogue. */
export function checkCandidateSize(size: number, numItems: number): void {
  if (size > numItems) {
    throw new RangeError(`--candidates ${size} exceeds the catalogue: ${numItems} items after cleaning (a set holds the positive and ${size - 1} items the user never touched)`);
  }
}
