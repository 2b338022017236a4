/**
 * The embedded storage: one SQLite file (better-sqlite3), in WAL mode so that the evolution child process
 * reads the log while the service appends to it. The schema is created and migrated here: the
 * `schema_version` table holds the version in force, and MIGRATIONS are applied in order, each in its own
 * transaction, so a service started on an older file brings it up to date and a crash mid-migration
 * leaves the previous version intact.
 */
import Database from 'better-sqlite3';
import { IdConflictError, StorageError, type Evolution, type IngestResult, type Item, type ModelVersion, type NewInteraction, type Storage, type StoredInteraction, type VersionStatus } from './storage.js';

/** Ordered migrations: MIGRATIONS[k] takes the schema from version k to k + 1. Append, never edit. */
export const MIGRATIONS: readonly string[] = [
  // 1: catalogue, users, the append-only log, the model registry and its activation history.
  `CREATE TABLE items (
     idx INTEGER PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     title TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE users (
     idx INTEGER PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     created_at TEXT NOT NULL
   );
   CREATE TABLE interactions (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     client_id TEXT NOT NULL UNIQUE,
     user_idx INTEGER NOT NULL REFERENCES users(idx),
     item_idx INTEGER NOT NULL REFERENCES items(idx),
     timestamp REAL NOT NULL,
     received_at TEXT NOT NULL
   );
   CREATE INDEX interactions_by_user ON interactions(user_idx, seq);
   CREATE TABLE model_versions (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     folder TEXT NOT NULL,
     parent_id INTEGER REFERENCES model_versions(id),
     trained_up_to INTEGER NOT NULL,
     metrics TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('active', 'candidate', 'retired', 'rejected')),
     created_at TEXT NOT NULL,
     activated_at TEXT,
     note TEXT
   );
   CREATE UNIQUE INDEX one_active_version ON model_versions(status) WHERE status = 'active';
   CREATE TABLE activations (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     version_id INTEGER NOT NULL REFERENCES model_versions(id),
     at TEXT NOT NULL,
     reason TEXT NOT NULL
   );`,
  // 2: evolution jobs.
  `CREATE TABLE evolutions (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     status TEXT NOT NULL,
     base_version_id INTEGER NOT NULL REFERENCES model_versions(id),
     from_seq INTEGER NOT NULL,
     to_seq INTEGER NOT NULL,
     new_version_id INTEGER REFERENCES model_versions(id),
     options TEXT NOT NULL,
     progress TEXT NOT NULL,
     message TEXT,
     pid INTEGER,
     started_at TEXT NOT NULL,
     finished_at TEXT
   );`,
  // 3: a per-item interaction counter, kept in the ingest transaction (the candidate pool's popularity).
  `ALTER TABLE items ADD COLUMN interactions INTEGER NOT NULL DEFAULT 0;
   UPDATE items SET interactions = (SELECT COUNT(*) FROM interactions WHERE item_idx = items.idx);
   CREATE INDEX items_by_popularity ON items(interactions DESC, idx);`,
];

export const SCHEMA_VERSION_DDL = 'CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)';

const now = () => new Date().toISOString();

interface VersionRow {
  id: number;
  folder: string;
  parent_id: number | null;
  trained_up_to: number;
  metrics: string;
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
  options: string;
  progress: string;
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
  metrics: JSON.parse(r.metrics) as Record<string, unknown>,
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
  options: JSON.parse(r.options) as Record<string, unknown>,
  progress: JSON.parse(r.progress) as Evolution['progress'],
  message: r.message,
  pid: r.pid,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

export class SqliteStorage implements Storage {
  readonly db: Database.Database;

  constructor(readonly file: string, opts: { readonly?: boolean } = {}) {
    this.db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
    if (!opts.readonly) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
    }
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
  }

  async migrate(): Promise<number> {
    return this.migrateSync();
  }

