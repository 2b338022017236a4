/**
 * The service's storage, behind one interface: the catalogue (items with titles), users, the append-only
 * interaction log (each row with the client's idempotency id and a service-assigned sequence number), the
 * model-version registry with its activation history, and the evolution jobs.
 *
 * Every method is async so that the networked implementation (postgres-storage.ts) fits the same
 * interface; the embedded SQLite implementation (sqlite-storage.ts) answers synchronously underneath.
 * open-storage.ts picks one from the `--db` string. The sequence number
 * `seq` of an interaction is the log's order: a model version is "trained on data up to seq S", and an
 * evolution reads the rows (cut-off, S'] as its new period.
 */

export interface Item {
  id: string;
  title: string;
}

export interface NewInteraction {
  /** Client-supplied idempotency id: a repeated id is acknowledged, never stored twice. */
  id: string;
  user: string;
  item: string;
  /** Unix seconds (client time); the service's own order is `seq`. */
  timestamp: number;
}

export interface StoredInteraction extends NewInteraction {
  seq: number;
}

export type IngestStatus = 'created' | 'duplicate';

export interface IngestResult {
  id: string;
  status: IngestStatus;
  seq: number;
}

export type VersionStatus = 'active' | 'candidate' | 'retired' | 'rejected';

export interface ModelVersion {
  id: number;
  /** The LLMRec folder (absolute path). */
  folder: string;
  /** The version this one was evolved from (null for a registered model). */
  parentId: number | null;
  /** Trained on the interaction log up to this sequence number (inclusive; 0 = none of the log). */
  trainedUpTo: number;
  /** Validation figures (gate scores, training record) as JSON. */
  metrics: Record<string, unknown>;
  status: VersionStatus;
  createdAt: string;
  activatedAt: string | null;
  note: string | null;
}

export type EvolutionStatus = 'running' | 'succeeded' | 'rejected' | 'failed' | 'interrupted';

export interface Evolution {
  id: number;
  status: EvolutionStatus;
  baseVersionId: number;
  /** The new period: log rows (fromSeq, toSeq]. */
  fromSeq: number;
  toSeq: number;
  newVersionId: number | null;
  options: Record<string, unknown>;
  progress: { stage: string; done: number; total: number; log: string[] };
  message: string | null;
  pid: number | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface Storage {
  /** Creates or migrates the schema; returns the schema version now in force. */
  migrate(): Promise<number>;
  close(): Promise<void>;

  /** Inserts or updates items (title changes are kept). Returns how many were new. */
  upsertItems(items: readonly Item[]): Promise<{ created: number; updated: number }>;
  /** Every item, in catalogue order (the order of first insertion, which the model's item indices follow). */
  items(): Promise<Item[]>;
  /** The ids of `ids` that are not in the catalogue. */
  missingItems(ids: readonly string[]): Promise<string[]>;
  /**
   * Changes whenever an item is added or retitled (by this process or another on the same database): a
   * replica compares it to know when to reload its catalogue.
   */
  catalogueStamp(): Promise<string>;

  /**
   * Appends interactions in one transaction, in order. Users are created on first sight. A row whose id
   * is already in the log (or earlier in the same batch) is a duplicate: acknowledged with the stored seq
   * and not appended. A reused id whose user or item differs is refused (IdConflictError), nothing stored.
   */
  appendInteractions(rows: readonly NewInteraction[]): Promise<IngestResult[]>;
  /** The log in seq order, rows with fromSeq < seq <= toSeq. */
  interactions(fromSeq: number, toSeq: number): Promise<StoredInteraction[]>;
  /** The last sequence number of the log (0 when empty) and the row count (which takes a scan of the log). */
  logState(): Promise<{ lastSeq: number; count: number }>;
  /** The last sequence number alone (0 when empty): an index lookup, for every ingested batch. */
  lastSeq(): Promise<number>;
  /** A user's last `n` items, oldest first; null when the user is unknown. */
  recentItems(user: string, n: number): Promise<string[] | null>;
  /** Items the user has interacted with. */
  userItems(user: string): Promise<Set<string>>;
  /** Interaction count per item (the popularity the candidate pool is built from), most popular first. */
  popularity(limit: number): Promise<{ item: string; count: number }[]>;
  userCount(): Promise<number>;

  /** Registers a version (status 'candidate' unless given). */
  addVersion(v: Omit<ModelVersion, 'id' | 'createdAt' | 'activatedAt' | 'status'> & { status?: VersionStatus }): Promise<ModelVersion>;
  version(id: number): Promise<ModelVersion | null>;
  versions(): Promise<ModelVersion[]>;
  activeVersion(): Promise<ModelVersion | null>;
  /** Makes `id` the one active version (the previous one becomes 'retired'), recording the activation. */
  activateVersion(id: number, reason: string): Promise<ModelVersion>;
  setVersionStatus(id: number, status: VersionStatus, note?: string): Promise<void>;
  /** Version ids in activation order, oldest first (with repeats when a version was re-activated). */
  activationHistory(): Promise<{ versionId: number; at: string; reason: string }[]>;

  startEvolution(e: Pick<Evolution, 'baseVersionId' | 'fromSeq' | 'toSeq' | 'options'>): Promise<Evolution>;
  updateEvolution(id: number, patch: Partial<Pick<Evolution, 'status' | 'progress' | 'message' | 'pid' | 'newVersionId' | 'finishedAt'>>): Promise<void>;
  evolution(id: number): Promise<Evolution | null>;
  evolutions(): Promise<Evolution[]>;
}

/** A reused idempotency id with different content. */
export class IdConflictError extends Error {}

/**
 * The database cannot be used as it is (it cannot be reached, or its schema is from a newer evorec): a
 * matter of configuration, reported as such (the message names the database, a URL without its password).
 */
export class StorageError extends Error {}
