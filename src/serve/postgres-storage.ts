/**
 * The networked storage: PostgreSQL through `pg`, for several service replicas over one database. The
 * tables and the schema versions are SQLite's (sqlite-storage.ts): PG_MIGRATIONS[k] takes the schema
 * from version k to k + 1 as MIGRATIONS[k] does there, so a version number means the same schema in both.
 *
 * What several replicas need, and how it is had:
 * - migrations run under an advisory lock, so one replica migrates and the others wait and find it done;
 * - ingestion is idempotent by `client_id` (unique; `INSERT ... ON CONFLICT (client_id) DO NOTHING
 *   RETURNING seq`), and batches are serialised by a transaction-scoped advisory lock, for two reasons:
 *   seq order is then commit order (once a reader sees seq S, no row below S can still appear, so an
 *   evolution's cut-off "trained up to S" is final, as with SQLite's single writer), and concurrent
 *   batches cannot deadlock on the users and item counters they share (without the lock, two replicas'
 *   overlapping batches did, and a reader saw seq 100 while rows below it were still uncommitted);
 * - one active version: the same partial unique index; activation is one transaction that locks the
 *   active row (and an advisory lock for the case where no row is active yet);
 * - durability: `synchronous_commit = on` for every session, and a batch is acknowledged after COMMIT.
 *
 * bigint columns come back as JS numbers, refused beyond 2^53 - 1 rather than rounded; timestamps as ISO
 * strings, as SQLite stores them.
 */
import pg from 'pg';
import { redactUrl } from './open-storage.js';
import { IdConflictError, StorageError, type Evolution, type IngestResult, type Item, type ModelVersion, type NewInteraction, type Storage, type StoredInteraction, type VersionStatus } from './storage.js';

/** Ordered migrations: PG_MIGRATIONS[k] takes the schema from version k to k + 1. Append, never edit. */
export const PG_MIGRATIONS: readonly string[] = [
  // 1: catalogue, users, the append-only log, the model registry and its activation history.
  `CREATE TABLE items (
     idx bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     id text NOT NULL UNIQUE,
     title text NOT NULL,
     created_at timestamptz NOT NULL,
     updated_at timestamptz NOT NULL
   );
   CREATE TABLE users (
     idx bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     id text NOT NULL UNIQUE,
     created_at timestamptz NOT NULL
   );
   CREATE TABLE interactions (
     seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     client_id text NOT NULL UNIQUE,
     user_idx bigint NOT NULL REFERENCES users(idx),
     item_idx bigint NOT NULL REFERENCES items(idx),
     timestamp double precision NOT NULL,
     received_at timestamptz NOT NULL
   );
   CREATE INDEX interactions_by_user ON interactions(user_idx, seq);
   CREATE TABLE model_versions (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     folder text NOT NULL,
     parent_id bigint REFERENCES model_versions(id),
     trained_up_to bigint NOT NULL,
     metrics json NOT NULL,
     status text NOT NULL CHECK (status IN ('active', 'candidate', 'retired', 'rejected')),
     created_at timestamptz NOT NULL,
     activated_at timestamptz,
     note text
   );
   CREATE UNIQUE INDEX one_active_version ON model_versions(status) WHERE status = 'active';
   CREATE TABLE activations (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     version_id bigint NOT NULL REFERENCES model_versions(id),
     at timestamptz NOT NULL,
     reason text NOT NULL
   );`,
  // 2: evolution jobs.
  `CREATE TABLE evolutions (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     status text NOT NULL,
     base_version_id bigint NOT NULL REFERENCES model_versions(id),
     from_seq bigint NOT NULL,
     to_seq bigint NOT NULL,
     new_version_id bigint REFERENCES model_versions(id),
     options json NOT NULL,
     progress json NOT NULL,
     message text,
     pid integer,
     started_at timestamptz NOT NULL,
     finished_at timestamptz
   );`,
  // 3: a per-item interaction counter, kept in the ingest transaction (the candidate pool's popularity).
  `ALTER TABLE items ADD COLUMN interactions bigint NOT NULL DEFAULT 0;
   UPDATE items SET interactions = (SELECT COUNT(*) FROM interactions WHERE item_idx = items.idx);
   CREATE INDEX items_by_popularity ON items(interactions DESC, idx);`,
];

