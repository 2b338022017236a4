/**
 * The service's scoring pool: worker threads (scoring-worker.ts), each holding the catalogue and every
 * live version, so that requests are scored off the event loop and several at once.
 *
 * Dispatch and batching: requests queue here; an idle worker takes up to `batch` of them at once and
 * scores the ones of one version and one kind in one call (one forward for their users). A request that
 * arrives while every worker is busy therefore waits at most one batch, and is scored together with the
 * others that arrived meanwhile. Beyond `maxQueue` waiting requests a request is refused (PoolBusyError,
 * 503) rather than queued without bound.
 *
 * Versions: `load` loads a folder in every worker under a fresh token and resolves once all of them have
 * it; jobs name their token, so a job queued before an activation is scored by the version it was queued
 * for, and a released token is dropped from the workers once no job needs it. A worker that dies is
 * replaced by a fresh one given the catalogue and the live versions; its jobs fail (500).
 */
import { extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FromWorker, Job, JobResult, ToWorker } from './scoring-worker.js';
import type { FullJob, FullResult, GivenJob, LoadLimits, VersionInfo } from './version-scorer.js';

const WORKER = join(import.meta.dirname, `scoring-worker${extname(import.meta.filename)}`);

export interface PoolOptions {
  /** Worker threads. */
  workers: number;
  /** Most requests a worker scores in one call. */
  batch: number;
  /** Most requests waiting for a worker; more are refused. */
  maxQueue: number;
  limits: LoadLimits;
  log?: (line: string) => void;
}

/** Every worker is busy and the queue is full. */
export class PoolBusyError extends Error {}

