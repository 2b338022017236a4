/**
 * The served model: the catalogue (item ids and titles by item index, the order in which items entered
 * the catalogue) and the active version, scored by the scoring pool's worker threads (scoring-pool.ts).
 * Loading a version loads it in every worker; swapping versions is one assignment of `current`, done only
 * after the new version has loaded everywhere, so a request is answered by the old model or the new one,
 * never by a half-loaded one. The previous version is dropped from the workers once no queued request
 * needs it.
 */
import { ScoringPool, type PoolOptions } from './scoring-pool.js';
import type { Item, ModelVersion } from './storage.js';
import type { FullResult, VersionInfo } from './version-scorer.js';

export interface LoadedVersion {
  version: ModelVersion;
  /** The pool's handle of this load. */
  token: number;
  info: VersionInfo;
}

export class ModelHost {
  private readonly ids: string[] = [];
  private readonly titles: string[] = [];
  private readonly index = new Map<string, number>();
  readonly pool: ScoringPool;
  current: LoadedVersion | null = null;

  constructor(pool: PoolOptions) {
    this.pool = new ScoringPool(pool);
  }

  setCatalogue(items: readonly Item[]): void {
    const added: Item[] = [];
    const changed: [number, string][] = [];
    for (const it of items) {
      const k = this.index.get(it.id);
      if (k === undefined) {
        this.index.set(it.id, this.ids.length);
        this.ids.push(it.id);
        this.titles.push(it.title);
        added.push(it);
      } else if (this.titles[k] !== it.title) {
        this.titles[k] = it.title;
        changed.push([k, it.title]);
      }
    }
    this.pool.catalogue(added, changed);
  }

  title(id: string): string {
    const k = this.index.get(id);
    return k === undefined ? '' : this.titles[k];
  }

  itemIndex(id: string): number | undefined {
    return this.index.get(id);
  }

  itemId(index: number): string {
    return this.ids[index];
  }

  /** Loads a version's folder in every worker (does not serve it yet; `swap` or `discard` it). */
  async load(version: ModelVersion): Promise<LoadedVersion> {
    const { token, info } = await this.pool.load(version.folder);
    return { version, token, info };
  }

  /** Serves a loaded version from now on; the previous one is released. */
  swap(next: LoadedVersion): void {
    const prev = this.current;
    this.current = next;
    if (prev && prev.token !== next.token) this.pool.release(prev.token);
  }

  private switching: Promise<unknown> = Promise.resolve();

  /**
   * Runs `f` (a load, an activation, a swap) after every switch already started: a request's activation,
   * an evolution's, and the replica sync picking up another replica's never interleave (one would swap
   * in what the other had just replaced, or both would load the same folder).
   */
  exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.switching.then(f);
    this.switching = run.catch(() => {});
    return run;
  }

  /** A loaded version that will not be served. */
  discard(loaded: LoadedVersion): void {
    if (this.current?.token !== loaded.token) this.pool.release(loaded.token);
  }

  /** LLMRec scores of candidate item ids after a history of item ids (oldest first), by a loaded version. */
  async score(v: LoadedVersion, history: readonly string[], candidates: readonly string[]): Promise<Float32Array> {
    return this.pool.given(v.token, { history: history.map((id) => this.index.get(id)!), candidates: candidates.map((id) => this.index.get(id)!) });
  }

  /** A version's two-stage ranking of the catalogue, `seen` excluded (null: its retriever knows none of the history). */
  async full(v: LoadedVersion, history: readonly string[], seen: ReadonlySet<string>, depth: number): Promise<{ id: string; score: number }[] | null> {
    const r: FullResult = await this.pool.full(v.token, {
      history: history.map((id) => this.index.get(id)!),
      seen: [...seen].map((id) => this.index.get(id)!).filter((k) => k !== undefined),
      depth,
    });
    return r && r.items.map((k, j) => ({ id: this.ids[k], score: r.scores[j] }));
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
