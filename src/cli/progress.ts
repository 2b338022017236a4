/**
 * Progress bars for long work: one bar per stage, with rate and ETA, on stderr so that stdout stays
 * machine-readable. When stderr is not a terminal (CI, pipes), or NO_COLOR is set (https://no-color.org)
 * or TERM is dumb, plain lines are printed instead, at most every few seconds, with no escape sequences:
 * evorec never prints colour, and the bar's cursor movements are the only escape codes it would write.
 */
import cliProgress from 'cli-progress';

export type ProgressFn = (stage: string, done: number, total: number) => void;

/** Where progress goes; tests pass their own stream and environment. */
export interface ProgressIO {
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  env?: Record<string, string | undefined>;
}

/** Whether to draw a redrawing bar: a terminal that did not ask for plain output (NO_COLOR, TERM=dumb). */
export function wantsBar(io: ProgressIO = {}): boolean {
  const stream = io.stream ?? process.stderr;
  const env = io.env ?? process.env;
  return stream.isTTY === true && !env.NO_COLOR && env.TERM !== 'dumb';
}

export function progressBar(quiet = false, io: ProgressIO = {}): { update: ProgressFn; stop: () => void } {
  if (quiet) return { update: () => {}, stop: () => {} };
  const out = io.stream ?? process.stderr;
  const tty = wantsBar(io);
  let bar: cliProgress.SingleBar | null = null;
  let stage = '';
  let lastLine = 0;
  const stop = () => {
    bar?.stop();
    bar = null;
  };
  const update: ProgressFn = (name, done, total) => {
    if (!tty) {
      const now = Date.now();
      if (name !== stage || done >= total || now - lastLine > 5000) {
        const secs = (now - startTimes(name)) / 1000;
        const rate = secs > 0 ? done / secs : 0;
        const eta = rate > 0 ? (total - done) / rate : NaN;
        const info = secs > 0.5 ? ` (${rate.toFixed(rate < 10 ? 2 : 0)}/s, ETA ${Number.isFinite(eta) ? formatSeconds(eta) : '?'})` : '';
        out.write(`${name}: ${done}/${total}${info}\n`);
        lastLine = now;
      }
      stage = name;
      return;
    }
    if (name !== stage) {
      stop();
      stage = name;
      bar = new cliProgress.SingleBar(
        {
          format: `${name.padEnd(10)} [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted}`,
          stream: out,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, done, { rate: '0' });
    }
    const elapsed = (Date.now() - startTimes(name)) / 1000;
    bar!.setTotal(total);
    bar!.update(done, { rate: elapsed > 0 ? Math.round(done / elapsed).toLocaleString('en-US') : '0' });
    if (done >= total) stop();
  };
  return { update, stop };
}

const starts = new Map<string, number>();
function startTimes(name: string): number {
  let t = starts.get(name);
  if (t === undefined) {
    t = Date.now();
    starts.set(name, t);
  }
  return t;
}

export function formatSeconds(seconds: number): string {
  // Round first so that 119.6 s reads 2m00s, not 1m60s.
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
