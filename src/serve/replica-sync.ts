/**
 * Keeps a service replica current with the others on the same database. A replica caches two things
 * from the storage: the served version (loaded in memory) and the catalogue's titles (the prompts'). Both
 * can change through another replica, so every `intervalMs` the sync reads the active version and the
 * catalogue's stamp, and reloads what changed: an activation through one replica is served by the others
 * within about one interval (the load of the folder added). One process alone on its database sees
 * nothing change, at the cost of two small queries per interval.
 */
import type { ModelHost } from './model-host.js';
import type { Storage } from './storage.js';

export const DEFAULT_SYNC_MS = 2000;

export class ReplicaSync {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stamp: string | null = null;
  /** The last failure reported, so that a database that stays down is logged once, not every interval. */
  private lastError: string | null = null;

  constructor(
    private readonly storage: Storage,
    private readonly host: ModelHost,
    private readonly log: (line: string) => void,
  ) {}

  /** Records the catalogue as loaded now (the service loaded it at start). */
  async init(): Promise<void> {
    this.stamp = await this.storage.catalogueStamp();
  }

  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = null));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One round: the catalogue, then the active version. Failures are logged and retried next round. */
  async tick(): Promise<void> {
    try {
      await this.refreshCatalogue();
      await this.followActivation();
      this.lastError = null;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (msg !== this.lastError) this.log(`replica sync: ${msg} (retried every interval)`);
      this.lastError = msg;
    }
  }

  /** Reloads the catalogue if an item was added or retitled since the last look. */
  async refreshCatalogue(): Promise<void> {
    const stamp = await this.storage.catalogueStamp();
    if (stamp === this.stamp) return;
    this.host.setCatalogue(await this.storage.items());
    this.stamp = stamp;
  }

  /** Serves the version the database says is active, if this replica serves another. */
  private async followActivation(): Promise<void> {
    const seen = await this.storage.activeVersion();
    if (!seen || seen.id === this.host.current?.version.id) return;
    await this.host.exclusive(async () => {
      // Read again once it is this round's turn: a switch that ran meanwhile may have done it already.
      const active = await this.storage.activeVersion();
      if (!active || active.id === this.host.current?.version.id) return;
      const loaded = await this.host.load(active).catch((e: unknown) => {
        throw new Error(`version ${active.id} is active in the database but does not load here: ${e instanceof Error ? e.message : String(e)}`);
      });
      this.host.swap(loaded);
      this.log(`version ${active.id} active (activated through another replica)`);
    });
  }
}
