/**
 * Request counts and latency percentiles per route (a ring buffer of the latest latencies of each), and a
 * rolling count of the interactions stored (per 10-second bucket over the last 10 minutes).
 */

const WINDOW = 4096;

class RouteStats {
  count = 0;
  readonly byStatus: Record<string, number> = {};
  private readonly latencies = new Float64Array(WINDOW);
  private n = 0;

  add(status: number, ms: number): void {
    this.count++;
    const k = String(status);
    this.byStatus[k] = (this.byStatus[k] ?? 0) + 1;
    this.latencies[this.n++ % WINDOW] = ms;
  }

  summary(): { count: number; byStatus: Record<string, number>; latencyMs: { p50: number; p90: number; p95: number; p99: number; max: number } } {
    const xs = Array.from(this.latencies.subarray(0, Math.min(this.n, WINDOW))).sort((a, b) => a - b);
    const q = (p: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : 0);
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    return { count: this.count, byStatus: { ...this.byStatus }, latencyMs: { p50: r3(q(0.5)), p90: r3(q(0.9)), p95: r3(q(0.95)), p99: r3(q(0.99)), max: r3(xs.at(-1) ?? 0) } };
  }
}

/** Width of one bucket of the interaction counter, in seconds, and how many buckets it keeps. */
export const INGEST_BUCKET_S = 10;
export const INGEST_BUCKETS = 60;

export interface IngestRate {
  bucketSeconds: number;
  /** The last INGEST_BUCKETS buckets, oldest first, the current (partial) one last: start (Unix s), stored interactions. */
  buckets: { t: number; count: number }[];
  /** Interactions stored per second over the last full minute (the six buckets before the current one). */
  perSecond: number;
  /** Interactions stored through this process since it started. */
  total: number;
}

export class Metrics {
  readonly started: number;
  private readonly routes = new Map<string, RouteStats>();
  private readonly ingest = new Map<number, number>();
  private ingestTotal = 0;

  /** `now`: the clock in ms (tests give their own). */
  constructor(private readonly now: () => number = Date.now) {
    this.started = now();
  }

  record(route: string, status: number, ms: number): void {
    let s = this.routes.get(route);
    if (!s) this.routes.set(route, (s = new RouteStats()));
    s.add(status, ms);
  }

  snapshot(): Record<string, ReturnType<RouteStats['summary']>> {
    const out: Record<string, ReturnType<RouteStats['summary']>> = {};
    for (const [k, v] of [...this.routes].sort(([a], [b]) => a.localeCompare(b))) out[k] = v.summary();
    return out;
  }

  /** `n` interactions were stored now (duplicates are not counted). */
  recordIngest(n: number): void {
    if (n <= 0) return;
    const b = this.bucketOf(this.now());
    this.ingest.set(b, (this.ingest.get(b) ?? 0) + n);
    this.ingestTotal += n;
    for (const k of this.ingest.keys()) if (k <= b - INGEST_BUCKETS * INGEST_BUCKET_S) this.ingest.delete(k);
  }

  ingestRate(): IngestRate {
    const cur = this.bucketOf(this.now());
    const buckets = [];
    for (let i = INGEST_BUCKETS - 1; i >= 0; i--) {
      const t = cur - i * INGEST_BUCKET_S;
      buckets.push({ t, count: this.ingest.get(t) ?? 0 });
    }
    const minute = buckets.slice(-7, -1).reduce((s, b) => s + b.count, 0);
    return { bucketSeconds: INGEST_BUCKET_S, buckets, perSecond: Math.round((minute / 60) * 1000) / 1000, total: this.ingestTotal };
  }

  private bucketOf(ms: number): number {
    const s = Math.floor(ms / 1000);
    return s - (s % INGEST_BUCKET_S);
  }
}