export const PG_SCHEMA_VERSION_DDL = 'CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL, applied_at timestamptz NOT NULL)';

/** Advisory lock keys (class, object): 'evor' and what the lock guards. */
const LOCK_CLASS = 0x65766f72;
const LOCK = { migrate: 1, ingest: 2, activate: 3, catalogue: 4 } as const;

const INT8 = 20;
const TIMESTAMPTZ = 1184;

/** int8 as a JS number, refused (the query fails) when it would not be exact. */
function parseInt8(s: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new RangeError(`PostgreSQL returned the bigint ${s}, beyond JavaScript's exact integers (2^53 - 1)`);
  return n;
}

/** The pool's own type parsers (the `pg` module's global ones are left alone). */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8) return parseInt8;
    if (oid === TIMESTAMPTZ) {
      const toDate = pg.types.getTypeParser(TIMESTAMPTZ, 'text') as (s: string) => Date;
      return (s: string) => toDate(s).toISOString();
    }
    return pg.types.getTypeParser(oid, format as 'text');
  }) as typeof pg.types.getTypeParser,
};

interface VersionRow {
  id: number;
  folder: string;
  parent_id: number | null;
  trained_up_to: number;
  metrics: Record<string, unknown>;
  status: VersionStatus;
  created_at: string;
  activated_at: string | null;
  note: string | null;
}

interface EvolutionRow {
  id: number;
  status: Evolution['status'];
  base_version_id: number;
  from_seq: number;
  to_seq: number;
  new_version_id: number | null;
  options: Record<string, unknown>;
  progress: Evolution['progress'];
  message: string | null;
  pid: number | null;
  started_at: string;
  finished_at: string | null;
}

const toVersion = (r: VersionRow): ModelVersion => ({
  id: r.id,
  folder: r.folder,
  parentId: r.parent_id,
  trainedUpTo: r.trained_up_to,
  metrics: r.metrics,
  status: r.status,
  createdAt: r.created_at,
  activatedAt: r.activated_at,
  note: r.note,
});