  migrateSync(): number {
    this.db.exec(SCHEMA_VERSION_DDL);
    const current = () => (this.db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null }).v ?? 0;
    let v = current();
    if (v > MIGRATIONS.length) throw new StorageError(`${this.file}: schema version ${v} is newer than this evorec (knows ${MIGRATIONS.length}); upgrade evorec`);
    while (v < MIGRATIONS.length) {
      const step = v;
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[step]);
        this.db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(step + 1, now());
      }).immediate();
      v = current();
    }
    return v;
  }

  async close(): Promise<void> {
    this.db.close();
  }

  async upsertItems(items: readonly Item[]): Promise<{ created: number; updated: number }> {
    const find = this.db.prepare('SELECT title FROM items WHERE id = ?');
    const insert = this.db.prepare('INSERT INTO items (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)');
    const update = this.db.prepare('UPDATE items SET title = ?, updated_at = ? WHERE id = ?');
    let created = 0;
    let updated = 0;
    this.db.transaction(() => {
      const t = now();
      for (const it of items) {
        const row = find.get(it.id) as { title: string } | undefined;
        if (!row) {
          insert.run(it.id, it.title, t, t);
          created++;
        } else if (row.title !== it.title) {
          update.run(it.title, t, it.id);
          updated++;
        }
      }
    }).immediate();
    return { created, updated };
  }

  async items(): Promise<Item[]> {
    return this.db.prepare('SELECT id, title FROM items ORDER BY idx').all() as Item[];
  }

  async missingItems(ids: readonly string[]): Promise<string[]> {
    const find = this.db.prepare('SELECT 1 FROM items WHERE id = ?');
    return [...new Set(ids)].filter((id) => !find.get(id));
  }

  async catalogueStamp(): Promise<string> {
    const r = this.db.prepare('SELECT COUNT(*) AS n, MAX(updated_at) AS t FROM items').get() as { n: number; t: string | null };
    return `${r.n}:${r.t ?? ''}`;
  }

  async appendInteractions(rows: readonly NewInteraction[]): Promise<IngestResult[]> {
    const byClient = this.db.prepare('SELECT i.seq AS seq, u.id AS user, it.id AS item FROM interactions i JOIN users u ON u.idx = i.user_idx JOIN items it ON it.idx = i.item_idx WHERE i.client_id = ?');
    const userIdx = this.db.prepare('SELECT idx FROM users WHERE id = ?');
    const addUser = this.db.prepare('INSERT INTO users (id, created_at) VALUES (?, ?)');
    const itemIdx = this.db.prepare('SELECT idx FROM items WHERE id = ?');
    const insert = this.db.prepare('INSERT INTO interactions (client_id, user_idx, item_idx, timestamp, received_at) VALUES (?, ?, ?, ?, ?)');
    const count = this.db.prepare('UPDATE items SET interactions = interactions + 1 WHERE idx = ?');
    return this.db.transaction(() => {
      const t = now();
      const out: IngestResult[] = [];
      for (const r of rows) {
        const prev = byClient.get(r.id) as { seq: number; user: string; item: string } | undefined;
        if (prev) {
          if (prev.user !== r.user || prev.item !== r.item) {
            throw new IdConflictError(`interaction id "${r.id}" was already used for user "${prev.user}" and item "${prev.item}"`);
          }
          out.push({ id: r.id, status: 'duplicate', seq: prev.seq });
          continue;
        }
        let u = (userIdx.get(r.user) as { idx: number } | undefined)?.idx;
        if (u === undefined) u = Number(addUser.run(r.user, t).lastInsertRowid);
        const it = (itemIdx.get(r.item) as { idx: number } | undefined)?.idx;
        if (it === undefined) throw new RangeError(`unknown item "${r.item}"`);
        const seq = Number(insert.run(r.id, u, it, r.timestamp, t).lastInsertRowid);
        count.run(it);
        out.push({ id: r.id, status: 'created', seq });
      }
      return out;
    }).immediate();
  }

  async interactions(fromSeq: number, toSeq: number): Promise<StoredInteraction[]> {
    return this.db
      .prepare(
        'SELECT i.seq AS seq, i.client_id AS id, u.id AS user, it.id AS item, i.timestamp AS timestamp FROM interactions i ' +
          'JOIN users u ON u.idx = i.user_idx JOIN items it ON it.idx = i.item_idx WHERE i.seq > ? AND i.seq <= ? ORDER BY i.seq',
      )
      .all(fromSeq, toSeq) as StoredInteraction[];
  }

  async lastSeq(): Promise<number> {
    return (this.db.prepare('SELECT COALESCE(MAX(seq), 0) AS s FROM interactions').get() as { s: number }).s;
  }

  async logState(): Promise<{ lastSeq: number; count: number }> {
    const r = this.db.prepare('SELECT COALESCE(MAX(seq), 0) AS lastSeq, COUNT(*) AS count FROM interactions').get() as { lastSeq: number; count: number };
    return r;
  }

  async recentItems(user: string, n: number): Promise<string[] | null> {
    const u = this.db.prepare('SELECT idx FROM users WHERE id = ?').get(user) as { idx: number } | undefined;
    if (!u) return null;
    const rows = this.db
      .prepare('SELECT it.id AS item FROM interactions i JOIN items it ON it.idx = i.item_idx WHERE i.user_idx = ? ORDER BY i.seq DESC LIMIT ?')
      .all(u.idx, n) as { item: string }[];
    return rows.map((r) => r.item).reverse();
  }

  async userItems(user: string): Promise<Set<string>> {
    const rows = this.db
      .prepare('SELECT DISTINCT it.id AS item FROM interactions i JOIN users u ON u.idx = i.user_idx JOIN items it ON it.idx = i.item_idx WHERE u.id = ?')
      .all(user) as { item: string }[];
    return new Set(rows.map((r) => r.item));
  }

  async popularity(limit: number): Promise<{ item: string; count: number }[]> {
    return this.db.prepare('SELECT id AS item, interactions AS count FROM items ORDER BY interactions DESC, idx LIMIT ?').all(limit) as { item: string; count: number }[];
  }

  async userCount(): Promise<number> {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM users').get() as { n: number }).n;
  }

  async addVersion(v: Omit<ModelVersion, 'id' | 'createdAt' | 'activatedAt' | 'status'> & { status?: VersionStatus }): Promise<ModelVersion> {
    const status = v.status ?? 'candidate';
    if (status === 'active') throw new Error('addVersion: register the version, then activate it');
    const id = Number(
      this.db
        .prepare('INSERT INTO model_versions (folder, parent_id, trained_up_to, metrics, status, created_at, note) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(v.folder, v.parentId, v.trainedUpTo, JSON.stringify(v.metrics), status, now(), v.note).lastInsertRowid,
    );
    return (await this.version(id))!;
  }

  async version(id: number): Promise<ModelVersion | null> {
    const r = this.db.prepare('SELECT * FROM model_versions WHERE id = ?').get(id) as VersionRow | undefined;
    return r ? toVersion(r) : null;
  }

  async versions(): Promise<ModelVersion[]> {
    return (this.db.prepare('SELECT * FROM model_versions ORDER BY id').all() as VersionRow[]).map(toVersion);
  }

  async activeVersion(): Promise<ModelVersion | null> {
    const r = this.db.prepare("SELECT * FROM model_versions WHERE status = 'active'").get() as VersionRow | undefined;
    return r ? toVersion(r) : null;
  }

  async activateVersion(id: number, reason: string): Promise<ModelVersion> {
    this.db.transaction(() => {
      const t = now();
      this.db.prepare("UPDATE model_versions SET status = 'retired' WHERE status = 'active' AND id != ?").run(id);
      this.db.prepare("UPDATE model_versions SET status = 'active', activated_at = ? WHERE id = ?").run(t, id);
      this.db.prepare('INSERT INTO activations (version_id, at, reason) VALUES (?, ?, ?)').run(id, t, reason);
    }).immediate();
    return (await this.version(id))!;
  }

  async setVersionStatus(id: number, status: VersionStatus, note?: string): Promise<void> {
    if (status === 'active') throw new Error('setVersionStatus: use activateVersion');
    this.db.prepare('UPDATE model_versions SET status = ?, note = COALESCE(?, note) WHERE id = ?').run(status, note ?? null, id);
  }

  async activationHistory(): Promise<{ versionId: number; at: string; reason: string }[]> {
    return this.db.prepare('SELECT version_id AS versionId, at, reason FROM activations ORDER BY id').all() as { versionId: number; at: string; reason: string }[];
  }

  async startEvolution(e: Pick<Evolution, 'baseVersionId' | 'fromSeq' | 'toSeq' | 'options'>): Promise<Evolution> {
    const id = Number(
      this.db
        .prepare('INSERT INTO evolutions (status, base_version_id, from_seq, to_seq, options, progress, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run('running', e.baseVersionId, e.fromSeq, e.toSeq, JSON.stringify(e.options), JSON.stringify({ stage: 'starting', done: 0, total: 0, log: [] }), now()).lastInsertRowid,
    );
    return (await this.evolution(id))!;
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
    this.db.prepare(`UPDATE evolutions SET ${keys.map((k) => `${k} = ?`).join(', ')} WHERE id = ?`).run(...keys.map((k) => cols[k]), id);
  }

  async evolution(id: number): Promise<Evolution | null> {
    const r = this.db.prepare('SELECT * FROM evolutions WHERE id = ?').get(id) as EvolutionRow | undefined;
    return r ? toEvolution(r) : null;
  }

  async evolutions(): Promise<Evolution[]> {
    return (this.db.prepare('SELECT * FROM evolutions ORDER BY id').all() as EvolutionRow[]).map(toEvolution);
  }
}
