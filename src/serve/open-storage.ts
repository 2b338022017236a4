/**
 * Which storage a `--db` string selects: a `postgres://` or `postgresql://` URL opens PostgresStorage,
 * anything else is a SQLite file. The service and its evolution child both open their storage through
 * `openStorage`, from the same string, so they always agree.
 *
 * A URL may carry a password (in its user part or as a `password` query parameter); `storageLabel` is
 * the form that may be shown (logs, error messages, the evolution child's command line), with every
 * password replaced by `***`.
 */
import { resolve } from 'node:path';
import type { Storage } from './storage.js';

export function isPostgresUrl(spec: string): boolean {
  return /^postgres(ql)?:\/\//i.test(spec);
}

/** The spec with passwords replaced by `***` (unchanged when it holds none). */
export function redactUrl(spec: string): string {
  if (!isPostgresUrl(spec)) return spec;
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    // Not a parsable URL (pg would refuse it too): hide whatever sits between "user:" and "@".
    return spec.replace(/^(\w+:\/\/[^:/@]*:)[^@]*@/, '$1***@').replace(/([?&][^=&]*pass[^=&]*=)[^&]*/gi, '$1***');
  }
  if (url.password) url.password = '***';
  for (const key of [...url.searchParams.keys()]) if (/pass/i.test(key)) url.searchParams.set(key, '***');
  // URLSearchParams encodes '*' as '%2A'; keep the mask readable.
  return url.toString().replace(/%2A%2A%2A/g, '***');
}

/** What the storage is called in logs and messages: a SQLite file's absolute path, or the redacted URL. */
export function storageLabel(spec: string): string {
  return isPostgresUrl(spec) ? redactUrl(spec) : resolve(spec);
}

/** The spec in the form both processes open: a SQLite path made absolute (the child may run elsewhere), a URL as given. */
export function normaliseSpec(spec: string): string {
  return isPostgresUrl(spec) ? spec : resolve(spec);
}

export interface OpenOptions {
  /** The evolution child only reads: SQLite opens the file read-only, PostgreSQL sessions are read-only. */
  readonly?: boolean;
  /** Where a PostgreSQL pool reports a connection that failed while idle (default: ignored; the next query fails and says so). */
  log?: (line: string) => void;
}

/** Opens (not migrates) the storage a `--db` string names. The drivers are loaded only when used. */
export async function openStorage(spec: string, opts: OpenOptions = {}): Promise<Storage> {
  if (isPostgresUrl(spec)) {
    const { PostgresStorage } = await import('./postgres-storage.js');
    return new PostgresStorage(spec, opts);
  }
  const { SqliteStorage } = await import('./sqlite-storage.js');
  return new SqliteStorage(spec, { readonly: opts.readonly });
}
