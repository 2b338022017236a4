/**
 * Lower scheduling priority for the service's background work (scoring worker threads, the evolution
 * process), so that the event loop, which answers /healthz and acknowledges ingestion, runs first when
 * every core is busy. Measured in docs/service.md ("Measured on a quiet machine").
 *
 * On Linux every thread is a task with its own nice value: `/proc/thread-self` names the calling thread's
 * task id, and setpriority(2) on that id (Node's `os.setPriority`) changes this thread alone. Raising a
 * nice value needs no privilege. Elsewhere, or when /proc is missing, nothing changes.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The nice value of scoring threads: a waking event loop (nice 0) preempts them. */
export const BACKGROUND_NICE = 10;
/** The nice value of an evolution process: behind scoring too. */
export const EVOLUTION_NICE = 15;

/** The calling thread's task id on Linux, or null. */
export function currentThreadId(): number | null {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/** Raises the calling thread's nice value to `nice` (never lowers it); returns the thread id changed, or null. */
export function lowerThreadPriority(nice = BACKGROUND_NICE): number | null {
  const tid = currentThreadId();
  if (tid === null) return null;
  try {
    setPriority(tid, nice);
    return tid;
  } catch {
    return null;
  }
}

/**
 * Raises the nice value of every thread of this process (Node's own helper threads start before any
 * script runs, so the main thread's value alone would leave them ahead; threads started later inherit
 * it from their creator). Returns the number of threads changed.
 */
export function lowerProcessPriority(nice = BACKGROUND_NICE): number {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return 0;
  }
  let n = 0;
  for (const t of tids) {
    try {
      setPriority(Number(t), nice);
      n++;
    } catch {
      // a thread that ended meanwhile
    }
  }
  return n;
}
