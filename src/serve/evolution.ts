/**
 * Evolution jobs on the service side: starts the worker (evolve-worker.ts) as a child process, records
 * its progress in the storage, and when it ends registers the new version and applies the validation
 * gate. The active model keeps serving throughout; it is replaced only when the new version passed the
 * gate and loaded completely. A job that fails, is killed, or is cut short by a stop of the service leaves
 * the registry and the served model as they were (its folder, if any, is removed at the next start).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { DEFAULT_EVOLVE, type EvolveOptions, type WorkerJob, type WorkerMessage, type WorkerResult } from './evolve-worker.js';
import { stopSurvivor, workerArgs } from './lifetime.js';
import type { ModelHost } from './model-host.js';
import type { Evolution, ModelVersion, Storage } from './storage.js';

export interface GateConfig {
  /** Off: every finished evolution is activated. */
  enabled: boolean;
  /** The new version may score at most this much below the active one (NDCG@3, absolute). */
  margin: number;
}

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

const WORKER = join(import.meta.dirname, `evolve-worker${extname(import.meta.filename)}`);

/** Environment variables the evolution child does not inherit: the service's tokens. */
export const CHILD_ENV_WITHHELD = ['EVOREC_TOKEN', 'EVOREC_READ_TOKEN'];

/** The service's environment without the tokens. */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of CHILD_ENV_WITHHELD) delete out[k];
  return out;
}

export class EvolutionManager {
  private child: ChildProcess | null = null;
  private running: Evolution | null = null;
  private finished: Promise<void> | null = null;

  /**
   * `db.spec` is what the child opens the storage from (a SQLite path or a PostgreSQL URL, sent over the
   * IPC channel); `db.label` is what the child's command line carries to be recognised by (a URL's
   * password masked: a command line is visible to every user of the machine).
   */
  constructor(
    private readonly storage: Storage,
    private readonly host: ModelHost,
    private readonly db: { spec: string; label: string },
    readonly versionsDir: string,
    readonly gate: GateConfig,
    private readonly log: (line: string) => void = () => {},
  ) {}

  get current(): Evolution | null {
    return this.running;
  }

  /**
   * Marks jobs cut short by a stop of the service (stopping first a job's process if it survived the
   * service), and removes folders no version refers to.
   */
  async recover(): Promise<void> {
    for (const e of await this.storage.evolutions()) {
      if (e.status === 'running') {
        const stopped = e.pid !== null && (await stopSurvivor(e.pid, e.id, this.db.label));
        if (stopped) this.log(`evolution ${e.id}: its process ${e.pid} outlived the service and was stopped`);
        const message = `the service stopped during the evolution${stopped ? ` (its process ${e.pid} was still running and has been stopped)` : ''}; the active model was kept`;
        await this.storage.updateEvolution(e.id, { status: 'interrupted', message, finishedAt: new Date().toISOString() });
      }
    }
    mkdirSync(this.versionsDir, { recursive: true });
    const used = new Set((await this.storage.versions()).map((v) => resolve(v.folder)));
    for (const name of readdirSync(this.versionsDir)) {
      const p = resolve(this.versionsDir, name);
      if (!used.has(p)) rmSync(p, { recursive: true, force: true });
    }
  }

