/**
 * A scoring worker thread of the service (scoring-pool.ts starts them). It holds the catalogue and the
 * loaded versions (VersionScorer, by load token) and answers batches of scoring jobs, in the order the
 * messages arrive: a job sent after a catalogue change or a load sees it. Scoring is synchronous here,
 * off the service's event loop.
 */
import { parentPort } from 'node:worker_threads';
import { lowerThreadPriority } from './priority.js';
import { VersionScorer, type Catalogue, type FullJob, type FullResult, type GivenJob, type LoadLimits, type VersionInfo } from './version-scorer.js';

export type Job = GivenJob | FullJob;

export type ToWorker =
  /** Items from index `from` on (appended), and titles changed at earlier indices. */
  | { type: 'catalogue'; from: number; items: { id: string; title: string }[]; changed: [number, string][] }
  | { type: 'load'; token: number; folder: string; limits: LoadLimits }
  | { type: 'drop'; token: number }
  | { type: 'score'; batch: number; jobs: { token: number; job: Job }[] };

export type JobResult = { ok: true; scores: Float32Array } | { ok: true; full: FullResult } | { ok: false; message: string };

export type FromWorker =
  | { type: 'loaded'; token: number; info: VersionInfo }
  | { type: 'load-failed'; token: number; message: string }
  | { type: 'scored'; batch: number; results: JobResult[] };

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The worker's state and message handling (separate from the thread so that it can be driven directly). */
export class WorkerState {
  readonly catalogue: Catalogue = { ids: [], titles: [], index: new Map() };
  private readonly versions = new Map<number, VersionScorer>();

  async handle(m: ToWorker): Promise<FromWorker | null> {
    switch (m.type) {
      case 'catalogue': {
        const c = this.catalogue;
        if (m.from !== c.ids.length) throw new Error(`catalogue update from index ${m.from}, but the worker holds ${c.ids.length} items`);
        for (const it of m.items) {
          c.index.set(it.id, c.ids.length);
          c.ids.push(it.id);
          c.titles.push(it.title);
        }
        for (const [k, title] of m.changed) c.titles[k] = title;
        for (const v of this.versions.values()) {
          if (m.changed.length) v.titlesChanged();
          if (m.items.length) v.catalogueGrew(m.from);
        }
        return null;
      }
      case 'load':
        try {
          const v = await VersionScorer.load(m.folder, this.catalogue, m.limits);
          this.versions.set(m.token, v);
          return { type: 'loaded', token: m.token, info: v.info() };
        } catch (e) {
          return { type: 'load-failed', token: m.token, message: message(e) };
        }
      case 'drop':
        this.versions.delete(m.token);
        return null;
      case 'score':
        return { type: 'scored', batch: m.batch, results: await this.score(m.jobs) };
    }
  }

  /** Scores a batch: the jobs of one version and one kind share a call (one forward for their users). */
  private async score(jobs: { token: number; job: Job }[]): Promise<JobResult[]> {
    const results = new Array<JobResult>(jobs.length);
    const groups = new Map<string, number[]>();
    jobs.forEach(({ token, job }, i) => {
      const key = `${token}:${job.kind}`;
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    for (const idx of groups.values()) {
      const { token, job } = jobs[idx[0]];
      const v = this.versions.get(token);
      try {
        if (!v) throw new Error(`version load ${token} is not loaded in this worker`);
        if (job.kind === 'given') {
          const scores = v.given(idx.map((i) => jobs[i].job as GivenJob));
          idx.forEach((i, g) => (results[i] = { ok: true, scores: scores[g] }));
        } else {
          const full = await v.full(idx.map((i) => jobs[i].job as FullJob));
          idx.forEach((i, g) => (results[i] = { ok: true, full: full[g] }));
        }
      } catch (e) {
        for (const i of idx) results[i] = { ok: false, message: message(e) };
      }
    }
    return results;
  }
}

if (parentPort) {
  const port = parentPort;
  // Scoring yields to the event loop (/healthz, ingestion) when the cores are busy.
  lowerThreadPriority();
  const state = new WorkerState();
  // Messages are handled one at a time, in order (a load finishes before the next job is scored).
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (m: ToWorker) => {
    chain = chain
      .then(async () => {
        const reply = await state.handle(m);
        if (reply) port.postMessage(reply);
      })
      .catch((e: unknown) => {
        // A fault of the worker itself (scoring errors are answered per job): the pool starts a fresh one.
        process.stderr.write(`evorec scoring worker: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
        process.exit(1);
      });
  });
}