interface Pending {
  token: number;
  job: Job;
  resolve: (r: JobResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  /** The jobs of the batch it is scoring, or null when idle. */
  busy: Pending[] | null;
  batch: number;
}

interface Loading {
  waiting: Set<Slot>;
  info: VersionInfo | null;
  failed: string | null;
  done: () => void;
}

/** A worker thread running scoring-worker (through tsx when the service runs from its TypeScript sources). */
function startWorker(): Worker {
  if (!WORKER.endsWith('.ts')) return new Worker(WORKER);
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(WORKER).href)}); })`;
  return new Worker(boot, { eval: true });
}

export class ScoringPool {
  private readonly slots: Slot[] = [];
  private queue: Pending[] = [];
  private readonly items: { id: string; title: string }[] = [];
  /** Live versions: token -> folder (what a replacement worker loads). */
  private readonly live = new Map<number, string>();
  /** Jobs queued or in flight per token. */
  private readonly refs = new Map<number, number>();
  private readonly released = new Set<number>();
  private readonly loading = new Map<number, Loading>();
  private nextToken = 1;
  private nextBatch = 1;
  private closed = false;

  constructor(readonly options: PoolOptions) {
    if (!(Number.isInteger(options.workers) && options.workers >= 1)) throw new RangeError(`workers must be a positive integer, got ${options.workers}`);
    if (!(Number.isInteger(options.batch) && options.batch >= 1)) throw new RangeError(`batch must be a positive integer, got ${options.batch}`);
    for (let i = 0; i < options.workers; i++) this.slots.push(this.spawn());
  }

  get workers(): number {
    return this.slots.length;
  }

  /** Requests waiting for a worker. */
  get queued(): number {
    return this.queue.length;
  }

  /** Workers scoring a batch now. */
  get busy(): number {
    return this.slots.filter((s) => s.busy).length;
  }

  /** Batches sent to the workers, and the requests in each (counts by batch size). */
  readonly batchSizes = new Map<number, number>();

  private spawn(): Slot {
    const slot: Slot = { worker: startWorker(), busy: null, batch: 0 };
    slot.worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
    slot.worker.on('error', (e) => this.options.log?.(`scoring worker ${slot.worker.threadId}: ${e.stack ?? e.message}`));
    slot.worker.on('exit', (code) => this.onExit(slot, code));
    if (this.items.length) this.post(slot, { type: 'catalogue', from: 0, items: this.items, changed: [] });
    for (const [token, folder] of this.live) {
      this.post(slot, { type: 'load', token, folder, limits: this.options.limits });
      this.loading.get(token)?.waiting.add(slot);
    }
    return slot;
  }

  private post(slot: Slot, m: ToWorker): void {
    slot.worker.postMessage(m);
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    if (m.type === 'scored') {
      const jobs = slot.busy ?? [];
      slot.busy = null;
      jobs.forEach((p, i) => {
        this.unref(p.token);
        p.resolve(m.results[i]);
      });
      this.pump();
      return;
    }
    const l = this.loading.get(m.token);
    if (!l) return;
    if (m.type === 'loaded') l.info = m.info;
    else l.failed ??= m.message;
    l.waiting.delete(slot);
    if (l.waiting.size === 0) l.done();
  }

  private onExit(slot: Slot, code: number): void {
    const at = this.slots.indexOf(slot);
    if (at < 0) return;
    for (const l of this.loading.values()) {
      if (l.waiting.delete(slot) && l.waiting.size === 0) l.done();
    }
    for (const p of slot.busy ?? []) {
      this.unref(p.token);
      p.reject(new Error(`the scoring worker stopped (exit code ${code})`));
    }
    slot.busy = null;
    if (this.closed) return;
    this.options.log?.(`scoring worker ${slot.worker.threadId} stopped (exit code ${code}); starting a fresh one`);
    this.slots[at] = this.spawn();
    this.pump();
  }

  /** Sends queued jobs to idle workers, up to `batch` per worker. */
  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.busy) continue;
      const jobs = this.queue.splice(0, this.options.batch);
      slot.busy = jobs;
      slot.batch = this.nextBatch++;
      this.batchSizes.set(jobs.length, (this.batchSizes.get(jobs.length) ?? 0) + 1);
      this.post(slot, { type: 'score', batch: slot.batch, jobs: jobs.map((p) => ({ token: p.token, job: p.job })) });
    }
  }

  private unref(token: number): void {
    const n = (this.refs.get(token) ?? 1) - 1;
    if (n > 0) this.refs.set(token, n);
    else {
      this.refs.delete(token);
      if (this.released.has(token)) this.drop(token);
    }
  }

  private drop(token: number): void {
    this.released.delete(token);
    this.live.delete(token);
    for (const s of this.slots) this.post(s, { type: 'drop', token });
  }

  /** Appends items and changes titles in every worker (indices are the catalogue's). */
  catalogue(added: readonly { id: string; title: string }[], changed: readonly [number, string][]): void {
    if (!added.length && !changed.length) return;
    const m: ToWorker = { type: 'catalogue', from: this.items.length, items: [...added], changed: [...changed] };
    this.items.push(...added.map((it) => ({ ...it })));
    for (const [k, title] of changed) this.items[k] = { ...this.items[k], title };
    for (const s of this.slots) this.post(s, m);
  }

  /** Loads a version folder in every worker; resolves with its token once all have it. */
  async load(folder: string): Promise<{ token: number; info: VersionInfo }> {
    if (this.closed) throw new Error('the scoring pool is closed');
    const token = this.nextToken++;
    this.live.set(token, folder);
    const l: Loading = { waiting: new Set(this.slots), info: null, failed: null, done: () => {} };
    const done = new Promise<void>((r) => (l.done = r));
    this.loading.set(token, l);
    for (const s of this.slots) this.post(s, { type: 'load', token, folder, limits: this.options.limits });
    await done;
    this.loading.delete(token);
    if (l.failed !== null || !l.info) {
      this.release(token);
      throw new RangeError(l.failed ?? `${folder}: no scoring worker loaded it`);
    }
    return { token, info: l.info };
  }

  /** The version is no longer needed: dropped from the workers once no queued job names it. */
  release(token: number): void {
    if (!this.live.has(token)) return;
    if (this.refs.has(token)) this.released.add(token);
    else this.drop(token);
  }

  private submit(token: number, job: Job): Promise<JobResult> {
    if (this.closed) return Promise.reject(new Error('the scoring pool is closed'));
    if (this.queue.length >= this.options.maxQueue) {
      return Promise.reject(new PoolBusyError(`${this.queue.length} recommendation requests are waiting for the ${this.slots.length} scoring workers (--max-queue ${this.options.maxQueue}); retry shortly`));
    }
    this.refs.set(token, (this.refs.get(token) ?? 0) + 1);
    return new Promise<JobResult>((resolve, reject) => {
      this.queue.push({ token, job, resolve, reject });
      this.pump();
    });
  }

  /** LLMRec scores of candidate items (catalogue indices) after a history. */
  async given(token: number, job: Omit<GivenJob, 'kind'>): Promise<Float32Array> {
    const r = await this.submit(token, { kind: 'given', ...job });
    if (!r.ok) throw new Error(r.message);
    if (!('scores' in r)) throw new Error('the scoring worker answered another kind of job');
    return r.scores;
  }

  /** The two-stage full-catalogue ranking (null when the version's retriever knows none of the history). */
  async full(token: number, job: Omit<FullJob, 'kind'>): Promise<FullResult> {
    const r = await this.submit(token, { kind: 'full', ...job });
    if (!r.ok) throw new Error(r.message);
    if (!('full' in r)) throw new Error('the scoring worker answered another kind of job');
    return r.full;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.queue) p.reject(new Error('the scoring pool is closed'));
    this.queue = [];
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