const toEvolution = (r: EvolutionRow): Evolution => ({
  id: r.id,
  status: r.status,
  baseVersionId: r.base_version_id,
  fromSeq: r.from_seq,
  toSeq: r.to_seq,
  newVersionId: r.new_version_id,
  options: r.options,
  progress: r.progress,
  message: r.message,
  pid: r.pid,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

type Queryable = pg.Pool | pg.PoolClient;

export interface PostgresOptions {
  /** Read-only sessions (the evolution child). */
  readonly?: boolean;
  /** Connections per process (default 10). */
  max?: number;
  log?: (line: string) => void;
}

export class PostgresStorage implements Storage {
  readonly pool: pg.Pool;
  /** The URL as it may be shown (passwords masked). */
  readonly label: string;

  constructor(url: string, opts: PostgresOptions = {}) {
    this.label = redactUrl(url);
    const settings = ['-c synchronous_commit=on', ...(opts.readonly ? ['-c default_transaction_read_only=on'] : [])].join(' ');
    this.pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, types, options: settings, application_name: 'evorec' });
    // An idle connection that breaks (the server restarted) is dropped by the pool; without a listener it would end the process.
    this.pool.on('error', (e) => opts.log?.(`${this.label}: idle connection lost: ${e.message}`));
  }

  /**
   * Runs `f` in one transaction on one connection, holding the advisory lock `lock` (released at the
   * end of the transaction); rolled back if it throws. BEGIN and the lock go in one round trip.
   */
  private async transaction<T>(lock: keyof typeof LOCK | null, f: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.connect();
    let broken = false;
    try {
      await c.query(lock ? `BEGIN; SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${LOCK[lock]})` : 'BEGIN');
      const out = await f(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => (broken = true));
      throw e;
    } finally {
      c.release(broken);
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (e) {
      // pg's messages name the host and port, never the password; the label says which database.
      throw new StorageError(`${this.label}: cannot connect: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private async rows<R>(q: Queryable, sql: string, params: unknown[] = []): Promise<R[]> {
    return (await q.query(sql, params)).rows as R[];
  }

  async migrate(): Promise<number> {
    const c = await this.connect();
    try {
      // Session-scoped: held across the migrations, each of which is its own transaction; released on exit.
      await c.query('SELECT pg_advisory_lock($1, $2)', [LOCK_CLASS, LOCK.migrate]);
      try {
        await c.query(PG_SCHEMA_VERSION_DDL);
        const current = async () => (await this.rows<{ v: number | null }>(c, 'SELECT MAX(version) AS v FROM schema_version'))[0].v ?? 0;
        let v = await current();
        if (v > PG_MIGRATIONS.length) throw new StorageError(`${this.label}: schema version ${v} is newer than this evorec (knows ${PG_MIGRATIONS.length}); upgrade evorec`);
        while (v < PG_MIGRATIONS.length) {
          await c.query('BEGIN');
          try {
            await c.query(PG_MIGRATIONS[v]);
            await c.query('INSERT INTO schema_version (version, applied_at) VALUES ($1, now())', [v + 1]);
            await c.query('COMMIT');
          } catch (e) {
            await c.query('ROLLBACK');
            throw new StorageError(`${this.label}: migration ${v + 1} failed: ${e instanceof Error ? e.message : String(e)}`);
          }
          v = await current();
        }
        return v;
      } finally {
        await c.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCK.migrate]);
      }
    } finally {
      c.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  async upsertItems(items: readonly Item[]): Promise<{ created: number; updated: number }> {
    // One catalogue writer at a time: item idx order is then commit order, so every replica appends
    // new items to its catalogue in the same order.
    return this.transaction('catalogue', async (c) => {
      const ids = [...new Set(items.map((it) => it.id))];
      const stored = new Map((await this.rows<Item>(c, 'SELECT id, title FROM items WHERE id = ANY($1::text[])', [ids])).map((r) => [r.id, r.title]));
      // Walk the batch as SQLite does, item by item: a new id is created, a changed title is an update.
      const titles = new Map(stored);
      const fresh: string[] = [];
      const changed = new Set<string>();
      let updated = 0;
      for (const it of items) {
        const prev = titles.get(it.id);
        if (prev === undefined) fresh.push(it.id);
        else if (prev !== it.title) {
          updated++;
          if (stored.has(it.id)) changed.add(it.id);
        }
        titles.set(it.id, it.title);
      }
      if (fresh.length) {
        await c.query(
          'INSERT INTO items (id, title, created_at, updated_at) SELECT id, title, now(), now() FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(id, title, ord) ORDER BY ord',
          [fresh, fresh.map((id) => titles.get(id)!)],
        );
      }
      if (changed.size) {
        const ch = [...changed];
        await c.query('UPDATE items SET title = t.title, updated_at = now() FROM unnest($1::text[], $2::text[]) AS t(id, title) WHERE items.id = t.id', [ch, ch.map((id) => titles.get(id)!)]);
      }
      return { created: fresh.length, updated };
    });
  }

  async items(): Promise<Item[]> {
    return this.rows<Item>(this.pool, 'SELECT id, title FROM items ORDER BY idx');
  }

  async missingItems(ids: readonly string[]): Promise<string[]> {
    const unique = [...new Set(ids)];
    const found = new Set((await this.rows<{ id: string }>(this.pool, 'SELECT id FROM items WHERE id = ANY($1::text[])', [unique])).map((r) => r.id));
    return unique.filter((id) => !found.has(id));
  }

  async catalogueStamp(): Promise<string> {
    const [r] = await this.rows<{ n: number; t: string | null }>(this.pool, 'SELECT COUNT(*) AS n, MAX(updated_at) AS t FROM items');
    return `${r.n}:${r.t ?? ''}`;
  }

  async appendInteractions(rows: readonly NewInteraction[]): Promise<IngestResult[]> {
    return this.transaction('ingest', async (c) => {
      const byClient = (ids: string[]) =>
        this.rows<{ id: string; seq: number; user: string; item: string }>(
          c,
          'SELECT i.client_id AS id, i.seq, u.id AS "user", it.id AS item FROM interactions i JOIN users u ON u.idx = i.user_idx JOIN items it ON it.idx = i.item_idx WHERE i.client_id = ANY($1::text[])',
          [ids],
        );
      const stored = new Map((await byClient([...new Set(rows.map((r) => r.id))])).map((r) => [r.id, r]));
      const conflict = (r: NewInteraction, prev: { user: string; item: string }) =>
        new IdConflictError(`interaction id "${r.id}" was already used for user "${prev.user}" and item "${prev.item}"`);
      // The batch in order: a row whose id is stored, or came earlier in the batch, must repeat its content.
      const first = new Map<string, NewInteraction>();
      for (const r of rows) {
        const prev = stored.get(r.id) ?? first.get(r.id);
        if (prev && (prev.user !== r.user || prev.item !== r.item)) throw conflict(r, prev);
        if (!prev) first.set(r.id, r);
      }
      const fresh = [...first.values()];
      const seqs = new Map<string, number>();
      if (fresh.length) {
        const itemIds = [...new Set(fresh.map((r) => r.item))];
        const itemIdx = new Map((await this.rows<{ idx: number; id: string }>(c, 'SELECT idx, id FROM items WHERE id = ANY($1::text[])', [itemIds])).map((r) => [r.id, r.idx]));
        const unknown = fresh.find((r) => !itemIdx.has(r.item));
        if (unknown) throw new RangeError(`unknown item "${unknown.item}"`);
        // Users on first sight, in the order the batch names them. One statement: the SELECT does not see
        // the rows its own INSERT adds (one snapshot), so the union is the stored users plus the new ones
        // (users are added only under the ingest lock, so none can be committed in between).
        const userIds = [...new Set(fresh.map((r) => r.user))];
        const users = await this.rows<{ idx: number; id: string }>(
          c,
          'WITH added AS (INSERT INTO users (id, created_at) SELECT id, now() FROM unnest($1::text[]) WITH ORDINALITY AS t(id, ord) ORDER BY ord ON CONFLICT (id) DO NOTHING RETURNING idx, id) ' +
            'SELECT idx, id FROM added UNION ALL SELECT idx, id FROM users WHERE id = ANY($1::text[])',
          [userIds],
        );
        const userIdx = new Map(users.map((r) => [r.id, r.idx]));
        // ORDER BY ord: the identity is drawn row by row as the ordered rows arrive, so seq follows the
        // batch order. The item counters count the rows inserted, in the same statement.
        const inserted = await this.rows<{ id: string; seq: number }>(
          c,
          'WITH added AS (INSERT INTO interactions (client_id, user_idx, item_idx, timestamp, received_at) ' +
            'SELECT c, u, i, ts, now() FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::float8[]) WITH ORDINALITY AS t(c, u, i, ts, ord) ORDER BY ord ' +
            'ON CONFLICT (client_id) DO NOTHING RETURNING client_id, seq, item_idx), ' +
            'counted AS (UPDATE items SET interactions = items.interactions + n.count FROM (SELECT item_idx, COUNT(*) AS count FROM added GROUP BY item_idx) n WHERE items.idx = n.item_idx) ' +
            'SELECT client_id AS id, seq FROM added',
          [fresh.map((r) => r.id), fresh.map((r) => userIdx.get(r.user)), fresh.map((r) => itemIdx.get(r.item)), fresh.map((r) => r.timestamp)],
        );
        for (const r of inserted) seqs.set(r.id, r.seq);
        // A row not inserted was committed meanwhile by a writer outside the ingest lock: a duplicate, or a conflict.
        const raced = fresh.filter((r) => !seqs.has(r.id));
        if (raced.length) {
          for (const s of await byClient(raced.map((r) => r.id))) {
            const r = first.get(s.id)!;
            if (s.user !== r.user || s.item !== r.item) throw conflict(r, s);
            stored.set(s.id, s);
          }
        }
      }
      const acknowledged = new Set<string>();
      return rows.map((r): IngestResult => {
        const prev = stored.get(r.id);
        if (prev) return { id: r.id, status: 'duplicate', seq: prev.seq };
        const seq = seqs.get(r.id)!;
        if (acknowledged.has(r.id)) return { id: r.id, status: 'duplicate', seq };
        acknowledged.add(r.id);
        return { id: r.id, status: 'created', seq };
      });
    });
  }

  async interactions(fromSeq: number, toSeq: number): Promise<StoredInteraction[]> {
    return this.rows<StoredInteraction>(
      this.pool,
      'SELECT i.seq, i.client_id AS id, u.id AS "user", it.id AS item, i.timestamp FROM interactions i ' +
        'JOIN users u ON u.idx = i.user_idx JOIN items it ON it.idx = i.item_idx WHERE i.seq > $1 AND i.seq <= $2 ORDER BY i.seq',
      [fromSeq, toSeq],
    );
  }

  async lastSeq(): Promise<number> {
    return (await this.rows<{ s: number }>(this.pool, 'SELECT COALESCE(MAX(seq), 0) AS s FROM interactions'))[0].s;
  }

  async logState(): Promise<{ lastSeq: number; count: number }> {
    const [r] = await this.rows<{ lastSeq: number; count: number }>(this.pool, 'SELECT COALESCE(MAX(seq), 0) AS "lastSeq", COUNT(*) AS count FROM interactions');
    return r;
  }

  async recentItems(user: string, n: number): Promise<string[] | null> {
    const [u] = await this.rows<{ idx: number }>(this.pool, 'SELECT idx FROM users WHERE id = $1', [user]);
    if (!u) return null;
    const rows = await this.rows<{ item: string }>(
      this.pool,
      'SELECT it.id AS item FROM interactions i JOIN items it ON it.idx = i.item_idx WHERE i.user_idx = $1 ORDER BY i.seq DESC LIMIT $2',
      [u.idx, n],
    );
    return rows.map((r) => r.item).reverse();
  }

  async userItems(user: string): Promise<Set<string>> {
    const rows = await this.rows<{ item: string }>(
      this.pool,
      'SELECT DISTINCT it.id AS item FROM interactions i JOIN users u ON u.idx = i.user_idx JOIN items it ON it.idx = i.item_idx WHERE u.id = $1',
      [user],
    );
    return new Set(rows.map((r) => r.item));
  }

  async popularity(limit: number): Promise<{ item: string; count: number }[]> {
    return this.rows(this.pool, 'SELECT id AS item, interactions AS count FROM items ORDER BY interactions DESC, idx LIMIT $1', [limit]);
  }

  async userCount(): Promise<number> {
    return (await this.rows<{ n: number }>(this.pool, 'SELECT COUNT(*) AS n FROM users'))[0].n;
  }

  async addVersion(v: Omit<ModelVersion, 'id' | 'createdAt' | 'activatedAt' | 'status'> & { status?: VersionStatus }): Promise<ModelVersion> {
    const status = v.status ?? 'candidate';
    if (status === 'active') throw new Error('addVersion: register the version, then activate it');
    const [r] = await this.rows<VersionRow>(
      this.pool,
      'INSERT INTO model_versions (folder, parent_id, trained_up_to, metrics, status, created_at, note) VALUES ($1, $2, $3, $4, $5, now(), $6) RETURNING *',
      [v.folder, v.parentId, v.trainedUpTo, JSON.stringify(v.metrics), status, v.note],
    );
    return toVersion(r);
  }

  async version(id: number): Promise<ModelVersion | null> {
    const [r] = await this.rows<VersionRow>(this.pool, 'SELECT * FROM model_versions WHERE id = $1', [id]);
    return r ? toVersion(r) : null;
  }

  async versions(): Promise<ModelVersion[]> {
    return (await this.rows<VersionRow>(this.pool, 'SELECT * FROM model_versions ORDER BY id')).map(toVersion);
  }

  async activeVersion(): Promise<ModelVersion | null> {
    const [r] = await this.rows<VersionRow>(this.pool, "SELECT * FROM model_versions WHERE status = 'active'");
    return r ? toVersion(r) : null;
  }

  async activateVersion(id: number, reason: string): Promise<ModelVersion> {
    // Activations one at a time, also when no version is active yet (then there is no row to lock, and
    // two first activations would collide on the unique index instead of one following the other).
    return this.transaction('activate', async (c) => {
      await c.query("SELECT id FROM model_versions WHERE status = 'active' FOR UPDATE");
      if (!(await this.rows(c, 'SELECT id FROM model_versions WHERE id = $1 FOR UPDATE', [id])).length) throw new RangeError(`no version ${id}`);
      await c.query("UPDATE model_versions SET status = 'retired' WHERE status = 'active' AND id != $1", [id]);
      const [r] = await this.rows<VersionRow>(c, "UPDATE model_versions SET status = 'active', activated_at = now() WHERE id = $1 RETURNING *", [id]);
      await c.query('INSERT INTO activations (version_id, at, reason) VALUES ($1, now(), $2)', [id, reason]);
      return toVersion(r);
    });
  }

  async setVersionStatus(id: number, status: VersionStatus, note?: string): Promise<void> {
    if (status === 'active') throw new Error('setVersionStatus: use activateVersion');
    await this.pool.query('UPDATE model_versions SET status = $1, note = COALESCE($2, note) WHERE id = $3', [status, note ?? null, id]);
  }

  async activationHistory(): Promise<{ versionId: number; at: string; reason: string }[]> {
    return this.rows(this.pool, 'SELECT version_id AS "versionId", at, reason FROM activations ORDER BY id');
  }

  async startEvolution(e: Pick<Evolution, 'baseVersionId' | 'fromSeq' | 'toSeq' | 'options'>): Promise<Evolution> {
    const [r] = await this.rows<EvolutionRow>(
      this.pool,
      'INSERT INTO evolutions (status, base_version_id, from_seq, to_seq, options, progress, started_at) VALUES ($1, $2, $3, $4, $5, $6, now()) RETURNING *',
      ['running', e.baseVersionId, e.fromSeq, e.toSeq, JSON.stringify(e.options), JSON.stringify({ stage: 'starting', done: 0, total: 0, log: [] })],
    );
    return toEvolution(r);
  }

  async updateEvolution(id: number, patch: Partial<Pick<Evolution, 'status' | 'progress' | 'message' | 'pid' | 'newVersionId' | 'finishedAt'>>): Promise<void> {
    const cols: Record<string, unknown> = {};
    if (patch.status !== undefined) cols.status = patch.status;
    if (patch.progress !== undefined) cols.progress = JSON.stringify(patch.progress);
    if (patch.message !== undefined) cols.message = patch.message;
    if (patch.pid !== undefined) cols.pid = patch.pid;
    if (patch.newVersionId !== undefined) cols.new_version_id = patch.newVersionId;
    if (patch.finishedAt !== undefined) cols.finished_at = patch.finishedAt;
    const keys = Object.keys(cols);
    if (keys.length === 0) return;
    await this.pool.query(`UPDATE evolutions SET ${keys.map((k, j) => `${k} = $${j + 1}`).join(', ')} WHERE id = $${keys.length + 1}`, [...keys.map((k) => cols[k]), id]);
  }

  async evolution(id: number): Promise<Evolution | null> {
    const [r] = await this.rows<EvolutionRow>(this.pool, 'SELECT * FROM evolutions WHERE id = $1', [id]);
    return r ? toEvolution(r) : null;
  }

  async evolutions(): Promise<Evolution[]> {
    return (await this.rows<EvolutionRow>(this.pool, 'SELECT * FROM evolutions ORDER BY id')).map(toEvolution);
  }
}
