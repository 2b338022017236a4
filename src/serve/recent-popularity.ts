/**
 * Recent popularity: interaction counts over the last `window` rows of the log, what a user without
 * interactions (cold start) is recommended. Read through the Storage interface (the log's tail), and
 * recomputed when the log has grown and the last count is older than `maxAgeMs`, so that a burst of
 * cold-start requests reads the log once.
 */
import type { Storage } from './storage.js';

export interface PopularItem {
  item: string;
  /** Interactions in the window. */
  count: number;
}

export class RecentPopularity {
  private cached: { lastSeq: number; at: number; ranked: PopularItem[] } | null = null;

  constructor(
    private readonly storage: Storage,
    readonly window = 10_000,
    private readonly maxAgeMs = 1000,
  ) {}

  /** Items by interactions in the window, most first (ties: the most recently interacted with first). */
  async ranked(): Promise<PopularItem[]> {
    const lastSeq = await this.storage.lastSeq();
    const c = this.cached;
    if (c && (c.lastSeq === lastSeq || Date.now() - c.at < this.maxAgeMs)) return c.ranked;
    const rows = await this.storage.interactions(Math.max(0, lastSeq - this.window), lastSeq);
    const counts = new Map<string, { count: number; last: number }>();
    for (const r of rows) {
      const e = counts.get(r.item);
      if (e) {
        e.count++;
        e.last = r.seq;
      } else counts.set(r.item, { count: 1, last: r.seq });
    }
    const ranked = [...counts].sort((a, b) => b[1].count - a[1].count || b[1].last - a[1].last).map(([item, e]) => ({ item, count: e.count }));
    this.cached = { lastSeq, at: Date.now(), ranked };
    return ranked;
  }
}