  /** Starts an evolution of the active version over the interactions since its cut-off. */
  async start(options: Partial<EvolveOptions> = {}, gateMargin = this.gate.margin): Promise<Evolution> {
    if (this.running) throw new HttpError(409, `evolution ${this.running.id} is still running`);
    // The database's active version: another replica may have activated one since this one's last sync.
    const active = (await this.storage.activeVersion()) ?? this.host.current?.version;
    if (!active) throw new HttpError(409, 'no active model version');
    const { lastSeq } = await this.storage.logState();
    if (lastSeq <= active.trainedUpTo) throw new HttpError(409, `no new interactions since version ${active.id} (trained up to seq ${active.trainedUpTo})`);
    if (active.trainedUpTo === 0) throw new HttpError(409, `version ${active.id} was not trained on the log (trained up to seq 0), so there is no base period to evolve from: register a version with trainedUpTo first (POST /v1/versions)`);
    const opts: EvolveOptions = { ...DEFAULT_EVOLVE, ...options };
    const gate: GateConfig = { ...this.gate, margin: gateMargin };
    const e = await this.storage.startEvolution({ baseVersionId: active.id, fromSeq: active.trainedUpTo, toSeq: lastSeq, options: { ...opts, gate } });
    this.running = e;
    const out = resolve(this.versionsDir, `e${e.id}`);
    rmSync(out, { recursive: true, force: true });
    const job: WorkerJob = { type: 'job', db: this.db.spec, folder: active.folder, out, fromSeq: e.fromSeq, toSeq: e.toSeq, options: opts };
    const execArgv = WORKER.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const child = fork(WORKER, workerArgs(process.pid, e.id, this.db.label), { execArgv, env: childEnv(), stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    await this.storage.updateEvolution(e.id, { pid: child.pid ?? null });
    const progress: Evolution['progress'] = { stage: 'starting', done: 0, total: 0, log: [] };
    let outcome: WorkerMessage | null = null;
    // Storage writes of one job happen in order.
    let chain: Promise<unknown> = Promise.resolve();
    const enqueue = (f: () => Promise<unknown>) => (chain = chain.then(f).catch((err: unknown) => this.log(`evolution ${e.id}: ${String(err)}`)));
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') {
        Object.assign(progress, { stage: m.stage, done: m.done, total: m.total });
        enqueue(() => this.storage.updateEvolution(e.id, { progress: { ...progress, log: [...progress.log] } }));
      } else if (m.type === 'log') {
        progress.log.push(m.line);
        this.log(`evolution ${e.id}: ${m.line}`);
        enqueue(() => this.storage.updateEvolution(e.id, { progress: { ...progress, log: [...progress.log] } }));
      } else {
        outcome = m;
      }
    });
    this.finished = new Promise<void>((done) => {
      child.on('exit', (code, signal) => {
        enqueue(async () => {
          const o = outcome as WorkerMessage | null;
          if (o?.type === 'done') await this.conclude(e, active, out, o.result, progress, gate);
          else {
            const why = o?.type === 'error' ? o.message : `the evolution process ended (${signal ? `signal ${signal}` : `exit code ${code}`})${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`;
            rmSync(out, { recursive: true, force: true });
            await this.storage.updateEvolution(e.id, { status: 'failed', message: why, progress, finishedAt: new Date().toISOString() });
            this.log(`evolution ${e.id} failed: ${why}`);
          }
        });
        void chain.then(() => {
          this.running = null;
          this.child = null;
          done();
        });
      });
    });
    child.send(job);
    return (await this.storage.evolution(e.id))!;
  }

  /** Registers the finished version and activates it when it passes the gate. */
  private async conclude(e: Evolution, base: ModelVersion, out: string, result: WorkerResult, progress: Evolution['progress'], g: GateConfig): Promise<void> {
    const { before, after } = result.gate;
    const scored = Number.isFinite(before) && Number.isFinite(after);
    const pass = !g.enabled || (scored && after >= before - g.margin);
    const gate = { ...result.gate, margin: g.margin, enabled: g.enabled, passed: pass };
    const why = !g.enabled
      ? 'gate off'
      : !scored
        ? 'no held-out targets to gate on'
        : `NDCG@3 ${after.toFixed(4)} vs active ${before.toFixed(4)} (margin ${g.margin})`;
    const v = await this.storage.addVersion({ folder: out, parentId: base.id, trainedUpTo: e.toSeq, metrics: { ...result, gate }, note: `evolution ${e.id}: ${why}` });
    let status: Evolution['status'] = 'rejected';
    let message = `gate failed: ${why}; version ${v.id} kept as rejected, version ${base.id} still active`;
    if (pass) {
      const failed = await this.host.exclusive(async () => {
        // Through any replica: the database's active version, not this replica's cached one.
        const activeNow = (await this.storage.activeVersion())?.id;
        if (activeNow !== base.id) {
          status = 'succeeded';
          message = `version ${v.id} registered as a candidate: version ${activeNow} was activated during the evolution`;
          return false;
        }
        try {
          const loaded = await this.host.load(v);
          let activated: ModelVersion;
          try {
            activated = await this.storage.activateVersion(v.id, `evolution ${e.id}`);
          } catch (err) {
            this.host.discard(loaded);
            throw err;
          }
          this.host.swap({ ...loaded, version: activated });
          status = 'succeeded';
          message = `version ${v.id} active (${why})`;
          return false;
        } catch (err) {
          await this.storage.setVersionStatus(v.id, 'rejected', `failed to load: ${String(err)}`);
          await this.storage.updateEvolution(e.id, { status: 'failed', newVersionId: v.id, message: `version ${v.id} did not load: ${String(err)}`, progress, finishedAt: new Date().toISOString() });
          return true;
        }
      });
      if (failed) return;
    } else {
      await this.storage.setVersionStatus(v.id, 'rejected');
    }
    await this.storage.updateEvolution(e.id, { status, newVersionId: v.id, message, progress: { ...progress, stage: 'finished' }, finishedAt: new Date().toISOString() });
    this.log(`evolution ${e.id}: ${message}`);
  }

  /** Resolves when the running job (if any) has ended and been recorded. */
  async wait(): Promise<void> {
    await this.finished;
  }

  /** Stops the running job (the active model stays). */
  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
    await this.finished;
  }
}

export function versionsDirFor(db: string): string {
  return `${resolve(db)}.versions`;
}
