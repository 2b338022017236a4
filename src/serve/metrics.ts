/** Request counts and latency percentiles per route (a ring buffer of the latest latencies of each). */

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

  summary(): { count: number; byStatus: Record<string, number>; latencyMs: { p50: number; p90: number; p99: number; max: number } } {
    const xs = Array.from(this.latencies.subarray(0, Math.min(this.n, WINDOW))).sort((a, b) => a - b);
    const q = (p: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : 0);
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    return { count: this.count, byStatus: { ...this.byStatus }, latencyMs: { p50: r3(q(0.5)), p90: r3(q(0.9)), p99: r3(q(0.99)), max: r3(xs.at(-1) ?? 0) } };
  }
}

export class Metrics {
  readonly started = Date.now();
  private readonly routes = new Map<string, RouteStats>();

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
}
